"""The Transformer encoder block: LayerNorm, multi-head attention, MLP, residual connections.

Book chapter 4, "Encoder blocks". Implements Eq. 2-3 of Dosovitskiy et al. (2020), a pre-norm
block (the norm sits inside the residual branch, so the identity path is left untouched):

    z'_l = MSA(LN(z_{l-1})) + z_{l-1}
    z_l  = MLP(LN(z'_l)) + z'_l

and, with ``norm_first=False``, the original Transformer's post-norm block (Vaswani et al. 2017),
which normalizes after each residual addition:

    z'_l = LN(MSA(z_{l-1}) + z_{l-1})
    z_l  = LN(MLP(z'_l) + z'_l)

Shape legend: B batch, T tokens, D embedding dim.
"""

import torch
from torch import nn

from vitlib.attention import Attention

__all__ = ["LAYER_NORM_EPS", "Block", "DropPath", "Mlp"]

# The paper's JAX code, timm and torchvision all use 1e-6 (PyTorch's default is 1e-5).
LAYER_NORM_EPS = 1e-6


class Mlp(nn.Module):
    """Two linear layers with a GELU between them: D -> mlp_dim -> D, applied to each token."""

    def __init__(self, dim: int, *, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a whole residual branch for random samples.

    During training each sample keeps the branch with probability 1 - p, rescaled by 1 / (1 - p)
    so its expected value is unchanged; at evaluation this is the identity.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1.0 - self.p)  # (B, 1, 1)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """One Transformer encoder block: pre-norm (Eq. 2-3, ``norm_first=True``) or post-norm.

    ``norm_first`` has PyTorch's name and meaning (``nn.TransformerEncoderLayer``); the module
    names are timm's, so a pre-norm block loads timm's weights one to one.
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        mlp_dim: int,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path: float = 0.0,
        fused_attn: bool = False,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(
            dim,
            heads=heads,
            qkv_bias=qkv_bias,
            attention_dropout=attention_dropout,
            dropout=dropout,
            fused=fused_attn,
        )
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, mlp_dim=mlp_dim, dropout=dropout)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        if self.norm_first:
            x = x + self.drop_path1(self.attn(self.norm1(x)))  # Eq. 2
            x = x + self.drop_path2(self.mlp(self.norm2(x)))  # Eq. 3
        else:  # post-norm: the norm sits on the main path, after the addition
            x = self.norm1(x + self.drop_path1(self.attn(x)))
            x = self.norm2(x + self.drop_path2(self.mlp(x)))
        return x

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``forward``, also returning this block's attention weights (B, h, T, T)."""
        attended, weights = self.attn(self.norm1(x) if self.norm_first else x, return_attention=True)
        if self.norm_first:
            x = x + self.drop_path1(attended)
            x = x + self.drop_path2(self.mlp(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop_path1(attended))
            x = self.norm2(x + self.drop_path2(self.mlp(x)))
        return x, weights

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"
