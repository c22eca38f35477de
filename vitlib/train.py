"""Training: one epoch, evaluation, and a resumable ``fit`` with the recipe that makes ViTs train.

Book chapters 5 and 6. The trainer knows nothing about the ViT: any ``nn.Module`` that maps a
batch of images to logits will do (the CNN baseline uses it too).

Distillation (Touvron et al. 2021, DeiT): a recipe with ``teacher`` first trains that recipe's
model (the CNN of chapter 1), then the student, whose distillation head learns the teacher's
labels. An exponential moving average of the weights (``ema_decay``) and Simard et al.'s elastic
distortions (``elastic``) are the other levers.

Command line::

    python -m vitlib.train --preset quick --data ../shared/data --out runs/quick
    python -m vitlib.train --preset quick --out runs/quick --resume   # after an interruption
    python -m vitlib.train --preset distilled --teacher runs/teacher/model.safetensors
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vitlib.checkpoint import load_checkpoint, load_model_weights, save_checkpoint, save_model_weights, write_json
from vitlib.cnn import SmallCNN
from vitlib.data import MNIST_MEAN, MNIST_STD, make_loaders
from vitlib.model import VisionTransformer, ViTConfig

__all__ = [
    "RECIPES",
    "TRUE_LABELS",
    "Recipe",
    "TrueLabels",
    "build_model",
    "distillation_loss",
    "evaluate",
    "fit",
    "lr_at",
    "pick_device",
    "train_one_epoch",
]

CNN = "small_cnn"  # Recipe.model for vitlib.cnn.SmallCNN, chapter 1's CNN and the distillation teacher
TRUE_LABELS = "true_labels"  # Recipe.teacher for the control that teaches the true labels (TrueLabels)


@dataclass(frozen=True)
class Recipe:
    """How to train: the model preset and overrides, the optimizer, the schedule, the data."""

    model: str = "mnist"  # a ViTConfig preset name, or CNN ('small_cnn')
    model_overrides: dict = field(default_factory=dict)  # fields of ViTConfig to change
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"  # 'adamw' (decoupled weight decay) or 'adam' (the common tutorial)
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.05  # AdamW only; not applied to biases, norms, embeddings
    schedule: str = "cosine"  # 'cosine': linear warmup then cosine decay to 0; 'constant'
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0  # max global gradient norm; None to disable
    augment: bool = True  # small random affine on the training digits
    elastic: bool = False  # Simard et al.'s elastic distortions after the affine move
    train_subset: int | None = None  # train on only this many images (data-efficiency runs)
    ema_decay: float | None = None  # keep an exponential moving average of the weights; it is the result
    teacher: str | None = None  # a RECIPES name: train that model first, distil it into this one (DeiT);
    # or TRUE_LABELS, the control: the distillation head learns the true labels (TrueLabels)
    distillation_weight: float = 0.5  # DeiT's hard distillation: half true labels, half the teacher's

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: expected 'adamw' or 'adam'")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}: expected 'cosine' or 'constant'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), such as 0.999, or None; got {self.ema_decay}")
        if self.elastic and not self.augment:
            raise ValueError("elastic=True adds to the affine augmentation: set augment=True with it")
        if self.teacher is not None and not self.model_config().distilled:
            raise ValueError(
                f"teacher={self.teacher!r} needs a student with a distillation token: add "
                f"model_overrides={{'distilled': True}}"
            )

    def model_config(self) -> ViTConfig:
        if self.model == CNN:
            raise ValueError(f"recipe model {CNN!r} is the CNN, which has no ViTConfig")
        return ViTConfig.from_preset(self.model, **self.model_overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    # The book's default: over 99% test accuracy in about 10 minutes on a 2-core CPU. 7x7 patches
    # make 16 tokens instead of 49, three times cheaper; benchmarks/train_budget.py measured 29
    # epochs in 10.5 quiet minutes (99.37%). The other levers do not fit here (README): a moving
    # average of the weights gained nothing at 29 epochs, elastic distortions scored lower, and the
    # teacher, which pays about 11 test digits at this scale, needs its own training (624 s, longer
    # than the budget) and more than doubles the time of every step.
    "quick": Recipe(model_overrides={"patch_size": 7}, epochs=29, lr=2e-3, warmup_epochs=1),
    # The most accurate model we could train within 90 minutes on the same CPU: 4x4 patches, 49
    # tokens; an epoch takes about 63 s there, so 85 epochs fill the budget (99.55% test accuracy).
    "best": Recipe(epochs=85, lr=1e-3, warmup_epochs=3, model_overrides={"drop_path": 0.1}),
    # Chapter 1's CNN, as a teacher: 8 epochs (99.70% test accuracy in chapter 1's run, 99.73% in the
    # run that made the shipped teacher, vitlib.load_pretrained("mnist_teacher")).
    "teacher": Recipe(model=CNN, epochs=8, lr=2e-3, warmup_epochs=1),
    # DeiT's recipe in miniature: the CNN above teaches a ViT with a distillation token. The teacher
    # takes about 10 minutes, the student's epochs fill the rest of 90 (see README).
    "distilled": Recipe(
        epochs=52,
        lr=1e-3,
        warmup_epochs=3,
        model_overrides={"drop_path": 0.1, "distilled": True},
        teacher="teacher",
        ema_decay=0.9995,
        elastic=True,
    ),
    # best's schedule with the teacher above and no elastic distortions: the lever that paid at the
    # quick scale (chapter 7), at best's length. The moving average is kept. Its run spans sessions
    # on 2 CPU cores (results/distilled_best/).
    "distilled_best": Recipe(
        epochs=85,
        lr=1e-3,
        warmup_epochs=3,
        model_overrides={"drop_path": 0.1, "distilled": True},
        teacher="teacher",
        ema_decay=0.9995,
    ),
    # The recipe most tutorials use: 7x7 patches, Adam at a constant 1e-3, no augmentation.
    "tutorial": Recipe(
        model_overrides={"patch_size": 7},
        optimizer="adam",
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        label_smoothing=0.0,
        grad_clip=None,
        augment=False,
    ),
}


def build_model(recipe: Recipe) -> nn.Module:
    """A freshly initialized model for ``recipe``: a VisionTransformer, or the SmallCNN."""
    return SmallCNN() if recipe.model == CNN else VisionTransformer(recipe.model_config())


def pick_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_at(step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine") -> float:
    """The learning-rate multiplier at ``step``: linear warmup to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam(W) with weight decay on the weight matrices only, not on biases, norms or embeddings."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr)
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and p.shape[0] != 1]
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if p.requires_grad and id(p) not in decay_ids]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr)


class TrueLabels(nn.Module):
    """The control for distillation: a stand-in teacher whose labels are the true ones.

    Trained against it, a distilled ViT's distillation head learns each digit's own label, as it is
    (unsmoothed), where a real teacher's head learns what the teacher reads in the digit. The two
    runs differ only in the teacher's labels: the second token and the unsmoothed half of the loss
    are in both. (DeiT's Sec. 4 tries a near relative: a second class token, with the true label.)
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise TypeError("TrueLabels reads no images: train_one_epoch gives its distillation head the batch's labels")


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    device: torch.device | str = "cpu",
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
    teacher: nn.Module | None = None,
    distillation_weight: float = 0.5,
    ema: AveragedModel | None = None,
    progress: bool = True,
    description: str = "train",
) -> dict[str, float]:
    """One pass over ``loader``, stepping the optimizer (and scheduler) after every batch.

    With a ``teacher`` (in eval mode), ``model`` must be a distilled ViT (or a wrapper around one,
    such as DistributedDataParallel): its class head learns the labels, its distillation head the
    teacher's (``distillation_loss``). With ``ema``, the average is updated after every step. In a
    ``torch.distributed`` run, the loss and accuracy are summed over every process.

    Returns:
        {'loss': mean training loss, 'acc': training accuracy} over the epoch.
    """
    model.train()
    device = torch.device(device)
    student = _unwrapped(model)
    if teacher is not None:
        teacher.eval()  # its BatchNorm layers use their running statistics, and leave them be
        student.set_distilled_training(True)  # forward returns the two heads apart
    try:
        total_loss, correct, seen = _train_steps(
            model, loader, optimizer, scheduler, device, label_smoothing, grad_clip, scaler, teacher,
            distillation_weight, ema, tqdm(loader, desc=description, leave=False, disable=not progress),
        )  # fmt: skip
    finally:
        if teacher is not None:
            student.set_distilled_training(False)
    if _distributed():  # every process saw its own shard: add them up
        totals = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(totals)
        total_loss, correct, seen = totals.tolist()
    return {"loss": total_loss / seen, "acc": correct / seen}


def _train_steps(
    model, loader, optimizer, scheduler, device, label_smoothing, grad_clip, scaler, teacher, distillation_weight,
    ema, bar,
) -> tuple[float, int, int]:  # fmt: skip
    """The loop of ``train_one_epoch``: (summed loss, correct predictions, images seen)."""
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in bar:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with _autocast(device):
            if teacher is None:
                logits = model(images)  # (B, num_classes)
                loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
            else:
                if isinstance(teacher, TrueLabels):
                    teacher_labels = labels  # the control: the digit's own label
                else:
                    with torch.no_grad():
                        teacher_labels = teacher(images).argmax(dim=1)  # (B,) what it reads, augmented
                class_logits, distillation_logits = model(images)  # (B, num_classes) each
                loss = distillation_loss(
                    class_logits, distillation_logits, labels, teacher_labels, distillation_weight, label_smoothing
                )
                logits = (class_logits + distillation_logits) / 2  # what the model predicts
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(_unwrapped(model))
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return total_loss, correct, seen


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel's and torch.compile's wrappers."""
    from torch._dynamo.eval_frame import OptimizedModule
    from torch.nn.parallel import DistributedDataParallel

    while isinstance(model, (DistributedDataParallel, OptimizedModule)):
        model = model.module if isinstance(model, DistributedDataParallel) else model._orig_mod
    return model


def _distributed() -> bool:
    """True inside a torchrun run whose process group is set up (``init_distributed``)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def distillation_loss(
    class_logits: torch.Tensor,
    distillation_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_labels: torch.Tensor,
    weight: float = 0.5,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """DeiT's hard-label distillation (Touvron et al. 2021, Sec. 4), for (B, K) logits, (B,) labels:

        L = (1 - weight) CE(class head, true labels) + weight CE(distillation head, teacher's labels)

    The teacher's labels are its argmax, taken as they are; label smoothing applies to the true
    labels only, as in DeiT's code.
    """
    true = F.cross_entropy(class_logits, labels, label_smoothing=label_smoothing)
    taught = F.cross_entropy(distillation_logits, teacher_labels)
    return (1 - weight) * true + weight * taught


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Loss, accuracy, and every prediction over ``loader``, in eval mode.

    Returns:
        {'loss', 'acc', 'predictions' (list of int), 'labels' (list of int)}; for a distilled ViT
        also 'acc_class_head' and 'acc_distillation_head', each head alone.
    """
    model.eval()
    device = torch.device(device)
    distilled = getattr(model, "head_dist", None) is not None
    total_loss, predictions, targets, head_predictions = 0.0, [], [], ([], [])
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        with _autocast(device):
            if distilled:
                heads = model.forward_heads(model.forward_features(images))
                logits = (heads[0] + heads[1]) / 2  # what forward gives
                for kept, head_logits in zip(head_predictions, heads, strict=True):
                    kept.append(head_logits.argmax(dim=1).cpu())
            else:
                logits = model(images)
        total_loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        predictions.append(logits.argmax(dim=1).cpu())
        targets.append(labels.cpu())
    predicted, target = torch.cat(predictions), torch.cat(targets)
    result = {
        "loss": total_loss / len(target),
        "acc": (predicted == target).float().mean().item(),
        "predictions": predicted.tolist(),
        "labels": target.tolist(),
    }
    if distilled:
        for name, kept in zip(("acc_class_head", "acc_distillation_head"), head_predictions, strict=True):
            result[name] = (torch.cat(kept) == target).float().mean().item()
    return result


def _bf16_native() -> bool:
    """Whether this GPU has bfloat16 arithmetic (Ampere on). Turing's T4, Colab's free GPU, has none;
    ``is_bf16_supported()`` alone counts emulation and would say yes there."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def _autocast(device: torch.device):
    """bfloat16 autocast on CUDA (float16 where bf16 is not native); full float32 elsewhere."""
    if device.type != "cuda":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if _bf16_native() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    recipe: Recipe,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: torch.device | str | None = None,
    seed: int = 0,
    teacher: nn.Module | None = None,
    compile: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` by ``recipe``, validating after every epoch (unless ``val_loader`` is None).

    With ``out_dir``, writes ``checkpoint.pt`` (everything needed to resume) and
    ``history.json`` after every epoch; ``resume=True`` continues from that checkpoint and, on
    the CPU, ends with exactly the weights an uninterrupted run would have. ``progress`` shows a
    progress bar per epoch, ``verbose`` prints one line per epoch. A recipe with a ``teacher``
    needs the trained ``teacher`` model. With ``recipe.ema_decay``, the moving average is what
    ``model`` holds at the end (the raw weights stay in the checkpoint). ``compile=True`` trains
    through ``torch.compile(model)``.

    Inside ``torchrun`` (after ``init_distributed``), the model trains wrapped in
    DistributedDataParallel, each process on its shard of every batch (``make_loaders(...,
    distributed=True)``); the metrics are summed over the processes and only rank 0 writes files.

    Returns:
        The history: one dict per epoch with epoch, lr, train_loss, train_acc, val_loss,
        val_acc and seconds; with EMA also val_acc_raw (the weights before averaging), for a
        distilled ViT val_acc_class_head and val_acc_distillation_head.
    """
    device = torch.device(device) if device is not None else pick_device()
    if (teacher is None) != (recipe.teacher is None):
        raise ValueError(
            f"recipe.teacher is {recipe.teacher!r} but teacher is {'given' if teacher is not None else 'None'}: "
            f"a distillation recipe needs the trained teacher model, and only such a recipe takes one"
        )
    if teacher is not None:
        if getattr(model, "head_dist", None) is None:
            raise ValueError("distillation needs a student with a distillation token: a ViTConfig(distilled=True)")
        teacher = teacher.to(device).eval().requires_grad_(False)
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if _distributed() else (0, 1)
    torch.manual_seed(seed + rank)  # each process its own augmentation and dropout
    random.seed(seed + rank)
    model.to(device)
    network = model  # what the batches go through: the model, or its wrappers
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        network = _compiled(network, device)
    optimizer = make_optimizer(model, recipe)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches: use a smaller batch_size or more images")
    total_steps = recipe.epochs * steps_per_epoch
    warmup_steps = round(recipe.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total_steps, warmup_steps, recipe.schedule)
    )
    use_fp16 = device.type == "cuda" and not _bf16_native()  # float16 needs the gradient scaler
    scaler = torch.amp.GradScaler("cuda") if use_fp16 else None
    ema = None
    if recipe.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
    history: list[dict[str, float]] = []
    start_epoch = 0
    checkpoint_path = Path(out_dir) / "checkpoint.pt" if out_dir is not None else None

    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs the out_dir that holds checkpoint.pt")
        state = load_checkpoint(checkpoint_path)
        _check_same_run(state, model, recipe, checkpoint_path)
        if state.get("world_size", 1) != world:
            raise ValueError(
                f"{checkpoint_path} was written by {state.get('world_size', 1)} processes and this run has "
                f"{world}: resume with the same number (torchrun --nproc_per_node), or start a fresh run"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if train_loader.generator is not None:
            train_loader.generator.set_state(state["loader_rng"])
        _set_rng_state(state["rng_per_rank"][rank] if world > 1 else state["rng"])
        history = state["history"]
        start_epoch = state["epoch"]

    for epoch in range(start_epoch, recipe.epochs):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        if hasattr(train_loader.sampler, "set_epoch"):  # a DistributedSampler: shuffle anew every epoch
            train_loader.sampler.set_epoch(epoch)
        train = _compile_guard(compile)(
            train_one_epoch,
            network,
            train_loader,
            optimizer,
            scheduler,
            device=device,
            label_smoothing=recipe.label_smoothing,
            grad_clip=recipe.grad_clip,
            scaler=scaler,
            teacher=teacher,
            distillation_weight=recipe.distillation_weight,
            ema=ema,
            progress=progress,
            description=f"epoch {epoch + 1}/{recipe.epochs}",
        )
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["acc"]}
        row.update(_validate(model, ema, val_loader, device))
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        if verbose and rank == 0:
            row = history[-1]
            validation = f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  " if val_loader else ""
            tqdm.write(
                f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                f"{validation}({row['seconds']:.0f} s)"
            )
        if checkpoint_path is not None:
            rng_states = [_rng_state()]
            if world > 1:  # every process's random state, so that a resumed run goes on as each would
                rng_states = [None] * world
                torch.distributed.all_gather_object(rng_states, _rng_state())
            state = {
                "model": model.state_dict(),
                "model_config": _config_of(model),
                "recipe": recipe.to_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "rng": rng_states[0],
                "normalization": {"mean": MNIST_MEAN, "std": MNIST_STD},
                "seed": seed,
            }
            if train_loader.generator is not None:
                state["loader_rng"] = train_loader.generator.get_state()
            if scaler is not None:
                state["scaler"] = scaler.state_dict()
            if ema is not None:
                state["ema"] = ema.state_dict()
            if world > 1:
                state.update(world_size=world, rng_per_rank=rng_states)
            if rank == 0:
                save_checkpoint(checkpoint_path, state)
                write_json(checkpoint_path.parent / "history.json", history)
            if world > 1:
                torch.distributed.barrier()  # nobody reads a checkpoint that rank 0 is still writing
    if ema is not None:  # the recipe's result is the average
        model.load_state_dict(ema.module.state_dict())
    return history


def _compiled(network: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(network)``, refusing up front where it cannot work, with the fix."""
    if device.type == "cpu" and not (shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")):
        raise RuntimeError(
            "compile=True on the CPU needs a C++ compiler (torch.compile writes and builds C++ kernels) and "
            "none is on PATH: install one (apt-get install g++, xcode-select --install) or train without --compile"
        )
    return torch.compile(network)


def _compile_guard(compile: bool):
    """Call a training function; with ``compile``, turn a failure inside torch.compile into one clear error."""

    def call(function, *args, **kwargs):
        if not compile:
            return function(*args, **kwargs)
        try:
            return function(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as error:
            raise RuntimeError(
                f"torch.compile could not compile the training step on this platform ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); train without --compile (eager), "
                f"which computes the same model"
            ) from error

    return call


def _validate(model: nn.Module, ema: AveragedModel | None, loader: DataLoader | None, device) -> dict:
    """The history's validation fields: of the averaged weights with EMA, else of the model."""
    if loader is None:
        return {"val_loss": None, "val_acc": None}
    val = evaluate(ema.module if ema is not None else model, loader, device)
    row = {"val_loss": val["loss"], "val_acc": val["acc"]}
    for head in ("class_head", "distillation_head"):
        if f"acc_{head}" in val:
            row[f"val_acc_{head}"] = val[f"acc_{head}"]
    if ema is not None:
        row["val_acc_raw"] = evaluate(model, loader, device)["acc"]
    return row


def _config_of(model: nn.Module) -> dict | None:
    config = getattr(model, "config", None)
    return config.to_dict() if config is not None and hasattr(config, "to_dict") else None


def _check_same_run(state: dict, model: nn.Module, recipe: Recipe, path: Path) -> None:
    """Refuse to resume a checkpoint written for another model or recipe."""
    for what, saved, current in (
        ("model config", state.get("model_config"), _config_of(model)),
        ("recipe", state.get("recipe"), recipe.to_dict()),
    ):
        _require_same(what, saved, current, path)


def _require_same(what: str, saved: dict | None, current: dict | None, path: Path) -> None:
    """Equal but for fields added since ``saved`` was written, which take their defaults."""
    defaults = (ViTConfig() if what == "model config" else Recipe()).to_dict()
    if saved is not None or current is not None:
        saved, current = {**defaults, **(saved or {})}, {**defaults, **(current or {})}
        if saved != current:
            changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
            raise ValueError(
                f"{path} was written with a different {what} (differs in {changed}): resume with the "
                f"same preset and flags, or start a fresh run in another --out folder"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vitlib.train",
        description="Train a Vision Transformer on MNIST with a named recipe, writing a resumable "
        "checkpoint, the history and the final weights to --out.",
    )
    parser.add_argument(
        "--preset", required=True, choices=sorted(RECIPES),
        help="training recipe: 'quick' (the book's default, ~10 min on 2 CPU cores), 'best' "
        "(~90 min), 'distilled' (a CNN teacher, then a ViT student, ~90 min in all), 'distilled_best' (the shipped "
        "teacher, best's schedule, no elastic distortions: several hours), 'teacher' "
        "(that CNN alone) or 'tutorial' (the common baseline recipe)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=_positive_int, help="override the recipe's number of epochs")
    parser.add_argument(
        "--teacher", metavar="PATH",
        help="with a distillation recipe: reuse this trained teacher (a model.safetensors written by "
        "--preset teacher, or 'shipped' for the one vitlib ships) instead of training one into OUT/teacher",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="a smoke run: 1,000 training images and 1 epoch (of the teacher too), to check that it all works",
    )  # fmt: skip
    parser.add_argument("--data", help="folder holding MNIST/raw (default: $VITLIB_DATA, else ~/.cache/vitlib)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=0, help="random seed for initialization and shuffling")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="print one line per epoch, no progress bar")
    parser.add_argument(
        "--compile", action="store_true",
        help="train through torch.compile (compiling takes a while at the start; see README for when it pays)",
    )  # fmt: skip
    parser.epilog = (
        "Several processes: torchrun --nproc_per_node=N -m vitlib.train --preset quick trains with "
        "DistributedDataParallel (NCCL on GPUs, gloo on the CPU), each process a shard of every batch; "
        "rank 0 writes the files."
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def init_distributed() -> torch.device:
    """Join the process group that ``torchrun`` set up: NCCL on GPUs, gloo on the CPU.

    torchrun starts one process per GPU (or per --nproc_per_node on the CPU) and tells each its
    RANK, LOCAL_RANK and WORLD_SIZE in the environment. Returns this process's device.
    """
    if "LOCAL_RANK" not in os.environ:
        raise RuntimeError("init_distributed runs under torchrun, which sets LOCAL_RANK: launch with torchrun")
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    torch.distributed.init_process_group("gloo")
    return torch.device("cpu")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = init_distributed() if int(os.environ.get("WORLD_SIZE", "1")) > 1 else pick_device()
    try:
        return _main(args, argv, device)
    finally:
        if _distributed():
            torch.distributed.destroy_process_group()


def _main(args: argparse.Namespace, argv: list[str] | None, device: torch.device) -> int:
    rank = torch.distributed.get_rank() if _distributed() else 0
    recipe = _with_flags(RECIPES[args.preset], args, epochs=args.epochs)
    out_dir = Path(args.out or f"runs/{args.preset}")
    if not args.resume and (out_dir / "checkpoint.pt").exists():
        print(f"error: {out_dir}/checkpoint.pt exists: pass --resume to continue it, or another --out", file=sys.stderr)
        return 2
    if args.teacher is not None and recipe.teacher is None:
        print(f"error: --teacher is for a distillation recipe; {args.preset!r} has no teacher", file=sys.stderr)
        return 2
    command = "python -m vitlib.train " + " ".join(argv if argv is not None else sys.argv[1:])
    teacher, teacher_summary = None, None
    if recipe.teacher is not None:
        if args.teacher is not None:
            from vitlib.pretrained import TEACHER_PATH

            teacher, metadata = load_model_weights(TEACHER_PATH if args.teacher == "shipped" else args.teacher)
            teacher_summary = metadata.get("summary", {"path": args.teacher})
            if rank == 0:
                print(f"teacher: {args.teacher}, test accuracy {teacher_summary.get('test_acc', 'unknown')}")
        else:
            teacher_recipe = _with_flags(RECIPES[recipe.teacher], args)
            teacher_dir = out_dir / "teacher"
            teacher, teacher_summary = _train(
                recipe.teacher, teacher_recipe, teacher_dir, args, command, device, stage="teacher"
            )
    stage = "single" if recipe.teacher is None else "student"
    _, summary = _train(args.preset, recipe, out_dir, args, command, device, teacher, teacher_summary, stage)
    if rank == 0:
        print(json.dumps(summary, indent=2))
    return 0


def _with_flags(recipe: Recipe, args: argparse.Namespace, epochs: int | None = None) -> Recipe:
    """The recipe as the command line changes it: --epochs, and --quick's small smoke run."""
    if args.quick:
        return dataclasses.replace(recipe, epochs=1, train_subset=1000, warmup_epochs=0)
    return dataclasses.replace(recipe, epochs=epochs) if epochs is not None else recipe


def _train(
    name: str,
    recipe: Recipe,
    out_dir: Path,
    args: argparse.Namespace,
    command: str,
    device: torch.device,
    teacher: nn.Module | None = None,
    teacher_summary: dict | None = None,
    stage: str = "single",
) -> tuple[nn.Module, dict]:
    """Train one model by ``recipe`` into ``out_dir``; the model and its summary.

    ``stage`` is 'single' (a recipe without a teacher: --resume needs the checkpoint, as ``fit``
    does), or 'teacher' / 'student' of a distillation recipe. With --resume, a finished teacher is
    reused, and a stage that had not started yet starts afresh.
    """
    distributed = _distributed()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    weights_path = out_dir / "model.safetensors"
    if stage == "teacher" and weights_path.exists() and args.resume:
        model, metadata = load_model_weights(weights_path)  # a teacher finished before an interruption
        _require_same("recipe", metadata.get("recipe"), recipe.to_dict(), weights_path)
        if rank == 0:
            print(f"{name}: reusing {weights_path}, test accuracy {metadata['summary']['test_acc']:.4f}")
        return model.to(device), metadata["summary"]
    loaders = make_loaders(
        args.data, batch_size=recipe.batch_size, augment=recipe.augment, elastic=recipe.elastic,
        train_subset=recipe.train_subset, num_workers=args.workers, seed=args.seed, distributed=distributed,
    )  # fmt: skip
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = build_model(recipe)
    if rank == 0:
        processes = f" x {world} processes" if world > 1 else ""
        print(f"{name}: {model.num_parameters():,} parameters on {device}{processes}, {recipe.epochs} epochs")
    started = time.perf_counter()
    resume = args.resume and (stage == "single" or (out_dir / "checkpoint.pt").exists())
    history = fit(
        model, loaders.train, loaders.val, recipe, out_dir=out_dir, resume=resume, device=device,
        seed=args.seed, teacher=teacher, compile=args.compile, progress=not args.no_progress and rank == 0,
    )  # fmt: skip
    test = evaluate(model, loaders.test, device)
    summary = {
        "preset": name,
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "val_acc": history[-1]["val_acc"],
        "epochs": recipe.epochs,
        "train_seconds": sum(row["seconds"] for row in history),  # every epoch, across resumes
        "wall_seconds": time.perf_counter() - started,  # this invocation, data loading and test included
        "parameters": model.num_parameters(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": command,
    }
    if world > 1:
        summary["processes"] = world
    for head in ("class_head", "distillation_head"):
        if f"acc_{head}" in test:
            summary[f"test_acc_{head}"] = test[f"acc_{head}"]
    if recipe.ema_decay is not None:  # the weights before averaging, from the last checkpoint
        raw = build_model(recipe)
        raw.load_state_dict(load_checkpoint(out_dir / "checkpoint.pt")["model"])
        summary["test_acc_raw"] = evaluate(raw, loaders.test, device)["acc"]
    if teacher_summary is not None:
        summary["teacher"] = teacher_summary
        teacher_seconds = teacher_summary.get("train_seconds", 0.0)
        summary["train_seconds_with_teacher"] = summary["train_seconds"] + teacher_seconds
    if rank == 0:
        save_model_weights(weights_path, model.cpu(), {"summary": summary, "recipe": recipe.to_dict()})
        write_json(out_dir / "summary.json", summary)
    model.to(device)  # a teacher goes on teaching on this device
    return model, summary


if __name__ == "__main__":
    sys.exit(main())
