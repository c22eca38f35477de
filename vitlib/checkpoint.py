"""Saving and loading training state safely.

A checkpoint is a plain ``torch.save`` dictionary of tensors, numbers and strings, loaded with
``weights_only=True`` so that opening a file can never run code from it. Files are written to a
temporary name and renamed, so an interrupted save never leaves a half-written checkpoint.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vitlib.cnn import SmallCNN
from vitlib.model import VisionTransformer, ViTConfig

__all__ = ["atomic_write", "load_checkpoint", "load_model_weights", "save_checkpoint", "save_model_weights"]

CHECKPOINT_FORMAT = 1


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, payload: Any) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(payload, indent=2) + "\n")

    atomic_write(path, write)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save a training state dictionary (tensors, numbers, strings, lists, dicts) atomically."""
    atomic_write(path, lambda tmp: torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a file written by ``save_checkpoint`` without executing anything stored in it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated, corrupted or not a vitlib checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on bad files
        raise ValueError(
            f"{path} is not a readable vitlib checkpoint (truncated or corrupted?): {error}. "
            f"Delete it and train again, or resume from an earlier copy."
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a vitlib checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def save_model_weights(path: str | os.PathLike, model: VisionTransformer | SmallCNN, metadata: dict[str, Any]) -> None:
    """Save only the weights, as safetensors, with the config and ``metadata`` as JSON strings.

    A ``SmallCNN`` (the distillation teacher) is saved too, its constructor's arguments as config.
    """
    if isinstance(model, SmallCNN):
        header = {"architecture": json.dumps("SmallCNN"), "config": json.dumps(model.arguments)}
    elif isinstance(model, VisionTransformer):
        header = {"config": json.dumps(model.config.to_dict())}
    else:
        raise ValueError(f"can save a VisionTransformer or a SmallCNN, got {type(model).__name__}")
    header.update({key: json.dumps(value) for key, value in metadata.items()})
    weights = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(weights, tmp, metadata=header))


def load_model_weights(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model_weights``; returns (model in eval mode, metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        weights = load_file(str(path))
    except Exception as error:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupted?): {error}") from error
    if "config" not in header:
        raise ValueError(f"{path} has no vitlib config in its metadata")
    metadata = {key: json.loads(value) for key, value in header.items()}
    config = metadata.pop("config")
    is_cnn = metadata.pop("architecture", None) == "SmallCNN"
    model = SmallCNN(**config) if is_cnn else VisionTransformer(ViTConfig(**config))
    model.load_state_dict(weights)
    return model.eval(), metadata
