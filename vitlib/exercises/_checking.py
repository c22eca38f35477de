"""What every exercise checker shares: run the reader's function on cases, compare, explain.

A checker is a list of `Case`s (inputs and a one-line description), a reference (what
`vitlib` computes) and a catalogue of `Mistake`s, each a small function computing what a
well-known wrong answer returns. When the reader's output differs from the reference, the
checker looks for a mistake that returns exactly the reader's output and names it.
"""

import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_THIS_PACKAGE = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Case:
    """One input to try: ``args`` go to the reader's function, ``description`` to the report."""

    description: str
    args: tuple


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer: ``answer`` returns what a function with this mistake returns."""

    description: str
    answer: Callable[..., Any]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check. The checker has already printed ``report``; ``bool(verdict)``
    says whether it passed, so scripts and tests can ``assert check_...(fn)``."""

    exercise: str
    passed: bool
    report: str
    mistake: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.report

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: the report is printed once, when the check runs."""


def clone_args(args: tuple) -> tuple:
    """Fresh copies of the tensor inputs (also inside lists), so no function sees what another did to them."""
    return tuple(_clone(arg) for arg in args)


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(item) for item in value)
    return value


def _same(original: Any, seen: Any) -> bool:
    if isinstance(original, torch.Tensor):
        return isinstance(seen, torch.Tensor) and original.shape == seen.shape and torch.equal(original, seen)
    if isinstance(original, (list, tuple)):
        return len(original) == len(seen) and all(_same(a, b) for a, b in zip(original, seen, strict=True))
    return True


def difference(expected: Any, actual: Any, atol: float, rtol: float) -> str | None:
    """None when ``actual`` matches ``expected``; otherwise one sentence saying how it differs."""
    if isinstance(expected, tuple):
        if not isinstance(actual, (tuple, list)) or len(actual) != len(expected):
            return f"expected a tuple of {len(expected)} values, got {_kind(actual)}"
        for position, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problem = difference(want, got, atol, rtol)
            if problem:
                return f"value {position} of the tuple: {problem}"
        return None
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(expected, actual, atol, rtol)
    if isinstance(actual, torch.Tensor) and actual.numel() == 1:
        actual = actual.item()
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        return f"expected a number, got {_kind(actual)}"
    if isinstance(expected, int) and not isinstance(expected, bool):
        return None if actual == expected else f"expected {expected:,}, got {actual:,}"
    if abs(actual - expected) <= atol + rtol * abs(expected):
        return None
    return f"expected {expected:.6g}, got {actual:.6g}"


def _tensor_difference(expected: torch.Tensor, actual: Any, atol: float, rtol: float) -> str | None:
    expected = expected.detach()
    if not isinstance(actual, torch.Tensor):
        return f"expected a tensor of shape {tuple(expected.shape)}, got {_kind(actual)}"
    if actual.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(actual.shape)}"
    if expected.dtype == torch.bool or actual.dtype == torch.bool:
        if actual.dtype != expected.dtype:
            return f"expected a {expected.dtype} tensor, got {actual.dtype}"
        wrong = (actual != expected).nonzero()
        if len(wrong) == 0:
            return None
        index = tuple(wrong[0].tolist())
        first = f"expected {expected[index].item()}, got {actual[index].item()}"
        return f"{len(wrong)} of {expected.numel()} entries differ, the first at {index}: {first}"
    actual = actual.detach().to(device="cpu", dtype=expected.dtype)
    close = torch.isclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True)
    if bool(close.all()):
        return None
    wrong = (~close).nonzero()
    index = tuple(wrong[0].tolist())
    largest = (actual - expected).abs().nan_to_num(float("inf")).max().item()
    return (
        f"same shape {tuple(expected.shape)}, but {len(wrong)} of {expected.numel()} values differ "
        f"(largest difference {largest:.3g}); the first at {index}: "
        f"expected {expected[index].item():.6g}, got {actual[index].item():.6g}"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "None (did the function forget to `return`?)"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__} ({value!r})"


def _readers_traceback(error: BaseException) -> str:
    """The traceback without the checker's own frames: what happened in the reader's code."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if not frame.filename.startswith(_THIS_PACKAGE)
    ]
    lines = traceback.format_list(frames[-6:]) + traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


def _changed_inputs(before: tuple, after: tuple) -> list[int]:
    pairs = enumerate(zip(before, after, strict=True))
    return [position for position, (original, seen) in pairs if not _same(original, seen)]


def check(
    exercise: str,
    function: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Sequence[Mistake] = (),
    *,
    call: Callable[..., Any] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    verbose: bool = True,
) -> Verdict:
    """Run ``function`` on every case, compare it with ``reference``, print and return the verdict.

    Args:
        exercise: the name printed in the report, e.g. "patchify".
        function: the reader's answer.
        reference: the correct answer (usually a `vitlib` function), same signature.
        cases: the inputs to try, in order; the report names the first that fails.
        mistakes: common wrong answers to recognise in a failing output.
        call: how to get an output from a function and a case's arguments, when that is more
            than ``function(*args)`` (for example, a learning-rate schedule called at every step).
        atol, rtol: the tolerance for float outputs, as in `torch.allclose`.
        verbose: print the report (the default); the verdict carries it either way.
    """
    if not callable(function):
        raise TypeError(f"check_{exercise} expects your function itself, got {_kind(function)}")
    call = call or (lambda fn, *args: fn(*args))
    for number, case in enumerate(cases, start=1):
        where = f"case {number} of {len(cases)} ({case.description})"
        inputs = clone_args(case.args)
        expected = call(reference, *clone_args(case.args))
        try:
            actual = call(function, *inputs)
        except NotImplementedError:
            return _finish(exercise, False, f"✗ {exercise}: not written yet (it raised NotImplementedError).", verbose)
        except Exception as error:  # the reader's bug, reported with the input that caused it
            report = f"✗ {exercise}: your function raised an error on {where}:\n{_readers_traceback(error)}"
            return _finish(exercise, False, report, verbose)
        changed = _changed_inputs(case.args, inputs)
        if changed:
            report = (
                f"✗ {exercise}: on {where} your function changed its input {changed[0] + 1} in place "
                "(an in-place operation such as `x -= ...` or `x.add_(...)`); work on a new tensor instead."
            )
            return _finish(exercise, False, report, verbose)
        problem = difference(expected, actual, atol, rtol)
        if problem is None:
            continue
        report = f"✗ {exercise}: wrong on {where}.\n  {problem}"
        mistake = _recognise(actual, mistakes, case, call, atol, rtol)
        if mistake:
            report += f"\n  Likely mistake: {mistake}"
        return _finish(exercise, False, report, verbose, mistake)
    tried = "\n".join(f"  - {case.description}" for case in cases)
    return _finish(exercise, True, f"✓ {exercise}: correct on all {len(cases)} cases:\n{tried}", verbose)


def _recognise(actual: Any, mistakes: Sequence[Mistake], case: Case, call: Callable, atol: float, rtol: float):
    for mistake in mistakes:
        try:
            wrong = call(mistake.answer, *clone_args(case.args))
        except Exception:  # this mistake cannot even produce an output for this case
            continue
        if difference(wrong, actual, atol, rtol) is None:
            return mistake.description
    return None


REPORT_WIDTH = 72  # the book's output column shows about 74 characters


def _wrap(report: str) -> str:
    """Fold the report's prose to REPORT_WIDTH; indented code (a traceback's lines) stays as it is."""
    folded = []
    for line in report.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if indent > 2 or len(line) <= REPORT_WIDTH or line.lstrip().startswith('File "'):
            folded.append(line)
            continue
        hanging = " " * (indent + 2)  # under the text of a "  - " item or a "✗ " line
        folded.extend(textwrap.wrap(line, REPORT_WIDTH, subsequent_indent=hanging, break_on_hyphens=False))
    return "\n".join(folded)


def _finish(exercise: str, passed: bool, report: str, verbose: bool, mistake: str | None = None) -> Verdict:
    report = _wrap(report)
    if verbose:
        print(report)
    return Verdict(exercise, passed, report, mistake)
