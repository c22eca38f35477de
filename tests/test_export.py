"""The drawing pad's model in JavaScript (vit.js, run under Node.js) against vitlib, and its export."""

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vitlib import VisionTransformer, ViTConfig, export, load_pretrained
from vitlib.data import mnist_tensors, normalize
from vitlib.viz import attention_rollout

ROOT = Path(__file__).resolve().parent.parent
PAD = ROOT / "_assets" / "vitpad"
RUNNER = ROOT / "tests" / "browser" / "vitpad_node.mjs"
NODE = shutil.which("node")

# a reader's drawing of each test digit: on the 280 x 280 pad, at three sizes and places
DRAWINGS = [
    {"size": 280, "scale": 10.0, "x": 0.0, "y": 0.0},  # the pad's own test-digit buttons
    {"size": 280, "scale": 6.3, "x": 20.5, "y": 95.2},  # smaller, low and to the left
    {"size": 280, "scale": 8.6, "x": 33.0, "y": 2.7},  # nearer full size, off centre
]


def run_in_node(model: VisionTransformer, images: torch.Tensor, tmp_path: Path, drawings=()) -> dict:
    """vit.js on (B, 28, 28) pixels in [0, 1]: logits (B, 10), maps (B, L, h, T, T), rollout, prepared."""
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("Node.js is missing: the drawing pad's tests run its JavaScript under node")
        pytest.skip("Node.js not installed")
    export.export_web(model, tmp_path / "model.js")
    request = {
        "images": base64.b64encode(images.numpy().astype("<f4").tobytes()).decode(),
        "drawings": list(drawings),
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    out = tmp_path / "out"
    files = [PAD / "vit.js", tmp_path / "model.js", tmp_path / "request.json", out]
    command = [NODE, str(RUNNER), *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = model.num_prefix_tokens + model.patch_embed.num_patches
    config = model.config
    read = lambda name, *shape: torch.from_numpy(np.fromfile(out / name, "<f4").reshape(len(images), *shape))  # noqa: E731
    return {
        "logits": read("logits.f32", config.num_classes),
        "maps": read("maps.f32", config.depth, config.heads, tokens, tokens),
        "rollout": read("rollout.f32", tokens, tokens),
        "prepared": [read(f"prepared{i}.f32", 28, 28) for i in range(len(drawings))],
    }


def vitlib_outputs(model: VisionTransformer, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        inputs = normalize(images)[:, None]  # (B, 1, 28, 28)
        return model(inputs), torch.stack(model.get_attention_maps(inputs), dim=1)  # (B, L, h, T, T)


@pytest.fixture(scope="module")
def test_digits(data_root) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = mnist_tensors(train=False, root=data_root).tensors
    return images[:100, 0], labels[:100]  # (100, 28, 28), (100,)


@pytest.fixture(scope="module")
def shipped_in_node(test_digits, tmp_path_factory) -> dict:
    return run_in_node(load_pretrained(), test_digits[0], tmp_path_factory.mktemp("pad"), DRAWINGS)


def test_page_logits_equal_vitlib_on_100_test_digits(shipped_in_node, test_digits):
    logits, _ = vitlib_outputs(load_pretrained(), test_digits[0])
    assert (shipped_in_node["logits"] - logits).abs().max() < 1e-4
    assert torch.equal(shipped_in_node["logits"].argmax(dim=1), logits.argmax(dim=1))


def test_page_attention_maps_and_rollout_equal_vitlib(shipped_in_node, test_digits):
    model = load_pretrained()
    _, maps = vitlib_outputs(model, test_digits[0])
    assert (shipped_in_node["maps"] - maps).abs().max() < 1e-5
    with torch.no_grad():
        rollout = attention_rollout(model.get_attention_maps(normalize(test_digits[0])[:, None]))
    assert (shipped_in_node["rollout"] - rollout).abs().max() < 1e-5


@pytest.mark.parametrize("drawing", range(len(DRAWINGS)), ids=["buttons", "small-low-left", "large-off-centre"])
def test_preparing_test_digits_drawn_on_the_pad_keeps_every_prediction(shipped_in_node, test_digits, drawing):
    """MNIST's digits are prepared already: drawn on the pad and prepared again, they must read the same."""
    model = load_pretrained()
    prepared = shipped_in_node["prepared"][drawing]  # (100, 28, 28)
    assert prepared.min() >= 0 and prepared.max() <= 1
    before, _ = vitlib_outputs(model, test_digits[0])
    after, _ = vitlib_outputs(model, prepared)
    assert torch.equal(after.argmax(dim=1), before.argmax(dim=1))


@pytest.mark.parametrize(
    "overrides",
    [
        {"pool": "mean"},
        {"norm_first": False},
        {"pos_embed": "learned_2d"},
        {"pos_embed": "sincos"},
        {"pos_embed": "none", "qkv_bias": False},
        {"patch_size": 7, "heads": 2, "mlp_dim": 96},
        {"distilled": True},
        {"distilled": True, "pos_embed": "learned_2d"},
    ],
    ids=lambda overrides: "-".join(f"{key}={value}" for key, value in overrides.items()),
)
def test_page_forward_equals_vitlib_for_every_kind_of_model(overrides, tmp_path):
    model = VisionTransformer(ViTConfig(depth=2, **overrides)).eval()
    with torch.no_grad():  # trained-looking weights: random norms and biases, not ones and zeros
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.normal_(0.5 if name.endswith("weight") else 0.0, 0.3)
    images = torch.rand(4, 28, 28)
    page = run_in_node(model, images, tmp_path)
    logits, maps = vitlib_outputs(model, images)
    assert (page["logits"] - logits).abs().max() < 1e-4
    assert (page["maps"] - maps).abs().max() < 1e-5


def test_page_forward_keeps_an_unscaled_attention(tmp_path):
    """The scaling ablation's model (scale 1, chapter 3) exports its scale, so the page computes the same."""
    model = VisionTransformer(ViTConfig(depth=1)).eval()
    model.blocks[0].attn.scale = 1.0
    images = torch.rand(2, 28, 28)
    page = run_in_node(model, images, tmp_path)
    logits, maps = vitlib_outputs(model, images)
    assert (page["logits"] - logits).abs().max() < 1e-4
    assert (page["maps"] - maps).abs().max() < 1e-5


def test_pad_assets_fit_in_two_megabytes(tmp_path, data_root):
    sizes = export.write_pad_assets(tmp_path, root=str(data_root))
    code = sum(path.stat().st_size for path in PAD.iterdir()) + (ROOT / "_static" / "vitpad.css").stat().st_size
    assert sizes["model.js"] + sizes["fallback.png"] + code < 2e6
    assert (tmp_path / "model.js").stat().st_size == sizes["model.js"]
    assert (tmp_path / "fallback.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_web_model_holds_the_weights_as_float32(tmp_path):
    model = VisionTransformer(ViTConfig(depth=1)).eval()
    payload = export.web_model(model)
    weights = np.frombuffer(base64.b64decode(payload["weights"]), "<f4")
    entry = payload["tensors"]["blocks.0.attn.qkv.weight"]
    stored = weights[entry["offset"] : entry["offset"] + 64 * 192].reshape(entry["shape"])
    assert np.array_equal(stored, model.blocks[0].attn.qkv.weight.detach().numpy())
    table = payload["tensors"]["pos_table"]
    assert table["shape"] == [50, 64]  # (T, D): the class token's row and the 49 patches'


def test_pad_digits_are_the_first_of_their_label(data_root):
    images, labels = mnist_tensors(train=False, root=data_root).tensors
    digits = export.pad_digits(root=str(data_root))
    assert [label for label, _ in digits] == list(export.PAD_LABELS)
    for label, image in digits:
        first = (labels == label).nonzero()[0, 0]
        assert torch.equal(image, images[first, 0])


def test_export_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(ValueError, match="VisionTransformer"):
        export.web_model(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        export.web_model(VisionTransformer(ViTConfig(depth=1)), digits=[(3, torch.zeros(1, 28, 28))])
    assert not (tmp_path / "model.js").exists()


def test_the_back_matter_page_carries_the_pad_html():
    """The drawing-pad page writes its HTML by hand (it runs no code): it must be pad_html's."""
    assert export.pad_html() in (ROOT / "book" / "drawing_pad.md").read_text()
