"""What every exercise test file asks of a checker: it passes a right answer, names a wrong one, and its
tolerances are tight. The test files list the answers; these helpers run them and assert.

Used as ``import checkers``: pytest puts tests/ on sys.path, as it does for the test files that import
each other's answers; conftest.py has pytest rewrite the asserts here, so a failure shows its values."""

import pytest

BOOK_CODE_COLUMN = 76  # the book shows each solution's verdict: no line may be wider than the page


def right_answers(correct):
    """Parametrizes a test with (checker, answer) pairs, each named by the checker and the answer."""
    ids = [f"{checker.__name__}-{answer.__name__}" for checker, answer in correct]
    return pytest.mark.parametrize("checker, answer", correct, ids=ids)


def wrong_answers(wrong):
    """Parametrizes a test with (checker, answer, named) triples, each named by the checker and the mistake."""
    return pytest.mark.parametrize("checker, answer, named", wrong, ids=[f"{c.__name__}-{n}" for c, _, n in wrong])


def assert_passes(checker, answer, capsys):
    """The checker passes a right answer and prints a ✓ verdict that fits the book's code column."""
    verdict = checker(answer)
    assert verdict.passed, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✓") and "correct on all" in printed
    assert max(len(line) for line in printed.splitlines()) <= BOOK_CODE_COLUMN, printed
    return verdict


def assert_names_mistake(checker, answer, named, capsys, *, where="case"):
    """The checker fails a wrong answer, its mistake contains `named`, and it prints where and what."""
    verdict = checker(answer)
    assert not verdict.passed
    assert verdict.mistake is not None and named in verdict.mistake, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✗") and f"wrong on {where}" in printed and "Likely mistake: " in printed
    return verdict


def assert_every_mistake_is_named(wrong, catalogues):
    """Every mistake the checkers list is what some wrong answer in `wrong` is called."""
    named = {checker(answer).mistake for checker, answer, _ in wrong}
    listed = {mistake.description for catalogue in catalogues for mistake in catalogue}
    assert listed - named == set()


def assert_a_small_error_fails(checker, correct, error=1e-3):
    """The checker passes `correct` and fails it with `error` added: a wrong value, not a crash."""
    assert checker(correct).passed

    def off_by_a_little(*args):
        return correct(*args) + error

    verdict = checker(off_by_a_little)
    assert not verdict.passed and " wrong on " in verdict.report, verdict.report
