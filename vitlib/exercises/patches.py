"""Checkers for chapter 2, patchifying: patchify, sin-cos positions, and the token sequence of Eq. 1.

from vitlib.exercises import patches
patches.check_patchify(my_patchify)
"""

import torch
from einops import rearrange

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.patches import patchify, sincos_1d_pos_embed

__all__ = ["check_embed_tokens", "check_patchify", "check_sincos_1d"]


def _image_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    shapes = [  # (B, C, H, W, P)
        (2, 1, 28, 28, 7),
        (3, 3, 32, 32, 4),
        (1, 3, 12, 20, 4),
        (4, 2, 6, 6, 2),
        (2, 3, 28, 28, 14),
    ]
    return [
        Case(f"batch {b}, {c}x{h}x{w} images, patch {p}", (torch.randn(b, c, h, w, generator=generator), p))
        for b, c, h, w, p in shapes
    ]


PATCHIFY_MISTAKES = [
    Mistake(
        "each patch is flattened channel-first, (c p1 p2), instead of (p1 p2 c). That is the order "
        "`F.unfold` / `nn.Unfold` and a Conv2d weight use; vitlib (like timm and the paper's "
        "x_p in R^{N x (P^2 C)}) keeps the channels of a pixel together: `(p1 p2 c)`.",
        lambda x, p: rearrange(x, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=p, p2=p),
    ),
    Mistake(
        "the patches are taken column by column, (gw gh), instead of row by row, (gh gw): "
        "patch 1 must be the one to the right of patch 0, not the one below it.",
        lambda x, p: rearrange(x, "b c (gh p1) (gw p2) -> b (gw gh) (p1 p2 c)", p1=p, p2=p),
    ),
    Mistake(
        "inside each patch the pixels are read column by column, (p2 p1), instead of row by row, (p1 p2).",
        lambda x, p: rearrange(x, "b c (gh p1) (gw p2) -> b (gh gw) (p2 p1 c)", p1=p, p2=p),
    ),
    Mistake(
        "the images were reshaped to (B, N, P*P*C) without moving any axis first. A reshape keeps "
        "memory order, so each 'patch' is a run of consecutive pixels along a row, not a P x P square. "
        "Split H and W into (gh, P) and (gw, P), move the axes, then flatten.",
        lambda x, p: x.reshape(x.shape[0], (x.shape[2] // p) * (x.shape[3] // p), p * p * x.shape[1]),
    ),
    Mistake(
        "the patch grid is not flattened: the output is (B, gh, gw, P*P*C); merge gh and gw into N.",
        lambda x, p: rearrange(x, "b c (gh p1) (gw p2) -> b gh gw (p1 p2 c)", p1=p, p2=p),
    ),
]


def check_patchify(function) -> Verdict:
    """Check ``function(images, patch_size)``: (B, C, H, W) -> (B, N, P*P*C), like `vitlib.patchify`."""
    return check("patchify", function, patchify, _image_cases(), PATCHIFY_MISTAKES, atol=0, rtol=0)


def _sincos_concatenated(num_positions: int, dim: int) -> torch.Tensor:
    interleaved = sincos_1d_pos_embed(num_positions, dim)
    return torch.cat([interleaved[:, 0::2], interleaved[:, 1::2]], dim=1)


def _sincos_from(num_positions: int, dim: int, omega: torch.Tensor, first: int = 0) -> torch.Tensor:
    angle = torch.arange(first, first + num_positions, dtype=torch.float64)[:, None] * omega  # (N, D/2)
    embed = torch.zeros(num_positions, dim, dtype=torch.float64)
    embed[:, 0::2], embed[:, 1::2] = angle.sin(), angle.cos()
    return embed.float()


SINCOS_MISTAKES = [
    Mistake(
        "the sines and cosines are concatenated, [sin | cos], instead of interleaved: "
        "PE(pos, 2i) is a sine and PE(pos, 2i + 1) the cosine of the same angle.",
        _sincos_concatenated,
    ),
    Mistake(
        "sine and cosine are swapped: the even channels 2i hold the sine, the odd channels 2i + 1 the cosine.",
        lambda n, d: torch.flip(sincos_1d_pos_embed(n, d).reshape(n, d // 2, 2), dims=[2]).reshape(n, d),
    ),
    Mistake(
        "the frequency exponent uses i / D instead of 2i / D: pair i has the angle pos / 10000^(2i / D), "
        "so the slowest pair still turns by 10000^(-(D-2)/D) per position.",
        lambda n, d: _sincos_from(n, d, 10000.0 ** (-torch.arange(d // 2, dtype=torch.float64) / d)),
    ),
    Mistake(
        "the positions start at 1; the first token has position 0 (its embedding is [0, 1, 0, 1, ...]).",
        lambda n, d: _sincos_from(n, d, 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d), first=1),
    ),
]


def check_sincos_1d(function) -> Verdict:
    """Check ``function(num_positions, dim)`` -> (N, D), the sinusoidal encoding of Vaswani et al."""
    cases = [Case(f"{n} positions, dim {d}", (n, d)) for n, d in [(50, 64), (1, 8), (17, 128), (197, 768), (10, 2)]]
    return check("sincos_1d", function, sincos_1d_pos_embed, cases, SINCOS_MISTAKES, atol=1e-5, rtol=1e-4)


def _embed_tokens(patch_tokens: torch.Tensor, cls_token: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
    """Eq. 1: z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos."""
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)  # (B, 1, D)
    return torch.cat([cls, patch_tokens], dim=1) + pos_embed  # (B, N + 1, D)


EMBED_MISTAKES = [
    Mistake(
        "the class token was prepended after the position embeddings were added, so it got none "
        "(Eq. 1 adds E_pos to the whole sequence, the class token included: E_pos has N + 1 rows).",
        lambda x, cls, pos: torch.cat([cls.expand(x.shape[0], -1, -1), x + pos[:, 1:]], dim=1),
    ),
    Mistake(
        "the class token was prepended after adding position rows 0..N-1 to the patches: the class "
        "token must get row 0 and patch i row i + 1.",
        lambda x, cls, pos: torch.cat([cls.expand(x.shape[0], -1, -1), x + pos[:, :-1]], dim=1),
    ),
    Mistake(
        "the class token is appended at the end; it goes first, so that z_L^0 is the class token.",
        lambda x, cls, pos: torch.cat([x, cls.expand(x.shape[0], -1, -1)], dim=1) + pos,
    ),
    Mistake(
        "the position embeddings are missing: without them the encoder cannot tell where a patch was.",
        lambda x, cls, pos: torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1),
    ),
]


def check_embed_tokens(function) -> Verdict:
    """Check ``function(patch_tokens, cls_token, pos_embed)`` -> z_0 of Eq. 1.

    Shapes: patch_tokens (B, N, D), cls_token (1, 1, D), pos_embed (1, N + 1, D); returns (B, N + 1, D).
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, n, d in [(2, 16, 8), (1, 49, 64), (3, 4, 5)]:
        tokens = torch.randn(b, n, d, generator=generator)
        cls, pos = torch.randn(1, 1, d, generator=generator), torch.randn(1, n + 1, d, generator=generator)
        cases.append(Case(f"batch {b}, {n} patches, dim {d}", (tokens, cls, pos)))
    return check("embed_tokens", function, _embed_tokens, cases, EMBED_MISTAKES)
