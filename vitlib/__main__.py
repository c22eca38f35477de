"""``python -m vitlib``: a one-minute tour of the model, shape by shape, on real MNIST digits."""

import torch

from vitlib.attention import causal_mask, scaled_dot_product_attention
from vitlib.data import mnist_tensors, normalize
from vitlib.model import VisionTransformer, ViTConfig
from vitlib.patches import patchify


def main() -> None:
    torch.manual_seed(0)
    config = ViTConfig.from_preset("mnist")
    model = VisionTransformer(config).eval()
    try:
        digits, labels = mnist_tensors(train=False).tensors
        images = normalize(digits[:4])  # (4, 1, 28, 28)
        source = f"4 MNIST test digits, labels {labels[:4].tolist()}"
    except ValueError as error:
        print(f"(MNIST not found, using random images: {error})\n")
        images, source = torch.randn(4, 1, 28, 28), "4 random images"

    print(f"vitlib ViT, preset 'mnist': {model.num_parameters():,} parameters\n{config}\n")
    print(f"input            {tuple(images.shape)}  {source}   (B, C, H, W)")
    patches = patchify(images, config.patch_size)
    print(f"patchify         {tuple(patches.shape)}   (B, N, P*P*C), N = (28/{config.patch_size})^2")
    tokens = model.embed(images)
    print(f"embed (Eq. 1)    {tuple(tokens.shape)}   (B, 1 + N, D): CLS token + patches, plus positions")
    with torch.no_grad():
        tokens = model.blocks(tokens)
        print(f"{config.depth} blocks (2-3)   {tuple(tokens.shape)}   same shape after every block")
        logits = model.forward_head(model.norm(tokens))
    print(f"head (Eq. 4)     {tuple(logits.shape)}        (B, classes), from the CLS token")
    maps = model.get_attention_maps(images)
    print(f"attention maps   {len(maps)} x {tuple(maps[0].shape)}   (B, h, 1 + N, 1 + N) per layer\n")

    q = k = v = torch.eye(3)
    _, weights = scaled_dot_product_attention(q, k, v, causal_mask(3))
    print("causal (GPT) attention weights for 3 tokens: each row sees only the past")
    print(weights.numpy().round(2))
    print("\nUntrained, so the predictions are guesses:", logits.argmax(1).tolist())
    print("Train one: python -m vitlib.train --preset quick")


if __name__ == "__main__":
    main()
