"""Checkers for chapter 6, what the model learned: mean pooling and attention rollout.

from vitlib.exercises import visualize
visualize.check_attention_rollout(my_rollout)
"""

import torch

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.viz import attention_rollout

__all__ = ["check_attention_rollout", "check_mean_pool"]


def _mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 1:].mean(dim=1)  # (B, 1 + N, D) -> (B, D), the class token left out


MEAN_POOL_MISTAKES = [
    Mistake(
        "the class token is in the average: pool the N patch tokens, tokens[:, 1:], and leave token 0 out.",
        lambda z: z.mean(dim=1),
    ),
    Mistake(
        "the average runs over the features (dim=-1) instead of the tokens (dim=1): the result must "
        "keep one D-vector per image.",
        lambda z: z[:, 1:].mean(dim=-1),
    ),
    Mistake("this is the class token itself, tokens[:, 0], not the mean of the patch tokens.", lambda z: z[:, 0]),
    Mistake("the patch tokens are summed; the pooling averages them (divide by N).", lambda z: z[:, 1:].sum(dim=1)),
]


def check_mean_pool(function) -> Verdict:
    """Check ``function(tokens)``: (B, 1 + N, D) encoder output with the class token first -> (B, D),
    the mean of the N patch tokens (the pooling ViT's ``pool='mean'`` uses instead of the class token)."""
    generator = torch.Generator().manual_seed(0)
    cases = [
        Case(f"tokens ({b}, 1 + {n}, {d})", (torch.randn(b, 1 + n, d, generator=generator),))
        for b, n, d in [(2, 16, 8), (3, 49, 64), (1, 4, 5)]
    ]
    return check("mean_pool", function, _mean_pool, cases, MEAN_POOL_MISTAKES)


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
