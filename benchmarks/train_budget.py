"""Test accuracy reached in a fixed time budget: vitlib's `quick` recipe against the common tutorial recipe.

    python benchmarks/train_budget.py                      # 5- and 10-minute budgets, about 30 minutes
    python benchmarks/train_budget.py --budgets 1 --recipes quick tutorial

The tutorial recipe is the one most ViT-on-MNIST tutorials use: 7x7 patches, Adam at a constant
1e-3, no augmentation, no label smoothing. For each budget, a few timed steps measure how long
an epoch takes; the run then gets as many whole epochs as fit in the budget (the cosine schedule
needs to know its length), trains, and is evaluated on the 10,000 test images.
"""

import argparse
import dataclasses
import json
import platform
import time

import torch
import torch.nn.functional as F

from vitlib.data import make_loaders
from vitlib.model import VisionTransformer
from vitlib.train import RECIPES, evaluate, fit


def seconds_per_epoch(recipe, loaders, steps: int = 30) -> float:
    """Time ``steps`` training steps (after 5 warm-up steps) and scale to one epoch."""
    torch.manual_seed(0)
    model = VisionTransformer(recipe.model_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = iter(loaders.train)
    for step in range(steps + 5):
        if step == 5:
            started = time.perf_counter()
        images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_step = (time.perf_counter() - started) / steps
    return per_step * len(loaders.train) * 1.04  # plus validation, about 4% of an epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=float, nargs="+", default=[5, 10], help="minutes of training per run")
    parser.add_argument("--recipes", nargs="+", default=["quick", "tutorial"], choices=sorted(RECIPES))
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    rows = []
    for name in args.recipes:
        recipe = RECIPES[name]
        loaders = make_loaders(args.data, batch_size=recipe.batch_size, augment=recipe.augment)
        epoch_seconds = seconds_per_epoch(recipe, loaders)
        for minutes in args.budgets:
            epochs = max(1, int(minutes * 60 / epoch_seconds))
            run = dataclasses.replace(recipe, epochs=epochs)
            torch.manual_seed(0)
            model = VisionTransformer(run.model_config())
            started = time.perf_counter()
            fit(model, loaders.train, loaders.val, run, device="cpu", progress=False)
            seconds = time.perf_counter() - started
            test = evaluate(model, loaders.test)
            rows.append(dict(recipe=name, budget_min=minutes, epochs=epochs, train_s=seconds, test_acc=test["acc"]))
            print(f"{name:<9} budget {minutes:>4g} min: {epochs:>3} epochs in {seconds / 60:5.1f} min, "
                  f"test accuracy {test['acc']:.2%}", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
