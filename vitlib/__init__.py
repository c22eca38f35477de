"""vitlib: the Vision Transformer, built piece by piece in the book, and checked against timm.

Each module is one chapter's piece: ``cnn`` and ``experiments.inductive_bias`` (ch. 1),
``patches`` (ch. 2), ``attention`` (ch. 3), ``encoder`` (ch. 4), ``model``, ``data`` and ``train``
(ch. 5), ``viz``, ``pretrained`` and ``export`` (ch. 6; ``export`` feeds the drawing pad);
``interop`` moves weights to and from timm and torchvision.
"""

from vitlib.attention import Attention, causal_mask, scaled_dot_product_attention
from vitlib.encoder import Block, DropPath, Mlp
from vitlib.model import PRESETS, VisionTransformer, ViTConfig
from vitlib.patches import (
    LearnedPosEmbed2d,
    PatchEmbed,
    grid_pos_embed,
    patchify,
    sincos_1d_pos_embed,
    sincos_2d_pos_embed,
    unpatchify,
)
from vitlib.pretrained import load_pretrained

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Attention",
    "Block",
    "DropPath",
    "LearnedPosEmbed2d",
    "Mlp",
    "PatchEmbed",
    "ViTConfig",
    "VisionTransformer",
    "causal_mask",
    "grid_pos_embed",
    "load_pretrained",
    "patchify",
    "scaled_dot_product_attention",
    "sincos_1d_pos_embed",
    "sincos_2d_pos_embed",
    "unpatchify",
]
