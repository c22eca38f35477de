"""Write the diagrams that book pages without code show: book/figures/architecture.svg (book/intro.md).

    python scripts/diagrams.py           # (re)write the files
    python scripts/diagrams.py --check   # exit 1, naming the file, if a committed one is stale

The drawing is vitlib.diagrams'; this script only saves it. The SVG is deterministic: a fixed
salt for its element ids and no date in its metadata, so the same code writes the same bytes and
tests/test_diagrams.py can tell when the committed file no longer matches the code.
"""

import argparse
import io
import sys
from pathlib import Path

import matplotlib

from vitlib import diagrams

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {ROOT / "book" / "figures" / "architecture.svg": diagrams.plot_architecture}


def render(draw) -> bytes:
    """The SVG of the figure ``draw()`` returns, the same bytes at every call."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "vitlib", "svg.fonttype": "path"}):
        draw().savefig(buffer, format="svg", metadata={"Date": None}, facecolor="white")
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    stale = []
    for path, draw in FIGURES.items():
        svg = render(draw)
        if args.check:
            if not path.is_file() or path.read_bytes() != svg:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(svg)
            print(f"wrote {path.relative_to(ROOT)} ({len(svg) / 1024:.0f} KiB)")
    for path in stale:
        print(f"{path} is stale: run python scripts/diagrams.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
