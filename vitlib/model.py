"""The Vision Transformer: configuration, presets and the assembled model.

Book chapters 5 and 6. Implements Eq. 1-4 of Dosovitskiy et al. (2020):

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos           (1)  patch + position embedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1},  l = 1..L              (2)  attention, residual
    z_l = MLP(LN(z'_l)) + z'_l,          l = 1..L              (3)  MLP, residual
    y = LN(z_L^0)                                             (4)  the CLS token, normalized

followed by a linear head. With ``distilled=True``, DeiT's distillation token (Touvron et al.
2021) sits beside the CLS token, with its own head; see ``forward_heads``. Shape legend: B batch,
C channels, H/W image size, N patches, T = N + num_prefix_tokens tokens (N + 1 with the CLS token,
N + 2 with the distillation token too, N with neither), D embedding dim, h heads.
"""

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from vitlib.encoder import LAYER_NORM_EPS, Block
from vitlib.patches import LearnedPosEmbed2d, PatchEmbed, check_patch_grid, resize_pos_embed, sincos_2d_pos_embed

__all__ = ["PRESETS", "ViTConfig", "VisionTransformer"]

POOLS = ("cls", "mean")
POS_EMBEDS = ("learned", "learned_2d", "sincos", "none")


@dataclass(frozen=True)
class ViTConfig:
    """Everything that fixes a ViT's architecture. ``ViTConfig.from_preset(name)`` for the named ones."""

    image_size: int = 28  # square images, H = W; MNIST digits are 28x28
    patch_size: int = 4  # P; 28 / 4 = 7x7 = 49 patches, fine enough to see strokes
    in_chans: int = 1  # C; 1 for grey-scale, 3 for RGB
    num_classes: int = 10
    dim: int = 64  # D, the width of every token
    depth: int = 6  # L, the number of encoder blocks
    heads: int = 4  # h; each head works in D / h = 16 dimensions
    mlp_dim: int = 128  # hidden width of the MLP; the paper uses 4 D, small models do well on 2 D
    pool: str = "cls"  # 'cls': classify the CLS token (Eq. 4); 'mean': average the patch tokens, no CLS
    # 'learned': one free vector per token (the paper's default); 'learned_2d': learned row and column
    # vectors of D/2 each, concatenated (the paper's App. D.4); 'sincos': fixed 2-D sin-cos (MoCo v3);
    # 'none'
    pos_embed: str = "learned"
    qkv_bias: bool = True
    dropout: float = 0.0  # after the embedding, the attention output and inside the MLP
    attention_dropout: float = 0.0  # on the attention weights
    drop_path: float = 0.0  # stochastic depth, rising linearly to this value in the last block
    fused_attn: bool = False  # True: F.scaled_dot_product_attention; False: the written-out math
    norm_first: bool = True  # pre-norm blocks (ViT, Eq. 2-3); False: post-norm, as the original Transformer
    # DeiT's distillation token after the CLS token, read by its own head (head_dist) that learns a
    # teacher's labels; the prediction is the mean of the two heads. Needs pool='cls'.
    distilled: bool = False

    def __post_init__(self) -> None:
        check_patch_grid(self.image_size, self.image_size, self.patch_size)
        if self.dim % self.heads:
            raise ValueError(
                f"dim {self.dim} is not divisible by heads {self.heads}: each head gets dim / heads "
                f"channels, so pick heads among the divisors of {self.dim} or change dim"
            )
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}: expected one of {POOLS}")
        if self.distilled and self.pool != "cls":
            raise ValueError(
                f"distilled=True needs pool='cls', got pool={self.pool!r}: the distillation token is a "
                f"second prefix token beside the CLS token, and its head reads it as the class head reads the CLS token"
            )
        if self.pos_embed not in POS_EMBEDS:
            raise ValueError(f"unknown pos_embed {self.pos_embed!r}: expected one of {POS_EMBEDS}")
        if self.pos_embed == "sincos" and self.dim % 4:
            raise ValueError(
                f"pos_embed='sincos' needs dim divisible by 4 (a sine and a cosine for rows and for "
                f"columns), got dim={self.dim}: pick such a dim, or pos_embed='learned'"
            )
        if self.pos_embed == "learned_2d" and self.dim % 2:
            raise ValueError(
                f"pos_embed='learned_2d' splits each position vector into a row half and a column half, "
                f"so dim must be even, got dim={self.dim}: pick an even dim, or pos_embed='learned'"
            )
        for name in ("image_size", "in_chans", "num_classes", "depth", "mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ViTConfig":
        """A named configuration from ``PRESETS``, with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: expected one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _imagenet(patch_size: int, dim: int, depth: int, heads: int) -> ViTConfig:
    """The paper's Table 1 shapes at 224x224 on ImageNet's 1000 classes; MLP size is 4 D."""
    return ViTConfig(
        image_size=224, patch_size=patch_size, in_chans=3, num_classes=1000, dim=dim, depth=depth,
        heads=heads, mlp_dim=4 * dim,
    )  # fmt: skip


PRESETS: dict[str, ViTConfig] = {
    # The book's model: ~200k parameters, trains to over 99% on MNIST on a laptop CPU.
    "mnist": ViTConfig(),
    "vit_ti_16": _imagenet(16, dim=192, depth=12, heads=3),  # DeiT-Tiny (Touvron et al. 2021)
    "vit_s_16": _imagenet(16, dim=384, depth=12, heads=6),  # DeiT-Small
    "vit_b_16": _imagenet(16, dim=768, depth=12, heads=12),  # ViT-Base/16 (Table 1)
    "vit_b_32": _imagenet(32, dim=768, depth=12, heads=12),  # ViT-Base/32
    "vit_l_16": _imagenet(16, dim=1024, depth=24, heads=16),  # ViT-Large/16
}


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2020) with timm's module names, so its weights map one to one."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.patch_embed = PatchEmbed(
            image_size=config.image_size, patch_size=config.patch_size, in_chans=config.in_chans, dim=dim
        )
        self.num_prefix_tokens = int(config.pool == "cls") + int(config.distilled)  # 0, 1 or 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.pool == "cls" else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.distilled else None
        num_tokens = self.num_prefix_tokens + self.patch_embed.num_patches  # T
        self.pos_embed_2d = None
        if config.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        elif config.pos_embed == "sincos":
            fixed = sincos_2d_pos_embed(self.patch_embed.grid_size, dim)  # (N, D)
            fixed = torch.cat([torch.zeros(self.num_prefix_tokens, dim), fixed])  # the CLS token sits at no position
            self.register_buffer("pos_embed", fixed[None])  # (1, T, D)
        else:  # 'learned_2d' builds its table from row and column vectors at every call; 'none' has none
            self.pos_embed = None
            if config.pos_embed == "learned_2d":
                self.pos_embed_2d = LearnedPosEmbed2d(self.patch_embed.grid_size, dim)
        self.pos_drop = nn.Dropout(config.dropout)
        drop_path_rates = [config.drop_path * i / max(1, config.depth - 1) for i in range(config.depth)]
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim,
                    heads=config.heads,
                    mlp_dim=config.mlp_dim,
                    qkv_bias=config.qkv_bias,
                    dropout=config.dropout,
                    attention_dropout=config.attention_dropout,
                    drop_path=rate,
                    fused_attn=config.fused_attn,
                    norm_first=config.norm_first,
                )
                for rate in drop_path_rates
            ]
        )
        # Eq. 4's final LayerNorm; a post-norm stack already ends in one
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS) if config.norm_first else nn.Identity()
        self.head = nn.Linear(dim, config.num_classes)
        self.head_dist = nn.Linear(dim, config.num_classes) if config.distilled else None
        self.distilled_training = False  # True: forward in training mode returns both heads (timm's switch)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) weights and zero biases, as timm initializes its ViTs.

        The paper's JAX code differs: Xavier-uniform linear layers, a zero head, N(0, 0.02)
        position embeddings. Both train; timm's is the one most PyTorch ViTs start from.
        """
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.pos_embed_2d is not None:
            nn.init.trunc_normal_(self.pos_embed_2d.row, std=0.02)
            nn.init.trunc_normal_(self.pos_embed_2d.col, std=0.02)
        if self.dist_token is not None:  # as timm's VisionTransformerDistilled
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        self.apply(_init_weights)

    def set_fused_attn(self, fused: bool) -> None:
        """Switch every block between the written-out and the fused attention kernel."""
        for block in self.blocks:
            block.attn.fused = fused

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Eq. 1: (B, C, H, W) -> (B, T, D), patch embeddings with prefix tokens and positions."""
        x = self.patch_embed(images)  # (B, N, D)
        prefix = [token for token in (self.cls_token, self.dist_token) if token is not None]
        if prefix:  # [x_class; x_distil; x_p^1 E; ...]
            x = torch.cat([token.expand(x.shape[0], -1, -1) for token in prefix] + [x], dim=1)  # (B, T, D)
        positions = self.position_embeddings()
        if positions is not None:
            x = x + positions
        return self.pos_drop(x)

    def position_embeddings(self) -> torch.Tensor | None:
        """E_pos of Eq. 1 as one (1, T, D) table, whatever its kind; None for pos_embed='none'."""
        if self.pos_embed_2d is not None:
            patches = self.pos_embed_2d()  # (N, D)
            prefix = patches.new_zeros(self.num_prefix_tokens, patches.shape[1])  # prefix tokens sit at no position
            return torch.cat([prefix, patches])[None]  # (1, T, D)
        return self.pos_embed

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, T, D), every token after the encoder and the final LayerNorm."""
        return self.norm(self.blocks(self.embed(images)))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D): the CLS token (Eq. 4), or the mean of the patch tokens."""
        return tokens[:, 0] if self.config.pool == "cls" else tokens.mean(dim=1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, T, D) -> (B, num_classes) logits, or the pooled (B, D) with ``pre_logits``.

        A distilled model predicts with the mean of its two heads, as DeiT does at test time.
        """
        if self.head_dist is not None:
            if pre_logits:  # the two tokens' mean, as timm gives it
                return (tokens[:, 0] + tokens[:, 1]) / 2
            class_logits, distillation_logits = self.forward_heads(tokens)
            return (class_logits + distillation_logits) / 2
        pooled = self.pool(tokens)
        return pooled if pre_logits else self.head(pooled)

    def forward_heads(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A distilled model's two heads apart, (B, T, D) -> two (B, num_classes) logits.

        The class head reads the CLS token (token 0) and learns the true labels; the distillation
        head reads the distillation token (token 1) and learns the teacher's. Training needs them
        apart; ``forward`` averages them.
        """
        if self.head_dist is None:
            raise ValueError("forward_heads needs a model built with distilled=True; this one has one head")
        return self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])

    def set_distilled_training(self, enable: bool = True) -> None:
        """As timm's: while enabled, ``forward`` in training mode returns the two heads apart.

        Distillation trains each head on its own labels, so it needs them apart; going through
        ``forward`` (rather than ``forward_heads``) keeps wrappers such as DistributedDataParallel,
        which act on ``forward``, in the loop.
        """
        if enable and self.head_dist is None:
            raise ValueError("set_distilled_training needs a model built with distilled=True; this one has one head")
        self.distilled_training = enable

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (B, num_classes) logits; two of them while training with distillation."""
        tokens = self.forward_features(images)
        if self.distilled_training and self.training:
            return self.forward_heads(tokens)
        return self.forward_head(tokens)

    @torch.no_grad()
    def get_attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The attention weights of every layer: a list of L tensors (B, h, T, T).

        Row i of a map is where token i looks; with the CLS token, index 0 is the CLS token (and
        index 1 the distillation token in a distilled model): the patches start at num_prefix_tokens.
        """
        x = self.embed(images)
        maps = []
        for block in self.blocks:
            x, weights = block.forward_with_attention(x)
            maps.append(weights)
        return maps

    def resized(self, image_size: int) -> "VisionTransformer":
        """This model for images of another size (the paper's Sec. 3.2): same weights, same patches.

        A bigger image gives more patches of the same size, so only the position embeddings change:
        a learned table is interpolated on its grid (``resize_pos_embed``; a learned 2-D one row by
        row and column by column), a sin-cos one recomputed for the new grid. Fine-tuning at the new
        size is what the paper does next. Returns a new model; this one is left as it is.
        """
        config = dataclasses.replace(self.config, image_size=image_size)  # checks that P tiles the image
        with torch.random.fork_rng(devices=[]):  # its random initial weights are overwritten: leave the RNG be
            model = VisionTransformer(config).to(self.head.weight.device, self.head.weight.dtype)
        old_grid, new_grid = self.patch_embed.grid_size, model.patch_embed.grid_size
        state = self.state_dict()
        if config.pos_embed == "learned":
            state["pos_embed"] = resize_pos_embed(state["pos_embed"], old_grid, new_grid, self.num_prefix_tokens)
        elif config.pos_embed == "learned_2d":  # each table as a one-row image of its D/2 channels
            for name, old, new in (("row", old_grid[0], new_grid[0]), ("col", old_grid[1], new_grid[1])):
                table = state[f"pos_embed_2d.{name}"][None]  # (1, old, D/2)
                state[f"pos_embed_2d.{name}"] = resize_pos_embed(table, (1, old), (1, new), 0)[0]
        elif config.pos_embed == "sincos":
            state["pos_embed"] = model.pos_embed  # a formula of the position, for any grid
        model.load_state_dict(state)
        for new_block, block in zip(model.blocks, self.blocks, strict=True):  # what was set after building
            new_block.attn.fused, new_block.attn.scale = block.attn.fused, block.attn.scale
        for new_parameter, parameter in zip(model.parameters(), self.parameters(), strict=True):
            new_parameter.requires_grad_(parameter.requires_grad)
        return model.train(self.training)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
