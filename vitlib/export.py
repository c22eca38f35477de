"""A trained ViT for the book's web pages: its weights as a script that the drawing pad reads.

Book chapter 6, "Draw a digit". The pad's forward pass runs in the reader's browser, in plain
JavaScript (``_assets/vitpad/vit.js``); this module hands it the model. ``export_web`` writes
one classic script, ``model.js``, that sets ``globalThis.VITPAD_MODEL``: the configuration,
every tensor as float32 in one base64 string, and a few MNIST test digits to start from. A
script tag, unlike ``fetch``, also loads from ``file://``, so the page works opened from disk.

The book's build calls ``write_pad_assets`` (through ``_ext/vitpad_assets.py``) with the shipped
model, so the page always carries the weights that ``load_pretrained()`` returns.
"""

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from vitlib.checkpoint import atomic_write
from vitlib.data import MNIST_MEAN, MNIST_STD, mnist_tensors, normalize
from vitlib.encoder import LAYER_NORM_EPS
from vitlib.model import VisionTransformer
from vitlib.viz import NotebookFigure, _heat_map, rollout_map

__all__ = ["export_web", "pad_digits", "pad_html", "plot_pad_fallback", "web_model", "write_pad_assets"]

FORMAT = 1  # bumped when vit.js must read the file differently
PAD_LABELS = tuple(range(10))  # the test digits behind the pad's buttons: the first of each label in the test set


def web_model(model: VisionTransformer, digits: Sequence[tuple[int, torch.Tensor]] = ()) -> dict:
    """The model as the JSON object that ``vit.js`` reads.

    Args:
        model: any ``VisionTransformer``; every position embedding is stored as its (T, D) table,
            so vit.js needs no code per kind.
        digits: (label, image) pairs, each image (28, 28) with pixels in [0, 1], stored as bytes.

    Returns:
        {'format', 'config', 'tensors': {name: {'offset', 'shape'}}, 'weights': base64 float32,
        'digits': [{'label', 'pixels': base64 uint8}]}; offsets count float32 values.
    """
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"export_web needs a vitlib VisionTransformer, got {type(model).__name__}")
    tensors, chunks, offset = {}, [], 0
    for name, tensor in _tensors(model):
        values = tensor.detach().cpu().float().contiguous()
        tensors[name] = {"offset": offset, "shape": list(values.shape)}
        chunks.append(values.numpy().astype("<f4").tobytes())
        offset += values.numel()
    config = model.config.to_dict()
    config.update(
        grid_size=list(model.patch_embed.grid_size),
        num_prefix_tokens=model.num_prefix_tokens,
        layer_norm_eps=LAYER_NORM_EPS,
        attention_scales=[block.attn.scale or block.attn.head_dim**-0.5 for block in model.blocks],
        pixel_mean=MNIST_MEAN,
        pixel_std=MNIST_STD,
    )
    return {
        "format": FORMAT,
        "config": config,
        "tensors": tensors,
        "weights": base64.b64encode(b"".join(chunks)).decode("ascii"),
        "digits": [{"label": int(label), "pixels": _digit_bytes(image)} for label, image in digits],
    }


def _tensors(model: VisionTransformer):
    """(name, tensor) in timm's names; the position embedding as 'pos_table' (T, D), whatever its kind."""
    positions = model.position_embeddings()
    if positions is not None:
        yield "pos_table", positions[0]  # (T, D)
    for name, tensor in model.state_dict().items():
        if not name.startswith("pos_embed"):  # pos_embed, pos_embed_2d.row/col: in the table above
            yield name, tensor


def _digit_bytes(image: torch.Tensor) -> str:
    if image.shape != (28, 28):
        raise ValueError(f"a pad digit must be one (28, 28) image with pixels in [0, 1], got {tuple(image.shape)}")
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return base64.b64encode(pixels.numpy().tobytes()).decode("ascii")


def export_web(model: VisionTransformer, path: str | Path, digits: Sequence[tuple[int, torch.Tensor]] = ()) -> int:
    """Write ``web_model(model, digits)`` as the script ``path`` (model.js); returns its size in bytes.

    The file is written whole or not at all.
    """
    payload = json.dumps(web_model(model, digits), separators=(",", ":"))
    script = f"// {model.__class__.__name__} for the book's drawing pad, written by vitlib.export\n"
    script += f"globalThis.VITPAD_MODEL = {payload};\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(script))
    return len(script.encode())


def pad_digits(root: str | None = None, labels: Sequence[int] = PAD_LABELS) -> list[tuple[int, torch.Tensor]]:
    """The first test digit of each label: (label, (28, 28) image in [0, 1]) pairs for the pad's buttons."""
    images, targets = mnist_tensors(train=False, root=root).tensors
    return [(label, images[(targets == label).nonzero()[0, 0], 0]) for label in labels]


def plot_pad_fallback(model: VisionTransformer, label: int, image: torch.Tensor):
    """What the pad shows for one digit: the 28 x 28 input, the rollout over it, the ten probabilities.

    The picture the page shows in place of the pad when JavaScript is off; a ``NotebookFigure``,
    so its PNG is rendered as every figure of the book is.
    """
    pixels = normalize(image)[None]  # (1, 28, 28)
    with torch.no_grad():
        probabilities = model(pixels[None]).softmax(dim=-1)[0]  # (10,)
    figure = NotebookFigure(figsize=(7, 2.3), layout="constrained")
    digit_ax, heat_ax, bar_ax = figure.subplots(1, 3, width_ratios=[1, 1, 1.6])
    digit_ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    digit_ax.set_title(f"a test digit ({label})", fontsize=10)
    digit_ax.set_axis_off()
    heat = rollout_map(model, pixels)
    _heat_map(heat_ax, pixels, heat, heat.max().item())
    heat_ax.set_title("attention rollout", fontsize=10)
    bar_ax.barh(range(10), probabilities.numpy(), color="#3b6fb6")
    bar_ax.set_yticks(range(10))
    bar_ax.invert_yaxis()
    bar_ax.set_xlim(0, 1)
    bar_ax.set_xlabel("probability", fontsize=10)
    bar_ax.set_title(f"reads a {probabilities.argmax().item()}", fontsize=10)
    return figure


def pad_html(base: str = "../vitpad/", fallback=None) -> str:
    """The pad's HTML: a placeholder that ``pad.js`` replaces, and the three scripts it needs.

    The placeholder is what a reader without JavaScript sees: a picture and one sentence. The
    picture is the figure ``fallback`` (from ``plot_pad_fallback``), embedded in the HTML, or
    else the site's BASE/fallback.png, which ``write_pad_assets`` writes.
    """
    if fallback is None:
        src = f"{base}fallback.png"
    else:
        src = "data:image/png;base64," + base64.b64encode(fallback._repr_png_()).decode("ascii")
    alt = "A test digit, the attention rollout over it and the model's ten probabilities"
    return (
        '<div class="vitpad">\n<figure class="vitpad-fallback">\n'
        f'<img src="{html.escape(src, quote=True)}" alt="{html.escape(alt, quote=True)}">\n'
        "<figcaption>The drawing pad runs in JavaScript, which is off or blocked here: this picture "
        "shows what it computes for a test digit.</figcaption>\n</figure>\n</div>\n"
        + "".join(f'<script src="{base}{name}"></script>\n' for name in ("vit.js", "model.js", "pad.js"))
    )


def write_pad_assets(folder: str | Path, model: VisionTransformer | None = None, root: str | None = None) -> dict:
    """Write model.js and fallback.png for the pad into ``folder``; returns their sizes in bytes.

    ``model`` defaults to the shipped one (``load_pretrained()``); ``root`` is MNIST's folder.
    """
    if model is None:
        from vitlib.pretrained import load_pretrained

        model = load_pretrained()
    folder = Path(folder)
    digits = pad_digits(root)
    sizes = {"model.js": export_web(model, folder / "model.js", digits)}
    png = plot_pad_fallback(model, *digits[PAD_LABELS.index(7)])._repr_png_()  # as the chapter shows figures
    atomic_write(folder / "fallback.png", lambda tmp: Path(tmp).write_bytes(png))
    sizes["fallback.png"] = len(png)
    return sizes
