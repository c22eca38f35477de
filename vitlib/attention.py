"""Scaled dot-product attention and multi-head self-attention.

Book chapter 3, "Attention". Implements Eq. 5-8 of Appendix A of Dosovitskiy et al. (2020),
which is Sec. 3.2 of Vaswani et al. (2017), in the paper's symbols:

    [q, k, v] = z U_qkv                          U_qkv in R^{D x 3 D_h}
    A = softmax(q k^T / sqrt(D_h))               A in R^{N x N}
    SA(z) = A v
    MSA(z) = [SA_1(z); ...; SA_k(z)] U_msa       U_msa in R^{k D_h x D}

The paper's D_h is the book's d = D / h, and its k heads are the book's h (k is kept for the
keys). Shape legend: B batch, T tokens, D embedding dim, h heads, d = D / h head dim.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["Attention", "causal_mask", "scaled_dot_product_attention"]


def causal_mask(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (T, T) mask, True where token i may attend to token j, i.e. j <= i (GPT-style)."""
    return torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, written out.

    Args:
        q, k: (..., T, d) queries and keys; v: (..., T, d_v) values. Any leading dims
            (batch, heads) are carried along.
        mask: optional boolean, broadcastable to (..., T, T); True where attention is allowed.
            ViT attends everywhere (no mask); GPT passes ``causal_mask(T)``.
        dropout_p: dropout on the weights before they mix the values (training only).
        scale: what the scores are multiplied by; None (the default) is 1 / sqrt(d), as in
            ``F.scaled_dot_product_attention``. 1.0 removes the scaling (an ablation).

    Returns:
        out: (..., T, d_v) and weights: (..., T, T), each row a probability distribution
        (taken before dropout).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries and keys need the same last dim, got {q.shape[-1]} and {k.shape[-1]}")
    # Without the 1/sqrt(d), the scores' variance grows like d and the softmax saturates.
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)  # (..., T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., T, T), softmax over the keys
    out = F.dropout(weights, dropout_p) @ v if dropout_p > 0 else weights @ v  # (..., T, d_v)
    return out, weights


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection and an output ``proj``.

    ``fused=False`` (the default) runs the written-out attention above and can return the
    attention weights, which the visualizations need. ``fused=True`` calls
    ``F.scaled_dot_product_attention``, PyTorch's fused kernel: same numbers, less memory.
    ``scale`` (None: 1 / sqrt(d)) multiplies the scores; set it to 1.0 to see what the scaling is for.
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        qkv_bias: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(
                f"dim {dim} is not divisible by heads {heads}: each head gets dim / heads channels, "
                f"so pick heads among the divisors of {dim} or change dim"
            )
        self.heads = heads
        self.head_dim = dim // heads
        self.fused = fused
        self.scale: float | None = None  # None: 1 / sqrt(d)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attention_dropout = attention_dropout
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) -> (B, T, D); with ``return_attention`` also the (B, h, T, T) weights."""
        qkv = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        q, k, v = qkv.unbind(0)  # (B, h, T, d) each
        dropout_p = self.attention_dropout if self.training else 0.0
        if self.fused and not return_attention:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=self.scale)  # (B, h, T, d)
            weights = None
        else:
            out, weights = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=self.scale)
        out = rearrange(out, "b h t d -> b t (h d)")  # merge the heads: (B, T, D)
        out = self.proj_drop(self.proj(out))
        return (out, weights) if return_attention else out
