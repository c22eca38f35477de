"""Checkers for chapter 5, training: the schedule's step counts, label smoothing, the confusion matrix.

from vitlib.exercises import training
training.check_schedule_steps(my_schedule_steps)
"""

import math

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check

__all__ = ["check_confusion_matrix", "check_schedule_steps", "check_smoothed_cross_entropy"]


def _schedule_steps(num_images: int, batch_size: int, epochs: int, warmup_epochs: float) -> tuple[int, int]:
    """(total_steps, warmup_steps), counted as `vitlib.train.fit` counts them."""
    steps_per_epoch = num_images // batch_size  # drop_last=True: the last, incomplete batch is skipped
    return epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch)


SCHEDULE_STEPS_MISTAKES = [
    Mistake(
        "the last, incomplete batch is counted (a ceiling division): vitlib's training loader has "
        "drop_last=True, so an epoch has num_images // batch_size steps.",
        lambda n, b, e, w: (e * math.ceil(n / b), round(w * math.ceil(n / b))),
    ),
    Mistake(
        "the steps per epoch are num_images / batch_size, not a whole number: an epoch has "
        "num_images // batch_size steps (drop_last=True).",
        lambda n, b, e, w: (e * n / b, w * n / b),
    ),
    Mistake(
        "the warm-up is truncated, int(warmup_epochs * steps_per_epoch); round it to the nearest step, "
        "as vitlib.train.fit does.",
        lambda n, b, e, w: (e * (n // b), int(w * (n // b))),
    ),
    Mistake(
        "the warm-up is given in epochs; the schedule counts optimizer steps: warmup_epochs * "
        "steps_per_epoch, rounded.",
        lambda n, b, e, w: (e * (n // b), w),
    ),
    Mistake(
        "total_steps counts images, not optimizer steps: one step per batch, epochs * (num_images // batch_size).",
        lambda n, b, e, w: (e * n, round(w * n)),
    ),
    Mistake(
        "total_steps leaves the warm-up out; it counts every step of the run, warm-up included.",
        lambda n, b, e, w: (e * (n // b) - round(w * (n // b)), round(w * (n // b))),
    ),
    Mistake(
        "the two numbers are in the wrong order: return (total_steps, warmup_steps).",
        lambda n, b, e, w: _schedule_steps(n, b, e, w)[::-1],
    ),
]


def check_schedule_steps(function) -> Verdict:
    """Check ``function(num_images, batch_size, epochs, warmup_epochs)`` -> (total_steps, warmup_steps).

    The numbers a run's learning-rate schedule needs before any loader exists: one optimizer step
    per batch, the last incomplete batch dropped (``drop_last=True``), the warm-up rounded to the
    nearest step, as `vitlib.train.fit` counts them.
    """
    cases = [
        Case(f"{n:,} images, batch {b}, {e} epochs, {w:g} of warm-up", (n, b, e, w))
        for n, b, e, w in [(55_000, 128, 18, 1), (5_000, 128, 2, 1), (55_000, 128, 85, 3), (1_000, 64, 10, 0.25),
                           (60_000, 100, 3, 0.5)]
    ]  # fmt: skip
    return check("schedule_steps", function, _schedule_steps, cases, SCHEDULE_STEPS_MISTAKES)


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


def _confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts: entry [i, j] is the number of examples of class i predicted as class j."""
    pairs = labels * num_classes + predictions  # (B,): one number per (true, predicted) pair
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _as_float(value):
    """Counts of any dtype (an int or float tensor, a NumPy array) as float64, to compare them."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64)
    if hasattr(value, "__array__") and not isinstance(value, (int, float)):
        return torch.as_tensor(value.__array__()).to(torch.float64)
    return value


def _counted_once(predictions, labels, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix[labels, predictions] += 1  # indexed += does not accumulate repeated pairs
    return matrix


CONFUSION_MISTAKES = [
    Mistake(
        "rows and columns are swapped: row i must hold the examples whose true class is i, column j those "
        "predicted as j (the convention of sklearn and of most papers).",
        lambda p, y, k: _confusion_matrix(p, y, k).T,
    ),
    Mistake(
        "matrix[labels, predictions] += 1 counts a repeated (label, prediction) pair only once: indexed "
        "assignment does not accumulate. Use torch.bincount, or index_put_(..., accumulate=True).",
        _counted_once,
    ),
    Mistake(
        "each row is divided by its total: those are per-class rates; the exercise asks for counts.",
        lambda p, y, k: _confusion_matrix(p, y, k) / _confusion_matrix(p, y, k).sum(1, keepdim=True).clamp(min=1),
    ),
    Mistake(
        "the counts are divided by the number of examples; the exercise asks for counts.",
        lambda p, y, k: _confusion_matrix(p, y, k) / len(y),
    ),
    Mistake(
        "the size comes from the largest class present; a class that never appears still has its row and "
        "column: the matrix is (num_classes, num_classes).",
        lambda p, y, k: _confusion_matrix(p, y, int(max(p.max(), y.max())) + 1),
    ),
]


def check_confusion_matrix(function) -> Verdict:
    """Check ``function(predictions, labels, num_classes)`` -> the (K, K) confusion matrix of counts.

    predictions and labels are (B,) integer classes; entry [i, j] counts the examples of true class
    i predicted as class j, so the diagonal holds the correct ones. Any dtype of counts is fine.
    """
    generator = torch.Generator().manual_seed(0)
    cases = []
    for b, k, absent in [(200, 10, None), (7, 3, None), (50, 10, 9), (1, 4, None)]:
        classes = k - (absent is not None)  # with `absent`, the last class appears nowhere
        labels = torch.randint(classes, (b,), generator=generator)
        guesses = torch.randint(classes, (b,), generator=generator)
        right = torch.rand(b, generator=generator) < 0.7  # a model that is right 70% of the time
        predictions = torch.where(right, labels, guesses)
        missing = f", class {absent} never appears" if absent is not None else ""
        cases.append(Case(f"{b} example{'s' * (b != 1)}, {k} classes{missing}", (predictions, labels, k)))
    call = lambda fn, *args: _as_float(fn(*args))  # noqa: E731
    return check(
        "confusion_matrix", function, _confusion_matrix, cases, CONFUSION_MISTAKES, call=call, atol=1e-9, rtol=0
    )
