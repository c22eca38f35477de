"""Checkers for chapter 3, attention: masked attention, the causal mask, splitting and merging heads.

from vitlib.exercises import attention
attention.check_attention(my_attention)
"""

import math

import torch
from einops import rearrange

from vitlib.attention import causal_mask, scaled_dot_product_attention
from vitlib.exercises._checking import Case, Mistake, Verdict, check

__all__ = ["check_attention", "check_causal_mask", "check_merge_heads", "check_split_heads"]


def _attention_output(function, q, k, v, mask):
    """The reader may return the output alone or (output, weights), as the chapter's version does."""
    result = function(q, k, v, mask)
    return result[0] if isinstance(result, (tuple, list)) and len(result) == 2 else result


def _written_out(q, k, v, mask, *, scale: float | None = None, softmax_dim: int = -1, fill: float = float("-inf")):
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)  # (..., Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    return scores.softmax(dim=softmax_dim) @ v  # (..., Nq, d_v)


def _reference(q, k, v, mask):
    return scaled_dot_product_attention(q, k, v, mask)[0]


ATTENTION_MISTAKES = [
    Mistake(
        "the scores are not scaled: divide q k^T by sqrt(d) (d = q.shape[-1]), or the softmax "
        "saturates as d grows (chapter 3 measured the variance: it grows like d).",
        lambda q, k, v, mask: _written_out(q, k, v, mask, scale=1.0),
    ),
    Mistake(
        "the scores are divided by d instead of sqrt(d): the dot product's standard deviation grows like sqrt(d).",
        lambda q, k, v, mask: _written_out(q, k, v, mask, scale=1 / q.shape[-1]),
    ),
    Mistake(
        "the softmax runs over the wrong axis (the queries, dim=-2): each query's weights must sum to 1 "
        "over the keys, softmax(dim=-1).",
        lambda q, k, v, mask: _written_out(q, k, v, mask, softmax_dim=-2),
    ),
    Mistake(
        "a causal mask was applied, but ViT attention is unmasked: every patch may attend to every "
        "patch, before and after it. (Causal masking is GPT's, for predicting the next token.)",
        lambda q, k, v, mask: _written_out(q, k, v, torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()),
    ),
    Mistake(
        "the mask is ignored: where mask is False the score must become -inf before the softmax.",
        lambda q, k, v, mask: _written_out(q, k, v, None),
    ),
    Mistake(
        "masked scores are set to 0 instead of -inf: exp(0) = 1, so masked keys still get weight. "
        "Use scores.masked_fill(~mask, float('-inf')).",
        lambda q, k, v, mask: _written_out(q, k, v, mask, fill=0.0),
    ),
    Mistake(
        "the mask is inverted: here True means 'may attend' (as in F.scaled_dot_product_attention); "
        "nn.MultiheadAttention's boolean attn_mask uses the opposite convention.",
        lambda q, k, v, mask: _written_out(q, k, v, None if mask is None else ~mask),
    ),
    Mistake(
        "the function returns the attention weights (..., Nq, Nk), not the weighted values weights @ v.",
        lambda q, k, v, mask: scaled_dot_product_attention(q, k, v, mask)[1],
    ),
]


def _attention_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    padding = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    padding[0, ..., 4:] = False  # the last two keys of the first sequence are padding
    return [
        Case("q, k, v (2, 5, 16), no mask", (randn(2, 5, 16), randn(2, 5, 16), randn(2, 5, 16), None)),
        Case("4 heads: q, k, v (2, 4, 7, 8), no mask", (randn(2, 4, 7, 8), randn(2, 4, 7, 8), randn(2, 4, 7, 8), None)),
        Case(
            "cross-attention: q (3, 4, 8), k (3, 9, 8), v (3, 9, 5), no mask",
            (randn(3, 4, 8), randn(3, 9, 8), randn(3, 9, 5), None),
        ),
        Case(
            "causal mask: q, k, v (2, 6, 32), mask (6, 6)",
            (randn(2, 6, 32), randn(2, 6, 32), randn(2, 6, 32), causal_mask(6)),
        ),
        Case(
            "padding mask: q, k, v (2, 3, 6, 8), mask (2, 1, 6, 6)",
            (randn(2, 3, 6, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 8), padding),
        ),
    ]


def check_attention(function) -> Verdict:
    """Check ``function(q, k, v, mask)`` -> softmax(q k^T / sqrt(d), masked) v.

    q (..., Nq, d), k (..., Nk, d), v (..., Nk, d_v); ``mask`` is None or a bool tensor that
    broadcasts to (..., Nq, Nk), True where a query may attend to a key. The function may
    return the output (..., Nq, d_v) alone or (output, weights).
    """
    return check(
        "attention", function, _reference, _attention_cases(), ATTENTION_MISTAKES, call=_attention_output
    )  # fmt: skip


CAUSAL_MISTAKES = [
    Mistake(
        "the mask is inverted: True must mark what a token MAY attend to (F.scaled_dot_product_attention's "
        "convention); nn.MultiheadAttention's boolean attn_mask marks what is blocked instead.",
        lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(),
    ),
    Mistake(
        "the mask lets each token see the future, not the past: token i may attend to tokens j <= i, "
        "the lower triangle (tril), not the upper (triu).",
        lambda n: torch.ones(n, n, dtype=torch.bool).triu(),
    ),
    Mistake(
        "the diagonal is masked: a token may attend to itself (j <= i, not j < i); the first token "
        "would otherwise have nothing to attend to and its softmax would be NaN.",
        lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1),
    ),
    Mistake(
        "this is an additive float mask (0 and -inf); the exercise asks for the boolean form, "
        "True where attention is allowed. (Both work with F.scaled_dot_product_attention.)",
        lambda n: torch.zeros(n, n).masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf")),
    ),
]


def check_causal_mask(function) -> Verdict:
    """Check ``function(num_tokens)`` -> a bool (N, N) mask, True where token i may attend to token j."""
    cases = [Case(f"{n} token" + "s" * (n != 1), (n,)) for n in (5, 1, 2, 16)]
    return check("causal_mask", function, causal_mask, cases, CAUSAL_MISTAKES)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(x, "b n (h d) -> b h n d", h=heads)  # (B, N, D) -> (B, h, N, d)


SPLIT_MISTAKES = [
    Mistake(
        "(B, N, D) was reshaped straight to (B, h, N, d). A reshape keeps memory order, so each 'head' "
        "gets a block of whole tokens instead of a slice of every token's features. "
        "Reshape to (B, N, h, d) first, then transpose(1, 2).",
        lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h),
    ),
    Mistake(
        "the features are split as (d h) instead of (h d): head i must get the contiguous slice "
        "x[..., i*d:(i+1)*d], as nn.MultiheadAttention and timm do.",
        lambda x, h: rearrange(x, "b n (d h) -> b h n d", h=h),
    ),
    Mistake(
        "the result is (B, N, h, d): transpose(1, 2) to put the heads before the tokens, so that "
        "q @ k.transpose(-2, -1) compares tokens within each head.",
        lambda x, h: rearrange(x, "b n (h d) -> b n h d", h=h),
    ),
]


def _split_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(1)
    return [
        Case(f"x {shape}, {heads} heads", (torch.randn(*shape, generator=generator), heads))
        for shape, heads in [((2, 5, 12), 3), ((1, 50, 64), 4), ((3, 7, 16), 2), ((2, 4, 8), 8)]
    ]


def check_split_heads(function) -> Verdict:
    """Check ``function(x, heads)``: (B, N, D) -> (B, h, N, d) with d = D / h, head i = features [i*d, (i+1)*d)."""
    return check("split_heads", function, _split, _split_cases(), SPLIT_MISTAKES, atol=0, rtol=0)


def _merge(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b h n d -> b n (h d)")  # (B, h, N, d) -> (B, N, D)


MERGE_MISTAKES = [
    Mistake(
        "(B, h, N, d) was reshaped straight to (B, N, D): transpose(1, 2) first (and .reshape, "
        "not .view, since the transpose leaves the tensor non-contiguous).",
        lambda x: x.reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]),
    ),
    Mistake(
        "the heads are merged as (d h) instead of (h d): head i's output must land in features [i*d, (i+1)*d).",
        lambda x: rearrange(x, "b h n d -> b n (d h)"),
    ),
]


def check_merge_heads(function) -> Verdict:
    """Check ``function(x)``: (B, h, N, d) -> (B, N, h*d), the inverse of split_heads."""
    cases = [
        Case(f"x {tuple(c.args[0].shape)} split into {c.args[1]} heads", (_split(*c.args),)) for c in _split_cases()
    ]
    return check("merge_heads", function, _merge, cases, MERGE_MISTAKES, atol=0, rtol=0)
