"""Checkers for chapter 3, attention: padded batches, multi-head attention as the paper writes it, heads.

from vitlib.exercises import attention
attention.check_padded_attention(my_padded_attention)
"""

import math

import torch
from einops import rearrange

from vitlib.attention import Attention, scaled_dot_product_attention
from vitlib.exercises._checking import Case, Mistake, Verdict, check

__all__ = ["check_merge_heads", "check_multi_head_attention", "check_padded_attention", "check_split_heads"]

# The spacing of float32 numbers near 1; the tolerances below are a few of these times the size of the
# numbers involved, so that every correct float32 solution passes, whatever order it adds things in.
FLOAT32_EPS = torch.finfo(torch.float32).eps


def _output_only(function, *args):
    """The reader may return the output alone or (output, weights), as the chapter's attention does."""
    result = function(*args)
    return result[0] if isinstance(result, (tuple, list)) and len(result) == 2 else result


def _tolerance(terms: int, magnitude: float) -> float:
    """How far a correct float32 answer may be from the reference: a few float32 spacings per term added
    up along the computation, times the largest magnitude in it (summed in another order, or with
    another kernel, the same maths rounds differently by about that much)."""
    return 4 * FLOAT32_EPS * terms * magnitude


def _attention_atol(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> float:
    """A score sums d products q_i k_i / sqrt(d); an output averages T values with the softmax weights."""
    d, tokens = q.shape[-1], k.shape[-2]
    largest_product = q.abs().max().item() * k.abs().max().item() / math.sqrt(d)
    return _tolerance(d + tokens, max(largest_product, v.abs().max().item()))


# --- Padded batches: a key-padding mask ----------------------------------------------------------


def _key_padding_mask(lengths: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True for the real tokens of each sequence, False for its padding."""
    return torch.arange(num_tokens, device=lengths.device)[None, :] < lengths[:, None]


def _padded(q, k, v, lengths, *, where="keys", fill=float("-inf"), off_by_one=False, invert=False, how="scores"):
    """Attention over padded sequences, with switches for the usual mistakes (all default: correct)."""
    real = _key_padding_mask(lengths + int(off_by_one), k.shape[-2])  # (B, T)
    if invert:
        real = ~real
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    if how == "zero_values":  # the padded values zeroed (the same as masking the weights after the softmax)
        return scores.softmax(-1) @ (v * real[:, None, :, None])
    if how == "ignored":
        return scores.softmax(-1) @ v
    mask = {
        "keys": real[:, None, None, :],  # (B, 1, 1, T): every query, no padded key
        "queries": real[:, None, :, None],  # (B, 1, T, 1): hides padded queries' rows instead
        "both": real[:, None, :, None] & real[:, None, None, :],  # (B, 1, T, T)
    }[where]
    return scores.masked_fill(~mask, fill).softmax(-1) @ v  # (B, h, T, d)


def _padded_reference(q, k, v, lengths):
    mask = _key_padding_mask(lengths, k.shape[-2])[:, None, None, :]  # (B, 1, 1, T)
    return scaled_dot_product_attention(q, k, v, mask)[0]


def _fully_masked_rows(description: str, answer) -> list[Mistake]:
    """A mistake that masks every key of some query: a softmax of -inf's gives NaN there, while
    F.scaled_dot_product_attention gives 0 (in recent PyTorch); recognise both."""
    return [Mistake(description, answer), Mistake(description, lambda *args: answer(*args).nan_to_num(0.0))]


PADDED_MISTAKES = [
    *_fully_masked_rows(
        "the mask hides padded queries (rows, mask[:, None, :, None]) instead of padded keys (columns, "
        "mask[:, None, None, :]): every query must give zero weight to the padding, and a row of -inf "
        "gives NaN.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, where="queries"),
    ),
    *_fully_masked_rows(
        "padded queries are masked as well as padded keys: their rows are all -inf, and softmax of them is "
        "NaN (0 / 0). Mask only the keys; what a padded query computes is thrown away later anyway.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, where="both"),
    ),
    Mistake(
        "one padded key too many is visible: sequence b has lengths[b] real tokens, positions "
        "0 .. lengths[b] - 1, so the mask is arange(T) < lengths[:, None] (not <=).",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, off_by_one=True),
    ),
    *_fully_masked_rows(
        "the mask is inverted: it hides the real tokens and shows the padding. True must mark a real key.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, invert=True),
    ),
    Mistake(
        "padded scores are set to 0 instead of -inf: exp(0) = 1, so the padding still gets weight.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, fill=0.0),
    ),
    Mistake(
        "the padded keys still take weight in the softmax (their values were zeroed, or the weights masked "
        "after the softmax), so the real values share less than all of it and a row no longer sums to 1. "
        "Mask the scores with -inf before the softmax.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, how="zero_values"),
    ),
    Mistake(
        "the padding is not masked at all: every query attends to the padded keys too.",
        lambda q, k, v, lengths: _padded(q, k, v, lengths, how="ignored"),
    ),
]


def _padded_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    shapes = [  # (B, h, T, d), lengths, what it is
        ((2, 1, 5, 8), [5, 3], ""),
        ((2, 4, 17, 16), [17, 10], ": 28x28 and 21x21 digits, P = 7"),
        ((3, 2, 6, 4), [1, 6, 4], ": one sequence of a single token"),
        ((1, 2, 4, 8), [4], ": no padding"),
    ]
    cases = []
    for shape, lengths, note in shapes:
        q, k, v = (torch.randn(*shape, generator=generator) for _ in range(3))
        description = f"q, k, v {shape}, lengths {lengths}{note}"
        cases.append(Case(description, (q, k, v, torch.tensor(lengths))))
    return cases


def check_padded_attention(function) -> Verdict:
    """Check ``function(q, k, v, lengths)``: attention over a batch of sequences padded to one length T.

    q, k, v (B, h, T, d); lengths (B,) int, sequence b's real tokens are 0 .. lengths[b] - 1 and the rest
    is padding, which no query may attend to. Returns the output (B, h, T, d), or (output, weights).
    """
    cases = _padded_cases()
    atol = max(_attention_atol(*case.args[:3]) for case in cases)
    return check(
        "padded_attention", function, _padded_reference, cases, PADDED_MISTAKES, call=_output_only, atol=atol, rtol=0
    )


# --- Multi-head attention as Appendix A writes it: one U_qkv per head, then U_msa -----------------


def _msa_reference(z: torch.Tensor, u_qkv: torch.Tensor, u_msa: torch.Tensor) -> torch.Tensor:
    """vitlib.Attention with the paper's per-head matrices loaded into its fused qkv and proj layers."""
    heads, dim, _ = u_qkv.shape
    with torch.random.fork_rng(devices=[]):  # building the layer draws initial weights: leave the reader's RNG alone
        attention = Attention(dim, heads=heads, qkv_bias=False)
    with torch.no_grad():
        # Linear computes z @ W^T: output feature (t, j, e) of qkv is z @ u_qkv[j, :, t*d + e]
        attention.qkv.weight.copy_(rearrange(u_qkv, "h D (three d) -> (three h d) D", three=3))
        attention.proj.weight.copy_(u_msa.T)  # [SA_1; ...; SA_h] U_msa
        attention.proj.bias.zero_()  # Eq. 8 has no bias
        return attention(z)


def _msa(
    z, u_qkv, u_msa, *, scale=None, qkv_order="(three d)", project=True, transposed=False, softmax_dim=-1, shared=False
):
    """Eq. 5-8 one head at a time, with switches for the usual mistakes (all default: correct)."""
    heads, dim, _ = u_qkv.shape
    outputs = []
    for head in range(heads):
        q, k, v = rearrange(z @ u_qkv[0 if shared else head], f"b t {qkv_order} -> three b t d", three=3)
        d = q.shape[-1]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d if scale is None else scale(d, dim))  # (B, T, T)
        outputs.append(scores.softmax(softmax_dim) @ v)  # SA_j(z): (B, T, d)
    concatenated = torch.cat(outputs, dim=-1)  # (B, T, h*d)
    if not project:
        return concatenated
    return concatenated @ (u_msa.T if transposed else u_msa)  # (B, T, D)


MSA_MISTAKES = [
    Mistake(
        "the scores are divided by sqrt(D) instead of sqrt(d): the paper's D_h is the width of one head, "
        "d = D / h, the length of the vectors in each dot product.",
        lambda z, u, w: _msa(z, u, w, scale=lambda d, dim: dim),
    ),
    Mistake(
        "the scores are not scaled: Eq. 6 divides q k^T by sqrt(D_h) = sqrt(d).",
        lambda z, u, w: _msa(z, u, w, scale=lambda d, dim: 1.0),
    ),
    Mistake(
        "q, k and v are taken from interleaved columns; U_qkv of one head is [U_q | U_k | U_v], d columns "
        "each: q = z @ U[:, :d], k = z @ U[:, d:2d], v = z @ U[:, 2d:].",
        lambda z, u, w: _msa(z, u, w, qkv_order="(d three)"),
    ),
    Mistake(
        "U_msa is missing: Eq. 8 multiplies the concatenated heads (B, T, h*d) by U_msa (h*d, D).",
        lambda z, u, w: _msa(z, u, w, project=False),
    ),
    Mistake(
        "the heads are multiplied by U_msa transposed; Eq. 8 is [SA_1; ...; SA_h] @ U_msa, with U_msa "
        "of shape (h*d, D) as given.",
        lambda z, u, w: _msa(z, u, w, transposed=True),
    ),
    Mistake(
        "the softmax runs over the queries (dim=-2); each query's weights must sum to 1 over the keys, "
        "softmax(dim=-1).",
        lambda z, u, w: _msa(z, u, w, softmax_dim=-2),
    ),
    Mistake(
        "every head uses the first head's U_qkv: head j has its own matrix, u_qkv[j].",
        lambda z, u, w: _msa(z, u, w, shared=True),
    ),
]


def _msa_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(2)
    shapes = [  # (B, T, D), h, what it is
        ((2, 5, 8), 2, ""),
        ((1, 17, 64), 4, ": the book's model"),
        ((3, 4, 12), 3, ""),
        ((2, 6, 6), 1, ": one head"),
    ]
    cases = []
    for (b, t, dim), heads, note in shapes:
        d = dim // heads
        z = torch.randn(b, t, dim, generator=generator)
        u_qkv = torch.randn(heads, dim, 3 * d, generator=generator) / math.sqrt(dim)  # (h, D, 3d)
        u_msa = torch.randn(heads * d, dim, generator=generator) / math.sqrt(dim)  # (h*d, D)
        cases.append(Case(f"z ({b}, {t}, {dim}), {heads} head{'s' * (heads > 1)}{note}", (z, u_qkv, u_msa)))
    return cases


def check_multi_head_attention(function) -> Verdict:
    """Check ``function(z, u_qkv, u_msa)`` -> MSA(z) of Eq. 5-8, (B, T, D).

    z (B, T, D); u_qkv (h, D, 3d), head j's U_qkv = [U_q | U_k | U_v]; u_msa (h*d, D); d = D / h; no biases.
    """
    cases = _msa_cases()
    atol = max(_msa_atol(*case.args) for case in cases)
    return check("multi_head_attention", function, _msa_reference, cases, MSA_MISTAKES, atol=atol, rtol=0)


def _msa_atol(z: torch.Tensor, u_qkv: torch.Tensor, u_msa: torch.Tensor) -> float:
    """q, k, v sum D products each; a score d; an average T; the output h*d. The magnitude is the largest
    product formed on the way."""
    dim, heads, d = z.shape[-1], u_qkv.shape[0], u_qkv.shape[-1] // 3
    with torch.no_grad():
        qkv = torch.einsum("btD,hDe->bhte", z, u_qkv)  # (B, h, T, 3d)
        q, k, v = rearrange(qkv, "b h t (three d) -> three b h t d", three=3)
        heads_out = scaled_dot_product_attention(q, k, v)[0]  # (B, h, T, d)
    magnitude = max(
        z.abs().max().item() * u_qkv.abs().max().item(),
        q.abs().max().item() * k.abs().max().item() / math.sqrt(d),
        v.abs().max().item(),
        heads_out.abs().max().item() * u_msa.abs().max().item(),
    )
    return _tolerance(dim + d + z.shape[1] + heads * d, magnitude)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(x, "b t (h d) -> b h t d", h=heads)  # (B, T, D) -> (B, h, T, d)


SPLIT_MISTAKES = [
    Mistake(
        "(B, T, D) was reshaped straight to (B, h, T, d). A reshape keeps memory order, so each 'head' "
        "gets a block of whole tokens instead of a slice of every token's features. "
        "Reshape to (B, T, h, d) first, then transpose(1, 2).",
        lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h),
    ),
    Mistake(
        "the features are split as (d h) instead of (h d): head i must get the contiguous slice "
        "x[..., i*d:(i+1)*d], as nn.MultiheadAttention and timm do.",
        lambda x, h: rearrange(x, "b t (d h) -> b h t d", h=h),
    ),
    Mistake(
        "the result is (B, T, h, d): transpose(1, 2) to put the heads before the tokens, so that "
        "q @ k.transpose(-2, -1) compares tokens within each head.",
        lambda x, h: rearrange(x, "b t (h d) -> b t h d", h=h),
    ),
]


def _split_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(1)
    return [
        Case(f"x {shape}, {heads} heads", (torch.randn(*shape, generator=generator), heads))
        for shape, heads in [((2, 5, 12), 3), ((1, 50, 64), 4), ((3, 7, 16), 2), ((2, 4, 8), 8)]
    ]


def check_split_heads(function) -> Verdict:
    """Check ``function(x, heads)``: (B, T, D) -> (B, h, T, d) with d = D / h, head i = features [i*d, (i+1)*d)."""
    return check("split_heads", function, _split, _split_cases(), SPLIT_MISTAKES, atol=0, rtol=0)


def _merge(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b h t d -> b t (h d)")  # (B, h, T, d) -> (B, T, D)


MERGE_MISTAKES = [
    Mistake(
        "(B, h, T, d) was reshaped straight to (B, T, D): transpose(1, 2) first (and .reshape, "
        "not .view, since the transpose leaves the tensor non-contiguous).",
        lambda x: x.reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]),
    ),
    Mistake(
        "the heads are merged as (d h) instead of (h d): head i's output must land in features [i*d, (i+1)*d).",
        lambda x: rearrange(x, "b h t d -> b t (d h)"),
    ),
]


def check_merge_heads(function) -> Verdict:
    """Check ``function(x)``: (B, h, T, d) -> (B, T, h*d), the inverse of split_heads."""
    cases = [
        Case(f"x {tuple(c.args[0].shape)} split into {c.args[1]} heads", (_split(*c.args),)) for c in _split_cases()
    ]
    return check("merge_heads", function, _merge, cases, MERGE_MISTAKES, atol=0, rtol=0)
