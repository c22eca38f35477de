"""README's table of trained models, made from the runs' own files, never typed.

    python scripts/results_table.py            # print the table
    python scripts/results_table.py --write    # put it into README.md, between its two markers
    python scripts/results_table.py --check    # exit 1 if README's table is not what the files say

One row per run in ``results/*/summary.json`` (what ``python -m vitlib.train`` writes), then one
per shipped model in ``vitlib/pretrained/`` (its ``*.history.json`` and the summary kept in its
weights' metadata) that no summary already stands for. tests/test_readme.py runs ``--check``; the
book's Results page (book/results.md) shows the same table.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- results table: made by scripts/results_table.py, do not edit by hand -->"
END = "<!-- end of results table -->"
ORDER = ["quick", "best", "distilled", "distilled_best", "teacher"]  # others follow, by name


def _describe(preset: str) -> str:
    """The model a recipe trains, from the recipe itself: what sets it apart from ViTConfig()."""
    from vitlib.model import ViTConfig
    from vitlib.train import CNN, RECIPES

    recipe = RECIPES[preset]
    if recipe.model == CNN:
        return "chapter 1's CNN"
    config, default = recipe.model_config(), ViTConfig()
    words = [f"ViT, {config.patch_size}×{config.patch_size} patches"]
    if (config.dim, config.depth) != (default.dim, default.depth):
        words.append(f"D={config.dim}, {config.depth} blocks")
    if config.drop_path:
        words.append(f"stochastic depth {config.drop_path:g}")
    if config.distilled and recipe.teacher:
        words.append("taught by the CNN")
    elif config.distilled:
        words.append("distillation token")
    return ", ".join(words)


def seed_of(summary: dict) -> int:
    """The seed a run trained with, from its command (the summary has no field for it)."""
    found = re.search(r"--seed[ =](\d+)", summary.get("command", ""))
    return int(found.group(1)) if found else 0


def _machine(summary: dict, where: dict | None) -> str:
    """Where a run trained, in one format for every row: 'slow, 1 thread, shared'.

    The device (named when it is not the CPU) and the torch threads come from the summary. Which
    of the project's two machines ran it, and whether other work ran beside it, come from
    ``results/lab_log.json`` (``where``): the summaries do not record them.
    """
    parts = [where["machine"]] if where else []
    if summary.get("device", "cpu") != "cpu":
        parts.append(summary["device"].upper())
    threads = (where or {}).get("threads", summary.get("torch_threads"))  # the log knows of changes
    if threads is not None:
        parts.append(f"{threads} thread{'' if threads == 1 else 's'}")
    if summary.get("processes", 1) > 1:
        parts.append(f"{summary['processes']} processes")
    if where:
        parts.append("alone" if where["beside"] == "nothing" else "shared")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def models(root: Path = ROOT) -> list[dict]:
    """Every trained model the repository keeps a record of: one dict each, in ORDER."""
    from vitlib.pretrained import pretrained_info

    found = []
    for path in sorted((root / "results").glob("*/summary.json")):
        summary = json.loads(path.read_text())
        found.append({"summary": summary, "source": str(path.relative_to(root)), "shipped": None})
    for path in sorted((root / "vitlib" / "pretrained").glob("*.history.json")):
        name = path.name.removesuffix(".history.json")
        info = pretrained_info(name)
        summary = {**info["summary"], "epochs": len(info["history"]),
                   "train_seconds": sum(epoch["seconds"] for epoch in info["history"])}  # fmt: skip
        same = [m for m in found if m["summary"]["preset"] == summary["preset"]
                and m["summary"]["test_acc"] == summary["test_acc"]]  # fmt: skip
        if same:  # a results/ run that is the shipped model
            same[0]["shipped"] = name
        else:
            found.append({"summary": summary, "source": str(path.relative_to(root)), "shipped": name})
    rank = {preset: index for index, preset in enumerate(ORDER)}
    found.sort(key=lambda m: (rank.get(m["summary"]["preset"], len(ORDER)), m["summary"]["preset"]))
    return found


def markdown_table(found: list[dict], root: Path = ROOT) -> str:
    where = json.loads((root / "results" / "lab_log.json").read_text())["trained_models"]
    lines = [
        "| recipe | model | parameters | epochs | test accuracy | training time | machine |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for model in found:
        summary = model["summary"]
        recipe = f"`{summary['preset']}`"
        if seed_of(summary):
            recipe += f", seed {seed_of(summary)}"
        if model["shipped"]:
            recipe += " (shipped)"
        cells = [
            recipe,
            _describe(summary["preset"]),
            f"{summary['parameters']:,}",
            str(summary["epochs"]),
            f"**{summary['test_acc']:.2%}**",
            _duration(summary["train_seconds"]),
            _machine(summary, where.get(summary["preset"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_table(text: str) -> str:
    """The table README holds between its markers."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} and {END!r}")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/results_table.py", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write the table into README.md")
    group.add_argument("--check", action="store_true", help="fail if README.md's table is out of date")
    args = parser.parse_args(argv)
    table = markdown_table(models())
    if args.check:
        if readme_table(README.read_text()) != table:
            print("README.md's results table is out of date: python scripts/results_table.py --write")
            return 1
        return 0
    if args.write:
        text = README.read_text()
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        README.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")
        return 0
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
