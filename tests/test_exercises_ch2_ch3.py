"""Chapters 2 and 3's checkers: correct answers written in several ways pass, the usual wrong ones are named."""

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import vitlib
from vitlib.exercises import attention, patches

# --- Correct answers, written as readers would (not vitlib's code), several ways each --------------


def sincos_2d_loops(grid_size, dim):
    """Straight from the formula, one number at a time, in Python floats."""
    grid_height, grid_width = grid_size
    quarter = dim // 4
    embed = torch.zeros(grid_height * grid_width, dim)
    for patch in range(grid_height * grid_width):
        row, col = divmod(patch, grid_width)
        for i in range(quarter):
            omega = 1 / 10000 ** (i / quarter)
            embed[patch, i], embed[patch, quarter + i] = math.sin(row * omega), math.cos(row * omega)
            embed[patch, 2 * quarter + i], embed[patch, 3 * quarter + i] = math.sin(col * omega), math.cos(col * omega)
    return embed


def sincos_2d_exp_log(grid_size, dim):
    """The frequencies the exp/log way, in float32, as PyTorch's tutorials write the 1-D encoding."""
    grid_height, grid_width = grid_size
    omega = torch.exp(torch.arange(dim // 4, dtype=torch.float32) * (-math.log(10000.0) / (dim // 4)))
    rows = torch.arange(grid_height, dtype=torch.float32).repeat_interleave(grid_width)[:, None] * omega
    cols = torch.arange(grid_width, dtype=torch.float32).repeat(grid_height)[:, None] * omega
    return torch.cat([rows.sin(), rows.cos(), cols.sin(), cols.cos()], dim=1)


def _sincos_1d_concatenated(num_positions, dim):
    """A 1-D code over ``dim`` channels, [sin | cos], the exp/log way (float32)."""
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    return torch.cat([torch.sin(position * frequency), torch.cos(position * frequency)], dim=1)


def sincos_2d_from_1d(grid_size, dim):
    """A 1-D code over D/2 channels for the rows and one for the columns, broadcast over the grid."""
    grid_height, grid_width = grid_size
    rows = _sincos_1d_concatenated(grid_height, dim // 2)[:, None, :].expand(-1, grid_width, -1)
    cols = _sincos_1d_concatenated(grid_width, dim // 2)[None, :, :].expand(grid_height, -1, -1)
    return torch.cat([rows, cols], dim=-1).reshape(grid_height * grid_width, dim)


def sincos_2d_meshgrid_pow(grid_size, dim):
    """meshgrid and a float32 power, as MoCo v3's code (the row first)."""
    ys, xs = torch.meshgrid(
        torch.arange(grid_size[0], dtype=torch.float32), torch.arange(grid_size[1], dtype=torch.float32), indexing="ij"
    )
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out_y, out_x = torch.einsum("m,d->md", ys.flatten(), omega), torch.einsum("m,d->md", xs.flatten(), omega)
    return torch.cat([out_y.sin(), out_y.cos(), out_x.sin(), out_x.cos()], dim=1)


def resize_with_interpolate(pos_embed, old_grid, new_grid):
    cls, patches_rows = pos_embed[:, :1], pos_embed[:, 1:]  # (1, 1, D), (1, N, D)
    image = patches_rows.transpose(1, 2).reshape(1, -1, *old_grid)  # (1, D, gh, gw)
    image = F.interpolate(image, size=new_grid, mode="bilinear", align_corners=False)
    return torch.cat([cls, image.flatten(2).transpose(1, 2)], dim=1)


def _bilinear_weights(old, new):
    """(new, old): align_corners=False, each output the centre of its cell, clamped at the edges."""
    weights = torch.zeros(new, old)
    for out in range(new):
        source = max((out + 0.5) * old / new - 0.5, 0.0)
        low = min(int(source), old - 1)
        high, t = min(low + 1, old - 1), source - low
        weights[out, low] += 1 - t
        weights[out, high] += t
    return weights


def resize_with_matrices(pos_embed, old_grid, new_grid):
    """Bilinear interpolation is separable: one matrix for the rows, one for the columns."""
    grid = rearrange(pos_embed[0, 1:], "(gh gw) d -> d gh gw", gh=old_grid[0])
    grid = _bilinear_weights(old_grid[0], new_grid[0]) @ grid @ _bilinear_weights(old_grid[1], new_grid[1]).T
    return torch.cat([pos_embed[:, :1], rearrange(grid, "d gh gw -> 1 (gh gw) d")], dim=1)


def resize_with_grid_sample(pos_embed, old_grid, new_grid):
    """Sample the old grid at the centres of the new cells, in grid_sample's [-1, 1] coordinates."""
    image = rearrange(pos_embed[:, 1:], "b (gh gw) d -> b d gh gw", gh=old_grid[0])
    ys = (torch.arange(new_grid[0]) + 0.5) / new_grid[0] * 2 - 1
    xs = (torch.arange(new_grid[1]) + 0.5) / new_grid[1] * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    where = torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, gh', gw', 2), x first
    image = F.grid_sample(image, where, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.cat([pos_embed[:, :1], rearrange(image, "b d gh gw -> b (gh gw) d")], dim=1)


def padded_attention_masked_fill(q, k, v, lengths):
    real = torch.arange(k.shape[-2])[None, :] < lengths[:, None]  # (B, T)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    weights = scores.masked_fill(~real[:, None, None, :], float("-inf")).softmax(dim=-1)
    return weights @ v, weights


def padded_attention_fused(q, k, v, lengths):
    real = torch.arange(k.shape[-2])[None, :] < lengths[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=real[:, None, None, :])


def padded_attention_one_sequence_at_a_time(q, k, v, lengths):
    """Cut the padding off each sequence's keys and values: nothing to mask."""
    out = torch.empty_like(q)
    for b, length in enumerate(lengths.tolist()):
        keys, values = k[b, :, :length], v[b, :, :length]  # (h, length, d)
        weights = torch.softmax(q[b] @ keys.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        out[b] = weights @ values
    return out


def padded_attention_large_negative(q, k, v, lengths):
    """An additive mask of -1e9 and a softmax written out with einsum."""
    padding = (torch.arange(k.shape[-2])[None, :] >= lengths[:, None]).float()  # (B, T)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1]) - 1e9 * padding[:, None, None, :]
    exp = (scores - scores.amax(-1, keepdim=True)).exp()
    return torch.einsum("bhqk,bhkd->bhqd", exp / exp.sum(-1, keepdim=True), v)


def msa_head_by_head(z, u_qkv, u_msa):
    heads, _, three_d = u_qkv.shape
    d = three_d // 3
    outputs = []
    for j in range(heads):
        qkv = z @ u_qkv[j]  # (B, T, 3d), Eq. 5
        q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)  # Eq. 6
        outputs.append(weights @ v)  # Eq. 7
    return torch.cat(outputs, dim=-1) @ u_msa  # Eq. 8


def msa_sum_of_heads(z, u_qkv, u_msa):
    """[SA_1; ...; SA_h] U_msa is the sum over heads of SA_j U_msa's rows j*d .. (j+1)*d."""
    d = u_qkv.shape[-1] // 3
    out = 0
    for j in range(u_qkv.shape[0]):
        q, k, v = (z @ u_qkv[j]).split(d, dim=-1)
        out = out + F.scaled_dot_product_attention(q, k, v) @ u_msa[j * d : (j + 1) * d]
    return out


def msa_batched_heads(z, u_qkv, u_msa):
    heads, d = u_qkv.shape[0], u_qkv.shape[-1] // 3
    q, k, v = torch.einsum("btD,hDe->bhte", z, u_qkv).chunk(3, dim=-1)  # (B, h, T, d) each
    weights = torch.einsum("bhqd,bhkd->bhqk", q, k).mul(d**-0.5).softmax(dim=-1)
    heads_out = torch.einsum("bhqk,bhkd->bqhd", weights, v).reshape(*z.shape[:2], heads * d)
    return heads_out @ u_msa


def msa_as_one_linear(z, u_qkv, u_msa):
    """Stack the heads' matrices into one (D, 3D) matrix, as a fused qkv layer holds them."""
    heads = u_qkv.shape[0]
    u_all = rearrange(u_qkv, "h D (three d) -> D (three h d)", three=3)
    q, k, v = rearrange(z @ u_all, "b t (three h d) -> three b h t d", three=3, h=heads)
    out, _ = vitlib.scaled_dot_product_attention(q, k, v)
    return rearrange(out, "b h t d -> b t (h d)") @ u_msa


CORRECT = [
    (patches.check_sincos_2d, sincos_2d_loops),
    (patches.check_sincos_2d, sincos_2d_exp_log),
    (patches.check_sincos_2d, sincos_2d_from_1d),
    (patches.check_sincos_2d, sincos_2d_meshgrid_pow),
    (patches.check_resize_pos_embed, resize_with_interpolate),
    (patches.check_resize_pos_embed, resize_with_matrices),
    (patches.check_resize_pos_embed, resize_with_grid_sample),
    (attention.check_padded_attention, padded_attention_masked_fill),
    (attention.check_padded_attention, padded_attention_fused),
    (attention.check_padded_attention, padded_attention_one_sequence_at_a_time),
    (attention.check_padded_attention, padded_attention_large_negative),
    (attention.check_multi_head_attention, msa_head_by_head),
    (attention.check_multi_head_attention, msa_sum_of_heads),
    (attention.check_multi_head_attention, msa_batched_heads),
    (attention.check_multi_head_attention, msa_as_one_linear),
]


@pytest.mark.parametrize("checker, answer", CORRECT, ids=[f"{c.__name__}-{a.__name__}" for c, a in CORRECT])
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    verdict = checker(answer)
    assert verdict.passed, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✓") and "correct on all" in printed


def test_printed_verdicts_fit_the_books_code_column(capsys):
    """The book shows each solution's verdict: no line may be wider than the page's 76 characters."""
    for checker in {checker for checker, _ in CORRECT}:
        checker(next(answer for c, answer in CORRECT if c is checker))
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 76


def test_the_1d_encoding_written_the_exp_log_way_is_within_the_float32_rule():
    """The bug that started this: 197 positions x 768 channels the exp/log way differ by 1.4e-5 from float64.
    The rule the checkers use, a few float32 spacings per unit of the largest position, covers it."""
    position = torch.arange(197, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, 768, 2, dtype=torch.float32) * (-math.log(10000.0) / 768))
    embed = torch.zeros(197, 768)
    embed[:, 0::2], embed[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    difference = (embed - vitlib.sincos_1d_pos_embed(197, 768)).abs().max().item()
    assert 1e-6 < difference <= 4 * patches.FLOAT32_EPS * 197


def test_sincos_2d_written_out_with_no_mistake_is_vitlibs():
    for grid, dim in [((2, 3), 8), ((7, 7), 64), ((14, 14), 768), ((1, 1), 4)]:
        assert torch.equal(patches._sincos_2d(grid, dim), vitlib.sincos_2d_pos_embed(grid, dim))


def test_msa_reference_is_the_paper_written_out():
    for case in attention._msa_cases():
        assert torch.allclose(attention._msa_reference(*case.args), attention._msa(*case.args), atol=1e-6)


def test_msa_reference_leaves_the_readers_random_numbers_alone():
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    attention._msa_reference(*attention._msa_cases()[0].args)
    assert torch.equal(torch.randn(3), expected)


@pytest.mark.parametrize(
    "checker, correct",
    [
        (patches.check_sincos_2d, sincos_2d_exp_log),
        (patches.check_resize_pos_embed, resize_with_interpolate),
        (attention.check_padded_attention, padded_attention_fused),
        (attention.check_multi_head_attention, msa_batched_heads),
    ],
)
def test_tolerances_are_not_so_loose_that_a_small_error_passes(checker, correct, capsys):
    def off_by_a_thousandth(*args):
        result = correct(*args)
        result = result[0] if isinstance(result, tuple) else result
        return result + 1e-3

    assert not checker(off_by_a_thousandth).passed


# --- Wrong answers a reader writes, and what the checker must call them ---------------------------


def _sincos_2d_columns_first(grid, dim):
    code = sincos_2d_exp_log(grid, dim)
    return torch.cat([code[:, dim // 2 :], code[:, : dim // 2]], dim=1)


def _sincos_2d_column_major(grid, dim):
    gh, gw = grid
    code = sincos_2d_loops(grid, dim).reshape(gh, gw, dim)  # code[r, c]
    return code.transpose(0, 1).reshape(gh * gw, dim)  # patch i at row i % gh, column i // gh


def _sincos_1d_interleaved(num_positions, dim):
    """The chapter's 1-D code: sin and cos interleaved."""
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    frequency = 10000 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return torch.stack([(position * frequency).sin(), (position * frequency).cos()], dim=-1).flatten(1).float()


def _sincos_2d_reusing_the_1d_code(grid, dim, one_d=_sincos_1d_interleaved, width=None):
    gh, gw = grid
    width = dim // 2 if width is None else width
    rows = one_d(gh, width)[:, None].expand(-1, gw, -1)
    cols = one_d(gw, width)[None].expand(gh, -1, -1)
    return torch.cat([rows, cols], dim=-1).reshape(gh * gw, -1)


def _sincos_2d_full_d(grid, dim):
    """The 1-D formula with the full D for the frequencies, but D/2 channels per axis."""
    gh, gw = grid
    frequency = 10000 ** (-torch.arange(0, dim // 2, 2, dtype=torch.float64) / dim)  # D/4 of 10000^(-2i/D)

    def code(n):
        angle = torch.arange(n, dtype=torch.float64)[:, None] * frequency
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    return (
        torch.cat([code(gh)[:, None].expand(-1, gw, -1), code(gw)[None].expand(gh, -1, -1)], dim=-1)
        .reshape(gh * gw, dim)
        .float()
    )


def _sincos_2d_over_d(grid, dim):
    gh, gw = grid
    omega = 10000 ** (-torch.arange(dim // 4, dtype=torch.float64) / dim)
    r = torch.arange(gh * gw) // gw
    c = torch.arange(gh * gw) % gw
    a, b = r[:, None] * omega, c[:, None] * omega
    return torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1).float()


def _sincos_2d_mixed(grid, dim):
    code = sincos_2d_loops(grid, dim)
    return torch.stack([code[:, : dim // 2], code[:, dim // 2 :]], dim=-1).flatten(1)


def _sincos_2d_cos_first(grid, dim):
    q = dim // 4
    code = sincos_2d_loops(grid, dim)
    order = [*range(q, 2 * q), *range(q), *range(3 * q, 4 * q), *range(2 * q, 3 * q)]
    return code[:, order]


def _sincos_2d_from_one(grid, dim):
    gh, gw = grid
    return sincos_2d_loops((gh + 1, gw + 1), dim).reshape(gh + 1, gw + 1, dim)[1:, 1:].reshape(gh * gw, dim)


def _resize_no_cls(pos, old, new):
    return resize_with_interpolate(pos, old, new)[:, 1:]


def _resize_cls_last(pos, old, new):
    resized = resize_with_interpolate(pos, old, new)
    return torch.cat([resized[:, 1:], resized[:, :1]], dim=1)


def _resize_reshape_only(pos, old, new):
    image = pos[:, 1:].reshape(1, -1, *old)
    image = F.interpolate(image, size=new, mode="bilinear", align_corners=False)
    return torch.cat([pos[:, :1], image.reshape(1, -1, pos.shape[-1])], dim=1)


def _resize_with(**options):
    def resize(pos, old, new):
        image = pos[:, 1:].transpose(1, 2).reshape(1, -1, *old)
        image = F.interpolate(image, size=new, **options)
        return torch.cat([pos[:, :1], image.flatten(2).transpose(1, 2)], dim=1)

    return resize


def _resize_column_major(pos, old, new):
    image = rearrange(pos[:, 1:], "b (gw gh) d -> b d gh gw", gh=old[0])
    image = F.interpolate(image, size=new, mode="bilinear", align_corners=False)
    return torch.cat([pos[:, :1], rearrange(image, "b d gh gw -> b (gw gh) d")], dim=1)


def _resize_size_swapped(pos, old, new):
    return resize_with_interpolate(pos, old, (new[1], new[0]))


def _padded_with(mask_of):
    def attend(q, k, v, lengths):
        real = torch.arange(k.shape[-2])[None, :] < lengths[:, None]  # (B, T)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return scores.masked_fill(~mask_of(real), float("-inf")).softmax(-1) @ v

    return attend


def _padded_off_by_one(q, k, v, lengths):
    real = torch.arange(k.shape[-2])[None, :] <= lengths[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=real[:, None, None, :])


def _padded_inverted(q, k, v, lengths):
    padding = torch.arange(k.shape[-2])[None, :] >= lengths[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=padding[:, None, None, :])


def _padded_zero_fill(q, k, v, lengths):
    real = torch.arange(k.shape[-2])[None, :] < lengths[:, None]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~real[:, None, None, :], 0.0).softmax(-1) @ v


def _padded_zeroed_values(q, k, v, lengths):
    real = (torch.arange(k.shape[-2])[None, :] < lengths[:, None]).float()
    return F.scaled_dot_product_attention(q, k, v * real[:, None, :, None])


def _padded_masked_after_softmax(q, k, v, lengths):
    real = (torch.arange(k.shape[-2])[None, :] < lengths[:, None]).float()
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) * real[:, None, None, :]
    return weights @ v


def _msa_with(*, scale=None, qkv_split=None, project=True, transpose=False, dim=-1, shared=False):
    def msa(z, u_qkv, u_msa):
        d = u_qkv.shape[-1] // 3
        outputs = []
        for j in range(u_qkv.shape[0]):
            qkv = z @ u_qkv[0 if shared else j]
            q, k, v = qkv_split(qkv) if qkv_split else qkv.split(d, dim=-1)
            divisor = math.sqrt(d) if scale is None else scale(z, d)
            outputs.append(torch.softmax(q @ k.transpose(-2, -1) / divisor, dim=dim) @ v)
        heads = torch.cat(outputs, dim=-1)
        if not project:
            return heads
        return heads @ (u_msa.T if transpose else u_msa)

    return msa


WRONG = [
    (patches.check_sincos_2d, _sincos_2d_columns_first, "halves are swapped"),
    (patches.check_sincos_2d, _sincos_2d_column_major, "column by column"),
    (patches.check_sincos_2d, _sincos_2d_reusing_the_1d_code, "sines and cosines are interleaved"),
    (patches.check_sincos_2d, _sincos_2d_mixed, "interleaved channel by channel"),
    (patches.check_sincos_2d, _sincos_2d_full_d, "with the full D"),
    (patches.check_sincos_2d, _sincos_2d_over_d, "spread over D"),
    (patches.check_sincos_2d, _sincos_2d_cos_first, "sine and cosine are swapped"),
    (patches.check_sincos_2d, _sincos_2d_from_one, "start at 1"),
    (patches.check_resize_pos_embed, _resize_no_cls, "row is missing"),
    (patches.check_resize_pos_embed, _resize_cls_last, "ends up last"),
    (patches.check_resize_pos_embed, _resize_reshape_only, "reshaped straight"),
    (patches.check_resize_pos_embed, _resize_with(), "'nearest'"),
    (patches.check_resize_pos_embed, _resize_with(mode="bilinear", align_corners=True), "align_corners=True"),
    (patches.check_resize_pos_embed, _resize_with(mode="bicubic", align_corners=False), "bicubic"),
    (patches.check_resize_pos_embed, _resize_column_major, "column by column"),
    (patches.check_resize_pos_embed, _resize_size_swapped, "height and width are swapped"),
    (attention.check_padded_attention, _padded_with(lambda real: real[:, None, :, None]), "hides padded queries"),
    (
        attention.check_padded_attention,
        _padded_with(lambda real: real[:, None, :, None] & real[:, None, None, :]),
        "masked as well",
    ),
    (attention.check_padded_attention, _padded_off_by_one, "one padded key too many"),
    (attention.check_padded_attention, _padded_inverted, "mask is inverted"),
    (attention.check_padded_attention, _padded_zero_fill, "set to 0 instead of -inf"),
    (attention.check_padded_attention, _padded_zeroed_values, "still take weight"),
    (attention.check_padded_attention, _padded_masked_after_softmax, "still take weight"),
    (attention.check_padded_attention, lambda q, k, v, lengths: F.scaled_dot_product_attention(q, k, v), "not masked"),
    (attention.check_multi_head_attention, _msa_with(scale=lambda z, d: math.sqrt(z.shape[-1])), "sqrt(D) instead"),
    (attention.check_multi_head_attention, _msa_with(scale=lambda z, d: 1.0), "not scaled"),
    (
        attention.check_multi_head_attention,
        _msa_with(qkv_split=lambda qkv: (qkv[..., 0::3], qkv[..., 1::3], qkv[..., 2::3])),
        "interleaved columns",
    ),
    (attention.check_multi_head_attention, _msa_with(project=False), "U_msa is missing"),
    (attention.check_multi_head_attention, _msa_with(transpose=True), "U_msa transposed"),
    (attention.check_multi_head_attention, _msa_with(dim=-2), "over the queries"),
    (attention.check_multi_head_attention, _msa_with(shared=True), "first head's U_qkv"),
]


@pytest.mark.parametrize("checker, answer, named", WRONG, ids=[f"{c.__name__}-{n}" for c, _, n in WRONG])
def test_checker_names_the_mistake(checker, answer, named, capsys):
    verdict = checker(answer)
    assert not verdict.passed
    assert verdict.mistake is not None and named in verdict.mistake, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✗") and "wrong on case" in printed and "Likely mistake: " in printed


def test_every_listed_mistake_is_recognised_by_some_wrong_answer(capsys):
    catalogues = [
        patches.SINCOS_2D_MISTAKES,
        patches.RESIZE_MISTAKES,
        attention.PADDED_MISTAKES,
        attention.MSA_MISTAKES,
    ]
    named = {checker(answer).mistake for checker, answer, _ in WRONG}
    listed = {mistake.description for catalogue in catalogues for mistake in catalogue}
    assert listed - named == set()
