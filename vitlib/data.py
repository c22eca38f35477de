"""MNIST: where the files are, a fixed train/validation split, normalization and DataLoaders.

Book chapter 5, "Training on MNIST". The data root comes from, in order: the ``root`` argument,
the ``VITLIB_DATA`` environment variable, or ``~/.cache/vitlib`` (where torchvision downloads
MNIST when the machine is online, as in Colab).
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchvision import datasets

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "DigitBatch",
    "MnistLoaders",
    "RandomAffineBatch",
    "RandomElasticBatch",
    "affine_batch",
    "elastic_batch",
    "load_mnist",
    "make_loaders",
    "mnist_tensors",
    "normalize",
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


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] -> zero mean, unit variance over the training set. Any shape."""
    return (images - MNIST_MEAN) / MNIST_STD


def affine_batch(images: torch.Tensor, degrees: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate, scale and shift every image of a batch by its own amount, filling with zeros.

    Args:
        images: (B, C, H, W), background 0 (apply before normalizing).
        degrees: (B,) anticlockwise rotation about the centre.
        scale: (B,) zoom factor; 1.1 makes the digit 10% larger.
        shift: (B, 2) shift in pixels, (right, down).
    """
    height, width = images.shape[-2:]
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps each output pixel to the input pixel it reads, in coordinates where the
    # image spans [-1, 1] and y points down: the inverse of the motion (-angle, 1 / scale, -shift).
    theta = torch.stack(
        [
            torch.stack([cos, -sin, -2 * shift[:, 0] / width], dim=1),
            torch.stack([sin, cos, -2 * shift[:, 1] / height], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomAffineBatch:
    """Small random rotations, zooms and shifts, drawn independently for every image of a batch.

    The defaults keep every digit readable: up to 10 degrees, 10% and 2 pixels. No flips: a
    mirrored 2 is not a 2. It works on whole batches because per-image transforms cost more
    than the ViT's forward pass on a 2-core CPU.
    """

    def __init__(self, degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), shift: float = 2.0):
        self.degrees, self.scale, self.shift = degrees, scale, shift

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> same shape, each image moved at random."""
        batch = images.shape[0]
        degrees = (torch.rand(batch) * 2 - 1) * self.degrees
        scale = self.scale[0] + torch.rand(batch) * (self.scale[1] - self.scale[0])
        shift = (torch.rand(batch, 2) * 2 - 1) * self.shift
        return affine_batch(images, degrees, scale, shift)


def elastic_batch(images: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Move every pixel of every image by its own displacement, filling with zeros.

    Args:
        images: (B, C, H, W), background 0 (apply before normalizing).
        displacement: (B, 2, H, W) in pixels, (right, down): output pixel (y, x) reads the input
            at (y + down, x + right), bilinearly interpolated.
    """
    height, width = images.shape[-2:]
    identity = torch.eye(2, 3, dtype=images.dtype).expand(images.shape[0], 2, 3)  # (B, 2, 3)
    grid = F.affine_grid(identity, list(images.shape), align_corners=False)  # (B, H, W, 2), x then y in [-1, 1]
    scale = torch.tensor([2 / width, 2 / height], dtype=images.dtype)  # pixels -> grid units
    grid = grid + displacement.permute(0, 2, 3, 1) * scale
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomElasticBatch:
    """Simard et al.'s (2003) elastic distortions: a smooth random field moves every pixel.

    Each image gets its own field: uniform noise in [-1, 1] for each pixel and direction,
    smoothed by a Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels. Simard et al.
    chose sigma = 4 and alpha = 34 for MNIST: the stroke bends as a hand's would, the digit stays
    the same. Works on whole batches, as ``RandomAffineBatch`` does.
    """

    def __init__(self, alpha: float = 34.0, sigma: float = 4.0) -> None:
        if alpha < 0 or sigma <= 0:
            raise ValueError(f"alpha must be >= 0 and sigma > 0 (pixels), got alpha={alpha}, sigma={sigma}")
        self.alpha, self.sigma = alpha, sigma
        radius = math.ceil(3 * sigma)  # the Gaussian out to 3 sigma on each side
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
        self.kernel = kernel / kernel.sum()  # (2 radius + 1,), sums to 1

    def blur_matrix(self, size: int) -> torch.Tensor:
        """(size, size) M with M @ v the Gaussian blur of a length-``size`` signal v, edges reflected.

        Column j is the blurred unit vector e_j. A blur is linear, so blurring a (H, W) field along
        both axes is M_H @ field @ M_W^T: two small matrix products, cheaper than a convolution.
        """
        radius = len(self.kernel) // 2
        if size <= radius:
            raise ValueError(f"images of {size} pixels are too small for sigma={self.sigma}: need more than {radius}")
        units = F.pad(torch.eye(size)[:, None], (radius, radius), mode="reflect")  # (size, 1, size + 2 radius)
        return F.conv1d(units, self.kernel.view(1, 1, -1))[:, 0].T  # (size, size)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> same shape, each image bent at random."""
        batch, _, height, width = images.shape
        noise = torch.rand(batch, 2, height, width) * 2 - 1  # (B, 2, H, W)
        field = self.blur_matrix(height) @ noise @ self.blur_matrix(width).T  # (B, 2, H, W), smooth
        return elastic_batch(images, self.alpha * field.to(images.dtype))


class Compose:
    """Apply batch augmentations one after the other."""

    def __init__(self, *augmentations) -> None:
        self.augmentations = augmentations

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for augmentation in self.augmentations:
            images = augmentation(images)
        return images


class DigitBatch:
    """DataLoader ``collate_fn``: stack (image in [0, 1], label) pairs, augment, normalize."""

    def __init__(self, augment=None) -> None:  # a batch augmentation: RandomAffineBatch, ...
        self.augment = augment

    def __call__(self, samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([image for image, _ in samples])  # (B, 1, 28, 28)
        labels = torch.stack([label for _, label in samples])  # (B,)
        if self.augment is not None:
            images = self.augment(images)
        return normalize(images), labels


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


def mnist_tensors(train: bool, root: str | os.PathLike | None = None) -> TensorDataset:
    """All of MNIST's training (or test) set in memory: images (N, 1, 28, 28) in [0, 1], labels (N,)."""
    digits = load_mnist(train, root)
    return TensorDataset(digits.data[:, None].float() / 255, digits.targets)


def train_val_split(num_examples: int, validation_size: int = VALIDATION_SIZE, seed: int = SPLIT_SEED):
    """Indices (train, validation) of a fixed random split of ``range(num_examples)``."""
    if not 0 < validation_size < num_examples:
        raise ValueError(f"validation_size must be in (0, {num_examples}), got {validation_size}")
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[validation_size:], order[:validation_size]


def _shard_loader(dataset, batch_size: int, seed: int, collate_fn, num_workers: int) -> DataLoader:
    """This process's share of every global batch of ``batch_size``, in a torch.distributed run."""
    from torch.utils.data.distributed import DistributedSampler

    world = torch.distributed.get_world_size()
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over {world} processes: pick a multiple of {world}"
        )
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)  # rank, world from the group
    return DataLoader(
        dataset, batch_size=batch_size // world, sampler=sampler, drop_last=True, collate_fn=collate_fn,
        num_workers=num_workers, persistent_workers=num_workers > 0,
    )  # fmt: skip


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
    elastic: bool = False,
    validation_size: int = VALIDATION_SIZE,
    train_subset: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    distributed: bool = False,
) -> MnistLoaders:
    """DataLoaders for 55,000 training, 5,000 validation and the 10,000 test images.

    Args:
        root: data folder (see ``resolve_data_root``).
        batch_size: images per batch.
        augment: random rotation, zoom and shift of the training images (``RandomAffineBatch``).
        elastic: elastic distortions too, after the affine move (``RandomElasticBatch``).
        validation_size: images held out of the training set for validation.
        train_subset: keep only the first this-many training images of the split (for the
            data-efficiency experiments and quick runs).
        num_workers: DataLoader worker processes.
        seed: seeds the shuffling of the training batches.
        distributed: inside torchrun, give this process its shard of every training batch
            (``DistributedSampler``, shuffled anew each epoch by ``fit``): batch_size is the global
            batch, split evenly over the processes. Validation and test loaders stay whole.
    """
    train_full, test = mnist_tensors(True, root), mnist_tensors(False, root)
    train_idx, val_idx = train_val_split(len(train_full), validation_size)
    if train_subset is not None:
        if not 0 < train_subset <= len(train_idx):
            raise ValueError(f"train_subset must be in [1, {len(train_idx)}], got {train_subset}")
        train_idx = train_idx[:train_subset]
    common = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    generator = torch.Generator().manual_seed(seed)
    if elastic and not augment:
        raise ValueError("elastic=True adds to the affine augmentation: pass augment=True with it")
    augmentation = RandomAffineBatch() if augment else None
    if elastic:
        augmentation = Compose(augmentation, RandomElasticBatch())
    train_batches = DigitBatch(augmentation)
    train_set = Subset(train_full, train_idx)
    if distributed:
        train = _shard_loader(train_set, batch_size, seed, train_batches, num_workers)
    else:
        train = DataLoader(
            train_set, shuffle=True, drop_last=True, generator=generator, collate_fn=train_batches, **common
        )
    return MnistLoaders(
        train=train,
        val=DataLoader(Subset(train_full, val_idx), shuffle=False, collate_fn=DigitBatch(), **common),
        test=DataLoader(test, shuffle=False, collate_fn=DigitBatch(), **common),
    )
