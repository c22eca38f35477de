"""Images per second of vitlib's ViT against timm's, same config, same weights, same machine.

    python benchmarks/vit_speed.py                    # the MNIST preset, batch 128
    python benchmarks/vit_speed.py --preset vit_ti_16 --batch-size 16

For each attention path (written-out and fused) it times training steps (forward, backward,
AdamW) and inference, alternating vitlib and timm round by round (and who goes first) so that
both see the same machine load, and prints the medians and the ratio vitlib / timm (above 1:
vitlib is faster).
"""

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from vitlib.interop import to_timm
from vitlib.model import VisionTransformer, ViTConfig


def set_fused(model: torch.nn.Module, fused: bool) -> None:
    for block in model.blocks:
        if hasattr(block.attn, "fused_attn"):
            block.attn.fused_attn = fused  # timm
        else:
            block.attn.fused = fused  # vitlib


def images_per_second(model, images, labels, train: bool, steps: int) -> float:
    if train:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    else:
        model.eval()
    started = time.perf_counter()
    for _ in range(steps):
        if train:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.inference_mode():
                model(images)
    return steps * len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mnist", help="a ViTConfig preset (default: mnist)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds per measurement")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = ViTConfig.from_preset(args.preset)
    ours = VisionTransformer(config)
    theirs = to_timm(ours)
    images = torch.randn(args.batch_size, config.in_chans, config.image_size, config.image_size)
    labels = torch.randint(0, config.num_classes, (args.batch_size,))
    print(f"preset {args.preset}, batch {args.batch_size}, {ours.num_parameters():,} parameters")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'attention':<10} {'mode':<10} {'vitlib img/s':>13} {'timm img/s':>11} {'vitlib/timm':>12}")
    for fused in (False, True):
        set_fused(ours, fused)
        set_fused(theirs, fused)
        for train in (True, False):
            for model in (ours, theirs):  # warm-up
                images_per_second(model, images, labels, train, 2)
            ours_rates, theirs_rates = [], []
            for round_index in range(args.rounds):
                # swap who goes first every round, so neither always runs on a warmer machine
                pair = [(ours, ours_rates), (theirs, theirs_rates)]
                for model, rates in pair if round_index % 2 == 0 else pair[::-1]:
                    rates.append(images_per_second(model, images, labels, train, args.steps))
            ours_rate, theirs_rate = statistics.median(ours_rates), statistics.median(theirs_rates)
            print(
                f"{'fused' if fused else 'manual':<10} {'train' if train else 'inference':<10} "
                f"{ours_rate:>13.0f} {theirs_rate:>11.0f} {ours_rate / theirs_rate:>12.3f}"
            )


if __name__ == "__main__":
    main()
