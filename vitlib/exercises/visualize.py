"""Checkers for chapter 6, what the model learned: Figure 7's position similarity and attention
distance, and attention rollout. (Position embeddings resized for another resolution: chapter 8,
`vitlib.exercises.resolution`.)

from vitlib.exercises import visualize
visualize.check_attention_distance(my_attention_distance)
"""

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.viz import attention_rollout, mean_attention_distance, patch_distances

__all__ = ["check_attention_distance", "check_attention_rollout", "check_position_similarity"]

# The spacing of float32 numbers near 1 (2^-23); the tolerances below are derived from it.
FLOAT32_EPS = torch.finfo(torch.float32).eps


# --- Figure 7, centre: position-embedding similarity ---------------------------------------------


def _position_similarity(pos_embed: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(1, num_prefix_tokens + N, D), prefix tokens first -> (N, N) cosine similarities of the patches' rows."""
    unit = F.normalize(pos_embed[0, num_prefix_tokens:], dim=-1)  # (N, D), each row of length 1
    return unit @ unit.T  # (N, N)


# A cosine similarity is a dot product of two unit vectors of D numbers: however its D products are
# summed, float32 rounding moves it by at most about D * eps / 2 (4.6e-5 for D = 768), the two
# normalizations by a few eps more. The tolerance is twice that bound; correct solutions written in
# five ways measured at most 7e-7 apart, and every mistake below is off by 1e-2 or more.
SIMILARITY_ATOL = 768 * FLOAT32_EPS


def _similarity_of(rows: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(rows, dim=-1)
    return unit @ unit.T


POSITION_SIMILARITY_MISTAKES = [
    Mistake(
        "the prefix tokens are in: the class token's row (and a distilled model's distillation token's) "
        "marks no place in the image; compare the N patches only, pos_embed[0, num_prefix_tokens:], "
        "which gives (N, N).",
        lambda e, k: _similarity_of(e[0]),
    ),
    Mistake(
        "one row was dropped whatever num_prefix_tokens is: a distilled (DeiT) model's table starts with "
        "two prefix rows, the class token's and the distillation token's, a mean-pooled model's with none; "
        "take pos_embed[0, num_prefix_tokens:].",
        lambda e, k: _similarity_of(e[0, 1:]),
    ),
    Mistake(
        "the last rows were dropped instead of the first: the prefix tokens come first, so take "
        "pos_embed[0, num_prefix_tokens:].",
        lambda e, k: _similarity_of(e[0, : e.shape[1] - k]),
    ),
    Mistake(
        "these are plain dot products: divide by both lengths (or normalize each row first) to get the cosine.",
        lambda e, k: e[0, k:] @ e[0, k:].T,
    ),
    Mistake(
        "each feature was normalized across the positions (dim=0); normalize each embedding, dim=-1.",
        lambda e, k: F.normalize(e[0, k:], dim=0) @ F.normalize(e[0, k:], dim=0).T,
    ),
    Mistake(
        "this is the correlation (each embedding centred first, as torch.corrcoef does); the cosine "
        "similarity does not subtract the mean.",
        lambda e, k: torch.corrcoef(e[0, k:]),
    ),
    Mistake(
        "these are Euclidean distances between the embeddings; Figure 7 shows cosine similarities.",
        lambda e, k: torch.cdist(e[0, k:], e[0, k:]),
    ),
    Mistake(
        "the batch dimension is still there: return (N, N), not (1, N, N).",
        lambda e, k: _position_similarity(e, k)[None],
    ),
]


def check_position_similarity(function) -> Verdict:
    """Check ``function(pos_embed, num_prefix_tokens)``: a (1, num_prefix_tokens + N, D) position-
    embedding table, prefix tokens first (the class token; a distilled model's distillation token
    after it) -> (N, N), the cosine similarity between the position embeddings of every pair of
    patches, the prefix tokens left out, as Figure 7 (centre) shows them."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for prefix, n, d, what in [
        (1, 16, 64, "the book's model"),
        (1, 49, 64, "4 x 4 patches"),
        (2, 49, 64, "a distilled model: class and distillation tokens"),
        (0, 16, 64, "mean pooling: no prefix token"),
        (1, 196, 768, "ViT-B/16"),
        (1, 6, 8, ""),
    ]:
        # small random embeddings, as at initialization, each shifted by its own constant
        table = torch.randn(1, prefix + n, d, generator=generator) + torch.randn(1, prefix + n, 1, generator=generator)
        table = 0.02 * table  # (1, T, D)
        label = f"pos_embed (1, {prefix} + {n}, {d}), num_prefix_tokens={prefix}" + (f": {what}" if what else "")
        cases.append(Case(label, (table, prefix)))
    return check(
        "position_similarity",
        function,
        _position_similarity,
        cases,
        POSITION_SIMILARITY_MISTAKES,
        atol=SIMILARITY_ATOL,
        rtol=0.0,
    )


# --- Attention rollout ---------------------------------------------------------------------------


def _mixed(weights: torch.Tensor, residual_weight: float) -> torch.Tensor:
    identity = torch.eye(weights.shape[-1])
    mixed = (1 - residual_weight) * weights.mean(dim=1) + residual_weight * identity  # (B, T, T)
    return mixed / mixed.sum(dim=-1, keepdim=True)


def _rollout_reversed(maps, residual_weight):
    rollout = torch.eye(maps[0].shape[-1]).expand(maps[0].shape[0], -1, -1)
    for weights in maps:
        rollout = rollout @ _mixed(weights, residual_weight)
    return rollout


def _rollout_without_residual(maps, residual_weight):
    rollout = torch.eye(maps[0].shape[-1]).expand(maps[0].shape[0], -1, -1)
    for weights in maps:
        rollout = weights.mean(dim=1) @ rollout
    return rollout


def _rollout_max_heads(maps, residual_weight):
    rollout = torch.eye(maps[0].shape[-1]).expand(maps[0].shape[0], -1, -1)
    for weights in maps:
        rollout = _mixed(weights.amax(dim=1, keepdim=True), residual_weight) @ rollout
    return rollout


ROLLOUT_MISTAKES = [
    Mistake(
        "the layers are multiplied in the wrong order: the output of layer l mixes the outputs of "
        "layer l - 1, so R = A_L ... A_2 A_1 (new layer on the left: rollout = mixed @ rollout).",
        _rollout_reversed,
    ),
    Mistake(
        "the residual connection is left out: mix each layer's attention with the identity, "
        "(1 - w) A + w I, because the residual passes every token on to itself.",
        _rollout_without_residual,
    ),
    Mistake(
        "the heads are combined with a max; Abnar & Zuidema (and vitlib) average them: weights.mean(dim=1).",
        _rollout_max_heads,
    ),
    Mistake(
        "only the last layer's attention is used; the rollout multiplies all of them.",
        lambda maps, w: _mixed(maps[-1], w),
    ),
]


def _random_attention(batch: int, heads: int, tokens: int, generator: torch.Generator) -> torch.Tensor:
    return (2 * torch.randn(batch, heads, tokens, tokens, generator=generator)).softmax(dim=-1)


def check_attention_rollout(function) -> Verdict:
    """Check ``function(maps, residual_weight)`` -> (B, T, T), the attention rollout.

    ``maps`` is a list of L attention tensors (B, h, T, T), one per layer as
    ``VisionTransformer.get_attention_maps`` returns them. Average each over the heads, mix it with
    the identity, (1 - w) A + w I, renormalize the rows, and multiply the layers: R = A'_L ... A'_1.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for layers, b, heads, tokens, w in [(3, 2, 4, 5, 0.5), (6, 1, 4, 50, 0.5), (2, 3, 2, 7, 0.25), (4, 2, 3, 6, 0.0)]:
        maps = [_random_attention(b, heads, tokens, generator) for _ in range(layers)]
        cases.append(Case(f"{layers} layers of ({b}, {heads}, {tokens}, {tokens}), residual weight {w}", (maps, w)))
    return check("attention_rollout", function, attention_rollout, cases, ROLLOUT_MISTAKES)


# --- Figure 7, right: mean attention distance ----------------------------------------------------


def _attention_distance(weights: torch.Tensor, grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """One layer's (B, h, T, T) attention, the T - N prefix tokens first -> (h,) mean distances in pixels."""
    return mean_attention_distance([weights], grid_size, patch_size)[0]


def _positions(grid_size: tuple[int, int], patch_size: int, order: str = "rows") -> torch.Tensor:
    """(N, 2) patch positions in pixels, (row, column); ``order='columns'`` reads the grid the wrong way."""
    index = torch.arange(grid_size[0] * grid_size[1])
    if order == "rows":
        rows, cols = index // grid_size[1], index % grid_size[1]
    else:  # column by column: as if the grid were (gw, gh)
        rows, cols = index % grid_size[0], index // grid_size[0]
    return torch.stack([rows, cols], dim=1).float() * patch_size


def _per_query(weights, distances, *, renormalize=True, drop="first"):
    """(B, h, N): each query patch's attention-weighted mean distance, in the ways a reader might compute it."""
    n = distances.shape[-1]
    patch_weights = weights[..., -n:, -n:] if drop == "first" else weights[..., :n, :n]  # (B, h, N, N)
    if renormalize:
        patch_weights = patch_weights / patch_weights.sum(dim=-1, keepdim=True)
    return (patch_weights * distances).sum(dim=-1)


def _euclidean(grid, p, order="rows"):
    positions = _positions(grid, p, order)
    return (positions[:, None] - positions[None]).norm(dim=-1)  # (N, N)


def _manhattan(grid, p):
    positions = _positions(grid, p)
    return (positions[:, None] - positions[None]).abs().sum(dim=-1)


ATTENTION_DISTANCE_MISTAKES = [
    Mistake(
        "the prefix tokens' columns were dropped but the rows were not renormalized, so each query's weights "
        "over the patches sum to less than 1 (as if the class token were a key at distance 0). Divide each "
        "row by its sum over the N patches.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p), renormalize=False).mean(dim=(0, 2)),
    ),
    Mistake(
        "the last tokens were dropped instead of the first: the prefix tokens come first (the class token is "
        "token 0), so keep weights[..., k:, k:] with k = T - N prefix tokens.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p), drop="last").mean(dim=(0, 2)),
    ),
    Mistake(
        "the distances are in patches, not pixels: multiply the grid steps by the patch size P.",
        lambda a, grid, p: _attention_distance(a, grid, p) / p,
    ),
    Mistake(
        "the distances are not weighted by attention: this is the mean distance between all pairs of "
        "patches, the same for every head. Weight each distance by the query's attention to that patch.",
        lambda a, grid, p: patch_distances(grid, p).mean().expand(a.shape[1]),
    ),
    Mistake(
        "the heads are averaged together: keep one mean distance per head, shape (h,).",
        lambda a, grid, p: _attention_distance(a, grid, p).mean(),
    ),
    Mistake(
        "these are Manhattan distances (|rows| + |columns|); the distance between two patches is "
        "Euclidean, sqrt(rows^2 + columns^2).",
        lambda a, grid, p: _per_query(a, _manhattan(grid, p)).mean(dim=(0, 2)),
    ),
    Mistake(
        "the distances are squared: take the square root.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p) ** 2).mean(dim=(0, 2)),
    ),
    Mistake(
        "rows and columns of the grid are swapped: patch n sits in row n // gw and column n % gw "
        "(raster order, gw patches to a row). A square grid hides this; a (3, 5) grid does not.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p, order="columns")).mean(dim=(0, 2)),
    ),
    Mistake(
        "the distances are summed over the query patches instead of averaged.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p)).sum(dim=2).mean(dim=0),
    ),
    Mistake(
        "one distance per query patch is left, (h, N): average over the query patches too.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p)).mean(dim=0),
    ),
    Mistake(
        "one distance per image is left, (B, h): average over the images too.",
        lambda a, grid, p: _per_query(a, _euclidean(grid, p)).mean(dim=2),
    ),
]

# Every term summed is a weight times a distance, none negative, so however they are added float32
# rounding moves the result by at most about (number of terms) * eps / 2 of its size: N terms per
# query, then B * N queries averaged, (49 + 98) * 6e-8 = 9e-6 here. The tolerance is three times that;
# correct solutions written in five ways measured at most 1.5e-7 apart, every mistake 1e-3 or more.
DISTANCE_RTOL = 256 * FLOAT32_EPS


def check_attention_distance(function) -> Verdict:
    """Check ``function(weights, grid_size, patch_size)`` -> (h,), one layer's mean attention distance.

    ``weights`` is one layer's attention, (B, h, T, T), for a (gh, gw) grid of N = gh * gw patches
    of P x P pixels in raster order, after T - N prefix tokens: the class token (one), with a
    distilled model's distillation token after it (two), or none for a mean-pooled model. For each
    head: for every image and every query patch i, the attention-weighted mean of the distances in
    pixels from patch i to every patch j (itself included, at distance 0), with the prefix tokens
    left out as queries and as keys and each row renormalized over the N patches; then the mean
    over the images and the query patches.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, heads, grid, p, prefix, what in [
        (2, 4, (4, 4), 7, 1, "the book's model"),
        (1, 4, (7, 7), 4, 1, "4 x 4 patches"),
        (3, 2, (3, 5), 2, 1, "a grid wider than tall"),
        (2, 3, (6, 2), 8, 1, "a grid taller than wide"),
        (1, 4, (7, 7), 4, 2, "two prefix tokens: class and distillation"),
        (2, 2, (4, 4), 7, 0, "mean pooling: no prefix token"),
    ]:
        tokens = prefix + grid[0] * grid[1]
        weights = _random_attention(b, heads, tokens, generator)
        label = f"weights ({b}, {heads}, {tokens}, {tokens}), grid {grid}, patch {p}" + (f": {what}" if what else "")
        cases.append(Case(label, (weights, grid, p)))
    return check(
        "attention_distance",
        function,
        _attention_distance,
        cases,
        ATTENTION_DISTANCE_MISTAKES,
        atol=1e-6,
        rtol=DISTANCE_RTOL,
    )
