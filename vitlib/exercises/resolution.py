"""Chapter 8's exercises: the position table at another resolution (the paper's Sec. 3.2).

Besides `visualize.check_resize_pos_embed` (the table interpolated on its grid), the control
that stretches the patch rows as a 1-D sequence, as if the table knew no grid.
"""

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check

__all__ = ["check_stretch_pos_embed"]


def _stretch(pos_embed, new_tokens, num_prefix_tokens, *, prefix_too=False, align_corners=False):
    """(1, prefix + N, D) -> (1, prefix + new_tokens, D): patch rows stretched in their numbered order."""
    keep = 0 if prefix_too else num_prefix_tokens
    prefix, rows = pos_embed[:, :keep], pos_embed[:, keep:]  # rows: (1, N, D)
    size = new_tokens + (num_prefix_tokens if prefix_too else 0)
    stretched = F.interpolate(rows.transpose(1, 2), size=size, mode="linear", align_corners=align_corners)
    return torch.cat([prefix, stretched.transpose(1, 2)], dim=1)  # (1, prefix + new_tokens, D)


def _stretch_pos_embed(pos_embed, new_tokens, num_prefix_tokens):
    return _stretch(pos_embed, new_tokens, num_prefix_tokens)


STRETCH_MISTAKES = [
    Mistake(
        "the prefix rows were stretched with the patches: the class token's row marks no place; keep "
        "pos_embed[:, :num_prefix_tokens] as it is and stretch the patch rows only.",
        lambda e, n, k: _stretch(e, n, k, prefix_too=True),
    ),
    Mistake(
        "align_corners=True: the chapter's control uses F.interpolate's default, align_corners=False.",
        lambda e, n, k: _stretch(e, n, k, align_corners=True),
    ),
]


def check_stretch_pos_embed(function) -> Verdict:
    """Check ``function(pos_embed, new_tokens, num_prefix_tokens)`` -> (1, prefix + new_tokens, D).

    Keep the prefix rows; stretch the N patch rows to ``new_tokens`` as one sequence, in the order
    the patches are numbered: ``F.interpolate`` with ``mode="linear"`` on the (1, D, N) rows.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for n, new, prefix, d, what in [
        (49, 196, 1, 64, "the shipped model's 49 rows to 196"),
        (16, 121, 2, 8, "class and distillation tokens"),
        (9, 20, 0, 4, "mean pooling: no prefix"),
        (49, 25, 1, 8, "fewer tokens"),
    ]:
        table = torch.randn(1, prefix + n, d, generator=generator)
        cases.append(Case(f"(1, {prefix} + {n}, {d}) to {new} patch rows: {what}", (table, new, prefix)))
    return check("stretch_pos_embed", function, _stretch_pos_embed, cases, STRETCH_MISTAKES)
