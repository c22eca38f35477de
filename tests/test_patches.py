import pytest
import torch
from torch import nn

from vitlib.patches import (
    PatchEmbed,
    grid_pos_embed,
    patchify,
    resize_pos_embed,
    sincos_1d_pos_embed,
    sincos_2d_pos_embed,
    unpatchify,
)


@pytest.mark.parametrize("batch,chans,size,patch", [(2, 1, 28, 7), (3, 3, 32, 8), (1, 3, 12, 4), (2, 2, 8, 8)])
def test_patchify_matches_unfold(batch, chans, size, patch):
    images = torch.randn(batch, chans, size, size)
    patches = patchify(images, patch)
    # nn.Unfold gives (B, C*P*P, N) with channels first inside a patch; patchify puts them last.
    unfolded = nn.Unfold(kernel_size=patch, stride=patch)(images)
    reference = (
        unfolded.reshape(batch, chans, patch * patch, -1).permute(0, 3, 2, 1).reshape(batch, -1, patch * patch * chans)
    )
    assert patches.shape == (batch, (size // patch) ** 2, patch * patch * chans)
    torch.testing.assert_close(patches, reference, rtol=0, atol=0)


def test_patch_order_is_row_major():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)
    # second patch is the top-right 2x2 block, read row by row
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]
    assert patches[0, 2].tolist() == [8.0, 9.0, 12.0, 13.0]


@pytest.mark.parametrize("shape,patch", [((2, 1, 28, 28), 4), ((1, 3, 16, 24), 8)])
def test_unpatchify_inverts_patchify(shape, patch):
    images = torch.randn(shape)
    grid = (shape[2] // patch, shape[3] // patch)
    assert torch.equal(unpatchify(patchify(images, patch), patch, grid), images)


def test_patch_embed_equals_patchify_then_linear():
    embed = PatchEmbed(image_size=28, patch_size=7, in_chans=2, dim=16)
    images = torch.randn(4, 2, 28, 28)
    linear = nn.Linear(7 * 7 * 2, 16)
    with torch.no_grad():
        linear.weight.copy_(embed.as_linear_weight())
        linear.bias.copy_(embed.proj.bias)
    torch.testing.assert_close(embed(images), linear(patchify(images, 7)), rtol=1e-5, atol=1e-5)


def test_indivisible_image_size_is_refused():
    with pytest.raises(ValueError, match=r"28x28 is not divisible by patch size 5"):
        patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="not divisible by patch size 5"):
        PatchEmbed(image_size=28, patch_size=5, in_chans=1, dim=8)


def test_patch_embed_refuses_wrong_input_shape():
    embed = PatchEmbed(image_size=28, patch_size=7, in_chans=1, dim=8)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        embed(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        embed(torch.zeros(2, 1, 32, 32))


def test_sincos_1d_matches_the_formula():
    embed = sincos_1d_pos_embed(50, 16)
    pos, i = 7, 3
    angle = torch.tensor(pos / 10000 ** (2 * i / 16), dtype=torch.float64)
    assert embed.shape == (50, 16)
    torch.testing.assert_close(embed[pos, 2 * i], torch.sin(angle).float())
    torch.testing.assert_close(embed[pos, 2 * i + 1], torch.cos(angle).float())


def test_sincos_2d_is_row_then_column():
    grid, dim = (3, 4), 8
    embed = sincos_2d_pos_embed(grid, dim)
    assert embed.shape == (12, 8)
    row_part, col_part = embed[:, : dim // 2], embed[:, dim // 2 :]
    # patches 0..3 are row 0: same row half; patches 0, 4, 8 are column 0: same column half
    assert torch.equal(row_part[0], row_part[3]) and not torch.equal(row_part[0], row_part[4])
    assert torch.equal(col_part[0], col_part[8]) and not torch.equal(col_part[0], col_part[1])
    # position (0, 0) is sin(0) = 0 and cos(0) = 1
    assert embed[0].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_sincos_refuses_bad_dims():
    with pytest.raises(ValueError, match="even dim"):
        sincos_1d_pos_embed(4, 7)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d_pos_embed((2, 2), 6)


def test_grid_pos_embed_refuses_tables_of_different_widths():
    with pytest.raises(ValueError, match=r"\(gh, D/2\) and \(gw, D/2\) of the same width, got \(7, 32\) and \(7, 16\)"):
        grid_pos_embed(torch.zeros(7, 32), torch.zeros(7, 16))


@pytest.mark.parametrize("prefix", [0, 1, 2])
@pytest.mark.parametrize(
    ("old_grid", "new_grid"),
    [
        ((7, 7), (14, 14)),
        ((7, 7), (10, 10)),
        ((7, 7), (4, 4)),
        ((7, 7), (8, 12)),
        ((14, 14), (24, 24)),
        ((3, 5), (6, 4)),
    ],
)
def test_resize_pos_embed_equals_timm(old_grid, new_grid, prefix):
    timm_layers = pytest.importorskip("timm.layers")
    table = torch.randn(1, prefix + old_grid[0] * old_grid[1], 64)
    ours = resize_pos_embed(table, old_grid, new_grid, prefix)
    theirs = timm_layers.resample_abs_pos_embed(table, list(new_grid), list(old_grid), num_prefix_tokens=prefix)
    assert ours.shape == (1, prefix + new_grid[0] * new_grid[1], 64)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert torch.equal(ours[:, :prefix], table[:, :prefix])  # the class token is not interpolated


def test_resize_pos_embed_interpolates_each_channel_on_the_grid():
    """A table that is a smooth function of the position stays that function on the new grid."""
    rows, cols = torch.meshgrid(torch.arange(7.0), torch.arange(7.0), indexing="ij")
    table = torch.stack([rows, cols], dim=-1).reshape(1, 49, 2)  # channel 0: the row, channel 1: the column
    resized = resize_pos_embed(torch.cat([torch.full((1, 1, 2), 9.0), table], dim=1), (7, 7), (14, 14))
    grid = resized[0, 1:].reshape(14, 14, 2)
    assert torch.equal(resized[0, 0], torch.tensor([9.0, 9.0]))
    assert (grid[1:, :, 0] > grid[:-1, :, 0]).all()  # the row channel grows down the rows...
    torch.testing.assert_close(grid[:, 1:, 0], grid[:, :-1, 0])  # ...and is the same along each row
    assert (grid[:, 1:, 1] > grid[:, :-1, 1]).all()  # columns across: row-major order kept
    assert torch.equal(resize_pos_embed(table, (7, 7), (7, 7), 0), table)  # same grid: unchanged


def test_resize_pos_embed_explains_bad_input():
    table = torch.randn(1, 50, 64)
    with pytest.raises(ValueError, match=r"50 rows, but 0 prefix tokens and a 7x7 grid make 49"):
        resize_pos_embed(table, (7, 7), (14, 14), num_prefix_tokens=0)
    with pytest.raises(ValueError, match=r"50 rows, but 1 prefix tokens and a 4x4 grid make 17"):
        resize_pos_embed(table, (4, 4), (8, 8))
    with pytest.raises(ValueError, match="new_grid must be two positive integers"):
        resize_pos_embed(table, (7, 7), (0, 14))
    with pytest.raises(ValueError, match="num_prefix_tokens"):
        resize_pos_embed(table, (7, 7), (14, 14), num_prefix_tokens=-1)
    numpy = pytest.importorskip("numpy")
    assert resize_pos_embed(table, (numpy.int64(7), 7), (14, 14)).shape == (1, 197, 64)  # any integer type
    with pytest.raises(ValueError, match=r"shape \(1, T, D\)"):
        resize_pos_embed(table[0], (7, 7), (14, 14))
