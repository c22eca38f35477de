"""The models the book ships: the ViT (``mnist_best``, trained with ``python -m vitlib.train
--preset best``) and the CNN teacher for distillation (``mnist_teacher``, ``--preset teacher``).

Book chapter 6 compares the model it trains with the ViT, and can visualize it without training;
``--teacher`` reuses the teacher. The weights (safetensors, about 0.8 MB each) and the training
histories live in ``vitlib/pretrained/`` and install with the package.
"""

import json
from pathlib import Path

from vitlib.checkpoint import load_model_weights
from vitlib.model import VisionTransformer

__all__ = ["load_pretrained", "pretrained_info"]

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
AVAILABLE = ("mnist_best", "mnist_teacher")
TEACHER_PATH = PRETRAINED_DIR / "mnist_teacher.safetensors"  # for --teacher


def _path(name: str, suffix: str) -> Path:
    if name not in AVAILABLE:
        raise ValueError(f"unknown pretrained model {name!r}: expected one of {AVAILABLE}")
    path = PRETRAINED_DIR / f"{name}{suffix}"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall vitlib, or train it with "
                                f"python -m vitlib.train --preset best")  # fmt: skip
    return path


def load_pretrained(name: str = "mnist_best") -> VisionTransformer:
    """A shipped model, in eval mode on the CPU (``mnist_teacher`` is a ``vitlib.cnn.SmallCNN``)."""
    model, _ = load_model_weights(_path(name, ".safetensors"))
    return model


def pretrained_info(name: str = "mnist_best") -> dict:
    """How the shipped model was made: {'summary': test accuracy, time, command...,
    'recipe': the training recipe, 'history': one dict per epoch}."""
    _, metadata = load_model_weights(_path(name, ".safetensors"))
    metadata["history"] = json.loads(_path(name, ".history.json").read_text())
    return metadata
