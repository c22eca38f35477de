"""Images to token sequences: patches, the patch embedding and positional embeddings.

Book chapter 2, "Patchifying". Implements Eq. 1 of Dosovitskiy et al. (2020):

    z_0 = [x_class; x_p^1 E; x_p^2 E; ...; x_p^N E] + E_pos,   E in R^{(P^2 C) x D}

Shape legend: B batch, C channels, H/W image height/width, P patch size, N = HW / P^2 patches,
D embedding dim. The patch grid is gh x gw (grid height, grid width).
"""

import operator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "LearnedPosEmbed2d",
    "PatchEmbed",
    "check_patch_grid",
    "grid_pos_embed",
    "patchify",
    "resize_pos_embed",
    "sincos_1d_pos_embed",
    "sincos_2d_pos_embed",
    "unpatchify",
]


def check_patch_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """Return the patch grid (gh, gw), or raise ValueError if the image does not tile."""
    if patch_size <= 0:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not divisible by patch size {patch_size}: "
            f"choose a patch size that divides both sides (for 28x28, one of 1, 2, 4, 7, 14, 28) "
            f"or resize/pad the image"
        )
    return height // patch_size, width // patch_size


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping P x P patches, each flattened to a vector.

    Patches are numbered row by row (left to right, then top to bottom); inside a patch the
    pixels are also in row-major order, with the channels last: (p1 p2 c).

    Args:
        images: (B, C, H, W), H and W divisible by ``patch_size``.
        patch_size: P.

    Returns:
        (B, N, P*P*C) with N = (H / P) * (W / P).
    """
    if images.dim() != 4:
        raise ValueError(f"patchify expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    check_patch_grid(images.shape[-2], images.shape[-1], patch_size)
    # (B, C, gh*P, gw*P) -> (B, gh*gw, P*P*C)
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Invert :func:`patchify`: (B, N, P*P*C) back to (B, C, H, W).

    Args:
        patches: (B, N, P*P*C) with N = gh * gw.
        patch_size: P.
        grid_size: (gh, gw), the number of patch rows and columns.
    """
    grid_height, grid_width = grid_size
    if patches.dim() != 3 or patches.shape[1] != grid_height * grid_width:
        raise ValueError(
            f"unpatchify expects (B, N, P*P*C) with N = {grid_height}*{grid_width} = "
            f"{grid_height * grid_width}, got {tuple(patches.shape)}"
        )
    if patches.shape[2] % (patch_size * patch_size):
        raise ValueError(f"patch vectors of length {patches.shape[2]} cannot hold P*P*C values for P={patch_size}")
    # (B, gh*gw, P*P*C) -> (B, C, gh*P, gw*P)
    return rearrange(
        patches, "b (gh gw) (p1 p2 c) -> b c (gh p1) (gw p2)", gh=grid_height, p1=patch_size, p2=patch_size
    )


class PatchEmbed(nn.Module):
    """Linear projection of flattened patches (the E of Eq. 1), written as one convolution.

    A Conv2d with kernel = stride = P sees each patch exactly once and applies the same linear
    map to it, so it equals ``patchify`` followed by ``nn.Linear(P*P*C, D)``; chapter 2 checks
    this numerically. The convolution is the form timm and torchvision use, and it is faster.
    """

    def __init__(self, *, image_size: int, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.grid_size = check_patch_grid(image_size, image_size, patch_size)
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, D)."""
        if images.dim() != 4 or images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise ValueError(
                f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                f"got {tuple(images.shape)}: resize the images or build the model with a config whose "
                f"in_chans and image_size match"
            )
        x = self.proj(images)  # (B, D, gh, gw)
        return rearrange(x, "b d gh gw -> b (gh gw) d")  # (B, N, D)

    def as_linear_weight(self) -> torch.Tensor:
        """The conv kernel as the (D, P*P*C) matrix that acts on ``patchify`` output."""
        # (D, C, P, P) -> (D, P*P*C), in patchify's (p1 p2 c) order
        return rearrange(self.proj.weight, "d c p1 p2 -> d (p1 p2 c)")


def sincos_1d_pos_embed(num_positions: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """The sinusoidal position encoding of Vaswani et al. (2017), Sec. 3.5.

        PE(pos, 2i)     = sin(pos / 10000^(2i / D))
        PE(pos, 2i + 1) = cos(pos / 10000^(2i / D))

    Returns:
        (num_positions, D); D must be even.
    """
    if dim % 2:
        raise ValueError(f"sin-cos position embeddings need an even dim, got {dim}")
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    omega = temperature ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angle = position * omega  # (N, D/2)
    embed = torch.zeros(num_positions, dim, dtype=torch.float64)
    embed[:, 0::2] = torch.sin(angle)
    embed[:, 1::2] = torch.cos(angle)
    return embed.float()


def sincos_2d_pos_embed(grid_size: tuple[int, int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings, as in MoCo v3 (Chen, Xie and He 2021) and MAE.

    Not from the ViT paper: its Appendix D.4 "2-D" variant is *learned* (see
    :class:`LearnedPosEmbed2d`). Here a quarter of the channels encodes the row with sines, a
    quarter with cosines, and the other half the column in the same way (each half the 1-D code
    of Vaswani et al. over D/2 channels), so two patches in the same row share half of their
    embedding. The sines and cosines are grouped, not interleaved, and the row half comes first
    (MAE's code puts the column half first: the same code with the halves swapped).

    Returns:
        (gh * gw, D), patches in row-major order; D must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embeddings need dim divisible by 4, got {dim}")
    grid_height, grid_width = grid_size
    rows, cols = torch.meshgrid(
        torch.arange(grid_height, dtype=torch.float64), torch.arange(grid_width, dtype=torch.float64), indexing="ij"
    )  # (gh, gw) each
    omega = temperature ** (-torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)
    row_angle = rows.flatten()[:, None] * omega  # (N, D/4)
    col_angle = cols.flatten()[:, None] * omega  # (N, D/4)
    embed = torch.cat([row_angle.sin(), row_angle.cos(), col_angle.sin(), col_angle.cos()], dim=1)
    return embed.float()  # (N, D)


def grid_pos_embed(row_embed: torch.Tensor, col_embed: torch.Tensor) -> torch.Tensor:
    """One position vector per patch from a row table and a column table, concatenated.

    Patch (r, c) gets ``[row_embed[r], col_embed[c]]``, so patches of one row share the first
    half of their vector and patches of one column the second.

    Args:
        row_embed: (gh, D/2), one vector per patch row.
        col_embed: (gw, D/2), one vector per patch column.

    Returns:
        (gh * gw, D), patches in row-major order (as ``patchify`` numbers them).
    """
    if row_embed.dim() != 2 or col_embed.dim() != 2 or row_embed.shape[1] != col_embed.shape[1]:
        raise ValueError(
            f"expected row and column tables (gh, D/2) and (gw, D/2) of the same width, got "
            f"{tuple(row_embed.shape)} and {tuple(col_embed.shape)}"
        )
    grid_height, grid_width = row_embed.shape[0], col_embed.shape[0]
    rows = row_embed[:, None].expand(-1, grid_width, -1)  # (gh, gw, D/2)
    cols = col_embed[None, :].expand(grid_height, -1, -1)  # (gh, gw, D/2)
    return torch.cat([rows, cols], dim=-1).flatten(0, 1)  # (gh * gw, D)


class LearnedPosEmbed2d(nn.Module):
    """The ViT paper's 2-D position embedding (Appendix D.4): learned, factored by row and column.

    The paper learns an X- and a Y-embedding of D/2 channels each and concatenates them by the
    patch's coordinates. That costs (gh + gw) * D/2 parameters instead of N * D, and builds in
    that patches share a row or a column; what the halves hold is learned, unlike
    :func:`sincos_2d_pos_embed`. Here the row half comes first, as in ``sincos_2d_pos_embed``.
    """

    def __init__(self, grid_size: tuple[int, int], dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(
                f"learned 2-D position embeddings split dim into a row and a column half, so dim must be "
                f"even, got dim={dim}: use an even dim, or pos_embed='learned'"
            )
        grid_height, grid_width = grid_size
        self.row = nn.Parameter(torch.zeros(grid_height, dim // 2))  # (gh, D/2)
        self.col = nn.Parameter(torch.zeros(grid_width, dim // 2))  # (gw, D/2)

    def forward(self) -> torch.Tensor:
        """The (N, D) table, patches in row-major order."""
        return grid_pos_embed(self.row, self.col)


def resize_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """A learned position table for another patch grid: the paper's Sec. 3.2, "2D interpolation of
    the pre-trained position embeddings, according to their location in the original image".

    The patches' rows are laid out on their (gh, gw) grid and each of the D channels is resized
    as an image, bicubically and with ``antialias=True``, as timm's ``resample_abs_pos_embed``
    does (the paper does not name the kind of interpolation); the prefix tokens (the class token)
    sit at no position and are kept as they are. The interpolation runs in float32, as timm's.

    Args:
        pos_embed: (1, num_prefix_tokens + gh * gw, D), prefix rows first, patches row-major.
        old_grid: (gh, gw), the grid the table was learned on.
        new_grid: (gh', gw'), the grid of the new image size: image_size // patch_size each way.
        num_prefix_tokens: 1 with a class token, 0 without (pool='mean').

    Returns:
        (1, num_prefix_tokens + gh' * gw', D).
    """
    for name, grid in (("old_grid", old_grid), ("new_grid", new_grid)):
        if len(grid) != 2 or any(isinstance(side, bool) or not _is_integer(side) or side < 1 for side in grid):
            raise ValueError(f"{name} must be two positive integers (grid height, grid width), got {grid}")
    if num_prefix_tokens < 0:
        raise ValueError(f"num_prefix_tokens counts the class token(s): 0 or more, got {num_prefix_tokens}")
    old_grid, new_grid = tuple(map(int, old_grid)), tuple(map(int, new_grid))
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"expected a position table of shape (1, T, D), got {tuple(pos_embed.shape)}")
    expected = num_prefix_tokens + old_grid[0] * old_grid[1]
    if pos_embed.shape[1] != expected:
        raise ValueError(
            f"the table has {pos_embed.shape[1]} rows, but {num_prefix_tokens} prefix tokens and a "
            f"{old_grid[0]}x{old_grid[1]} grid make {expected}: pass the grid the model was trained on "
            f"(model.patch_embed.grid_size) and its prefix count (model.num_prefix_tokens: 1 with a "
            f"class token, 0 with mean pooling)"
        )
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = rearrange(patches, "1 (gh gw) d -> 1 d gh gw", gh=old_grid[0])  # each channel an image
    resized = F.interpolate(grid.float(), size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=True)
    patches = rearrange(resized, "1 d gh gw -> 1 (gh gw) d").to(pos_embed.dtype)  # (1, gh' gw', D)
    return torch.cat([prefix, patches], dim=1)


def _is_integer(value) -> bool:
    try:
        operator.index(value)  # int, numpy integers, 0-d integer tensors
    except TypeError:
        return False
    return True
