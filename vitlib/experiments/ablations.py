"""Every design choice, measured: the ablations of the ViT paper (App. D.3, D.4, Sec. 4.4), on MNIST.

Each ablation trains the book's model (the ``quick`` recipe's: 7x7 patches, D = 64, 6 blocks)
with one thing changed, for the same number of epochs, with three seeds, and keeps one row per
run. The questions readers ask most, each answered in the chapter that teaches the concept:

- ``pooling`` (ch. 2): class token against the mean of the patch tokens, each at the best of three
  peak learning rates (the paper's App. D.3 found they need different ones). The learning rate is
  chosen on the validation set with seed 0; seeds 1 and 2 then run at that rate.
- ``position`` (ch. 2): no position embedding; learned 1-D (the paper's); learned 2-D (the
  paper's App. D.4 variant: row and column halves); fixed 2-D sin-cos (MoCo v3).
- ``scaling`` (ch. 3): attention with and without the 1 / sqrt(d).
- ``norm`` (ch. 4): pre-norm against post-norm, with and without warm-up, at the ``quick`` peak
  learning rate and at three times it (Xiong et al. 2020: post-norm needs the warm-up).
- ``shape`` (ch. 4): deep and narrow against shallow and wide at about equal parameters.
- ``patch_size`` (ch. 5): P = 4, 7, 14 at equal epochs, and at equal training time (epochs scaled
  by the measured cost of a training step).

Results go to ``vitlib/experiments/results/ablations.json`` (shipped with vitlib and read by
``load_results()``); rows already there are skipped, so a run split over several sessions
finishes where it stopped::

    python -m vitlib.experiments.ablations --out results/ablations              # everything
    python -m vitlib.experiments.ablations --out results/ablations --only norm  # one ablation
    python -m vitlib.experiments.ablations --out runs/ablations_quick --quick   # a smoke run
"""

import argparse
import dataclasses
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

from vitlib.checkpoint import write_json
from vitlib.data import DigitBatch, make_loaders
from vitlib.model import VisionTransformer, ViTConfig
from vitlib.train import RECIPES, evaluate, fit, pick_device

__all__ = [
    "ABLATIONS",
    "BASELINE",
    "EPOCHS",
    "RESULTS_FILE",
    "SEEDS",
    "Variant",
    "baseline_errors",
    "format_summary",
    "load_results",
    "markdown_report",
    "multiply_adds_per_image",
    "plan",
    "plot_ablation",
    "provenance",
    "run_ablations",
    "summarize",
]

EPOCHS = 5  # every run of every ablation: the quick recipe's schedule compressed into 5 epochs
SEEDS = (0, 1, 2)
BASE = RECIPES["quick"]  # 7x7 patches, D = 64, 6 blocks of 4 heads, AdamW at 2e-3, 1 epoch of warm-up
RESULTS_FILE = Path(__file__).parent / "results" / "ablations.json"


@dataclass(frozen=True)
class Variant:
    """One arm of an ablation: what changes in the model and in the recipe."""

    name: str
    model: dict = field(default_factory=dict)  # ViTConfig fields
    recipe: dict = field(default_factory=dict)  # Recipe fields (lr, warmup_epochs, ...)
    unscaled_attention: bool = False  # attention without the 1 / sqrt(d)
    lr_sweep: tuple[float, ...] = ()  # pick the best of these peak learning rates on validation
    time_matched_to: int | None = None  # patch size whose training time this variant's epochs match


HIGH_LR = 3 * BASE.lr
POOLING_LRS = (BASE.lr / 2, BASE.lr, 2 * BASE.lr)

ABLATIONS: dict[str, tuple[Variant, ...]] = {
    "pooling": (
        Variant("class token", {"pool": "cls"}, lr_sweep=POOLING_LRS),
        Variant("mean pooling", {"pool": "mean"}, lr_sweep=POOLING_LRS),
    ),
    "position": (
        Variant("none", {"pos_embed": "none"}),
        Variant("learned 1-D", {"pos_embed": "learned"}),
        Variant("learned 2-D", {"pos_embed": "learned_2d"}),
        Variant("sin-cos 2-D", {"pos_embed": "sincos"}),
    ),
    "scaling": (
        Variant("1/sqrt(d)"),
        Variant("no scaling", unscaled_attention=True),
    ),
    "norm": tuple(
        Variant(
            f"{'pre' if norm_first else 'post'}-norm, {'warm-up' if warmup else 'no warm-up'}, lr {lr:g}",
            {"norm_first": norm_first},
            {"lr": lr, "warmup_epochs": 1.0 if warmup else 0.0},
        )
        for lr in (BASE.lr, HIGH_LR)
        for norm_first in (True, False)
        for warmup in (True, False)
    ),
    "shape": (
        Variant("12 blocks x D 48", {"depth": 12, "dim": 48, "heads": 4, "mlp_dim": 96}),
        Variant("6 blocks x D 64", {"depth": 6, "dim": 64, "heads": 4, "mlp_dim": 128}),
        Variant("3 blocks x D 96", {"depth": 3, "dim": 96, "heads": 4, "mlp_dim": 192}),
    ),
    "patch_size": (
        Variant("P=4", {"patch_size": 4}),
        Variant("P=7", {"patch_size": 7}),
        Variant("P=14", {"patch_size": 14}),
        Variant("P=4, equal time", {"patch_size": 4}, time_matched_to=7),
        Variant("P=14, equal time", {"patch_size": 14}, time_matched_to=7),
    ),
}


# The variants that change nothing: the book's model and recipe as they are. Every ablation runs
# it under its own name, so their runs together show how much one model varies from run to run.
BASELINE = (
    ("pooling", "class token"),  # at the recipe's rate, one of its sweep
    ("position", "learned 1-D"),
    ("scaling", "1/sqrt(d)"),
    ("norm", "pre-norm, warm-up, lr 0.002"),
    ("shape", "6 blocks x D 64"),
    ("patch_size", "P=7"),
)


def baseline_errors(rows: list[dict]) -> list[float]:
    """Test errors (%) of every distinct run of the unchanged book model, whichever ablation ran it.

    The spread of these is the run-to-run noise that a single difference must rise above. Two
    ablations that run the unchanged model with the same seed and shuffling run the same thing,
    to the last bit: such a repeat (same seed, same test and validation accuracy) counts once.
    """
    errors, seen = [], set()
    for row in rows:
        if (row["ablation"], row["variant"]) in BASELINE and math.isclose(row["lr"], BASE.lr):
            run = (row.get("seed"), row["test_acc"], row.get("val_acc"))
            if run not in seen:
                seen.add(run)
                errors.append(100 * (1 - row["test_acc"]))
    return errors


def _check_names(names: list[str] | None) -> list[str]:
    if names is None:
        return list(ABLATIONS)
    unknown = [name for name in names if name not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation {unknown[0]!r}: expected one or more of {', '.join(ABLATIONS)}")
    return names


def build_model(variant: Variant, seed: int) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(ViTConfig.from_preset(BASE.model, **{**BASE.model_overrides, **variant.model}))
    if variant.unscaled_attention:
        for block in model.blocks:
            block.attn.scale = 1.0  # softmax(q k^T) v: the scores are no longer divided by sqrt(d)
    return model


def multiply_adds_per_image(model: torch.nn.Module, image_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image: the matrix products and convolutions.

    Counted by PyTorch's ``FlopCounterMode`` (which counts a multiply-add as 2 FLOPs); softmax,
    LayerNorm, GELU and additions are not counted (they are a few percent).
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *image_shape))
    return counter.get_total_flops() // 2


def seconds_per_step(variant: Variant, batch_size: int = 128, repeats: int = 7) -> float:
    """Median time of one training step (forward, backward, AdamW) on random digits."""
    return step_seconds([variant], batch_size, repeats)[variant.name]


def step_seconds(variants: list[Variant], batch_size: int = 128, repeats: int = 7) -> dict[str, float]:
    """Median time of one training step of each variant, keyed by name.

    The variants take their steps in turn (one step of each, ``repeats`` times over), so a
    load that comes and goes on a shared machine slows them all alike and their ratios hold.
    """
    images, labels = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    steps = {variant.name: _training_step(build_model(variant, seed=0), images, labels) for variant in variants}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats + 2):  # two warm-up rounds
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds[2:]) for name, seconds in times.items()}


def _training_step(model: VisionTransformer, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


@dataclass(frozen=True)
class Run:
    ablation: str
    variant: Variant
    seed: int
    lr: float
    epochs: int

    def key(self) -> tuple:
        return (self.ablation, self.variant.name, self.seed, round(self.lr, 12))


def plan(names: list[str], seeds: tuple[int, ...], epochs: int, rows: list[dict]) -> Iterator[Run]:
    """The runs still to do, seed by seed, so that a partial run covers every ablation once.

    A learning-rate sweep runs every rate with the first seed; the other seeds use the rate whose
    validation accuracy was best. A time-matched variant runs once the step costs are measured.
    """
    for seed in seeds:
        for name in names:
            for variant in ABLATIONS[name]:
                yield from _runs_of(name, variant, seed, seeds[0], epochs, rows)


def _runs_of(name: str, variant: Variant, seed: int, first_seed: int, epochs: int, rows: list[dict]) -> Iterator[Run]:
    lr = variant.recipe.get("lr", BASE.lr)
    if variant.lr_sweep and seed == first_seed:
        for swept in variant.lr_sweep:
            yield Run(name, variant, seed, swept, epochs)
        return
    if variant.lr_sweep:
        swept = [
            row
            for row in rows
            if row["ablation"] == name and row["variant"] == variant.name and row["seed"] == first_seed
        ]
        if len(swept) < len(variant.lr_sweep):
            return  # the sweep is not finished: this seed waits for a later invocation
        lr = max(swept, key=lambda row: row["val_acc"])["lr"]
    if variant.time_matched_to is not None:
        earlier = [row for row in rows if row["ablation"] == name and row["variant"] == variant.name]
        epochs = earlier[0]["epochs"] if earlier else _time_matched_epochs(variant, epochs)  # one rule for all seeds
    yield Run(name, variant, seed, lr, epochs)


_STEP_COSTS: dict[int, float] = {}


def _time_matched_epochs(variant: Variant, epochs: int) -> int:
    """Epochs that cost what ``epochs`` of the reference patch size cost, by the measured step time."""
    patch_sizes = (variant.model["patch_size"], variant.time_matched_to)
    if any(patch_size not in _STEP_COSTS for patch_size in patch_sizes):
        measured = step_seconds([Variant(f"P={p}", {"patch_size": p}) for p in patch_sizes])
        _STEP_COSTS.update({p: measured[f"P={p}"] for p in patch_sizes})
    ratio = _STEP_COSTS[variant.time_matched_to] / _STEP_COSTS[variant.model["patch_size"]]
    return max(1, round(epochs * ratio))


def machine() -> str:
    """The CPU model (or GPU), and the threads torch uses: timings compare only within one machine."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        name += f" + {torch.cuda.get_device_name()}"
    return f"{name}, {_threads(torch.get_num_threads())}"


def _threads(count: int) -> str:
    return f"{count} torch thread{'' if count == 1 else 's'}"


def machine_label(recorded: str) -> str:
    """A row's ``machine`` as text: rows made before the singular was fixed say '1 torch threads'."""
    return recorded.replace(", 1 torch threads", f", {_threads(1)}")


def train_and_test(run: Run, data: dict, device: torch.device) -> dict:
    """Train one run from scratch and test it: one result row."""
    recipe = dataclasses.replace(
        BASE, epochs=run.epochs, **{**run.variant.recipe, "lr": run.lr}
    )  # the variant's model changes are applied by build_model
    model = build_model(run.variant, run.seed)
    macs = multiply_adds_per_image(model, (1, 28, 28))
    # The loaders are shared by every run of an invocation: reseed the shuffling, so that a row
    # depends on its seed alone, not on the runs before it in the same process.
    data["train"].generator.manual_seed(run.seed)
    history = fit(
        model, data["train"], data["val"], recipe, device=device, seed=run.seed, progress=False, verbose=False
    )
    test = evaluate(model, data["test"], device)
    train_seconds = sum(row["seconds"] for row in history)
    return {
        "ablation": run.ablation,
        "variant": run.variant.name,
        "seed": run.seed,
        "epochs": run.epochs,
        "lr": run.lr,
        "warmup_epochs": recipe.warmup_epochs,
        "test_acc": test["acc"],
        "val_acc": history[-1]["val_acc"],
        "train_loss": history[-1]["train_loss"],
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / run.epochs,
        "parameters": model.num_parameters(),
        "multiply_adds": macs,
        "shuffle_seed": run.seed,  # rows without it shuffled on from the invocation's earlier runs
        "machine": machine(),
        "torch": torch.__version__,
    }


def load_data(root: str | None, quick: bool, seed: int = 0) -> dict:
    """The loaders every run shares: the full split, or a few hundred images in quick mode."""
    loaders = make_loaders(root, batch_size=BASE.batch_size, train_subset=256 if quick else None, seed=seed)
    if not quick:
        return {"train": loaders.train, "val": loaders.val, "test": loaders.test}
    few = {name: DataLoader(Subset(loader.dataset, range(256)), batch_size=256, collate_fn=DigitBatch())
           for name, loader in (("val", loaders.val), ("test", loaders.test))}  # fmt: skip
    return {"train": loaders.train, **few}


def run_ablations(
    names: list[str] | None = None,
    *,
    results: str | Path = RESULTS_FILE,
    data: str | None = None,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every planned run not yet in ``results``, appending each row as soon as it is done.

    Returns all rows of the file. ``quick`` trains one epoch on 256 images with one seed: a
    smoke run of every ablation, never written into the shipped results.
    """
    names = _check_names(names)
    path = Path(results)
    if quick and path.resolve() == RESULTS_FILE.resolve():
        raise ValueError(f"quick runs must not go into the shipped {RESULTS_FILE}: pass another results path")
    stored = json.loads(path.read_text()) if path.exists() else {"rows": []}
    rows = stored["rows"]
    seeds, epochs = ((0,), 1) if quick else (SEEDS, EPOCHS)
    device = pick_device()
    loaders = load_data(data, quick)
    while True:  # plan again after every run: a finished sweep unlocks the later seeds
        done = {_key_of(row) for row in rows}
        todo = [run for run in plan(names, seeds, epochs, rows) if run.key() not in done]
        if not todo:
            return rows
        run = todo[0]
        started = time.perf_counter()
        row = train_and_test(run, loaders, device)
        rows.append(row)
        write_json(path, {**stored, "rows": rows, "epochs": epochs, "seeds": list(seeds)})
        log(
            f"[{len(rows):3d}] {run.ablation:>10} | {run.variant.name:<32} seed {run.seed} lr {run.lr:g} "
            f"{run.epochs} ep: test error {100 * (1 - row['test_acc']):.2f}% ({time.perf_counter() - started:.0f} s)"
        )


def _key_of(row: dict) -> tuple:
    return (row["ablation"], row["variant"], row["seed"], round(row["lr"], 12))


def load_results(path: str | Path = RESULTS_FILE) -> dict:
    """The shipped results: {'rows': [...], 'epochs', 'seeds', 'command', ...} as the runner wrote them."""
    return json.loads(Path(path).read_text())


def summarize(rows: list[dict], ablation: str) -> list[dict]:
    """Per variant (in the ablation's order): mean and spread of the test error over the seeds.

    A learning-rate sweep is summarized at its chosen rate only (the rate of seeds > 0).
    Returns dicts with variant, seeds, lr, error_mean and error_std (in %, sample standard
    deviation; 0 for one seed), error_min, error_max, seconds_per_epoch, parameters and
    multiply_adds.
    """
    summary = []
    for variant in ABLATIONS[ablation]:
        mine = [row for row in rows if row["ablation"] == ablation and row["variant"] == variant.name]
        if not mine:
            continue
        if variant.lr_sweep:
            later = [row for row in mine if row["seed"] != min(r["seed"] for r in mine)]
            chosen = later[0]["lr"] if later else max(mine, key=lambda row: row["val_acc"])["lr"]
            mine = [row for row in mine if math.isclose(row["lr"], chosen)]
        errors = [100 * (1 - row["test_acc"]) for row in mine]
        summary.append(
            {
                "variant": variant.name,
                "seeds": len(mine),
                "lr": mine[0]["lr"],
                "epochs": mine[0]["epochs"],
                "error_mean": statistics.mean(errors),
                "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                "error_min": min(errors),
                "error_max": max(errors),
                "seconds_per_epoch": statistics.mean(row["seconds_per_epoch"] for row in mine),
                "parameters": mine[0]["parameters"],
                "multiply_adds": mine[0]["multiply_adds"],
            }
        )
    return summary


def _label(line: dict) -> str:
    """A variant's name, and its epochs when they were matched to another's training time."""
    return line["variant"] + (f" ({line['epochs']} ep)" if "equal time" in line["variant"] else "")


def _spread(line: dict) -> str:
    return f" ± {line['error_std']:.2f}" if line["seeds"] > 1 else " (1 seed)"


# columns of format_summary: header, width, cell
_COLUMNS: dict[str, tuple[str, int, Callable[[dict], str]]] = {
    "error": ("test error (%)", 14, lambda line: f"{line['error_mean']:.2f}" + _spread(line)),
    "seeds": ("seeds", 5, lambda line: str(line["seeds"])),
    "lr": ("peak lr", 7, lambda line: f"{line['lr']:g}"),
    "s/epoch": ("s/epoch", 7, lambda line: f"{line['seconds_per_epoch']:.0f}"),
    "parameters": ("params", 7, lambda line: f"{line['parameters'] / 1e3:.0f}k"),
    "multiply_adds": ("MACs", 6, lambda line: f"{line['multiply_adds'] / 1e6:.1f}M"),
}


def format_summary(rows: list[dict], ablation: str, columns: tuple[str, ...] = ("error", "seeds", "lr")) -> str:
    """``summarize`` as a plain-text table narrow enough for the book's column (74 characters).

    ``columns`` picks from: error (mean ± sample standard deviation over seeds, in %), seeds, lr,
    s/epoch, parameters and multiply_adds (per image).
    """
    unknown = [name for name in columns if name not in _COLUMNS]
    if unknown:
        raise ValueError(f"unknown column {unknown[0]!r}: expected some of {', '.join(_COLUMNS)}")
    lines = summarize(rows, ablation)
    width = max([len("variant"), *(len(_label(line)) for line in lines)])
    header = "variant".ljust(width) + "".join(f"  {_COLUMNS[name][0]:>{_COLUMNS[name][1]}}" for name in columns)
    body = [
        _label(line).ljust(width) + "".join(f"  {_COLUMNS[name][2](line):>{_COLUMNS[name][1]}}" for name in columns)
        for line in lines
    ]
    return "\n".join([header, *body])


def provenance(rows: list[dict], ablation: str) -> dict:
    """Where an ablation's rows came from: runs, seeds, machines, torch versions, minutes of training."""
    mine = [row for row in rows if row["ablation"] == ablation]
    return {
        "runs": len(mine),
        "seeds": sorted({row["seed"] for row in mine}),
        "machines": sorted({machine_label(row["machine"]) for row in mine}),
        "torch": sorted({row["torch"] for row in mine}),
        "train_minutes": sum(row["train_seconds"] for row in mine) / 60,
    }


TITLES = {
    "pooling": "Class token or mean pooling",
    "position": "Position embeddings",
    "scaling": "Attention with and without 1/sqrt(d)",
    "norm": "Pre-norm or post-norm, with and without warm-up",
    "shape": "Deep and narrow or shallow and wide",
    "patch_size": "Patch size",
}


def _seed_errors(rows: list[dict], ablation: str, line: dict) -> list[float]:
    """The test errors (%) of one summarized variant's seeds (at its chosen learning rate)."""
    return [
        100 * (1 - row["test_acc"])
        for row in rows
        if row["ablation"] == ablation and row["variant"] == line["variant"] and math.isclose(row["lr"], line["lr"])
    ]


def plot_ablation(rows: list[dict], ablation: str, title: str | None = None):
    """Test error of each variant: one dot per seed, the mean as a bar, the seeds' range as a line.

    Variants run top to bottom in the ablation's order; lower is better.
    """
    from vitlib.viz import SMALL, NotebookFigure  # matplotlib only when plotting

    lines = summarize(rows, ablation)
    if not lines:
        raise ValueError(
            f"no rows for ablation {ablation!r}: run python -m vitlib.experiments.ablations --only {ablation}"
        )
    seed_errors = [_seed_errors(rows, ablation, line) for line in lines]
    # A run that failed to train (errors many times the others') would squash every other bar:
    # the axis ends past the ordinary runs, and what lies beyond is drawn at its edge, labelled.
    every = [e for errors in seed_errors for e in errors]
    ordinary = [e for e in every if e <= 4 * statistics.median(every)]
    right = 1.18 * max(ordinary) if len(ordinary) < len(every) else 1.15 * max(every)
    figure = NotebookFigure(figsize=(7, 0.9 + 0.42 * len(lines)), layout="constrained")
    ax = figure.subplots()
    for position, (line, errors) in enumerate(zip(lines, seed_errors, strict=True)):
        inside, beyond = [e for e in errors if e <= right], [e for e in errors if e > right]
        if beyond:  # no bar: a mean over a failed run says nothing
            ax.plot(inside, [position] * len(inside), "o", color="#08519c", ms=4)
            ax.plot([right] * len(beyond), [position] * len(beyond), ">", color="#cb181d", ms=7, clip_on=False)
            failed = ", ".join(f"{e:.1f}%" for e in beyond)
            ax.annotate(f"{len(beyond)} of {len(errors)} seeds off the scale: {failed} →",
                        (max(inside, default=0), position), textcoords="offset points", xytext=(8, 0),
                        va="center", fontsize=SMALL, color="#cb181d")  # fmt: skip
            continue
        ax.barh(position, line["error_mean"], height=0.6, color="#9ecae1")
        ax.plot([min(errors), max(errors)], [position, position], color="#08519c", lw=1.5)
        ax.plot(errors, [position] * len(errors), "o", color="#08519c", ms=4)
        ax.annotate(f"{line['error_mean']:.2f}", (max(errors), position), textcoords="offset points",
                    xytext=(6, 0), va="center", fontsize=SMALL)  # fmt: skip
    ax.set_yticks(range(len(lines)), [_label(line) for line in lines])
    ax.invert_yaxis()
    ax.set_xlim(0, right)
    ax.set_xlabel("test error (%): bar the mean, dots the seeds; lower is better")
    seeds = sorted({line["seeds"] for line in lines})
    seeds_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    epochs = max(line["epochs"] for line in lines if "equal time" not in line["variant"])
    per_variant = f"{seeds_text} seed{'s' if seeds[-1] > 1 else ''} each"
    ax.set_title(title or f"{TITLES[ablation]}: {epochs} epochs, {per_variant}", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return figure


def markdown_report(rows: list[dict], names: list[str]) -> str:
    """The summary of every ablation with rows, as a Markdown table (README's)."""
    lines = [
        "| ablation | variant | test error (%) | seeds | epochs | peak lr | s / epoch | parameters | multiply-adds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in _check_names(names):
        for line in summarize(rows, name):
            spread = f" ± {line['error_std']:.2f}" if line["seeds"] > 1 else ""
            cells = [
                name, line["variant"], f"{line['error_mean']:.2f}{spread}", line["seeds"], line["epochs"],
                f"{line['lr']:g}", f"{line['seconds_per_epoch']:.0f}", f"{line['parameters']:,}",
                f"{line['multiply_adds']:,}",
            ]  # fmt: skip
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitlib.experiments.ablations",
        description="Train the book's ViT with one design choice changed at a time; one row per run, "
        "resumable: rows already in the results file are skipped.",
    )
    parser.add_argument("--out", default="runs/ablations", help="folder for the log and a copy of the results")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these ablations: {', '.join(ABLATIONS)}")
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA, else ~/.cache/vitlib)")
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch on 256 images, one seed, results in --out: a smoke run"
    )
    parser.add_argument("--results", help=f"results file (default: {RESULTS_FILE}; with --quick, OUT/ablations.json)")
    parser.add_argument(
        "--report", action="store_true", help="print the results so far as a Markdown table; train nothing"
    )
    args = parser.parse_args(argv)
    if args.report:
        print(markdown_report(load_results(args.results or RESULTS_FILE)["rows"], args.only or list(ABLATIONS)))
        return 0
    out = Path(args.out)
    results = Path(args.results) if args.results else (out / "ablations.json" if args.quick else RESULTS_FILE)
    try:
        names = _check_names(args.only)
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    rows = run_ablations(names, results=results, data=args.data, quick=args.quick)
    stored = load_results(results)
    stored["command"] = "python -m vitlib.experiments.ablations --out OUT" + (" --quick" if args.quick else "")
    stored["seconds_this_invocation"] = time.perf_counter() - started
    stored["total_train_seconds"] = sum(row["train_seconds"] for row in rows)
    write_json(results, stored)
    if results.resolve() != (out / "ablations.json").resolve():
        write_json(out / "ablations.json", stored)
    for name in names:
        for line in summarize(rows, name):
            print(f"{name:>10} | {line['variant']:<32} error {line['error_mean']:.2f} +- {line['error_std']:.2f}% "
                  f"({line['seeds']} seeds)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
