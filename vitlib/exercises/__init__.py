"""Exercises that check themselves: one module of checkers per chapter of the book.

    from vitlib.exercises import patches
    patches.check_patchify(my_patchify)

Every checker calls your function on several inputs, compares it with `vitlib`'s own version,
and prints a verdict: what it tried when you are right; when you are not, the first input that
fails, the expected and actual shapes or values, and, when it recognises a common mistake, its
name and the fix. It returns a `Verdict`, true when you passed. Nothing here needs the network.

Chapters: `inductive_bias` (1), `patches` (2), `attention` (3), `encoder` (4), `training` (5),
`visualize` (6), `distillation` (7), `resolution` (8).
"""

from vitlib.exercises import (
    attention,
    distillation,
    encoder,
    inductive_bias,
    patches,
    resolution,
    training,
    visualize,
)
from vitlib.exercises._checking import Verdict

__all__ = [
    "Verdict",
    "attention",
    "distillation",
    "encoder",
    "inductive_bias",
    "patches",
    "resolution",
    "training",
    "visualize",
]
