"""Every chapter says each thing once, plainly: the limits scripts/prose_stats.py measures."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9]*.ipynb"))
_spec = importlib.util.spec_from_file_location("prose_stats", ROOT / "scripts" / "prose_stats.py")
prose_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prose_stats)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_short_and_plain(path):
    stats = prose_stats.chapter_stats(path)
    assert stats["words"] <= prose_stats.MAX_WORDS, stats
    assert stats["words_per_sentence"] <= prose_stats.MAX_WORDS_PER_SENTENCE, stats


def test_sentences_end_where_a_reader_ends_them():
    text = prose_stats.prose(
        "DeiT (Sec. 4, Eq. 3) by Touvron et al. adds a token. It reads {glue:text}`ch7_acc:.2%`.\n\n"
        "- a list item\n- another\n\n```python\nx = 1. + 2.\n```\n$$a. b. c.$$"
    )
    assert prose_stats.sentences(text) == [
        "DeiT (Sec§ 4, Eq§ 3) by Touvron et al§ adds a token.",
        "It reads  X .",
        "- a list item",
        "another",
    ]


def test_a_long_sentence_is_counted_as_one():
    words = " ".join(["word"] * 30) + "."
    notebook_text = prose_stats.prose(words)
    assert len(prose_stats.sentences(notebook_text)) == 1
    assert len(prose_stats._WORD.findall(notebook_text)) == 30
