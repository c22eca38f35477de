"""How long each page of the book took to execute in one build, from Jupyter Book's cache.

    python scripts/build_times.py --machine slow --beside nothing --json results/book_build_times.json

`execute_notebooks: cache` keeps a record of every executed page in
``_build/.jupyter_cache/global.db``, with its ``execution_seconds``. This script takes, for each
page, the newest record made up to ``--until`` (default: now), and prints or writes them with the
machine that made them. After a build that executed every page (``make book-fresh``) with nothing
else running, that is what a fresh build costs: the Results page (book/results.md) reads the JSON.
"""

import argparse
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache" / "global.db"


def newest_records(cache: Path, until: str | None = None) -> dict[str, dict]:
    """{page: {'seconds', 'executed'}} for each page's newest record up to ``until``."""
    if not cache.is_file():
        raise FileNotFoundError(f"no execution cache at {cache}: build the book first (make book)")
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT uri, data, created FROM nbcache ORDER BY created").fetchall()
    pages = {}
    for uri, data, created in rows:
        if until is not None and created > until:
            continue
        pages[Path(uri).stem] = {"seconds": round(json.loads(data)["execution_seconds"], 1), "executed": created}
    if not pages:
        raise ValueError(f"the cache holds no record made up to {until}")
    return dict(sorted(pages.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/build_times.py", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help="the build's global.db")
    parser.add_argument("--until", help="ignore records made after this time, 'YYYY-MM-DD HH:MM' (UTC)")
    parser.add_argument("--machine", required=True, help="which machine built it (results/lab_log.json names them)")
    parser.add_argument("--beside", required=True, help="what ran beside the build: 'nothing' for a quiet one")
    parser.add_argument("--json", type=Path, help="write the times here")
    args = parser.parse_args(argv)
    if args.until is not None:
        datetime.strptime(args.until, "%Y-%m-%d %H:%M")  # a clear error for a malformed time
    pages = newest_records(args.cache, args.until)
    for page, record in pages.items():
        print(f"{page:<28} {record['seconds']:>7.1f} s   executed {record['executed'][:16]}")
    total = sum(record["seconds"] for record in pages.values())
    print(f"{'all pages':<28} {total:>7.1f} s")
    if args.json:
        result = {"machine": args.machine, "beside": args.beside, "pages": pages}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
