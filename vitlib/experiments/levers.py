"""What each lever behind the distilled model is worth, measured one at a time at the quick scale.

Each run trains the ``quick`` recipe's model (7x7 patches, 16 tokens) for the 29 epochs that
plain training fits into 10 quiet minutes, with one lever changed; the levers' own costs (the
teacher's forward pass, the distortions) are in each row's time. Every run keeps an exponential
moving average of its weights, which changes nothing in training, so each row holds the raw
weights' test accuracy and the average's:

- ``plain``: the quick recipe as it is;
- ``elastic``: Simard et al.'s (2003) elastic distortions after the affine augmentation;
- ``distilled``: a distillation token and head taught by the shipped CNN teacher (DeiT's hard
  labels); the row also holds each head's accuracy alone;
- ``true_labels``: the control for ``distilled``, the same model and loss with the teacher's labels
  replaced by the true ones (``train.TrueLabels``): what a second token and an unsmoothed half of
  the loss do without a teacher.

Every row also says how closely the ViT follows the teacher on the test digits: how often it
predicts what the teacher predicts, and how many of the teacher's mistakes it makes too.

The distilled run's teacher is the shipped one (``vitlib.load_pretrained('mnist_teacher')``): its
8 epochs of training are not in the run's time, and the table says so. Results go to
``vitlib/experiments/results/levers.json``; a finished run is skipped and an interrupted one
resumes from its checkpoint::

    python -m vitlib.experiments.levers --out runs/levers
    python -m vitlib.experiments.levers --out runs/levers --only plain distilled --seeds 1 2
    python -m vitlib.experiments.levers --out runs/levers --only true_labels --seeds 0 1 2
    python -m vitlib.experiments.levers --out runs/levers_quick --quick   # a smoke run
    python -m vitlib.experiments.levers --report    # the finished levers, as README's table
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from vitlib.checkpoint import load_checkpoint, write_json
from vitlib.data import make_loaders
from vitlib.experiments.ablations import machine, machine_label
from vitlib.train import RECIPES, TRUE_LABELS, Recipe, TrueLabels, build_model, evaluate, fit, pick_device

__all__ = [
    "EMA_DECAY",
    "EPOCHS",
    "LEVERS",
    "RECIPE_RUN_FILE",
    "RESULTS_FILE",
    "agreement_with_teacher",
    "load_recipe_run",
    "load_results",
    "markdown_report",
    "run_levers",
]

EPOCHS = 29  # what fits in 10 minutes on 2 quiet CPU cores (benchmarks/train_budget.py)
EMA_DECAY = RECIPES["distilled"].ema_decay
RESULTS_FILE = Path(__file__).parent / "results" / "levers.json"
RECIPE_RUN_FILE = Path(__file__).parent / "results" / "distilled_recipe.json"
# the distilled_best recipe (best's schedule, the teacher, no elastic distortions) run at full length
BEST_RECIPE_RUN_FILE = Path(__file__).parent / "results" / "distilled_best_recipe.json"
_QUICK = RECIPES["quick"]
_DISTILLED = dataclasses.replace(
    _QUICK,
    epochs=EPOCHS,
    ema_decay=EMA_DECAY,
    model_overrides={**_QUICK.model_overrides, "distilled": True},
    teacher="teacher",
)
LEVERS: dict[str, Recipe] = {
    "plain": dataclasses.replace(_QUICK, epochs=EPOCHS, ema_decay=EMA_DECAY),
    "elastic": dataclasses.replace(_QUICK, epochs=EPOCHS, ema_decay=EMA_DECAY, elastic=True),
    "distilled": _DISTILLED,
    "true_labels": dataclasses.replace(_DISTILLED, teacher=TRUE_LABELS),  # the control for 'distilled'
}


def load_results(path: str | Path = RESULTS_FILE) -> dict:
    """{'rows': one dict per finished run, ...}; no rows before the first run."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {"rows": []}


def load_recipe_run(path: str | Path = RECIPE_RUN_FILE) -> dict:
    """The ``distilled`` recipe's own run, all three levers at once: {'summary', 'history'}.

    ``load_recipe_run(BEST_RECIPE_RUN_FILE)`` gives the ``distilled_best`` recipe's run instead,
    with its independent evaluation and the teacher's label agreement beside them, and under
    ``'other_seeds'`` the same recipe's run with seed 1: {'seed', 'summary', 'history',
    'independent_evaluate'}.

    Made by ``python -m vitlib.train --preset distilled``; its summary holds the test accuracy of
    the two heads together, each head alone and the raw weights, and its history each epoch's.
    """
    return json.loads(Path(path).read_text())


def train_and_test(name: str, recipe: Recipe, out_dir: Path, data: str | None, seed: int, device) -> dict:
    """One lever's run (resumed from ``out_dir`` if it was interrupted) and its test accuracies."""
    loaders = make_loaders(
        data, batch_size=recipe.batch_size, augment=recipe.augment, elastic=recipe.elastic,
        train_subset=recipe.train_subset, seed=seed,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = build_model(recipe)
    teacher = None
    if recipe.teacher == TRUE_LABELS:
        teacher = TrueLabels()
    elif recipe.teacher is not None:
        teacher = _shipped_teacher()
    resume = (out_dir / "checkpoint.pt").exists()
    history = fit(model, loaders.train, loaders.val, recipe, out_dir=out_dir, resume=resume, device=device,
                  seed=seed, teacher=teacher, progress=False)  # fmt: skip
    test = evaluate(model, loaders.test, device)  # the moving average
    shipped_teacher = teacher if recipe.teacher == "teacher" else _shipped_teacher()
    raw = build_model(recipe)
    raw.load_state_dict(load_checkpoint(out_dir / "checkpoint.pt")["model"])
    row = {
        "lever": name,
        "seed": seed,
        "epochs": recipe.epochs,
        "test_acc_ema": test["acc"],
        "test_acc_raw": evaluate(raw, loaders.test, device)["acc"],
        "val_acc_ema": history[-1]["val_acc"],
        "val_acc_raw": history[-1]["val_acc_raw"],
        "train_acc": history[-1]["train_acc"],  # last epoch, on the augmented training digits
        "train_seconds": sum(entry["seconds"] for entry in history),
        "machine": machine(),
        "torch": torch.__version__,
    }
    for head in ("class_head", "distillation_head"):
        if f"acc_{head}" in test:
            row[f"test_acc_{head}"] = test[f"acc_{head}"]
    row.update(agreement_with_teacher(model, shipped_teacher, loaders.test, device))
    return row


def _shipped_teacher() -> torch.nn.Module:
    from vitlib.pretrained import load_pretrained

    return load_pretrained("mnist_teacher")


@torch.no_grad()
def agreement_with_teacher(model, teacher, loader, device) -> dict:
    """How closely a ViT's test predictions follow the CNN teacher's, for each of its outputs.

    'agree_<output>': the share of test digits on which it predicts what the teacher predicts;
    'shared_mistakes_<output>': of the digits the teacher gets wrong, how many it gets wrong with
    the teacher's own wrong label; 'teacher_mistakes': how many the teacher gets wrong. The outputs
    are 'model' (what ``forward`` gives) and, for a distilled ViT, 'class_head' and
    'distillation_head' alone.
    """
    model.eval().to(device)
    teacher.eval().to(device)
    said: dict[str, list[torch.Tensor]] = {}
    taught, truth = [], []
    for images, labels in loader:
        images = images.to(device)
        outputs = {"model": model(images)}  # (B, K) logits
        if getattr(model, "head_dist", None) is not None:
            heads = model.forward_heads(model.forward_features(images))
            outputs.update(class_head=heads[0], distillation_head=heads[1])
        for name, logits in outputs.items():
            said.setdefault(name, []).append(logits.argmax(dim=1).cpu())
        taught.append(teacher(images).argmax(dim=1).cpu())
        truth.append(labels)
    taught, truth = torch.cat(taught), torch.cat(truth)  # (n,) each
    teacher_wrong = taught != truth
    result = {"teacher_mistakes": int(teacher_wrong.sum())}
    for name, kept in said.items():
        predicted = torch.cat(kept)
        result[f"agree_{name}"] = (predicted == taught).float().mean().item()
        result[f"shared_mistakes_{name}"] = int((teacher_wrong & (predicted == taught)).sum())
    return result


def run_levers(
    names: list[str],
    out: Path,
    results: Path,
    data: str | None = None,
    quick: bool = False,
    seeds: tuple[int, ...] = (0,),
) -> list:
    """Every (lever, seed) of ``names`` x ``seeds`` not yet in ``results``, each row saved when done.

    Seed 0's run lives in ``out/<lever>``, seed s's in ``out/<lever>_seed<s>``.
    """
    device = pick_device()
    for seed in seeds:
        for name in names:
            label = name if seed == 0 else f"{name}, seed {seed}"
            stored = load_results(results)  # read anew: another process may have finished this run
            if any(row["lever"] == name and row["seed"] == seed for row in stored["rows"]):
                print(f"{label}: done, skipped")
                continue
            recipe = LEVERS[name]
            if quick:
                recipe = dataclasses.replace(recipe, epochs=1, train_subset=512, warmup_epochs=0)
            started = time.perf_counter()
            run_dir = out / (name if seed == 0 else f"{name}_seed{seed}")
            row = train_and_test(name, recipe, run_dir, data, seed=seed, device=device)
            print(f"{label}: test accuracy {row['test_acc_raw']:.2%} raw, {row['test_acc_ema']:.2%} averaged "
                  f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
            stored = load_results(results)  # and again: another process may have added rows meanwhile
            stored["rows"].append(row)
            stored["command"] = "python -m vitlib.experiments.levers --out OUT" + (" --quick" if quick else "")
            write_json(results, stored)
    return load_results(results)["rows"]


_REPORT_COLUMNS = [  # (heading, how to read it from a row); '' where a row lacks it
    ("lever", lambda row: f"`{row['lever']}`"),
    ("seed", lambda row: f"{row['seed']}"),
    ("test acc., raw weights", lambda row: f"{row['test_acc_raw']:.2%}"),
    ("test acc., moving average", lambda row: f"{row['test_acc_ema']:.2%}"),
    (
        "class head / distillation head",
        lambda row: f"{row['test_acc_class_head']:.2%} / {row['test_acc_distillation_head']:.2%}",
    ),
    ("agrees with the teacher", lambda row: f"{row['agree_model']:.2%}"),
    ("teacher's mistakes repeated", lambda row: f"{row['shared_mistakes_model']} of {row['teacher_mistakes']}"),
    ("training time", lambda row: f"{row['train_seconds'] / 60:.0f} min"),
]


def markdown_report(rows: list[dict]) -> str:
    """The finished runs as a Markdown table, one row each, by lever (in LEVERS' order), then seed."""
    order = list(LEVERS)
    rows = sorted(rows, key=lambda row: (order.index(row["lever"]) if row["lever"] in order else len(order),
                                         row["seed"]))  # fmt: skip
    lines = ["| " + " | ".join(name for name, _ in _REPORT_COLUMNS) + " |"]
    lines.append("| --- |" + " ---: |" * (len(_REPORT_COLUMNS) - 1))
    for row in rows:
        cells = []
        for _, read in _REPORT_COLUMNS:
            try:
                cells.append(read(row))
            except KeyError:  # a column this lever has not got (one head)
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    machines = sorted({machine_label(row["machine"]) for row in rows})
    return "\n".join(lines) + ("\n\nMachine: " + "; ".join(machines) if machines else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitlib.experiments.levers",
        description="Train the quick recipe's ViT with one lever at a time: plain, elastic distortions, "
        "distillation; each with an EMA of its weights. Resumable.",
    )
    parser.add_argument("--out", default="runs/levers", help="folder for the runs' checkpoints")
    parser.add_argument("--only", nargs="+", choices=sorted(LEVERS), help="run only these levers")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="train each lever once per seed (default: 0)")
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA, else ~/.cache/vitlib)")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 512 images, results in OUT: a smoke run")
    parser.add_argument(
        "--report", action="store_true", help="print the finished levers as a Markdown table; train nothing"
    )
    args = parser.parse_args(argv)
    if args.report:
        print(markdown_report(load_results()["rows"]))
        return 0
    out = Path(args.out)
    results = out / "levers.json" if args.quick else RESULTS_FILE
    run_levers(args.only or list(LEVERS), out, results, data=args.data, quick=args.quick, seeds=tuple(args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
