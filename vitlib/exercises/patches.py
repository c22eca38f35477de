"""Checkers for chapter 2, patchifying: patchify, rectangular patches, the fixed 2-D sin-cos code, and
(chapter 8) resizing a position table.

from vitlib.exercises import patches
patches.check_patchify(my_patchify)
"""

import torch
import torch.nn.functional as F
from einops import rearrange

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.patches import patchify, sincos_2d_pos_embed

__all__ = ["check_patchify", "check_patchify_rectangular", "check_resize_pos_embed", "check_sincos_2d"]

# The spacing of float32 numbers near 1: every tolerance below is a few of these, times the size of the
# numbers involved, so that any correct float32 solution passes however it orders its arithmetic.
FLOAT32_EPS = torch.finfo(torch.float32).eps


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


# --- The fixed 2-D sin-cos code (MoCo v3, MAE) -----------------------------------------------------


def _frequencies(dim: int, denominator: float) -> torch.Tensor:
    """omega_i = 10000^(-i / denominator) for i = 0 .. D/4 - 1 (the right denominator is D/4)."""
    return 10000.0 ** (-torch.arange(dim // 4, dtype=torch.float64) / denominator)  # (D/4,)


def _axis_code(positions: torch.Tensor, omega: torch.Tensor, *, interleaved: bool, cos_first: bool) -> torch.Tensor:
    """(M,) coordinates -> (M, D/2): [sin(pos omega) | cos(pos omega)], or sin and cos interleaved."""
    angle = positions.double()[:, None] * omega  # (M, D/4)
    first, second = (angle.cos(), angle.sin()) if cos_first else (angle.sin(), angle.cos())
    if interleaved:
        return torch.stack([first, second], dim=-1).flatten(1)  # sin, cos, sin, cos, ...
    return torch.cat([first, second], dim=1)


def _sincos_2d(
    grid_size: tuple[int, int],
    dim: int,
    *,
    denominator: float | None = None,
    row_first: bool = True,
    column_major: bool = False,
    interleaved: bool = False,
    mixed_halves: bool = False,
    cos_first: bool = False,
    first_position: int = 0,
) -> torch.Tensor:
    """The 2-D code written out in float64, with switches for the usual mistakes (all off: correct)."""
    grid_height, grid_width = grid_size
    index = torch.arange(grid_height * grid_width)
    if column_major:
        rows, cols = index % grid_height, index // grid_height
    else:
        rows, cols = index // grid_width, index % grid_width  # row-major, as patchify numbers the patches
    omega = _frequencies(dim, dim // 4 if denominator is None else denominator)
    row_code, col_code = (
        _axis_code(axis + first_position, omega, interleaved=interleaved, cos_first=cos_first) for axis in (rows, cols)
    )  # (N, D/2) each
    halves = [row_code, col_code] if row_first else [col_code, row_code]
    embed = torch.stack(halves, dim=-1).flatten(1) if mixed_halves else torch.cat(halves, dim=1)
    return embed.float()  # (N, D)


SINCOS_2D_MISTAKES = [
    Mistake(
        "the halves are swapped: here the first D/2 channels encode the patch's row and the last D/2 its "
        "column. (Codebases differ: MAE's code puts the column first; vitlib, like this exercise, the row.)",
        lambda grid, dim: _sincos_2d(grid, dim, row_first=False),
    ),
    Mistake(
        "the patches are numbered column by column: patch i sits at row i // gw and column i % gw "
        "(row-major, the order patchify uses), not at row i % gh and column i // gh.",
        lambda grid, dim: _sincos_2d(grid, dim, column_major=True),
    ),
    Mistake(
        "within each half the sines and cosines are interleaved (sin, cos, sin, cos, ... as in the 1-D formula "
        "of Vaswani et al.); the 2-D code concatenates them: [sin(r w) | cos(r w) | sin(c w) | cos(c w)].",
        lambda grid, dim: _sincos_2d(grid, dim, interleaved=True),
    ),
    Mistake(
        "the row and column codes are interleaved channel by channel; they are concatenated, "
        "[row code | column code], D/2 channels each.",
        lambda grid, dim: _sincos_2d(grid, dim, mixed_halves=True),
    ),
    Mistake(
        "the 1-D formula was used with the full D: each axis has only D/2 channels, so the frequencies are "
        "w_i = 10000^(-2i / (D/2)) = 10000^(-i / (D/4)), not 10000^(-2i / D).",
        lambda grid, dim: _sincos_2d(grid, dim, denominator=dim / 2),
    ),
    Mistake(
        "the frequencies are spread over D: w_i = 10000^(-i / (D/4)) for i = 0 .. D/4 - 1, so that the "
        "slowest one in each quarter comes close to 1/10000, not 10000^(-i / D).",
        lambda grid, dim: _sincos_2d(grid, dim, denominator=dim),
    ),
    Mistake(
        "sine and cosine are swapped: each half is [sin | cos], the sines first.",
        lambda grid, dim: _sincos_2d(grid, dim, cos_first=True),
    ),
    Mistake(
        "the coordinates start at 1; the top-left patch is at row 0, column 0 (its code is [0, ..., 1, ...]).",
        lambda grid, dim: _sincos_2d(grid, dim, first_position=1),
    ),
]


def check_sincos_2d(function) -> Verdict:
    """Check ``function(grid_size, dim)`` -> (gh * gw, D), the fixed 2-D sin-cos code of MoCo v3 and MAE.

    Patch (r, c), numbered row by row, gets [sin(r w) | cos(r w) | sin(c w) | cos(c w)] with the D/4
    frequencies w_i = 10000^(-i / (D/4)), i = 0 .. D/4 - 1: ``vitlib.sincos_2d_pos_embed``.
    """
    shapes = [((2, 3), 8), ((4, 4), 64), ((7, 7), 64), ((3, 5), 16), ((14, 14), 768)]
    names = {(4, 4): " (the book's model)", (7, 7): " (the shipped model)", (14, 14): " (ViT-B/16 at 224x224)"}
    cases = [Case(f"a {gh}x{gw} grid, dim {dim}{names.get((gh, gw), '')}", ((gh, gw), dim)) for (gh, gw), dim in shapes]
    # An angle pos * w with pos < 14 is off by a few float32 spacings of pos, whether w comes from a
    # power or from exp(-log(10000) * ...); sin and cos pass that error on at most unchanged.
    largest_position = max(max(grid) for grid, _ in shapes) - 1
    atol = 4 * FLOAT32_EPS * (1 + largest_position)
    return check("sincos_2d", function, sincos_2d_pos_embed, cases, SINCOS_2D_MISTAKES, atol=atol, rtol=0)


# --- Resizing a learned position table to a new grid (the paper's Sec. 3.2) ------------------------


def _resize(
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


def _resize_reference(pos_embed, old_grid, new_grid):
    return _resize(pos_embed, old_grid, new_grid)


RESIZE_MISTAKES = [
    Mistake(
        "the class token's row is missing: keep row 0 as it is (the class token has no place on the grid) "
        "and put it back in front of the resized patch rows.",
        lambda pos, old, new: _resize(pos, old, new, class_token="dropped"),
    ),
    Mistake(
        "the class token's row ends up last; it stays first, where the class token is.",
        lambda pos, old, new: _resize(pos, old, new, class_token="last"),
    ),
    Mistake(
        "the (1, N, D) rows were reshaped straight to (1, D, gh, gw) and back. A reshape keeps memory order, "
        "so each 'channel image' mixes patches and channels: move D first (permute(0, 2, 1), or "
        "rearrange 'b (gh gw) d -> b d gh gw') before reshaping, and move it back after.",
        lambda pos, old, new: _resize(pos, old, new, reshape_without_permute=True),
    ),
    Mistake(
        "the interpolation is 'nearest', F.interpolate's default: pass mode='bilinear'.",
        lambda pos, old, new: _resize(pos, old, new, mode="nearest", align_corners=None),
    ),
    Mistake(
        "align_corners=True stretches the grid so that corner patches map onto corner patches; this "
        "exercise, like timm, treats each vector as the centre of its patch: align_corners=False.",
        lambda pos, old, new: _resize(pos, old, new, align_corners=True),
    ),
    Mistake(
        "the interpolation is bicubic (what DeiT, MAE and timm use); this exercise asks for bilinear, "
        "mode='bilinear', so that every answer can be compared.",
        lambda pos, old, new: _resize(pos, old, new, mode="bicubic"),
    ),
    Mistake(
        "the rows were laid out column by column, (gw gh), instead of row by row, (gh gw): row 1 + i of the "
        "table belongs to the patch at row i // gw, column i % gw.",
        lambda pos, old, new: _resize(pos, old, new, read_as="(gw gh)"),
    ),
    Mistake(
        "height and width are swapped in the new size: F.interpolate's size is (height, width) = (gh', gw').",
        lambda pos, old, new: _resize(pos, old, new[::-1]),
    ),
]


def check_resize_pos_embed(function) -> Verdict:
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
        (4, 4): ": the book's model to the shipped one",
        (7, 7): ": and back",
        (14, 14): ": ViT-B/16, 224 to 384 pixels",
        (3, 3): ": the same grid",
    }
    cases = []
    for old, new, dim in shapes:
        table = torch.randn(1, 1 + old[0] * old[1], dim, generator=generator)
        description = f"{old[0]}x{old[1]} to {new[0]}x{new[1]} grid, dim {dim}{names.get(old, '')}"
        cases.append(Case(description, (table, old, new)))
    # Each output is v0 + t (v1 - v0) along each axis, with a weight t in [0, 1] computed from a source
    # coordinate of up to (grid side) patches: t is off by a few float32 spacings of that side (more when
    # the coordinate goes through grid_sample's [-1, 1] range), so an output is off by that much times
    # the largest input.
    largest = max(case.args[0].abs().max().item() for case in cases)
    largest_side = max(max(*old, *new) for old, new, _ in shapes)
    atol = 4 * FLOAT32_EPS * largest * (1 + largest_side)
    return check("resize_pos_embed", function, _resize_reference, cases, RESIZE_MISTAKES, atol=atol, rtol=0)


# --- A transfer task: rectangular patches ------------------------------------------------------------


def _patchify_rectangular(images: torch.Tensor, patch_size: tuple[int, int], order: str = "p1 p2 c") -> torch.Tensor:
    """(B, C, H, W) -> (B, N, ph*pw*C) for ph x pw patches, numbered row by row, pixels (p1 p2 c)."""
    ph, pw = patch_size
    height, width = images.shape[-2:]
    if height % ph or width % pw:
        raise ValueError(
            f"a {height} x {width} image does not cut into {ph} x {pw} patches: H % ph and W % pw must be 0"
        )
    return rearrange(images, f"b c (gh p1) (gw p2) -> b (gh gw) ({order})", p1=ph, p2=pw)


PATCHIFY_RECTANGULAR_MISTAKES = [
    Mistake(
        "ph and pw are swapped: patch_size is (height, width), so ph cuts H and pw cuts W.",
        lambda x, p: _patchify_rectangular(x, (p[1], p[0])),
    ),
    Mistake(
        "the channels come first inside a patch, (c p1 p2): vitlib keeps them last, (p1 p2 c), as in Eq. 1's P^2 C.",
        lambda x, p: _patchify_rectangular(x, p, order="c p1 p2"),
    ),
    Mistake(
        "the patches are numbered column by column: number them row by row, (gh gw), as patchify does.",
        lambda x, p: rearrange(x, "b c (gh p1) (gw p2) -> b (gw gh) (p1 p2 c)", p1=p[0], p2=p[1]),
    ),
]


def check_patchify_rectangular(function) -> Verdict:
    """Check ``function(images, patch_size)`` for (ph, pw) patches: (B, C, H, W) -> (B, N, ph*pw*C).

    N = (H / ph)(W / pw), patches row by row, pixels (p1 p2 c) as in `vitlib.patchify`. The last case
    is an image that does not cut evenly: the function must raise ValueError.
    """
    generator = torch.Generator().manual_seed(3)
    cases = [
        Case(
            f"B={b}, C={c}, {h} x {w} image, {ph} x {pw} patches: {what}",
            (torch.randn(b, c, h, w, generator=generator), (ph, pw)),
        )
        for b, c, h, w, ph, pw, what in [
            (2, 3, 32, 32, 4, 8, "RGB, CIFAR-10's size, wide patches"),
            (1, 3, 24, 36, 6, 4, "a landscape image, tall patches"),
            (3, 1, 28, 28, 7, 7, "square patches: patchify's answer"),
        ]
    ]
    verdict = check("patchify_rectangular", function, _patchify_rectangular, cases, PATCHIFY_RECTANGULAR_MISTAKES,
                    atol=0, rtol=0)  # fmt: skip
    if not verdict:
        return verdict
    try:
        function(torch.zeros(1, 3, 30, 32), (4, 8))
    except ValueError:
        return verdict
    except Exception as error:
        message = (
            f"✗ patchify_rectangular: a 30 x 32 image with 4 x 8 patches raised {type(error).__name__}, not ValueError."
        )
    else:
        message = "✗ patchify_rectangular: a 30 x 32 image with 4 x 8 patches (30 % 4 != 0) should raise ValueError."
    print(message)
    return Verdict("patchify_rectangular", False, message)
