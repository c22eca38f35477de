"""Checkers for chapter 8, other resolutions: the learned position table for a new patch grid.

The paper's Sec. 3.2 meets a bigger image with "2D interpolation of the pre-trained position
embeddings, according to their location in the original image":

- ``check_resize_pos_embed``: the patch rows resized on their grid, bicubically with
  ``antialias=True``, as `vitlib.patches.resize_pos_embed` (and timm's ``resample_abs_pos_embed``);
- ``check_resize_pos_embed_bilinear``: the same with ``mode="bilinear"``, for a table with one class token;
- ``check_stretch_pos_embed``: the chapter's control, the patch rows stretched as a 1-D sequence in
  the order the patches are numbered, as if the table knew no grid.

from vitlib.exercises import resolution
resolution.check_resize_pos_embed(my_resize_pos_embed)
"""

import torch
import torch.nn.functional as F
from einops import rearrange

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.patches import resize_pos_embed

__all__ = ["check_resize_pos_embed", "check_resize_pos_embed_bilinear", "check_stretch_pos_embed"]

# The spacing of float32 numbers near 1 (2^-23); the tolerances below are derived from it.
FLOAT32_EPS = torch.finfo(torch.float32).eps


def _interpolation_atol(cases: list[Case], largest_length: int) -> float:
    """A linear or bilinear output is v0 + t (v1 - v0), with a weight t computed from a source
    coordinate of up to ``largest_length`` rows: t is off by a few float32 spacings of that length
    (more when the coordinate goes through grid_sample's [-1, 1] range), so an output is off by that
    much times the largest input."""
    largest = max(case.args[0].abs().max().item() for case in cases)
    return 4 * FLOAT32_EPS * largest * (1 + largest_length)


# --- On the grid, bicubic: vitlib.patches.resize_pos_embed ---------------------------------------


def _resize_on_grid(pos_embed, old_grid, new_grid, prefix, *, order="rows", **options):
    """The patches' rows on their grid, resized as an image: with options that differ from vitlib's."""
    settings = {"mode": "bicubic", "align_corners": False, "antialias": True, **options}
    patches = pos_embed[:, prefix:]
    if order == "rows":
        grid = patches.reshape(1, *old_grid, -1).permute(0, 3, 1, 2)  # (1, D, gh, gw)
        resized = F.interpolate(grid, size=tuple(new_grid), **settings)
        patches = resized.permute(0, 2, 3, 1).reshape(1, -1, pos_embed.shape[-1])
    else:  # patches read as if numbered down the columns
        grid = patches.reshape(1, old_grid[1], old_grid[0], -1).permute(0, 3, 2, 1)
        resized = F.interpolate(grid, size=tuple(new_grid), **settings)
        patches = resized.permute(0, 3, 2, 1).reshape(1, -1, pos_embed.shape[-1])
    return torch.cat([pos_embed[:, :prefix], patches], dim=1)


def _resize_without_permute(pos_embed, old_grid, new_grid, prefix):
    grid = pos_embed[:, prefix:].reshape(1, -1, *old_grid)  # (1, D, gh, gw), channels and places mixed
    resized = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=True)
    return torch.cat([pos_embed[:, :prefix], resized.reshape(1, -1, pos_embed.shape[-1])], dim=1)


def _resize_as_a_sequence(pos_embed, old_grid, new_grid, prefix):
    tokens = prefix + new_grid[0] * new_grid[1]
    return F.interpolate(pos_embed.transpose(1, 2), size=tokens, mode="linear").transpose(1, 2)


RESIZE_MISTAKES = [
    Mistake(
        "the class token went through the interpolation with the patches, as one sequence of T rows: "
        "it sits at no place in the image, so split it off (pos_embed[:, :num_prefix_tokens]), resize "
        "only the N patch rows on their (gh, gw) grid, and put it back in front.",
        _resize_as_a_sequence,
    ),
    Mistake(
        "the patch rows were resized as a 1-D sequence, not on their 2-D grid: reshape them to "
        "(1, gh, gw, D), move D to the channels, (1, D, gh, gw), and interpolate to the new (gh', gw').",
        lambda e, old, new, p: torch.cat([e[:, :p], _resize_as_a_sequence(e[:, p:], old, new, 0)], dim=1),
    ),
    Mistake(
        "the prefix tokens are missing from the result: put pos_embed[:, :num_prefix_tokens] back in front.",
        lambda e, old, new, prefix: _resize_on_grid(e, old, new, prefix)[:, prefix:],
    ),
    Mistake(
        "the class token was put back at the end; it comes first, as in the model's token sequence.",
        lambda e, old, new, prefix: torch.roll(_resize_on_grid(e, old, new, prefix), -prefix, dims=1),
    ),
    Mistake(
        "the patches were read in column order (a reshape to (1, gw, gh, D), or a permute(0, 3, 2, 1)): patchify "
        "numbers them row by row, patch (r, c) is row r * gw + c, so reshape to (1, gh, gw, D), "
        "permute(0, 3, 1, 2), and undo both the same way.",
        lambda e, old, new, prefix: _resize_on_grid(e, old, new, prefix, order="columns"),
    ),
    Mistake(
        "the patch rows were reshaped straight to (1, D, gh, gw): that mixes channels and positions. Reshape "
        "to (1, gh, gw, D) first, then move D forward with permute(0, 3, 1, 2).",
        _resize_without_permute,
    ),
    Mistake(
        "the grid's sides are swapped: the table was laid out as (gw, gh); a grid is (height, width), so "
        "reshape to (1, gh, gw, D) with old_grid as given.",
        lambda e, old, new, prefix: _resize_on_grid(e, old[::-1], new, prefix),
    ),
    Mistake(
        "this is nearest-neighbour interpolation (F.interpolate's default mode); pass mode='bicubic'.",
        lambda e, old, new, prefix: _resize_on_grid(
            e, old, new, prefix, mode="nearest", antialias=False, align_corners=None
        ),
    ),
    Mistake(
        "this is bilinear interpolation; the task (and timm's resample_abs_pos_embed) uses mode='bicubic'.",
        lambda e, old, new, prefix: _resize_on_grid(e, old, new, prefix, mode="bilinear"),
    ),
    Mistake(
        "align_corners=True pins the corner patches' centres to the corners (as scipy.ndimage.zoom does "
        "in the paper's released code); this exercise, like timm and vitlib, asks for align_corners=False, "
        "which treats each embedding as the centre of its patch.",
        lambda e, old, new, prefix: _resize_on_grid(e, old, new, prefix, align_corners=True),
    ),
    Mistake(
        "antialias is off: pass antialias=True, as timm's resample_abs_pos_embed does. It matters even "
        "when the grid grows: PyTorch's antialiased bicubic path uses another cubic kernel (PIL's).",
        lambda e, old, new, prefix: _resize_on_grid(e, old, new, prefix, antialias=False),
    ),
]


def check_resize_pos_embed(function) -> Verdict:
    """Check ``function(pos_embed, old_grid, new_grid, num_prefix_tokens)`` -> the table for a new grid.

    ``pos_embed`` is (1, num_prefix_tokens + gh * gw, D), prefix tokens first, then the patches in
    row-major order. Keep the prefix rows as they are; lay the patch rows out on their (gh, gw)
    grid and resize each of the D channels to (gh', gw') with ``F.interpolate(mode="bicubic",
    align_corners=False, antialias=True)``, as timm's ``resample_abs_pos_embed``; flatten back in
    row-major order and put the prefix rows in front: `vitlib.patches.resize_pos_embed`.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for old, new, prefix, d, what in [
        ((7, 7), (14, 14), 1, 64, "4 x 4 patches at 56 x 56"),
        ((7, 7), (11, 11), 2, 64, "class and distillation tokens, at 44 x 44"),
        ((7, 7), (10, 12), 1, 16, "a grid that grows more across than down"),
        ((4, 4), (6, 6), 0, 8, "mean pooling: no class token"),
        ((7, 7), (4, 5), 1, 8, "a grid that shrinks"),
        ((3, 5), (6, 4), 1, 8, "a grid wider than tall"),
    ]:
        table = torch.randn(1, prefix + old[0] * old[1], d, generator=generator)
        label = f"pos_embed (1, {prefix} + {old[0]}x{old[1]}, {d}) to {new[0]}x{new[1]}: {what}"
        cases.append(Case(label, (table, old, new, prefix)))
    return check("resize_pos_embed", function, resize_pos_embed, cases, RESIZE_MISTAKES)


# --- On the grid, bilinear: a table with one class token -----------------------------------------


def _resize_bilinear(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    *,
    mode: str = "bilinear",
    align_corners: bool | None = False,
    read_as: str = "(gh gw)",
    reshape_without_permute: bool = False,
    class_token: str = "first",
) -> torch.Tensor:
    """(1, 1 + gh*gw, D) -> (1, 1 + gh'*gw', D): the class token's row kept, the patch rows resized as an image."""
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]  # (1, 1, D), (1, N, D)
    grid_height, grid_width = old_grid
    if reshape_without_permute:
        image = patches.reshape(1, -1, grid_height, grid_width)  # memory order kept: patches and channels mixed
    else:
        image = rearrange(patches, f"b {read_as} d -> b d gh gw", gh=grid_height, gw=grid_width)  # (1, D, gh, gw)
    image = F.interpolate(image, size=tuple(new_grid), mode=mode, align_corners=align_corners)  # (1, D, gh', gw')
    if reshape_without_permute:
        resized = image.reshape(1, -1, image.shape[1])  # and back the same way
    else:
        resized = rearrange(image, f"b d gh gw -> b {read_as} d")  # (1, N', D)
    if class_token == "dropped":
        return resized
    if class_token == "last":
        return torch.cat([resized, cls], dim=1)
    return torch.cat([cls, resized], dim=1)  # (1, 1 + N', D)


def _resize_bilinear_reference(pos_embed, old_grid, new_grid):
    return _resize_bilinear(pos_embed, old_grid, new_grid)


RESIZE_BILINEAR_MISTAKES = [
    Mistake(
        "the class token's row is missing: keep row 0 as it is (the class token has no place on the grid) "
        "and put it back in front of the resized patch rows.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, class_token="dropped"),
    ),
    Mistake(
        "the class token's row ends up last; it stays first, where the class token is.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, class_token="last"),
    ),
    Mistake(
        "the (1, N, D) rows were reshaped straight to (1, D, gh, gw) and back. A reshape keeps memory order, "
        "so each 'channel image' mixes patches and channels: move D first (permute(0, 2, 1), or "
        "rearrange 'b (gh gw) d -> b d gh gw') before reshaping, and move it back after.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, reshape_without_permute=True),
    ),
    Mistake(
        "the interpolation is 'nearest', F.interpolate's default: pass mode='bilinear'.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, mode="nearest", align_corners=None),
    ),
    Mistake(
        "align_corners=True stretches the grid so that corner patches map onto corner patches; this "
        "exercise, like timm, treats each vector as the centre of its patch: align_corners=False.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, align_corners=True),
    ),
    Mistake(
        "the interpolation is bicubic (vitlib's resize_pos_embed and timm's); this exercise asks for "
        "bilinear, mode='bilinear'.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, mode="bicubic"),
    ),
    Mistake(
        "the rows were laid out column by column, (gw gh), instead of row by row, (gh gw): row 1 + i of the "
        "table belongs to the patch at row i // gw, column i % gw.",
        lambda pos, old, new: _resize_bilinear(pos, old, new, read_as="(gw gh)"),
    ),
    Mistake(
        "height and width are swapped in the new size: F.interpolate's size is (height, width) = (gh', gw').",
        lambda pos, old, new: _resize_bilinear(pos, old, new[::-1]),
    ),
]


def check_resize_pos_embed_bilinear(function) -> Verdict:
    """Check ``function(pos_embed, old_grid, new_grid)``: a learned (1, 1 + gh*gw, D) table resized to a new grid.

    Row 0 (the class token's) is kept; the patch rows, laid out as a (D, gh, gw) image, are resized to
    (gh', gw') by ``F.interpolate(..., mode="bilinear", align_corners=False)``; returns (1, 1 + gh'*gw', D).
    """
    generator = torch.Generator().manual_seed(0)
    shapes = [  # (old grid, new grid, D)
        ((2, 3), (4, 5), 6),
        ((4, 4), (7, 7), 64),
        ((7, 7), (4, 4), 64),
        ((14, 14), (24, 24), 16),
        ((3, 3), (3, 3), 8),
    ]
    names = {
        (4, 4): ": the book's 7 x 7-pixel patches to the shipped model's 4 x 4",
        (7, 7): ": and back",
        (14, 14): ": ViT-B/16, 224 to 384 pixels",
        (3, 3): ": the same grid",
    }
    cases = []
    for old, new, dim in shapes:
        table = torch.randn(1, 1 + old[0] * old[1], dim, generator=generator)
        description = f"{old[0]}x{old[1]} to {new[0]}x{new[1]} grid, dim {dim}{names.get(old, '')}"
        cases.append(Case(description, (table, old, new)))
    atol = _interpolation_atol(cases, max(max(*old, *new) for old, new, _ in shapes))
    return check(
        "resize_pos_embed_bilinear",
        function,
        _resize_bilinear_reference,
        cases,
        RESIZE_BILINEAR_MISTAKES,
        atol=atol,
        rtol=0,
    )


# --- The control: the patch rows stretched as a 1-D sequence -------------------------------------


def _stretch(
    pos_embed: torch.Tensor,
    new_tokens: int,
    num_prefix_tokens: int,
    *,
    prefix: str = "first",
    align_corners: bool | None = False,
    mode: str = "linear",
    rows_as: str = "transpose",
    length: str = "patches",
) -> torch.Tensor:
    """(1, prefix + N, D) -> (1, prefix + new_tokens, D): the chapter's control, with switches for the
    usual mistakes (all at their defaults: correct)."""
    k = num_prefix_tokens
    if prefix == "stretched":  # the prefix rows taken for patches
        k, new_tokens = 0, new_tokens + num_prefix_tokens
    if length == "whole table":  # new_tokens read as the length of the whole table
        new_tokens = new_tokens - k
    kept, patches = pos_embed[:, :k], pos_embed[:, k:]  # (1, k, D), (1, N, D)
    dim = pos_embed.shape[-1]
    if rows_as == "transpose":
        rows = patches.transpose(1, 2)  # (1, D, N): F.interpolate resizes the last axis
    elif rows_as == "reshape":
        rows = patches.reshape(1, dim, -1)  # memory order kept: rows and channels mixed
    else:  # "as they are": the D channels taken as the axis to resize
        rows = patches
    stretched = F.interpolate(rows, size=new_tokens, mode=mode, align_corners=align_corners)
    # back to (1, new_tokens, D), the way the rows came
    stretched = stretched.reshape(1, -1, dim) if rows_as == "reshape" else stretched.transpose(1, 2)
    if prefix == "dropped":
        return stretched
    if prefix == "last":
        return torch.cat([stretched, kept], dim=1)
    return torch.cat([kept, stretched], dim=1)  # (1, k + new_tokens, D)


def _stretch_pos_embed(pos_embed, new_tokens, num_prefix_tokens):
    return _stretch(pos_embed, new_tokens, num_prefix_tokens)


STRETCH_MISTAKES = [
    Mistake(
        "the prefix rows were stretched with the patches: the class token's row marks no place; keep "
        "pos_embed[:, :num_prefix_tokens] as it is and stretch the patch rows only.",
        lambda e, n, k: _stretch(e, n, k, prefix="stretched"),
    ),
    Mistake(
        "align_corners=True pins the first and last rows to the ends: the chapter's control uses "
        "F.interpolate's default, align_corners=False.",
        lambda e, n, k: _stretch(e, n, k, align_corners=True),
    ),
    Mistake(
        "the interpolation ran over the D channels, not over the N rows: F.interpolate resizes the last "
        "axis, so transpose the patch rows to (1, D, N) first, and back after.",
        lambda e, n, k: _stretch(e, n, k, rows_as="as they are"),
    ),
    Mistake(
        "the patch rows were reshaped to (1, D, N), not transposed: a reshape keeps memory order, so "
        "it mixes rows and channels. Use .transpose(1, 2), and again on the way back.",
        lambda e, n, k: _stretch(e, n, k, rows_as="reshape"),
    ),
    Mistake(
        "this is nearest-neighbour interpolation, F.interpolate's default mode: pass mode='linear'.",
        lambda e, n, k: _stretch(e, n, k, mode="nearest", align_corners=None),
    ),
    Mistake(
        "the prefix rows are missing from the result: put pos_embed[:, :num_prefix_tokens] back in front.",
        lambda e, n, k: _stretch(e, n, k, prefix="dropped"),
    ),
    Mistake(
        "the prefix rows were put back at the end; they come first, as in the model's token sequence.",
        lambda e, n, k: _stretch(e, n, k, prefix="last"),
    ),
    Mistake(
        "new_tokens counts the patch rows only: stretch the N rows to new_tokens, then put the prefix "
        "rows in front, num_prefix_tokens + new_tokens rows in all.",
        lambda e, n, k: _stretch(e, n, k, length="whole table"),
    ),
]


def check_stretch_pos_embed(function) -> Verdict:
    """Check ``function(pos_embed, new_tokens, num_prefix_tokens)`` -> (1, num_prefix_tokens + new_tokens, D).

    The chapter's control: keep the prefix rows; stretch the N patch rows to ``new_tokens`` as one
    sequence, in the order the patches are numbered, with ``F.interpolate(rows, size=new_tokens,
    mode="linear")`` on the (1, D, N) rows (``pos_embed[:, num_prefix_tokens:].transpose(1, 2)``),
    and transpose back.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for n, new, prefix, d, what in [
        (16, 49, 1, 16, "16 rows, as with the book's 7 x 7-pixel patches, D = N"),
        (49, 196, 1, 64, "the chapter's control: 49 rows to 196"),
        (49, 121, 2, 64, "class and distillation tokens"),
        (16, 36, 0, 8, "mean pooling: no prefix"),
        (49, 25, 1, 8, "fewer rows"),
        (6, 6, 1, 4, "the same length"),
    ]:
        table = torch.randn(1, prefix + n, d, generator=generator)
        cases.append(Case(f"pos_embed (1, {prefix} + {n}, {d}) to {new} patch rows: {what}", (table, new, prefix)))
    atol = _interpolation_atol(cases, max(max(case.args[0].shape[1], case.args[1]) for case in cases))
    return check("stretch_pos_embed", function, _stretch_pos_embed, cases, STRETCH_MISTAKES, atol=atol, rtol=0)
