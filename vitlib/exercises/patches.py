"""Checkers for chapter 2, patchifying: patchify (Eq. 1's x_p), patchify carried over to rectangular
patches and any number of channels, and the fixed 2-D sin-cos code of MoCo v3 and MAE.

from vitlib.exercises import patches
patches.check_patchify(my_patchify)
"""

import re

import torch
from einops import rearrange

from vitlib.exercises._checking import Case, Mistake, Verdict, _finish, check
from vitlib.patches import patchify, sincos_2d_pos_embed

__all__ = ["check_patchify", "check_patchify_rectangular", "check_sincos_2d"]

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


# --- A transfer task: rectangular patches, any number of channels --------------------------------


def _patchify_rectangular(
    images: torch.Tensor, patch_size: tuple[int, int], *, order: str = "(gh gw) (p1 p2 c)"
) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, ph*pw*C) for ph x pw patches, numbered row by row, pixels (p1 p2 c).

    `vitlib.patchify` takes one square patch size; this is its einops pattern with two sides.
    """
    ph, pw = patch_size
    height, width = images.shape[-2:]
    if height % ph or width % pw:
        raise ValueError(
            f"a {height} x {width} image does not cut into {ph} x {pw} patches: H % ph and W % pw must be 0"
        )
    return rearrange(images, f"b c (gh p1) (gw p2) -> b {order}", p1=ph, p2=pw)  # (B, N, ph*pw*C)


PATCHIFY_RECTANGULAR_MISTAKES = [
    Mistake(
        "ph and pw are swapped: patch_size is (height, width), so ph cuts H and pw cuts W.",
        lambda x, p: _patchify_rectangular(x, (p[1], p[0])),
    ),
    Mistake(
        "each patch is flattened channel-first, (c p1 p2), instead of (p1 p2 c): vitlib keeps the "
        "channels of a pixel together, as in the paper's x_p in R^{N x (P^2 C)}.",
        lambda x, p: _patchify_rectangular(x, p, order="(gh gw) (c p1 p2)"),
    ),
    Mistake(
        "the patches are numbered column by column, (gw gh): number them row by row, (gh gw), as "
        "patchify does; patch 1 is the one to the right of patch 0.",
        lambda x, p: _patchify_rectangular(x, p, order="(gw gh) (p1 p2 c)"),
    ),
    Mistake(
        "inside each patch the pixels are read column by column, (p2 p1), instead of row by row, (p1 p2).",
        lambda x, p: _patchify_rectangular(x, p, order="(gh gw) (p2 p1 c)"),
    ),
    Mistake(
        "the patches are square, ph x ph: the second side, pw, cuts W.",
        lambda x, p: _patchify_rectangular(x, (p[0], p[0])),
    ),
    Mistake(
        "the images were reshaped to (B, N, ph*pw*C) without moving any axis first. A reshape keeps "
        "memory order, so each 'patch' is a run of pixels along a row. Split H into (gh, ph) and W "
        "into (gw, pw), move the axes, then flatten.",
        lambda x, p: x.reshape(x.shape[0], (x.shape[2] // p[0]) * (x.shape[3] // p[1]), -1),
    ),
    Mistake(
        "the patch grid is not flattened: the output is (B, gh, gw, ph*pw*C); merge gh and gw into N.",
        lambda x, p: _patchify_rectangular(x, p, order="gh gw (p1 p2 c)"),
    ),
]

# What the checker says when an image that does not tile gets no clear error.
RECTANGULAR_SILENT = (
    "nothing was raised: unfold (and slicing) quietly drop the pixels that do not fill a patch. "
    "Check H % ph and W % pw first, and raise ValueError."
)
RECTANGULAR_OTHER_ERROR = (
    "a reshape or einops fails on its own, but its message speaks of tensors, not of the image and "
    "the patch. Check H % ph and W % pw first, and raise ValueError."
)
RECTANGULAR_NO_SIZES = (
    "the message does not name the sizes: say which do not fit, e.g. "
    'f"{H} x {W} does not cut into {ph} x {pw} patches".'
)


def _refusal_cases() -> list[tuple[str, tuple[int, ...], tuple[int, int], tuple[int, int]]]:
    """(description, image shape, patch size, (the side that does not tile, its patch side))."""
    return [
        ("(1, 3, 30, 32) images, 4 x 8 patches: H % ph = 2", (1, 3, 30, 32), (4, 8), (30, 4)),
        ("(2, 1, 28, 30) images, 7 x 4 patches: W % pw = 2", (2, 1, 28, 30), (7, 4), (30, 4)),
    ]


def _refusal_problem(function, shape, patch_size, sizes) -> tuple[str, str] | None:
    """None when ``function`` raises a ValueError that names ``sizes``; otherwise (what happened, mistake)."""
    try:
        output = function(torch.zeros(shape), patch_size)
    except ValueError as error:
        named = all(re.search(rf"(?<!\d){size}(?!\d)", str(error)) for size in sizes)  # 30, not 300
        return None if named else (f"the ValueError says {str(error)!r}", RECTANGULAR_NO_SIZES)
    except Exception as error:  # the reader's own error: the wrong kind
        return f"your function raised {type(error).__name__}, not ValueError", RECTANGULAR_OTHER_ERROR
    shape_of = f"a tensor of shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else repr(output)
    return f"your function returned {shape_of} instead of raising ValueError", RECTANGULAR_SILENT


def check_patchify_rectangular(function) -> Verdict:
    """Check ``function(images, patch_size)`` for (ph, pw) patches: (B, C, H, W) -> (B, N, ph*pw*C).

    N = (H / ph)(W / pw), patches numbered row by row, each patch's pixels row by row with the
    channels last, (p1 p2 c), as `vitlib.patchify` orders them. An image whose H is not a multiple
    of ph, or W of pw, must raise ValueError with a message that names the sizes.
    """
    generator = torch.Generator().manual_seed(3)
    cases = [
        Case(
            f"({b}, {c}, {h}, {w}) images, {ph} x {pw} patches: {what}",
            (torch.randn(b, c, h, w, generator=generator), (ph, pw)),
        )
        for b, c, h, w, ph, pw, what in [
            (2, 3, 32, 32, 4, 8, "RGB at CIFAR-10's size, wide patches"),
            (1, 3, 24, 36, 6, 4, "a landscape image, tall patches"),
            (3, 1, 28, 28, 7, 7, "square patches: patchify's answer"),
            (2, 2, 6, 15, 3, 5, "a 2 x 3 grid"),
            (1, 3, 20, 12, 10, 3, "a portrait image, a 2 x 4 grid"),
        ]
    ]
    verdict = check(
        "patchify_rectangular",
        function,
        _patchify_rectangular,
        cases,
        PATCHIFY_RECTANGULAR_MISTAKES,
        atol=0,  # patchify only moves numbers: a correct answer is exact
        rtol=0,
        verbose=False,
    )
    if not verdict:
        print(verdict.report)
        return verdict
    refusals = _refusal_cases()
    total = len(cases) + len(refusals)
    for number, (description, shape, patch_size, sizes) in enumerate(refusals, start=len(cases) + 1):
        problem = _refusal_problem(function, shape, patch_size, sizes)
        if problem:
            happened, mistake = problem
            report = (
                f"✗ patchify_rectangular: wrong on case {number} of {total} ({description}).\n"
                f"  {happened}.\n  Likely mistake: {mistake}"
            )
            return _finish("patchify_rectangular", False, report, True, mistake)
    tried = "\n".join(f"  - {case.description}" for case in cases)
    tried += "".join(f"\n  - {description}: raises ValueError" for description, *_ in refusals)
    report = f"✓ patchify_rectangular: correct on all {total} cases:\n{tried}"
    return _finish("patchify_rectangular", True, report, True)


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
