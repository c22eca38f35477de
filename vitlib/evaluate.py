"""Test accuracy of a trained model, overall and per digit.

Command line::

    python -m vitlib.evaluate runs/quick/model.safetensors
    python -m vitlib.evaluate runs/quick/checkpoint.pt --data ../shared/data
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vitlib.checkpoint import load_checkpoint, load_model_weights
from vitlib.data import DigitBatch, mnist_tensors
from vitlib.model import VisionTransformer, ViTConfig
from vitlib.train import evaluate, pick_device

__all__ = ["load_trained_model", "per_class_accuracy"]


def load_trained_model(path: str | Path) -> VisionTransformer:
    """A model from ``model.safetensors`` (weights only) or ``checkpoint.pt`` (a training state)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_model_weights(path)[0]
    state = load_checkpoint(path)
    if state.get("model_config") is None:
        raise ValueError(f"{path} holds no ViT config, so vitlib cannot rebuild its model")
    model = VisionTransformer(ViTConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def per_class_accuracy(predictions: list[int], labels: list[int], num_classes: int = 10) -> list[float]:
    """Accuracy on the examples of each class: entry c is correct-of-class-c / count-of-class-c."""
    predicted, target = torch.tensor(predictions), torch.tensor(labels)
    counts = torch.bincount(target, minlength=num_classes).float()
    correct = torch.bincount(target[predicted == target], minlength=num_classes).float()
    return (correct / counts.clamp(min=1)).tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitlib.evaluate", description="Evaluate a trained ViT on the 10,000 MNIST test images."
    )
    parser.add_argument("checkpoint", help="model.safetensors or checkpoint.pt written by python -m vitlib.train")
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA, else ~/.cache/vitlib)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per batch (default 500)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        model = load_trained_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    test = mnist_tensors(False, args.data)
    device = pick_device()
    loader = DataLoader(test, batch_size=args.batch_size, collate_fn=DigitBatch())
    result = evaluate(model.to(device), loader, device)
    per_class = per_class_accuracy(result["predictions"], result["labels"], model.config.num_classes)
    if args.json:
        print(json.dumps({"test_acc": result["acc"], "test_loss": result["loss"], "per_class_acc": per_class}))
        return 0
    errors = sum(p != t for p, t in zip(result["predictions"], result["labels"], strict=True))
    print(f"test accuracy {result['acc']:.2%} ({errors} of {len(test)} wrong), loss {result['loss']:.4f}")
    for digit, accuracy in enumerate(per_class):
        print(f"  digit {digit}: {accuracy:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
