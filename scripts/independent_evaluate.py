"""Test accuracy by a loop that shares no data code with vitlib: torchvision's MNIST, ``ToTensor``
and ``Normalize``, batches of 500, the argmax of the model's logits.

    python scripts/independent_evaluate.py runs/distilled_best/model.safetensors distilled_best

The preset names the recipe whose model the weights belong to. Prints one JSON line.
"""

import argparse
import json

import torch
from safetensors.torch import load_file
from torchvision import datasets, transforms

from vitlib import VisionTransformer
from vitlib.data import MNIST_MEAN, MNIST_STD, resolve_data_root
from vitlib.train import CNN, RECIPES


def test_accuracy(model: torch.nn.Module, data_root: str) -> tuple[int, int]:
    """(digits right, digits in all) on MNIST's 10,000 test digits."""
    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    test_set = datasets.MNIST(data_root, train=False, transform=preprocess)
    right = 0
    with torch.no_grad():
        for images, labels in torch.utils.data.DataLoader(test_set, batch_size=500):  # (500, 1, 28, 28)
            right += (model(images).argmax(dim=-1) == labels).sum().item()
    return right, len(test_set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a model.safetensors written by python -m vitlib.train")
    parser.add_argument("preset", choices=[name for name, recipe in RECIPES.items() if recipe.model != CNN])
    parser.add_argument("--data", default=None, help="folder holding MNIST/raw (default: $VITLIB_DATA)")
    args = parser.parse_args()
    model = VisionTransformer(RECIPES[args.preset].model_config())
    model.load_state_dict(load_file(args.weights))
    right, total = test_accuracy(model.eval(), str(resolve_data_root(args.data)))
    print(json.dumps({"weights": args.weights, "preset": args.preset, "right": right, "of": total,
                      "test_acc": right / total}))  # fmt: skip


if __name__ == "__main__":
    main()
