"""Chapters 2 and 3's checkers: correct answers written in several ways pass, the usual wrong ones are named."""

import math

import checkers
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


def patchify_rectangular_einops(images, patch_size):
    ph, pw = patch_size
    height, width = images.shape[-2:]
    if height % ph or width % pw:
        raise ValueError(f"{height} x {width} images do not cut into {ph} x {pw} patches")
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=ph, p2=pw)


def patchify_rectangular_unfold(images, patch_size):
    ph, pw = patch_size
    b, c, h, w = images.shape
    if h % ph:
        raise ValueError(f"image height {h} is not a multiple of the patch height {ph}")
    if w % pw:
        raise ValueError(f"image width {w} is not a multiple of the patch width {pw}")
    grid = images.unfold(2, ph, ph).unfold(3, pw, pw)  # (B, C, gh, gw, ph, pw)
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, ph * pw * c)


def patchify_rectangular_view(images, patch_size):
    """Split H and W with view, move the axes with permute."""
    ph, pw = patch_size
    b, c, h, w = images.shape
    if h % ph or w % pw:
        raise ValueError(f"patch size {ph}x{pw} does not tile a {h}x{w} image")
    grid = images.view(b, c, h // ph, ph, w // pw, pw)  # (B, C, gh, ph, gw, pw)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // ph) * (w // pw), -1)


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
    (patches.check_patchify_rectangular, patchify_rectangular_einops),
    (patches.check_patchify_rectangular, patchify_rectangular_unfold),
    (patches.check_patchify_rectangular, patchify_rectangular_view),
    (attention.check_padded_attention, padded_attention_masked_fill),
    (attention.check_padded_attention, padded_attention_fused),
    (attention.check_padded_attention, padded_attention_one_sequence_at_a_time),
    (attention.check_padded_attention, padded_attention_large_negative),
    (attention.check_multi_head_attention, msa_head_by_head),
    (attention.check_multi_head_attention, msa_sum_of_heads),
    (attention.check_multi_head_attention, msa_batched_heads),
    (attention.check_multi_head_attention, msa_as_one_linear),
]


@checkers.right_answers(CORRECT)
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    """A right answer passes, and its verdict fits the book's code column, where the book shows it."""
    checkers.assert_passes(checker, answer, capsys)


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
        (patches.check_patchify_rectangular, patchify_rectangular_einops),
        (attention.check_padded_attention, padded_attention_fused),
        (attention.check_multi_head_attention, msa_batched_heads),
    ],
)
def test_tolerances_are_not_so_loose_that_a_small_error_passes(checker, correct):
    checkers.assert_a_small_error_fails(checker, correct)


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


def _rectangular(pattern):
    """A reader's einops answer with another pattern, (ph, pw) as given."""

    def patchify(images, patch_size):
        return rearrange(images, f"b c (gh p1) (gw p2) -> {pattern}", p1=patch_size[0], p2=patch_size[1])

    return patchify


def _rectangular_swapped(images, patch_size):
    pw, ph = patch_size  # read as (width, height)
    return patchify_rectangular_einops(images, (ph, pw))


def _rectangular_square(images, patch_size):
    p = patch_size[0]
    return vitlib.patchify(images, p)


def _rectangular_reshape_only(images, patch_size):
    ph, pw = patch_size
    b, c, h, w = images.shape
    return images.reshape(b, (h // ph) * (w // pw), ph * pw * c)


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
    (patches.check_patchify_rectangular, _rectangular_swapped, "ph and pw are swapped"),
    (patches.check_patchify_rectangular, _rectangular("b (gh gw) (c p1 p2)"), "channel-first"),
    (patches.check_patchify_rectangular, _rectangular("b (gw gh) (p1 p2 c)"), "column by column, (gw gh)"),
    (patches.check_patchify_rectangular, _rectangular("b (gh gw) (p2 p1 c)"), "(p2 p1)"),
    (patches.check_patchify_rectangular, _rectangular_square, "square, ph x ph"),
    (patches.check_patchify_rectangular, _rectangular_reshape_only, "without moving any axis"),
    (patches.check_patchify_rectangular, _rectangular("b gh gw (p1 p2 c)"), "not flattened"),
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


@checkers.wrong_answers(WRONG)
def test_checker_names_the_mistake(checker, answer, named, capsys):
    checkers.assert_names_mistake(checker, answer, named, capsys)


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    catalogues = [
        patches.SINCOS_2D_MISTAKES,
        patches.PATCHIFY_RECTANGULAR_MISTAKES,
        attention.PADDED_MISTAKES,
        attention.MSA_MISTAKES,
    ]
    checkers.assert_every_mistake_is_named(WRONG, catalogues)


# --- Rectangular patches: an image that does not tile must get a clear ValueError -----------------


def _rectangular_silent(images, patch_size):
    """Right on every image that tiles; unfold drops what does not fill a patch."""
    ph, pw = patch_size
    b, c = images.shape[:2]
    grid = images.unfold(2, ph, ph).unfold(3, pw, pw)  # (B, C, gh, gw, ph, pw)
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, ph * pw * c)


def _rectangular_height_checked_only(images, patch_size):
    if images.shape[-2] % patch_size[0]:
        raise ValueError(f"height {images.shape[-2]} is not a multiple of {patch_size[0]}")
    return _rectangular_silent(images, patch_size)


def _rectangular_vague_error(images, patch_size):
    if images.shape[-2] % patch_size[0] or images.shape[-1] % patch_size[1]:
        raise ValueError("bad patch size")
    return patchify_rectangular_einops(images, patch_size)


@pytest.mark.parametrize(
    "answer, mistake, case",
    [
        (_rectangular_silent, patches.RECTANGULAR_SILENT, "case 6 of 7"),
        (_rectangular_height_checked_only, patches.RECTANGULAR_SILENT, "case 7 of 7"),
        (_rectangular("b (gh gw) (p1 p2 c)"), patches.RECTANGULAR_OTHER_ERROR, "case 6 of 7"),
        (_rectangular_vague_error, patches.RECTANGULAR_NO_SIZES, "case 6 of 7"),
    ],
    ids=["unfold drops pixels", "only H checked", "einops error", "no sizes in the message"],
)
def test_rectangular_patchify_must_refuse_an_image_that_does_not_tile(answer, mistake, case, capsys):
    verdict = checkers.assert_names_mistake(patches.check_patchify_rectangular, answer, mistake, capsys, where=case)
    assert verdict.mistake == mistake, verdict.report


def test_rectangular_patchify_reports_what_it_tried():
    report = patches.check_patchify_rectangular(patchify_rectangular_unfold).report
    assert "(2, 3, 32, 32) images, 4 x 8 patches" in report  # RGB, rectangular patches
    assert "(1, 3, 24, 36) images" in report  # a non-square image
    assert report.count("raises ValueError") == 2  # H and W each fail to tile once


def test_vitlib_patchify_takes_one_square_patch_size():
    """Why the rectangular checker has a reference of its own: vitlib.patchify has one P."""
    with pytest.raises(TypeError):
        vitlib.patchify(torch.zeros(1, 3, 8, 8), (2, 4))
