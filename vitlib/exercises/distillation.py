"""Chapter 7's exercises: DeiT's distillation token and hard-label loss (Touvron et al. 2021).

DeiT puts a distillation token after the class token (Sec. 4), gives it a head of its own, and
trains that head on the teacher's answers: hard-label distillation (Eq. 3). How often a student
agrees with its teacher, and repeats its mistakes, is DeiT's test of what it inherits (Sec. 5.2).
"""

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.train import distillation_loss

__all__ = ["check_distillation_loss", "check_distilled_sequence", "check_teacher_agreement"]


# --- The input sequence with a distillation token ------------------------------------------------


def _sequence(patches, cls_token, dist_token, pos_embed, *, order=("cls", "dist"), pos_on_patches_only=False):
    """z_0 = [x_class; x_distil; x_p^1 E; ...; x_p^N E] + E_pos: (B, N, D) -> (B, N + 2, D)."""
    batch = patches.shape[0]
    tokens = {"cls": cls_token.expand(batch, -1, -1), "dist": dist_token.expand(batch, -1, -1)}
    prefix = [tokens[name] for name in order]  # (B, 1, D) each
    if pos_on_patches_only:
        return torch.cat([*prefix, patches + pos_embed[:, 2:]], dim=1)
    return torch.cat([*prefix, patches], dim=1) + pos_embed  # (B, N + 2, D)


def _distilled_sequence(patches, cls_token, dist_token, pos_embed):
    return _sequence(patches, cls_token, dist_token, pos_embed)


SEQUENCE_MISTAKES = [
    Mistake(
        "the two prefix tokens are swapped: DeiT puts the class token first and the distillation token "
        "second, [x_class; x_distil; patches], and vitlib's heads read rows 0 and 1 in that order.",
        lambda p, c, d, e: _sequence(p, c, d, e, order=("dist", "cls")),
    ),
    Mistake(
        "E_pos was added to the patches only: it has N + 2 rows, one for each prefix token too; "
        "concatenate first, then add the whole table.",
        lambda p, c, d, e: _sequence(p, c, d, e, pos_on_patches_only=True),
    ),
]


def check_distilled_sequence(function) -> Verdict:
    """Check ``function(patches, cls_token, dist_token, pos_embed)`` -> z_0, (B, N + 2, D).

    ``patches`` is (B, N, D), already embedded; the two tokens are (1, 1, D); ``pos_embed`` is
    (1, N + 2, D), rows in the order of the sequence.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d, what in [(4, 16, 64, "the book's model"), (1, 49, 8, "one image, 7 x 7 grid"), (3, 6, 5, "odd D")]:
        args = tuple(torch.randn(*shape, generator=generator) for shape in [(batch, n, d), (1, 1, d), (1, 1, d)])
        cases.append(Case(f"B={batch}, N={n}, D={d}: {what}", (*args, torch.randn(1, n + 2, d, generator=generator))))
    return check("distilled_sequence", function, _distilled_sequence, cases, SEQUENCE_MISTAKES, atol=0, rtol=0)


# --- Hard-label distillation (Eq. 3) --------------------------------------------------------------


def _loss_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(1)
    cases = []
    for batch, weight, smoothing, what in [
        (8, 0.5, 0.1, "DeiT's weights, the book's smoothing"),
        (5, 0.3, 0.1, "more weight on the true labels"),
        (6, 0.5, 0.0, "no smoothing"),
        (1, 0.8, 0.2, "one image"),
    ]:
        class_logits = 3 * torch.randn(batch, 10, generator=generator)
        distil_logits = 3 * torch.randn(batch, 10, generator=generator)
        labels = torch.randint(0, 10, (batch,), generator=generator)
        teacher = torch.randint(0, 10, (batch,), generator=generator)
        description = f"B={batch}, weight={weight}, label_smoothing={smoothing}: {what}"
        cases.append(Case(description, (class_logits, distil_logits, labels, teacher, weight, smoothing)))
    return cases


def _ce(logits, labels, smoothing=0.0):
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


LOSS_MISTAKES = [
    Mistake(
        "the teacher's labels were smoothed too: DeiT smooths the true labels only and takes the "
        "teacher's answer as it is (label_smoothing on the class head's term alone).",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s) + w * _ce(d, t, s),
    ),
    Mistake(
        "the heads are swapped: the class head learns the true labels y, the distillation head the teacher's y_t.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(d, y, s) + w * _ce(c, t),
    ),
    Mistake(
        "the weights are swapped: 'weight' goes to the distillation term, 1 - weight to the true labels.",
        lambda c, d, y, t, w, s: w * _ce(c, y, s) + (1 - w) * _ce(d, t),
    ),
    Mistake(
        "both terms carry the full weight: L = (1 - weight) CE(class, y) + weight CE(distil, y_t).",
        lambda c, d, y, t, w, s: _ce(c, y, s) + _ce(d, t),
    ),
]


def check_distillation_loss(function) -> Verdict:
    """Check ``function(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing)``.

    All logits are (B, K), the labels (B,); the result is the scalar
    ``(1 - weight) CE(class_logits, labels, smoothed) + weight CE(distil_logits, teacher_labels)``,
    as `vitlib.train.distillation_loss` computes it.
    """

    def reference(c, d, y, t, w, s):
        return distillation_loss(c, d, y, t, weight=w, label_smoothing=s)

    return check("distillation_loss", function, reference, _loss_cases(), LOSS_MISTAKES)


# --- Agreement with the teacher (DeiT Sec. 5.2) ---------------------------------------------------


def _agreement(model_logits, teacher_logits, labels, *, same_label=True, only_right=False):
    """(share of inputs where the two predict the same class, teacher's mistakes repeated)."""
    said, taught = model_logits.argmax(dim=1), teacher_logits.argmax(dim=1)  # (B,) each
    agree = said == taught
    if only_right:
        agree = agree & (taught == labels)
    teacher_wrong = taught != labels
    repeated = teacher_wrong & (said == taught) if same_label else teacher_wrong & (said != labels)
    return agree.float().mean().item(), int(repeated.sum())


def _teacher_agreement(model_logits, teacher_logits, labels):
    return _agreement(model_logits, teacher_logits, labels)


AGREEMENT_MISTAKES = [
    Mistake(
        "every digit both get wrong counts as a repeated mistake: count only those the model gets wrong "
        "with the teacher's same wrong label.",
        lambda m, t, y: _agreement(m, t, y, same_label=False),
    ),
    Mistake(
        "agreement counted only where the teacher is right: the share counts every input on which the two "
        "predict the same class, right or wrong.",
        lambda m, t, y: _agreement(m, t, y, only_right=True),
    ),
]


def _agreement_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(2)
    cases = []
    for batch, classes, what in [(200, 10, "random logits"), (50, 3, "three classes: many shared mistakes")]:
        labels = torch.randint(0, classes, (batch,), generator=generator)
        teacher = torch.randn(batch, classes, generator=generator)
        model = teacher + torch.randn(batch, classes, generator=generator)  # mostly agrees
        cases.append(Case(f"B={batch}, K={classes}: {what}", (model, teacher, labels)))
    return cases


def check_teacher_agreement(function) -> Verdict:
    """Check ``function(model_logits, teacher_logits, labels)`` -> (agree_share, shared_mistakes).

    ``agree_share`` is the share of inputs on which the argmaxes agree, right or wrong; ``shared_mistakes``
    counts the inputs the teacher gets wrong that the model gets wrong with the same wrong label, as
    `vitlib.experiments.levers.agreement_with_teacher` measures them.
    """
    return check("teacher_agreement", function, _teacher_agreement, _agreement_cases(), AGREEMENT_MISTAKES)
