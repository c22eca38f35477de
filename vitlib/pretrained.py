"""The model the book ships: trained with ``python -m vitlib.train --preset best``.

Book chapter 6 compares the model it trains with this one, and can visualize it without
training. The weights (safetensors, about 0.8 MB) and the training history live in
``vitlib/pretrained/`` and install with the package.
"""

import json
from pathlib import Path

from vitlib.checkpoint import load_model_weights
from vitlib.model import VisionTransformer

__all__ = ["load_pretrained", "pretrained_info"]

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
AVAILABLE = ("mnist_best",)


def _path(name: str, suffix: str) -> Path:
    if name not in AVAILABLE:
        raise ValueError(f"unknown pretrained model {name!r}: expected one of {AVAILABLE}")
    path = PRETRAINED_DIR / f"{name}{suffix}"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall vitlib, or train it with "
                                f"python -m vitlib.train --preset best")  # fmt: skip
    return path


def load_pretrained(name: str = "mnist_best") -> VisionTransformer:
    """The shipped model, in eval mode on the CPU."""
    model, _ = load_model_weights(_path(name, ".safetensors"))
    return model


def pretrained_info(name: str = "mnist_best") -> dict:
    """How the shipped model was made: {'summary': test accuracy, time, command...,
    'recipe': the training recipe, 'history': one dict per epoch}."""
    _, metadata = load_model_weights(_path(name, ".safetensors"))
    metadata["history"] = json.loads(_path(name, ".history.json").read_text())
    return metadata
