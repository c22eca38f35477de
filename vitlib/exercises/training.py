"""Checkers for chapter 5, training: the learning-rate schedule, label-smoothed cross-entropy, accuracy.

from vitlib.exercises import training
training.check_lr_schedule(my_lr_at)
"""

import math

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.train import lr_at

__all__ = ["check_accuracy", "check_lr_schedule", "check_smoothed_cross_entropy"]


def _schedule(function, total_steps: int, warmup_steps: int) -> torch.Tensor:
    """The multiplier at every step 0..total_steps-1 as a float64 tensor: the curve the chapter plots."""
    multipliers = [float(function(step, total_steps, warmup_steps)) for step in range(total_steps)]
    return torch.tensor(multipliers, dtype=torch.float64)  # (total_steps,)


def _reference_schedule(step: int, total_steps: int, warmup_steps: int) -> float:
    return lr_at(step, total_steps, warmup_steps)


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


SCHEDULE_MISTAKES = [
    Mistake(
        "the warm-up starts at 0 (step / warmup_steps): the first step would not move the weights at all; "
        "use (step + 1) / warmup_steps so that step warmup_steps - 1 reaches the peak.",
        lambda s, t, w: s / w if s < w else _cosine((s - w) / max(1, t - w)),
    ),
    Mistake(
        "the cosine runs over all total_steps instead of the total_steps - warmup_steps after the "
        "warm-up, so it does not start at 1 right after the warm-up and never reaches 0.",
        lambda s, t, w: (s + 1) / w if s < w else _cosine(s / t),
    ),
    Mistake(
        "there is no warm-up: the multiplier must rise linearly from 1 / warmup_steps to 1 first.",
        lambda s, t, w: _cosine(s / max(1, t)),
    ),
    Mistake(
        "the decay is linear, not a cosine: 0.5 (1 + cos(pi * progress)).",
        lambda s, t, w: (s + 1) / w if s < w else 1 - min(1.0, (s - w) / max(1, t - w)),
    ),
    Mistake(
        "the decay is cos(pi * progress), which goes negative; the half-cosine is 0.5 (1 + cos(pi * progress)).",
        lambda s, t, w: (s + 1) / w if s < w else math.cos(math.pi * min(1.0, (s - w) / max(1, t - w))),
    ),
    Mistake(
        "the learning rate stays at its peak after the warm-up: it must decay to 0 along a cosine.",
        lambda s, t, w: (s + 1) / w if s < w else 1.0,
    ),
]


def check_lr_schedule(function) -> Verdict:
    """Check ``function(step, total_steps, warmup_steps)`` -> the multiplier of the peak learning rate.

    Linear warm-up to 1 over ``warmup_steps`` steps (step 0 gets 1 / warmup_steps), then a half-cosine
    from 1 to 0 over the remaining steps. The checker calls it at every step; an entry [i] of the
    report is step i.
    """
    cases = [
        Case(f"{total} steps, {warmup} of warm-up", (total, warmup))
        for total, warmup in [(100, 10), (430, 43), (37, 5), (20, 0)]
    ]
    return check("lr_schedule", function, _reference_schedule, cases, SCHEDULE_MISTAKES, call=_schedule, atol=1e-7)


def _smoothed(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _smoothed_by_hand(logits, labels, smoothing, *, others_only=False, log_probs=None, reduce="mean"):
    num_classes = logits.shape[-1]
    log_probs = logits.log_softmax(dim=-1) if log_probs is None else log_probs
    one_hot = F.one_hot(labels, num_classes).to(logits.dtype)  # (B, K)
    if others_only:  # smoothing / (K - 1) on every wrong class, 1 - smoothing on the right one
        target = one_hot * (1 - smoothing) + (1 - one_hot) * smoothing / (num_classes - 1)
    else:  # what PyTorch and the Inception paper do: smoothing / K on every class
        target = one_hot * (1 - smoothing) + smoothing / num_classes
    loss = -(target * log_probs).sum(dim=-1)  # (B,)
    return loss.sum() if reduce == "sum" else loss.mean()


SMOOTHING_MISTAKES = [
    Mistake(
        "the smoothing is spread over the K - 1 wrong classes only; PyTorch (and Szegedy et al. 2016) "
        "spread it over all K classes: target = (1 - eps) one_hot + eps / K.",
        lambda z, y, eps: _smoothed_by_hand(z, y, eps, others_only=True),
    ),
    Mistake(
        "the smoothing is ignored: this is the plain cross-entropy.",
        lambda z, y, eps: F.cross_entropy(z, y),
    ),
    Mistake(
        "the logits went in without log_softmax: the loss needs log-probabilities, logits.log_softmax(-1).",
        lambda z, y, eps: _smoothed_by_hand(z, y, eps, log_probs=z),
    ),
    Mistake(
        "softmax was used where log_softmax belongs: the loss is -sum(target * log p).",
        lambda z, y, eps: _smoothed_by_hand(z, y, eps, log_probs=z.softmax(dim=-1)),
    ),
    Mistake(
        "the losses are summed over the batch instead of averaged.",
        lambda z, y, eps: _smoothed_by_hand(z, y, eps, reduce="sum"),
    ),
]


def check_smoothed_cross_entropy(function) -> Verdict:
    """Check ``function(logits, labels, smoothing)`` -> the label-smoothed cross-entropy, a mean over the batch.

    logits (B, K), labels (B,) integer classes; the same number as
    ``F.cross_entropy(logits, labels, label_smoothing=smoothing)``.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, k, eps in [(8, 10, 0.1), (5, 3, 0.3), (16, 10, 0.0), (1, 4, 0.2)]:
        logits = 3 * torch.randn(b, k, generator=generator)
        labels = torch.randint(k, (b,), generator=generator)
        cases.append(Case(f"batch {b}, {k} classes, smoothing {eps}", (logits, labels, eps)))
    return check("smoothed_cross_entropy", function, _smoothed, cases, SMOOTHING_MISTAKES)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item()


ACCURACY_MISTAKES = [
    Mistake(
        "this is the number of correct predictions, not the fraction: divide by the batch size.",
        lambda z, y: (z.argmax(dim=-1) == y).sum().item(),
    ),
    Mistake("this is a percentage; the exercise asks for a fraction in [0, 1].", lambda z, y: 100 * _accuracy(z, y)),
    Mistake(
        "the prediction takes the largest logit over the batch (dim=0) instead of over the classes (dim=-1).",
        lambda z, y: (z.argmax(dim=0) == y).float().mean().item(),
    ),
    Mistake("this is the error rate, 1 - accuracy.", lambda z, y: 1 - _accuracy(z, y)),
]


def check_accuracy(function) -> Verdict:
    """Check ``function(logits, labels)`` -> the fraction of correct predictions, a number in [0, 1].

    logits (B, K), labels (B,). A Python float or a 0-dim tensor are both fine.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, k in [(10, 10), (7, 3), (64, 10), (5, 10)]:
        logits, labels = torch.randn(b, k, generator=generator), torch.randint(k, (b,), generator=generator)
        cases.append(Case(f"batch {b}, {k} classes", (logits, labels)))
    return check("accuracy", function, _accuracy, cases, ACCURACY_MISTAKES, atol=1e-6, rtol=0)
