"""Inductive bias, shown exactly and measured: book chapters 1 and 2.

Three exact demonstrations of what a convolution assumes and a ViT does not:

- translation: shift the image by one patch and a convolution's feature map shifts with it;
  a ViT's tokens shift with it only when there are no position embeddings;
- permutation: without position embeddings a ViT cannot tell shuffled patches apart;
- locality: a 3x3 convolution sees a (2k+1)x(2k+1) window after k layers, one encoder block
  sees the whole image.

Chapter 1 writes the convolution's halves inline and checks them against these functions;
chapter 2 writes the ViT's halves (the token shift, the patch shuffle) inline, next to the
position embeddings they test. These functions are the tested reference for both.

And the measured experiment: the CNN baseline and the ViT trained on growing subsets of MNIST
with the same recipe, evaluated on the full test set::

    python -m vitlib.experiments.inductive_bias --out runs/inductive_bias
    python -m vitlib.experiments.inductive_bias --quick   # a smoke run, a minute
"""

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from vitlib.checkpoint import write_json
from vitlib.cnn import SmallCNN
from vitlib.data import DigitBatch, make_loaders
from vitlib.model import VisionTransformer
from vitlib.patches import patchify, unpatchify
from vitlib.train import RECIPES, evaluate, fit, pick_device

__all__ = [
    "attention_receptive_field",
    "conv_receptive_field",
    "conv_shift_error",
    "load_results",
    "patch_shuffle_change",
    "plot_results",
    "run_experiment",
    "token_shift_error",
]


def shift_right(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move (B, C, H, W) images right by ``pixels``, wrapping around (the digit stays whole)."""
    return torch.roll(images, shifts=pixels, dims=-1)


@torch.no_grad()
def conv_shift_error(conv: nn.Module, images: torch.Tensor, pixels: int) -> float:
    """max |conv(shift(x)) - shift(conv(x))|: zero for a translation-equivariant map.

    The shift wraps around, so the equality is exact for stride-1 convolutions with circular
    padding (``padding_mode='circular'``); zero padding breaks it only within a few pixels of
    the borders.
    """
    return (conv(shift_right(images, pixels)) - shift_right(conv(images), pixels)).abs().max().item()


@torch.no_grad()
def token_shift_error(model: VisionTransformer, images: torch.Tensor) -> float:
    """Shift the images by one patch: do the ViT's output patch tokens move one grid step with them?

    Returns max |tokens(shifted)[r, c + 1] - tokens(x)[r, c]| over the patch tokens: zero when the
    tokens move with the image, which happens exactly when the model has no position embeddings.
    """
    model.eval()
    grid_height, grid_width = model.patch_embed.grid_size
    prefix = model.num_prefix_tokens

    def patch_tokens(x: torch.Tensor) -> torch.Tensor:
        tokens = model.forward_features(x)[:, prefix:]  # (B, N, D)
        return tokens.reshape(x.shape[0], grid_height, grid_width, -1)  # (B, gh, gw, D)

    moved = patch_tokens(shift_right(images, model.config.patch_size))
    return (moved.roll(-1, dims=2) - patch_tokens(images)).abs().max().item()


@torch.no_grad()
def patch_shuffle_change(model: VisionTransformer, images: torch.Tensor, seed: int = 0) -> float:
    """max |logits(patches shuffled) - logits(x)| / max |logits(x)|: zero when patch order is invisible."""
    model.eval()
    patch_size, grid = model.config.patch_size, model.patch_embed.grid_size
    order = torch.randperm(grid[0] * grid[1], generator=torch.Generator().manual_seed(seed))
    shuffled = unpatchify(patchify(images, patch_size)[:, order], patch_size, grid)
    logits = model(images)
    return ((model(shuffled) - logits).abs().max() / logits.abs().max()).item()


def _input_gradient_support(output_of: callable, image_shape: tuple[int, ...]) -> torch.Tensor:
    """Which input pixels can change ``output_of(image)`` (a scalar): a boolean (H, W) map."""
    image = torch.randn(1, *image_shape, requires_grad=True)
    output_of(image).backward()
    return image.grad[0].abs().sum(0) > 0  # (H, W)


def conv_receptive_field(num_layers: int, image_size: int = 28, kernel_size: int = 3) -> torch.Tensor:
    """The pixels one central output of ``num_layers`` stacked convolutions can see: (H, W) bool."""
    torch.manual_seed(0)
    stack = nn.Sequential(
        *[nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2) for _ in range(num_layers)]
    )  # fmt: skip
    centre = image_size // 2
    return _input_gradient_support(lambda x: stack(x)[0, 0, centre, centre], (1, image_size, image_size))


def attention_receptive_field(model: VisionTransformer, token: int | None = None) -> torch.Tensor:
    """The pixels one patch token can see after the first encoder block: (H, W) bool."""
    config = model.config
    token = model.patch_embed.num_patches // 2 if token is None else token
    block = model.blocks[0]

    def first_block_token(x: torch.Tensor) -> torch.Tensor:
        return block(model.embed(x))[0, model.num_prefix_tokens + token].sum()

    return _input_gradient_support(first_block_token, (config.in_chans, config.image_size, config.image_size))


# --- The data-efficiency experiment -----------------------------------------------------------

SIZES = (500, 2_000, 10_000, 55_000)
QUICK_SIZES = (200, 1_000)


def epochs_for(train_size: int, total_images: int) -> int:
    """The budget rule: every run sees the same number of training images, at least 1 epoch."""
    return max(1, round(total_images / train_size))


def run_experiment(
    sizes: tuple[int, ...],
    total_images: int,
    data: str | None,
    device: torch.device,
    seed: int = 0,
    test_limit: int | None = None,
) -> list[dict]:
    """Train the CNN and the ViT on each training-set size; returns one row per (model, size).

    Each model is tested on all 10,000 test images, or on the first ``test_limit`` of them.
    """
    recipe = RECIPES["quick"]
    rows = []
    for size in sizes:
        run_recipe = dataclasses.replace(recipe, epochs=epochs_for(size, total_images), train_subset=size)
        loaders = make_loaders(data, batch_size=min(recipe.batch_size, size), train_subset=size, seed=seed)
        test_loader = loaders.test
        if test_limit is not None:
            test_subset = Subset(loaders.test.dataset, range(test_limit))
            test_loader = DataLoader(test_subset, batch_size=500, collate_fn=DigitBatch())
        for name, build in (("CNN", SmallCNN), ("ViT", lambda: VisionTransformer(recipe.model_config()))):
            torch.manual_seed(seed)
            model = build()
            started = time.perf_counter()
            # no validation: the smallest subsets run hundreds of epochs, and only the test set is reported
            fit(model, loaders.train, None, run_recipe, device=device, seed=seed, progress=False, verbose=False)
            test = evaluate(model, test_loader, device)
            rows.append(
                {
                    "model": name,
                    "train_size": size,
                    "epochs": run_recipe.epochs,
                    "test_acc": test["acc"],
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "seconds": time.perf_counter() - started,
                }
            )
            print(f"{name} on {size:>6,} images, {run_recipe.epochs:>3} epochs: test accuracy {test['acc']:.2%}")
    return rows


RESULTS_FILE = Path(__file__).parent / "results" / "inductive_bias.json"


def load_results(path: str | Path = RESULTS_FILE) -> dict:
    """The full run kept with vitlib (rows, command, seconds, machine), as ``main`` wrote it."""
    return json.loads(Path(path).read_text())


def plot_results(rows: list[dict]):
    """Test accuracy against training-set size, one line per model, log-scaled x axis."""
    from vitlib.viz import NotebookFigure  # matplotlib only when plotting

    figure = NotebookFigure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for index, name in enumerate(sorted({row["model"] for row in rows})):
        mine = sorted((row for row in rows if row["model"] == name), key=lambda row: row["train_size"])
        sizes, accuracies = [row["train_size"] for row in mine], [100 * row["test_acc"] for row in mine]
        ax.plot(sizes, accuracies, "o-", label=name)
        for size, accuracy in zip(sizes, accuracies, strict=True):
            ax.annotate(
                f"{accuracy:.2f}",
                (size, accuracy),
                textcoords="offset points",
                xytext=(0, 6 if index == 0 else -13),
                ha="center",
            )
    ax.set_xscale("log")
    ax.margins(x=0.08, y=0.12)  # room for the value labels
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Data efficiency on MNIST: CNN vs ViT, same recipe and budget")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitlib.experiments.inductive_bias",
        description="Train the CNN baseline and the ViT on growing MNIST subsets and compare test accuracy.",
    )
    parser.add_argument("--out", default="runs/inductive_bias", help="folder for results.json and results.png")
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA, else ~/.cache/vitlib)")
    parser.add_argument(
        "--quick", action="store_true", help="two tiny subsets, a small budget, 1,000 test images: a smoke run"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    total_images = 2_000 if args.quick else 8 * 55_000  # every run's budget: 8 epochs' worth of the full set
    device = pick_device()
    started = time.perf_counter()
    rows = run_experiment(sizes, total_images, args.data, device, args.seed, 1_000 if args.quick else None)
    out = Path(args.out)
    result = {
        "rows": rows,
        "command": "python -m vitlib.experiments.inductive_bias "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {device}",
        "torch": torch.__version__,
    }
    write_json(out / "results.json", result)
    plot_results(rows).savefig(out / "results.png", dpi=120)
    print(f"wrote {out / 'results.json'} and {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
