"""Checkers for chapter 7, a CNN teaches the ViT: DeiT's distillation (Touvron et al. 2021).

- ``check_distilled_sequence``: the input with a distillation token (Sec. 4, "Distillation
  token"), z_0 = [x_class; x_distil; x_p^1 E; ...; x_p^N E] + E_pos, as `VisionTransformer.embed`;
- ``check_distillation_loss``: hard-label distillation (Sec. 4, Eq. 3), its two terms on the two
  heads, as `vitlib.train.distillation_loss`;
- ``check_teacher_agreement``: how closely a student follows its teacher (Sec. 5.2; Table 4 gives
  the disagreement), and how many of the teacher's mistakes it repeats, as
  `vitlib.experiments.levers.agreement_with_teacher` measures them.

from vitlib.exercises import distillation
distillation.check_distilled_sequence(my_distilled_sequence)
"""

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.train import distillation_loss

__all__ = ["check_distillation_loss", "check_distilled_sequence", "check_teacher_agreement"]


# --- The input sequence with a distillation token (Sec. 4) ---------------------------------------


def _sequence(
    patches: torch.Tensor,
    cls_token: torch.Tensor,
    dist_token: torch.Tensor,
    pos_embed: torch.Tensor,
    *,
    order: tuple[str, ...] = ("cls", "dist", "patches"),
    positions: str = "all",
) -> torch.Tensor:
    """(B, N, D) patches, (1, 1, D) tokens, (1, N + 2, D) E_pos -> z_0, (B, N + 2, D), with switches
    for the usual mistakes (all at their defaults: correct)."""
    batch, n = patches.shape[:2]
    if positions == "patches only":  # E_pos's last N rows, on the patches alone
        patches = patches + pos_embed[:, 2:]
    elif positions == "before the tokens":  # E_pos's first N rows, added before the tokens go in front
        patches = patches + pos_embed[:, :n]
    parts = {"cls": cls_token.expand(batch, -1, -1), "dist": dist_token.expand(batch, -1, -1), "patches": patches}
    z = torch.cat([parts[name] for name in order], dim=1)  # (B, N + 2, D)
    return z + pos_embed if positions == "all" else z


def _distilled_sequence(patches, cls_token, dist_token, pos_embed):
    return _sequence(patches, cls_token, dist_token, pos_embed)


SEQUENCE_MISTAKES = [
    Mistake(
        "the two prefix tokens are swapped: DeiT puts the class token first and the distillation token "
        "second, [x_class; x_distil; patches], and vitlib's heads read rows 0 and 1 in that order.",
        lambda p, c, d, e: _sequence(p, c, d, e, order=("dist", "cls", "patches")),
    ),
    Mistake(
        "the distillation token comes after the patches: it goes right after the class token, "
        "[x_class; x_distil; patches], where the distillation head reads row 1.",
        lambda p, c, d, e: _sequence(p, c, d, e, order=("cls", "patches", "dist")),
    ),
    Mistake(
        "E_pos was added to the patches only (its last N rows): it has N + 2 rows, one for each prefix "
        "token too. Concatenate first, then add the whole table.",
        lambda p, c, d, e: _sequence(p, c, d, e, positions="patches only"),
    ),
    Mistake(
        "E_pos was added to the patches before the tokens were put in front, with its first N rows: "
        "those rows belong to x_class, x_distil and the first N - 2 patches. Concatenate first, then "
        "add all N + 2 rows.",
        lambda p, c, d, e: _sequence(p, c, d, e, positions="before the tokens"),
    ),
    Mistake(
        "E_pos is missing: add pos_embed, (1, N + 2, D), to the whole (B, N + 2, D) sequence.",
        lambda p, c, d, e: _sequence(p, c, d, e, positions="none"),
    ),
]


def check_distilled_sequence(function) -> Verdict:
    """Check ``function(patches, cls_token, dist_token, pos_embed)`` -> z_0, (B, N + 2, D).

    ``patches`` is (B, N, D), already embedded (x_p^i E); the two tokens are (1, 1, D); ``pos_embed``
    is (1, N + 2, D), its rows in the order of the sequence. z_0 = [x_class; x_distil; patches] + E_pos,
    the tokens repeated over the batch, as `VisionTransformer.embed` builds it for a distilled model.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d, what in [
        (4, 16, 64, "the book's model: 7 x 7 patches"),
        (2, 49, 64, "the shipped model's grid: 4 x 4 patches"),
        (1, 4, 8, "one image"),
        (3, 6, 5, "an odd D"),
    ]:
        shapes = [(batch, n, d), (1, 1, d), (1, 1, d), (1, n + 2, d)]
        args = tuple(torch.randn(*shape, generator=generator) for shape in shapes)
        cases.append(Case(f"B={batch}, N={n}, D={d}: {what}", args))
    # One addition per entry, whatever the order of the code: a correct answer is exact.
    return check("distilled_sequence", function, _distilled_sequence, cases, SEQUENCE_MISTAKES, atol=0, rtol=0)


# --- Hard-label distillation (Sec. 4, Eq. 3) -----------------------------------------------------


def _ce(logits, labels, smoothing=0.0, reduction="mean"):
    return F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction=reduction)


def _loss_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(1)
    cases = []
    for batch, weight, smoothing, what in [
        (8, 0.5, 0.1, "DeiT's weights, the book's smoothing"),
        (5, 0.3, 0.1, "more weight on the true labels"),
        (6, 0.5, 0.0, "no smoothing"),
        (1, 0.8, 0.2, "one image, more weight on the teacher"),
    ]:
        class_logits = 3 * torch.randn(batch, 10, generator=generator)
        distil_logits = 3 * torch.randn(batch, 10, generator=generator)
        labels = torch.randint(0, 10, (batch,), generator=generator)
        teacher = torch.randint(0, 10, (batch,), generator=generator)
        description = f"B={batch}, weight={weight}, label_smoothing={smoothing}: {what}"
        cases.append(Case(description, (class_logits, distil_logits, labels, teacher, weight, smoothing)))
    return cases


LOSS_MISTAKES = [
    Mistake(
        "the teacher's labels were smoothed too: DeiT smooths the true labels only and takes the "
        "teacher's answer as it is (label_smoothing on the class head's term alone).",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s) + w * _ce(d, t, s),
    ),
    Mistake(
        "the smoothing is on the wrong term: smooth the true labels (the class head's term), and take "
        "the teacher's labels as they are.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y) + w * _ce(d, t, s),
    ),
    Mistake(
        "label_smoothing is not used: the true labels' term is "
        "F.cross_entropy(class_logits, labels, label_smoothing=label_smoothing).",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y) + w * _ce(d, t),
    ),
    Mistake(
        "the heads are swapped: the class head learns the true labels y, the distillation head the teacher's y_t.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(d, y, s) + w * _ce(c, t),
    ),
    Mistake(
        "the labels are swapped: the true labels go with the class head's logits, the teacher's "
        "labels with the distillation head's.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, t, s) + w * _ce(d, y),
    ),
    Mistake(
        "the weights are swapped: 'weight' goes to the distillation term, 1 - weight to the true labels.",
        lambda c, d, y, t, w, s: w * _ce(c, y, s) + (1 - w) * _ce(d, t),
    ),
    Mistake(
        "the weight is ignored: the two terms always get 1/2 each. Use (1 - weight) and weight.",
        lambda c, d, y, t, w, s: 0.5 * _ce(c, y, s) + 0.5 * _ce(d, t),
    ),
    Mistake(
        "both terms carry the full weight: L = (1 - weight) CE(class, y) + weight CE(distil, y_t).",
        lambda c, d, y, t, w, s: _ce(c, y, s) + _ce(d, t),
    ),
    Mistake(
        "both terms read the class head: the teacher's labels go to the distillation head, distil_logits. "
        "(Both labels on one head is DeiT's distillation without a distillation token.)",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s) + w * _ce(c, t),
    ),
    Mistake(
        "both terms read the mean of the two heads (what forward returns): in training each head "
        "learns its own labels, the class head y and the distillation head y_t.",
        lambda c, d, y, t, w, s: (1 - w) * _ce((c + d) / 2, y, s) + w * _ce((c + d) / 2, t),
    ),
    Mistake(
        "the teacher's term is K times too small: F.kl_div(..., reduction='mean') averages over all "
        "B x K entries. Use reduction='batchmean', or F.cross_entropy on the teacher's labels.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s) + w * _ce(d, t) / d.shape[1],
    ),
    Mistake(
        "the cross-entropies are summed over the batch: average them, F.cross_entropy's default reduction='mean'.",
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s, "sum") + w * _ce(d, t, reduction="sum"),
    ),
]


def _distillation_loss_reference(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing):
    return distillation_loss(
        class_logits, distil_logits, labels, teacher_labels, weight=weight, label_smoothing=label_smoothing
    )


# Each cross-entropy is a log-sum-exp of ten logits of a few units, minus one of them (or a mean of
# them, when smoothed): written as F.cross_entropy, with log_softmax, or with one-hot targets, float32
# answers measured at most 5e-7 apart on losses of 2 to 8. Every mistake above is off by 1e-2 or more.
LOSS_ATOL, LOSS_RTOL = 1e-6, 1e-5


def check_distillation_loss(function) -> Verdict:
    """Check ``function(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing)``.

    The logits are (B, K), the labels (B,); the result is the scalar
    ``(1 - weight) CE(class_logits, labels, smoothed) + weight CE(distil_logits, teacher_labels)``,
    the teacher's labels taken as they are, as `vitlib.train.distillation_loss` computes it.
    The checker passes all six arguments.
    """
    return check(
        "distillation_loss",
        function,
        _distillation_loss_reference,
        _loss_cases(),
        LOSS_MISTAKES,
        atol=LOSS_ATOL,
        rtol=LOSS_RTOL,
    )


# --- Agreement with the teacher (Sec. 5.2) -------------------------------------------------------


def _agreement(model_logits, teacher_logits, labels, *, agree="same class", repeated="same wrong label"):
    """(share of inputs on which the two predict the same class, teacher's mistakes repeated with its
    label), with switches for the usual mistakes (all at their defaults: correct)."""
    said, taught = model_logits.argmax(dim=1), teacher_logits.argmax(dim=1)  # (n,) each
    teacher_wrong = taught != labels
    same = said == taught
    agreement = {
        "same class": same.float().mean().item(),
        "only right": (same & ~teacher_wrong).float().mean().item(),
        "both right or both wrong": ((said == labels) == (taught == labels)).float().mean().item(),
        "disagreement": 1 - same.float().mean().item(),
        "count": int(same.sum()),
        "percent": 100 * same.float().mean().item(),
        "accuracy": (said == labels).float().mean().item(),
    }[agree]
    mistakes = {
        "same wrong label": int((teacher_wrong & same).sum()),
        "any wrong label": int((teacher_wrong & (said != labels)).sum()),
        "share": (teacher_wrong & same).sum().item() / max(int(teacher_wrong.sum()), 1),
        "teacher's": int(teacher_wrong.sum()),
        "model's": int((said != labels).sum()),
    }[repeated]
    return agreement, mistakes


def _teacher_agreement(model_logits, teacher_logits, labels):
    return _agreement(model_logits, teacher_logits, labels)


AGREEMENT_MISTAKES = [
    Mistake(
        "every input both get wrong counts as a repeated mistake: count only those the model gets wrong "
        "with the teacher's same wrong label, (taught != labels) & (said == taught).",
        lambda m, t, y: _agreement(m, t, y, repeated="any wrong label"),
    ),
    Mistake(
        "agreement counted only where the teacher is right: the share counts every input on which the two "
        "predict the same class, right or wrong.",
        lambda m, t, y: _agreement(m, t, y, agree="only right"),
    ),
    Mistake(
        "this counts the inputs on which both are right or both are wrong: two wrong answers agree only "
        "when they name the same class. Compare the two argmaxes, said == taught.",
        lambda m, t, y: _agreement(m, t, y, agree="both right or both wrong"),
    ),
    Mistake(
        "this is the disagreement, the share on which the two differ (DeiT's Table 4 reports it); the "
        "exercise asks for the share on which they agree.",
        lambda m, t, y: _agreement(m, t, y, agree="disagreement"),
    ),
    Mistake(
        "the agreement is a count: divide by the number of inputs to get the share (.float().mean()).",
        lambda m, t, y: _agreement(m, t, y, agree="count"),
    ),
    Mistake(
        "the agreement is a percentage: return the share, between 0 and 1.",
        lambda m, t, y: _agreement(m, t, y, agree="percent"),
    ),
    Mistake(
        "this is the model's accuracy: agreement compares the model's class with the teacher's, not with the label.",
        lambda m, t, y: _agreement(m, t, y, agree="accuracy"),
    ),
    Mistake(
        "the repeated mistakes are a share of the teacher's mistakes: return their count, an integer.",
        lambda m, t, y: _agreement(m, t, y, repeated="share"),
    ),
    Mistake(
        "this counts all the teacher's mistakes: count only those the model repeats, with the same wrong label.",
        lambda m, t, y: _agreement(m, t, y, repeated="teacher's"),
    ),
    Mistake(
        "this counts all the model's mistakes: count only those it shares with the teacher, the same wrong label.",
        lambda m, t, y: _agreement(m, t, y, repeated="model's"),
    ),
]


def _logits_for(classes: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) classes -> (n, K) random logits whose argmax is each input's class, with a clear margin."""
    logits = torch.randn(len(classes), num_classes, generator=generator)
    margin = 0.5 + torch.rand(len(classes), generator=generator)  # no ties: argmax is unambiguous
    logits[torch.arange(len(classes)), classes] = logits.amax(dim=1) + margin
    return logits


def _another_class(classes: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) classes -> (n,) classes, each a different one: a wrong answer."""
    return (classes + torch.randint(1, num_classes, classes.shape, generator=generator)) % num_classes


def _agreement_cases() -> list[Case]:
    """A teacher wrong on some inputs; a model that repeats some of its mistakes, fixes some, makes its own."""
    generator = torch.Generator().manual_seed(2)
    cases = []
    for n, k, teacher_errors, model_changes, what in [
        (200, 10, 0.15, 0.2, "a teacher wrong often"),
        (1000, 10, 0.01, 0.02, "a teacher right on 99 digits in 100"),
        (40, 3, 0.3, 0.3, "three classes: wrong labels often coincide"),
        (50, 10, 0.0, 0.2, "a teacher never wrong"),
    ]:
        labels = torch.randint(0, k, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < teacher_errors
        taught = torch.where(flip, _another_class(labels, k, generator), labels)
        change = torch.rand(n, generator=generator)  # the model: right, wrong on its own, or the teacher's answer
        said = torch.where(change < model_changes / 2, labels, taught)
        own_mistake = (change >= model_changes / 2) & (change < model_changes)
        said = torch.where(own_mistake, _another_class(labels, k, generator), said)
        model, teacher = _logits_for(said, k, generator), _logits_for(taught, k, generator)
        description = f"{n:,} inputs, K={k}, the teacher wrong on {int(flip.sum())}: {what}"
        cases.append(Case(description, (model, teacher, labels)))
    return cases


def check_teacher_agreement(function) -> Verdict:
    """Check ``function(model_logits, teacher_logits, labels)`` -> (agree_share, shared_mistakes).

    The logits are (n, K), the labels (n,). ``agree_share`` is the share of inputs on which the two
    argmaxes are the same class, right or wrong; ``shared_mistakes`` counts the inputs the teacher
    gets wrong that the model gets wrong with the same wrong label, as
    `vitlib.experiments.levers.agreement_with_teacher` measures them.
    """
    return check(
        "teacher_agreement",
        function,
        _teacher_agreement,
        _agreement_cases(),
        AGREEMENT_MISTAKES,
        atol=1e-6,  # a share of up to 1,000 inputs: float32 rounding is far below one input, 1e-3
        rtol=0,
    )
