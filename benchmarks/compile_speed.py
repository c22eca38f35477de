"""Training images per second, eager against torch.compile, for the book's two models.

    python benchmarks/compile_speed.py                 # both recipes' models, batch 128
    python benchmarks/compile_speed.py --steps 50 --rounds 5

Compiled kernels are cached on disk (``TORCHINDUCTOR_CACHE_DIR``), and a second run would find
them there: the benchmark compiles into a fresh temporary cache, so its compile time is what a
first run pays. The two models are the ``quick`` recipe's (7x7 patches, 16 tokens) and the ``best`` recipe's
(4x4 patches, 49 tokens). For each, it times full training steps (forward, loss, backward,
gradient clipping, AdamW), the way ``vitlib.train`` takes them, on one random batch. The compile
time is the first compiled step (tracing, code generation, building the kernels), reported apart;
the rates are the median of several rounds, eager and compiled alternating so that both see the
same machine load. Above 1 in the last column: compiling pays once the compile time is repaid.
Run it with nothing else on the machine.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from vitlib.train import RECIPES, build_model, make_optimizer, pick_device


def training_step(network, model, optimizer, images, labels) -> None:
    loss = F.cross_entropy(network(images), labels, label_smoothing=0.1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def images_per_second(network, model, optimizer, images, labels, steps: int, device) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        training_step(network, model, optimizer, images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(images) / (time.perf_counter() - started)


def measure(recipe_name: str, batch_size: int, steps: int, rounds: int, device) -> dict:
    recipe = RECIPES[recipe_name]
    torch.manual_seed(0)
    images = torch.randn(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    models = {"eager": build_model(recipe).to(device).train(), "compiled": build_model(recipe).to(device).train()}
    optimizers = {kind: make_optimizer(model, recipe) for kind, model in models.items()}
    networks = {"eager": models["eager"], "compiled": torch.compile(models["compiled"])}
    started = time.perf_counter()
    training_step(networks["compiled"], models["compiled"], optimizers["compiled"], images, labels)
    compile_seconds = time.perf_counter() - started
    training_step(networks["eager"], models["eager"], optimizers["eager"], images, labels)  # warm-up
    rates = {kind: [] for kind in models}
    for round_ in range(rounds):
        for kind in ("eager", "compiled") if round_ % 2 == 0 else ("compiled", "eager"):
            rates[kind].append(
                images_per_second(networks[kind], models[kind], optimizers[kind], images, labels, steps, device)
            )
    eager, compiled = statistics.median(rates["eager"]), statistics.median(rates["compiled"])
    return {"recipe": recipe_name, "eager": eager, "compiled": compiled, "compile_s": compile_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # compile from scratch
    device = pick_device()
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, {device}, torch {torch.__version__}")
    print(f"{'recipe':8} {'eager img/s':>12} {'compiled img/s':>15} {'compile s':>10} {'compiled / eager':>17}")
    for name in ("quick", "best"):
        row = measure(name, args.batch_size, args.steps, args.rounds, device)
        print(f"{name:8} {row['eager']:12.0f} {row['compiled']:15.0f} {row['compile_s']:10.1f} "
              f"{row['compiled'] / row['eager']:17.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
