"""MNIST: where the files are, a fixed train/validation split, normalization and DataLoaders.

Book chapter 5, "Training on MNIST". The data root comes from, in order: the ``root`` argument,
the ``VITLIB_DATA`` environment variable, or ``~/.cache/vitlib`` (where torchvision downloads
MNIST when the machine is online, as in Colab).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision.transforms import v2

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "MnistLoaders",
    "load_mnist",
    "make_loaders",
    "mnist_transform",
    "resolve_data_root",
    "train_val_split",
]

# Mean and standard deviation of the 60,000 training images, pixels scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
DEFAULT_ROOT = Path.home() / ".cache" / "vitlib"
VALIDATION_SIZE = 5000
SPLIT_SEED = 0  # fixed, so the validation images are the same in every run and every chapter


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds (or will hold) ``MNIST/raw``: ``root``, else $VITLIB_DATA, else a cache."""
    if root is not None:
        return Path(root).expanduser()
    from_env = os.environ.get("VITLIB_DATA")
    return Path(from_env).expanduser() if from_env else DEFAULT_ROOT


def mnist_transform(augment: bool = False) -> v2.Compose:
    """uint8 PIL digit -> normalized float tensor (1, 28, 28); with ``augment``, a small random affine.

    Digits are never flipped: a mirrored 2 is not a 2. Shifts of up to 2 pixels, rotations up to
    10 degrees and scaling by up to 10% keep every digit readable.
    """
    steps = [v2.ToImage()]
    if augment:
        steps.append(v2.RandomAffine(degrees=10, translate=(2 / 28, 2 / 28), scale=(0.9, 1.1)))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([MNIST_MEAN], [MNIST_STD])]
    return v2.Compose(steps)


def load_mnist(
    train: bool, root: str | os.PathLike | None = None, transform=None, download: bool = True
) -> datasets.MNIST:
    """torchvision's MNIST from the resolved root; downloads only when the files are missing.

    Raises:
        ValueError: the files are not there and cannot be downloaded (offline), with the fix.
    """
    data_root = resolve_data_root(root)
    try:
        return datasets.MNIST(str(data_root), train=train, transform=transform, download=download)
    except (RuntimeError, OSError) as error:  # torchvision raises RuntimeError when it cannot download
        raise ValueError(
            f"MNIST is not in {data_root / 'MNIST' / 'raw'} and could not be downloaded ({error}). "
            f"Point vitlib at a folder that holds MNIST/raw/*-ubyte: pass root=..., or set "
            f"VITLIB_DATA=/absolute/path/to/data (for example `export VITLIB_DATA=$PWD/../shared/data`)."
        ) from error


def train_val_split(num_examples: int, validation_size: int = VALIDATION_SIZE, seed: int = SPLIT_SEED):
    """Indices (train, validation) of a fixed random split of ``range(num_examples)``."""
    if not 0 < validation_size < num_examples:
        raise ValueError(f"validation_size must be in (0, {num_examples}), got {validation_size}")
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[validation_size:], order[:validation_size]


@dataclass
class MnistLoaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader


def make_loaders(
    root: str | os.PathLike | None = None,
    *,
    batch_size: int = 128,
    augment: bool = True,
    validation_size: int = VALIDATION_SIZE,
    train_subset: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
) -> MnistLoaders:
    """DataLoaders for 55,000 training, 5,000 validation and the 10,000 test images.

    Args:
        root: data folder (see ``resolve_data_root``).
        batch_size: images per batch.
        augment: random affine on the training images only.
        validation_size: images held out of the training set for validation.
        train_subset: keep only the first this-many training images of the split (for the
            data-efficiency experiments and quick runs).
        num_workers: DataLoader worker processes.
        seed: seeds the shuffling of the training batches.
    """
    train_full = load_mnist(True, root, transform=mnist_transform(augment))
    plain = load_mnist(True, root, transform=mnist_transform(False))
    test = load_mnist(False, root, transform=mnist_transform(False))
    train_idx, val_idx = train_val_split(len(train_full), validation_size)
    if train_subset is not None:
        if not 0 < train_subset <= len(train_idx):
            raise ValueError(f"train_subset must be in [1, {len(train_idx)}], got {train_subset}")
        train_idx = train_idx[:train_subset]
    common = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    generator = torch.Generator().manual_seed(seed)
    return MnistLoaders(
        train=DataLoader(Subset(train_full, train_idx), shuffle=True, drop_last=True, generator=generator, **common),
        val=DataLoader(Subset(plain, val_idx), shuffle=False, **common),
        test=DataLoader(test, shuffle=False, **common),
    )
