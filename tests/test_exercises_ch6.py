"""Chapter 6's checkers: correct answers written in different ways pass, and each listed mistake is named.

Attention rollout's checker is tested with the other chapters' in test_exercises.py; the position
table resized for another resolution, now chapter 8's, in test_exercises_ch7_ch8.py.
"""

import math

import checkers
import torch
import torch.nn.functional as F

from vitlib import viz
from vitlib.exercises import visualize

# --- position similarity: correct answers, written differently -------------------------------------


def similarity_cosine_similarity(pos_embed, num_prefix_tokens):
    patches = pos_embed[0, num_prefix_tokens:]  # (N, D)
    return F.cosine_similarity(patches[:, None, :], patches[None, :, :], dim=-1)


def similarity_dot_over_lengths(pos_embed, num_prefix_tokens):
    patches = pos_embed.squeeze(0)[num_prefix_tokens:]
    lengths = patches.norm(dim=1)
    return (patches @ patches.T) / torch.outer(lengths, lengths)


def similarity_elementwise_sum(pos_embed, num_prefix_tokens):
    patches = pos_embed[0].narrow(0, num_prefix_tokens, pos_embed.shape[1] - num_prefix_tokens)
    unit = patches / (patches**2).sum(-1, keepdim=True).sqrt()
    return (unit[:, None, :] * unit[None, :, :]).sum(-1)  # summed in another order than a matmul


def similarity_float64(pos_embed, num_prefix_tokens):
    patches = pos_embed[0, num_prefix_tokens:].double()
    unit = patches / patches.norm(dim=-1, keepdim=True)
    return (unit @ unit.T).float()


# --- attention distance: correct answers, written differently --------------------------------------


def distance_plain_python(weights, grid_size, patch_size):
    """Loops over everything, in Python floats (float64)."""
    batch, heads = weights.shape[:2]
    rows, cols = grid_size
    n = rows * cols
    k = weights.shape[-1] - n  # prefix tokens
    w = weights.tolist()
    result = []
    for head in range(heads):
        total = 0.0
        for b in range(batch):
            for i in range(n):
                row_i, col_i = divmod(i, cols)
                attention = w[b][head][k + i][k:]  # query patch i over the N patch keys
                weighted = 0.0
                for j in range(n):
                    row_j, col_j = divmod(j, cols)
                    weighted += attention[j] * patch_size * math.hypot(row_i - row_j, col_i - col_j)
                total += weighted / sum(attention)
        result.append(total / (batch * n))
    return torch.tensor(result)


def distance_cdist_centres(weights, grid_size, patch_size):
    """Pixel centres of the patches, torch.cdist, einsum."""
    ys, xs = torch.meshgrid(torch.arange(grid_size[0]), torch.arange(grid_size[1]), indexing="ij")
    centres = (torch.stack([ys, xs], dim=-1).reshape(-1, 2).float() + 0.5) * patch_size  # (N, 2)
    distances = torch.cdist(centres, centres)  # (N, N)
    n = distances.shape[0]
    patches = weights[:, :, -n:, -n:]
    patches = patches / patches.sum(-1, keepdim=True)
    return torch.einsum("bhij,ij->bhi", patches, distances).mean(dim=(0, 2))


def distance_xy_meshgrid(weights, grid_size, patch_size):
    """'xy' indexing, a broadcast difference, and the means taken one at a time."""
    gh, gw = grid_size
    x, y = torch.meshgrid(torch.arange(gw), torch.arange(gh), indexing="xy")  # both (gh, gw)
    x, y = x.flatten() * patch_size, y.flatten() * patch_size
    distances = torch.sqrt((x[:, None] - x[None]) ** 2 + (y[:, None] - y[None]) ** 2).float()
    k = weights.shape[-1] - gh * gw
    a = weights[..., k:, k:]
    per_query = (a * distances).sum(-1) / a.sum(-1)  # (B, h, N)
    return per_query.mean(-1).mean(0)


def distance_float64(weights, grid_size, patch_size):
    distances = viz.patch_distances(grid_size, patch_size).double()
    k = weights.shape[-1] - distances.shape[0]
    a = weights[..., k:, k:].double()
    return ((a / a.sum(-1, keepdim=True)) @ distances).diagonal(dim1=-2, dim2=-1).mean(dim=(0, 2)).float()


CORRECT = [
    (visualize.check_position_similarity, similarity_cosine_similarity),
    (visualize.check_position_similarity, similarity_dot_over_lengths),
    (visualize.check_position_similarity, similarity_elementwise_sum),
    (visualize.check_position_similarity, similarity_float64),
    (visualize.check_attention_distance, distance_plain_python),
    (visualize.check_attention_distance, distance_cdist_centres),
    (visualize.check_attention_distance, distance_xy_meshgrid),
    (visualize.check_attention_distance, distance_float64),
    (visualize.check_attention_distance, lambda a, grid, p: viz.mean_attention_distance([a], grid, p)[0]),
]


@checkers.right_answers(CORRECT)
def test_correct_answers_written_differently_pass(checker, answer, capsys):
    checkers.assert_passes(checker, answer, capsys)


# --- wrong answers, as a reader would write them -----------------------------------------------------


def _patches(pos_embed, num_prefix_tokens):
    return pos_embed[0, num_prefix_tokens:]


def _grid_distances(grid_size, patch_size, norm=2):
    gh, gw = grid_size
    rows = torch.arange(gh * gw) // gw
    cols = torch.arange(gh * gw) % gw
    steps = torch.stack([rows, cols], dim=1).float()
    return torch.cdist(steps, steps, p=norm) * patch_size


def _distance(weights, distances, renormalize=True):
    n = distances.shape[0]
    a = weights[:, :, -n:, -n:]
    if renormalize:
        a = a / a.sum(-1, keepdim=True)
    return (a * distances).sum(-1)  # (B, h, N)


WRONG = [
    # position similarity
    (
        visualize.check_position_similarity,
        lambda e, k: F.cosine_similarity(e[0][:, None], e[0][None], dim=-1),
        "prefix tokens are in",
    ),
    (visualize.check_position_similarity, lambda e, k: similarity_cosine_similarity(e, 1), "whatever num_prefix"),
    (
        visualize.check_position_similarity,
        lambda e, k: similarity_cosine_similarity(e[:, : e.shape[1] - k], 0),
        "last rows were dropped",
    ),
    (
        visualize.check_position_similarity,
        lambda e, k: _patches(e, k) @ _patches(e, k).transpose(0, 1),
        "plain dot products",
    ),
    (
        visualize.check_position_similarity,
        lambda e, k: (u := _patches(e, k) / _patches(e, k).norm(dim=0)) @ u.T,
        "across the positions",
    ),
    (visualize.check_position_similarity, lambda e, k: torch.corrcoef(_patches(e, k)), "correlation"),
    (
        visualize.check_position_similarity,
        lambda e, k: torch.cdist(_patches(e, k)[None], _patches(e, k)[None])[0],
        "Euclidean distances",
    ),
    (
        visualize.check_position_similarity,
        lambda e, k: similarity_cosine_similarity(e, k)[None],
        "batch dimension",
    ),
    # attention distance
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p), False).mean((0, 2)),
        "not renormalized",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: distance_cdist_centres(
            torch.roll(a, shifts=(a.shape[-1] - g[0] * g[1],) * 2, dims=(2, 3)), g, p
        ),
        "last tokens were dropped",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, 1)).mean((0, 2)),
        "in patches",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _grid_distances(g, p).mean() * torch.ones(a.shape[1]),
        "not weighted by attention",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p)).mean(),
        "heads are averaged",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p, 1)).mean((0, 2)),
        "Manhattan",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p) ** 2).mean((0, 2)),
        "squared",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g[::-1], p)).mean((0, 2)),
        "rows and columns of the grid are swapped",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p)).sum(2).mean(0),
        "summed over the query",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p)).mean(0),
        "one distance per query",
    ),
    (
        visualize.check_attention_distance,
        lambda a, g, p: _distance(a, _grid_distances(g, p)).mean(2),
        "one distance per image",
    ),
]


@checkers.wrong_answers(WRONG)
def test_each_mistake_is_named(checker, answer, named, capsys):
    checkers.assert_names_mistake(checker, answer, named, capsys)


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    catalogues = [visualize.POSITION_SIMILARITY_MISTAKES, visualize.ATTENTION_DISTANCE_MISTAKES]
    checkers.assert_every_mistake_is_named(WRONG, catalogues)


def test_tolerances_accept_float32_rounding_but_not_a_small_real_error():
    generator = torch.Generator().manual_seed(1)
    weights = (2 * torch.randn(2, 3, 50, 50, generator=generator)).softmax(-1)
    exact = distance_float64(weights, (7, 7), 4)
    float32 = viz.mean_attention_distance([weights], (7, 7), 4)[0]
    # the checker's relative tolerance is far above what float32 rounding did here ...
    assert ((float32 - exact).abs() / exact).max() < visualize.DISTANCE_RTOL / 10
    # ... and a distance 0.1% off still fails
    assert not visualize.check_attention_distance(lambda a, g, p: 1.001 * distance_float64(a, g, p))
    checkers.assert_a_small_error_fails(visualize.check_position_similarity, similarity_float64)


def test_the_checkers_use_the_books_and_the_shipped_models_grids():
    report = visualize.check_attention_distance(distance_float64).report
    assert "grid (4, 4), patch 7" in report and "grid (7, 7), patch 4" in report and "grid (3, 5)" in report


def test_the_checkers_try_two_prefix_tokens_and_none():
    similarity = visualize.check_position_similarity(similarity_float64).report
    assert "num_prefix_tokens=2" in similarity and "num_prefix_tokens=0" in similarity
    distance = visualize.check_attention_distance(distance_float64).report
    assert "(1, 4, 51, 51), grid (7, 7)" in distance and "(2, 2, 16, 16), grid (4, 4)" in distance
