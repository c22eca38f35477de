"""Checkers for chapter 5, training: a resumed run's schedule, label smoothing, the confusion matrix.

from vitlib.exercises import training
training.check_resumed_schedule(my_resumed_schedule)
"""

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from vitlib.exercises._checking import Case, Mistake, Verdict, check
from vitlib.train import lr_at

__all__ = ["check_confusion_matrix", "check_resumed_schedule", "check_smoothed_cross_entropy"]


# --- The schedule of a resumed run ----------------------------------------------------------------


def _steps_per_epoch(num_images: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch: one per batch; the last, smaller batch counts unless dropped."""
    return num_images // batch_size if drop_last else -(-num_images // batch_size)


def _resumed_schedule(
    num_images: int, batch_size: int, epochs: int, warmup_epochs: float, done_epochs: int, drop_last: bool
) -> list[float]:
    """The `lr_at` multiplier of every optimizer step a run still takes after ``done_epochs`` epochs.

    As `vitlib.train.fit` counts: one step per batch, the warm-up rounded to the nearest step, and,
    on resuming, the scheduler's state loaded from the checkpoint, so that its step counter goes on
    from ``done_epochs * steps_per_epoch`` instead of starting again at 0.
    """
    per_epoch = _steps_per_epoch(num_images, batch_size, drop_last)
    total, warmup = epochs * per_epoch, round(warmup_epochs * per_epoch)
    return [lr_at(step, total, warmup) for step in range(done_epochs * per_epoch, total)]


def _wrong_schedule(*, per_epoch=None, warmup=None, restart=False, remaining_only=False, shift=0, multiplier=None):
    """A resumed schedule with one of the mistakes below, for the catalogue and the tests."""

    def resumed_schedule(n, b, e, w, done, drop_last):
        steps = per_epoch(n, b) if per_epoch else _steps_per_epoch(n, b, drop_last)
        warm = warmup(w, steps) if warmup else round(w * steps)
        total, first = e * steps, done * steps
        if restart:  # a new scheduler for the whole run, counting from 0 again
            return [lr_at(s, total, warm) for s in range(total - first)]
        if remaining_only:  # a new schedule for the epochs that are left
            total, first = total - first, 0
        rate = multiplier or lr_at
        return [rate(s + shift, total, warm) for s in range(first, total)]

    return resumed_schedule


def _warmup_from_zero(step: int, total: int, warmup: int) -> float:
    return step / warmup if step < warmup else lr_at(step, total, warmup)


RESUMED_SCHEDULE_MISTAKES = [
    Mistake(
        "the schedule starts again at step 0, as a new LambdaLR does when its state is not loaded: "
        "the warm-up runs a second time. fit loads the scheduler's state from the checkpoint, so the "
        "resumed run goes on at step done_epochs * steps_per_epoch.",
        _wrong_schedule(restart=True),
    ),
    Mistake(
        "the schedule is rebuilt for the remaining epochs only: a second warm-up and a shorter cosine. "
        "The resumed run continues the original schedule, whose steps count from the start of the run.",
        _wrong_schedule(remaining_only=True),
    ),
    Mistake(
        "drop_last is ignored: without it the last, smaller batch is a step too, so an epoch has "
        "ceil(num_images / batch_size) steps.",
        _wrong_schedule(per_epoch=lambda n, b: n // b),
    ),
    Mistake(
        "the last, incomplete batch is counted although drop_last=True drops it: an epoch has "
        "num_images // batch_size steps.",
        _wrong_schedule(per_epoch=lambda n, b: math.ceil(n / b)),
    ),
    Mistake(
        "the warm-up is truncated, int(warmup_epochs * steps_per_epoch); fit rounds it to the nearest step.",
        _wrong_schedule(warmup=lambda w, steps: int(w * steps)),
    ),
    Mistake(
        "the warm-up is rounded up, math.ceil(warmup_epochs * steps_per_epoch); fit rounds it to the nearest "
        "step, round(...), which differs whenever the fraction of a step is below a half.",
        _wrong_schedule(warmup=lambda w, steps: math.ceil(w * steps)),
    ),
    Mistake(
        "the warm-up is given in epochs; the schedule counts optimizer steps: round(warmup_epochs * steps_per_epoch).",
        _wrong_schedule(warmup=lambda w, steps: w),
    ),
    Mistake(
        "each value is the rate after its step (what the scheduler holds after scheduler.step()): "
        "optimizer step s uses lr_at(s), the first of the resumed run being done_epochs * steps_per_epoch.",
        _wrong_schedule(shift=1),
    ),
    Mistake(
        "the warm-up starts at 0, step / warmup_steps: lr_at's first step already uses 1 / warmup_steps, "
        "so that no step is spent at a learning rate of zero.",
        _wrong_schedule(multiplier=_warmup_from_zero),
    ),
]


def _as_schedule(value):
    """A list, tuple, array or tensor of rates as a float64 tensor; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64)
    if hasattr(value, "__array__"):
        return torch.as_tensor(value.__array__()).to(torch.float64)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        items = list(value)
        if all(isinstance(item, (int, float)) or getattr(item, "ndim", None) == 0 for item in items):
            return torch.tensor([float(item) for item in items], dtype=torch.float64)
    return value


def check_resumed_schedule(function) -> Verdict:
    """Check ``function(num_images, batch_size, epochs, warmup_epochs, done_epochs, drop_last)``.

    It returns the learning-rate multipliers (`vitlib.train.lr_at`'s values) of every optimizer
    step that a run resumed after ``done_epochs`` finished epochs still takes, as `fit` gives them:
    one step per batch (the last, smaller batch only when ``drop_last`` is False), the warm-up
    rounded to the nearest step, the step counter going on from the checkpoint. A list, an array
    or a tensor of ``(epochs - done_epochs) * steps_per_epoch`` numbers.
    """
    cases = [
        Case("the quick recipe (55,000 images, batch 128, 29 epochs), from the start", (55_000, 128, 29, 1, 0, True)),
        Case("the same run, resumed after epoch 7", (55_000, 128, 29, 1, 7, True)),
        Case("1,000 images, batch 64, 0.35 epochs of warm-up, resumed after 4, drop_last=False",
             (1_000, 64, 10, 0.35, 4, False)),
        Case("5,000 images, batch 128, 2 epochs, resumed after the first", (5_000, 128, 2, 1, 1, True)),
        Case("50,000 images, batch 96, 2.3 epochs of warm-up, resumed after 1 of 6", (50_000, 96, 6, 2.3, 1, True)),
        Case("60,000 images, batch 100, no warm-up, resumed after 1 of 3", (60_000, 100, 3, 0, 1, True)),
        Case("1,000 images, batch 100, 0.42 epochs of warm-up (4.2 steps), resumed after 1 of 4",
             (1_000, 100, 4, 0.42, 1, True)),
    ]  # fmt: skip
    # Float32 arithmetic on multipliers in [0, 1] is off by a few 1e-7 at most.
    call = lambda fn, *args: _as_schedule(fn(*args))  # noqa: E731
    return check(
        "resumed_schedule",
        function,
        _resumed_schedule,
        cases,
        RESUMED_SCHEDULE_MISTAKES,
        call=call,
        atol=2e-6,
        rtol=0,
    )


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
