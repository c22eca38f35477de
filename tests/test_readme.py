"""README.md is the front door: short, its pictures and links there, its results table and its
example as the repository makes them."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_is_a_front_door_of_at_most_200_lines():
    assert len(README.splitlines()) <= 200
    assert "make book" in README and "make test" in README


def test_results_table_is_what_the_runs_files_say():
    check = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_picture_and_local_link_exists():
    targets = re.findall(r"\]\(([^)#\s]+)\)", README)
    local = [target for target in targets if not re.match(r"https?://", target)]
    assert any(target.endswith(".png") for target in local)
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, f"README links to files that are not in the repository: {missing}"


def test_the_example_runs_and_reads_the_digits(data_root, monkeypatch):
    monkeypatch.setenv("VITLIB_DATA", str(data_root))
    example = re.search(r"## `vitlib` in ten lines\n+```python\n(.*?)```", README, re.S).group(1)
    assert len(example.strip().splitlines()) <= 10
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)  # README's own code
    assert namespace["where"].shape == (8, 7, 7)
    assert (namespace["predicted"] == namespace["labels"][:8]).float().mean() >= 7 / 8
