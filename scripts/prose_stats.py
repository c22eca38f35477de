"""Words of prose, and words per sentence, in each chapter of the book.

    python scripts/prose_stats.py            # every chapter in book/
    python scripts/prose_stats.py book/07_distillation.ipynb

Prose is a chapter's Markdown with code, math, directives' option lines and tables left out; a
glued number or a citation counts as one word. Sentences end at '.', '!' or '?' before a space
or a line's end, except after the abbreviations the book uses (Sec., Eq., Fig., et al., ...).
tests/test_prose.py holds every chapter to the limits below.
"""

import json
import re
import sys
from pathlib import Path

MAX_WORDS = 4_500
MAX_WORDS_PER_SENTENCE = 25

_BLOCKS = [r"```.*?```", r"\$\$.*?\$\$"]  # code and directive fences, display math
_LINES = [
    r"^\s*:::.*$|^\s*:\w[\w-]*:.*$",  # colon fences, directive options
    r"^\s*\|.*$",  # tables
    r"^\s*\(\w[\w-]*\)=\s*$",  # labels
]
_ONE_WORD = [r"\{[a-z:]+\}`[^`]*`", r"\$[^$\n]+\$", r"`[^`]*`", r"\[([^\]]*)\]\([^)]*\)"]
_ABBREVIATIONS = r"(?:Sec|Secs|Eq|Eqs|Fig|Figs|App|al|e\.g|i\.e|cf|vs|No|Tab)\."
_WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")


def prose(markdown: str) -> str:
    for pattern in _BLOCKS:
        markdown = re.sub(pattern, " ", markdown, flags=re.DOTALL)
    for pattern in _LINES:
        markdown = re.sub(pattern, " ", markdown, flags=re.MULTILINE)
    for pattern in _ONE_WORD:
        markdown = re.sub(pattern, " X ", markdown)
    markdown = re.sub(r"^\s*#+\s.*$", " ", markdown, flags=re.MULTILINE)  # headings
    return markdown


def sentences(text: str) -> list[str]:
    text = re.sub(_ABBREVIATIONS, lambda m: m.group(0).replace(".", "§"), text)
    parts = re.split(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n\s*[-*\d]+[.)]?\s", text)
    return [part for part in parts if _WORD.search(part)]


def chapter_stats(path: Path) -> dict:
    notebook = json.loads(path.read_text())
    markdown = "\n\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    text = prose(markdown)
    words = len(_WORD.findall(text))
    count = len(sentences(text))
    return {"chapter": path.stem, "words": words, "sentences": count, "words_per_sentence": words / max(count, 1)}


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    paths = [Path(arg) for arg in argv] or sorted((root / "book").glob("[0-9]*.ipynb"))
    print(f"{'chapter':<28} {'words':>6} {'sentences':>9} {'words/sentence':>14}")
    for path in paths:
        s = chapter_stats(path)
        print(f"{s['chapter']:<28} {s['words']:>6} {s['sentences']:>9} {s['words_per_sentence']:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
