"""torchrun with 2 CPU processes (gloo) trains the same weights as one process over the same batches."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from vitlib.data import DigitBatch, mnist_tensors, train_val_split
from vitlib.model import VisionTransformer
from vitlib.train import Recipe, fit

WORKER = Path(__file__).parent / "distributed" / "train_worker.py"
# deterministic per step: no augmentation, no dropout, so the only difference is who computes what
RECIPE = Recipe(
    model_overrides=dict(patch_size=7, dim=16, depth=1, heads=2, mlp_dim=32),
    epochs=1, batch_size=32, lr=3e-3, warmup_epochs=0, augment=False, train_subset=256,
)  # fmt: skip
WORLD = 2


def _torchrun(
    out: Path, data_root: Path, *extra: str, recipe: Recipe = RECIPE, stop_after_epoch: int = 0
) -> subprocess.CompletedProcess:
    recipe = json.dumps(dataclasses.asdict(recipe))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               str(WORKER), recipe, "--preset", "ddp_test", "--data", str(data_root), "--out", str(out),
               "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STOP_AFTER_EPOCH": str(stop_after_epoch)}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def _global_batches(seed: int = 0, epoch: int = 0) -> list[list[int]]:
    """The global batches of the torchrun run: at step b, rank 0's b-th shard batch, then rank 1's."""
    train_idx, _ = train_val_split(60_000)
    dataset = range(len(train_idx[: RECIPE.train_subset]))
    local = RECIPE.batch_size // WORLD
    per_rank = []
    for rank in range(WORLD):
        sampler = DistributedSampler(dataset, num_replicas=WORLD, rank=rank, shuffle=True, seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)
        per_rank.append([order[i : i + local] for i in range(0, len(order) - local + 1, local)])
    return [[index for batches in per_rank for index in batches[step]] for step in range(len(per_rank[0]))]


def test_two_processes_train_what_one_process_trains_over_the_same_batches(data_root, tmp_path):
    result = _torchrun(tmp_path / "ddp", data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "ddp" / "weights_rank0.pt")
    rank1 = torch.load(tmp_path / "ddp" / "weights_rank1.pt")
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name  # DDP keeps the processes in step, exactly
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == WORLD
    writers = (tmp_path / "ddp" / "writers.txt").read_text().split()
    assert writers[0::2] == ["0"] * 3 and writers[1::2] == ["checkpoint.pt", "history.json", "summary.json"]

    # one process, the same global batches in the same order
    train_full = mnist_tensors(True, data_root)
    train_idx, _ = train_val_split(len(train_full))
    subset = Subset(train_full, train_idx[: RECIPE.train_subset])
    loader = DataLoader(subset, batch_sampler=_global_batches(), collate_fn=DigitBatch())
    torch.manual_seed(0)
    single = VisionTransformer(RECIPE.model_config())
    fit(single, loader, None, RECIPE, device="cpu", progress=False, verbose=False)
    dim = RECIPE.model_config().dim
    for name, tensor in single.state_dict().items():
        if name.endswith("qkv.bias"):
            # The key bias adds the same score to a query's every key, which softmax cancels: its true
            # gradient is 0, and Adam divides the rounding noise left in its place by its tiny running
            # size: only there do the two runs part by more than rounding, and still by far less than lr.
            torch.testing.assert_close(rank0[name][dim : 2 * dim], tensor[dim : 2 * dim], rtol=0, atol=0.01 * RECIPE.lr)
            rank0[name], tensor = (
                rank0[name][[*range(dim), *range(2 * dim, 3 * dim)]],
                tensor[[*range(dim), *range(2 * dim, 3 * dim)]],
            )
        torch.testing.assert_close(rank0[name], tensor, rtol=1e-5, atol=1e-7, msg=name)
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert len(history) == 1 and 0 < history[0]["train_acc"] <= 1  # reduced over both processes


def test_distributed_run_resumed_after_an_interruption_ends_as_an_uninterrupted_one(data_root, tmp_path):
    two_epochs = dataclasses.replace(RECIPE, epochs=2, augment=True)  # each rank its own random moves
    straight = _torchrun(tmp_path / "straight", data_root, recipe=two_epochs)
    assert straight.returncode == 0, straight.stderr[-3000:]
    interrupted = _torchrun(tmp_path / "resumed", data_root, recipe=two_epochs, stop_after_epoch=1)
    assert interrupted.returncode != 0 and "KeyboardInterrupt" in interrupted.stderr
    state = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["world_size"] == WORLD and len(state["rng_per_rank"]) == WORLD
    resumed = _torchrun(tmp_path / "resumed", data_root, "--resume", recipe=two_epochs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in range(WORLD):  # every process's augmentation went on where it stopped
        expected = torch.load(tmp_path / "straight" / f"weights_rank{rank}.pt")
        got = torch.load(tmp_path / "resumed" / f"weights_rank{rank}.pt")
        for name, tensor in expected.items():
            assert torch.equal(tensor, got[name]), (rank, name)
    with pytest.raises(ValueError, match="was written by 2 processes and this run has 1"):
        model = VisionTransformer(two_epochs.model_config())
        fit(model, DataLoader(range(4)), None, two_epochs, out_dir=tmp_path / "resumed", resume=True, device="cpu",
            progress=False)  # fmt: skip
