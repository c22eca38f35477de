"""Checkers for chapter 4, encoder blocks: LayerNorm, the pre-norm block (Eq. 2-3), the parameter count.

from vitlib.exercises import encoder
encoder.check_block(my_block)
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from vitlib.encoder import Block
from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.model import PRESETS, VisionTransformer, ViTConfig

__all__ = ["check_block", "check_layer_norm", "check_parameter_count"]


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def _normalized(x, weight, bias, eps, *, dim=-1, unbiased=False, eps_outside=False):
    centred = x - x.mean(dim=dim, keepdim=True)
    variance = x.var(dim=dim, keepdim=True, unbiased=unbiased)
    scale = variance.sqrt() + eps if eps_outside else (variance + eps).sqrt()
    return centred / scale * weight + bias


LAYER_NORM_MISTAKES = [
    Mistake(
        "the statistics are taken over the tokens (dim=-2), not over each token's features (dim=-1): "
        "LayerNorm normalizes every token on its own.",
        lambda x, w, b, eps: _normalized(x, w, b, eps, dim=-2),
    ),
    Mistake(
        "the statistics are taken over the batch (dim=0): that is BatchNorm; LayerNorm uses only the "
        "features of one token (dim=-1).",
        lambda x, w, b, eps: _normalized(x, w, b, eps, dim=0),
    ),
    Mistake(
        "the variance is the unbiased one (divided by D - 1, torch.var's default); LayerNorm divides by D: "
        "x.var(dim=-1, unbiased=False).",
        lambda x, w, b, eps: _normalized(x, w, b, eps, unbiased=True),
    ),
    Mistake(
        "eps is added to the standard deviation instead of the variance: (x - mean) / sqrt(var + eps).",
        lambda x, w, b, eps: _normalized(x, w, b, eps, eps_outside=True),
    ),
    Mistake(
        "the learned scale and shift are missing: multiply by weight (gamma), then add bias (beta).",
        lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], None, None, eps),
    ),
    Mistake(
        "weight and bias are swapped: the output is normalized * weight + bias.",
        lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], b, w, eps),
    ),
]


def check_layer_norm(function) -> Verdict:
    """Check ``function(x, weight, bias, eps)``: LayerNorm over the last axis of x (B, N, D), weight and bias (D,)."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, n, d, eps, spread in [(2, 5, 16, 1e-6, 3.0), (4, 3, 8, 1e-5, 1.0), (3, 7, 4, 0.5, 0.5)]:
        x = spread * torch.randn(b, n, d, generator=generator) + torch.randn(b, n, 1, generator=generator)
        weight, bias = torch.rand(d, generator=generator) + 0.5, torch.randn(d, generator=generator)
        cases.append(Case(f"x ({b}, {n}, {d}), eps {eps:g}", (x, weight, bias, eps)))
    return check("layer_norm", function, _layer_norm, cases, LAYER_NORM_MISTAKES)


def _block(x: torch.Tensor, block: Block) -> torch.Tensor:
    return block(x)


def _post_norm(x, blk):
    x = blk.norm1(x + blk.attn(x))
    return blk.norm2(x + blk.mlp(x))


def _no_attention_residual(x, blk):
    x = blk.attn(blk.norm1(x))
    return x + blk.mlp(blk.norm2(x))


def _no_mlp_residual(x, blk):
    x = x + blk.attn(blk.norm1(x))
    return blk.mlp(blk.norm2(x))


def _no_residuals(x, blk):
    return blk.mlp(blk.norm2(blk.attn(blk.norm1(x))))


def _normalized_stream(x, blk):
    x = blk.norm1(x)
    x = x + blk.attn(x)
    x = blk.norm2(x)
    return x + blk.mlp(x)


def _norm1_twice(x, blk):
    x = x + blk.attn(blk.norm1(x))
    return x + blk.mlp(blk.norm1(x))


BLOCK_MISTAKES = [
    Mistake(
        "this is a post-norm block, norm(x + sublayer(x)), as in the original Transformer; ViT's is "
        "pre-norm (Eq. 2-3): x + sublayer(norm(x)), which leaves the residual path untouched.",
        _post_norm,
    ),
    Mistake(
        "the residual around the attention is missing (Eq. 2: z'_l = MSA(LN(z_{l-1})) + z_{l-1}).",
        _no_attention_residual,
    ),
    Mistake("the residual around the MLP is missing (Eq. 3: z_l = MLP(LN(z'_l)) + z'_l).", _no_mlp_residual),
    Mistake("both residuals are missing: each sub-layer's output must be added to its input.", _no_residuals),
    Mistake(
        "the residual stream itself is normalized (x = norm(x); x = x + sublayer(x)): the skip path "
        "must carry the un-normalized x; only the sub-layer's input is normalized.",
        _normalized_stream,
    ),
    Mistake("norm1 is used before the MLP too; each sub-layer has its own LayerNorm (norm1, norm2).", _norm1_twice),
]


def _random_block(dim: int, heads: int, mlp_dim: int, seed: int) -> Block:
    """A block in eval mode with random LayerNorm weights, so that every wrong wiring shows."""
    torch.manual_seed(seed)
    block = Block(dim, heads=heads, mlp_dim=mlp_dim).eval()
    for norm in (block.norm1, block.norm2):
        nn.init.uniform_(norm.weight, 0.5, 1.5)
        nn.init.normal_(norm.bias, std=0.5)
    return block


def check_block(function) -> Verdict:
    """Check ``function(x, block)``: one pre-norm encoder block, Eq. 2-3, built from ``block``'s parts.

    Use ``block.norm1``, ``block.attn``, ``block.norm2`` and ``block.mlp`` (a `vitlib.Block`);
    x is (B, N, D) and the result too.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for seed, (b, n, d, heads, mlp_dim) in enumerate([(2, 5, 16, 2, 32), (1, 50, 64, 4, 128), (3, 7, 8, 1, 8)]):
        block = _random_block(d, heads, mlp_dim, seed)
        x = torch.randn(b, n, d, generator=generator)
        cases.append(Case(f"x ({b}, {n}, {d}), {heads} head{'s' * (heads != 1)}, MLP width {mlp_dim}", (x, block)))
    return check("block", function, _block, cases, BLOCK_MISTAKES)


def _count(config: ViTConfig, leave_out=lambda name: False) -> int:
    """Parameters of ``VisionTransformer(config)``, without those whose names ``leave_out`` selects."""
    model = VisionTransformer(config)
    return sum(p.numel() for name, p in model.named_parameters() if not leave_out(name))


def _is_layer_norm(name: str) -> bool:  # "norm.weight", "blocks.3.norm1.bias", ...
    return name.startswith("norm") or ".norm" in name


def _learned_positions(config: ViTConfig) -> int:
    return config.dim if config.pos_embed == "learned" else 0


PARAMETER_MISTAKES = [
    Mistake(
        "the LayerNorm parameters are missing: 2 D per LayerNorm, two per block and one at the end.",
        lambda c: _count(c, _is_layer_norm),
    ),
    Mistake(
        "the final LayerNorm (after the last block, before the head: 2 D) is missing.",
        lambda c: _count(c, lambda name: name.startswith("norm.")),
    ),
    Mistake(
        "the biases are missing: every nn.Linear has out_features of them (the qkv layer only when "
        "qkv_bias=True), and the patch embedding D.",
        lambda c: _count(c, lambda name: name.endswith("bias") and not _is_layer_norm(name)),
    ),
    Mistake(
        "D parameters are missing: the class token (D), or its row of the position embeddings "
        "(with a class token they have N + 1 rows, not N).",
        lambda c: _count(c, lambda name: name == "cls_token"),
    ),
    Mistake(
        "with pool='mean' there is no class token, and no position embedding for it: N rows, not N + 1.",
        lambda c: _count(c) + (c.dim + _learned_positions(c) if c.pool == "mean" else 0),
    ),
    Mistake(
        "position embeddings are counted although they are not learned: pos_embed='sincos' is a fixed "
        "buffer and 'none' has none, so they add no parameters.",
        lambda c: _count(c) + (c.num_patches + (c.pool == "cls")) * c.dim * (c.pos_embed != "learned"),
    ),
    Mistake(
        "the classification head (D K weights + K biases) is missing.",
        lambda c: _count(c, lambda name: name.startswith("head.")),
    ),
]


def check_parameter_count(function) -> Verdict:
    """Check ``function(config)`` -> the number of parameters of ``VisionTransformer(config)``, by formula."""
    mnist = PRESETS["mnist"]
    configs = {
        "the mnist preset": mnist,
        "mnist, 7x7 patches, MLP width 100": dataclasses.replace(mnist, patch_size=7, mlp_dim=100),
        "mnist with pool='mean'": dataclasses.replace(mnist, pool="mean"),
        "mnist with pos_embed='sincos'": dataclasses.replace(mnist, pos_embed="sincos"),
        "mnist without qkv biases, 3 channels, 32x32": dataclasses.replace(
            mnist, qkv_bias=False, in_chans=3, image_size=32
        ),
        "ViT-B/16": PRESETS["vit_b_16"],
    }
    cases = [Case(name, (config,)) for name, config in configs.items()]
    return check("parameter_count", function, _count, cases, PARAMETER_MISTAKES)
