import json

import pytest
import torch
from torch import nn

from vitlib.cnn import SmallCNN
from vitlib.experiments import inductive_bias as ib
from vitlib.model import VisionTransformer, ViTConfig


def _digit_like(batch: int = 2, size: int = 28) -> torch.Tensor:
    """Random strokes inside an empty 7-pixel frame, like MNIST's padded digits."""
    images = torch.zeros(batch, 1, size, size)
    images[..., 7:-7, 7:-7] = torch.rand(batch, 1, size - 14, size - 14)
    return images


def _vit(pos_embed: str, pool: str = "cls") -> VisionTransformer:
    config = ViTConfig(patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64, pos_embed=pos_embed, pool=pool)
    model = VisionTransformer(config)
    # At initialization attention is nearly uniform, and a uniform average does not care about
    # order even with position embeddings: larger weights give the sharp attention of a trained model.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


def test_convolution_shifts_with_the_image():
    conv = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"),
    )
    images = torch.randn(2, 1, 28, 28)
    assert ib.conv_shift_error(conv, images, pixels=7) < 1e-5
    assert ib.conv_shift_error(conv, images, pixels=3) < 1e-5
    dense = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 28 * 28), nn.Unflatten(1, (1, 28, 28)))
    assert ib.conv_shift_error(dense, images, pixels=7) > 1e-2  # no weight sharing, no equivariance


def test_vit_tokens_shift_with_the_image_only_without_position_embeddings():
    images = _digit_like()
    assert ib.token_shift_error(_vit("none"), images) < 1e-5
    assert ib.token_shift_error(_vit("learned"), images) > 1e-2
    assert ib.token_shift_error(_vit("sincos"), images) > 1e-2


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_without_position_embeddings_shuffled_patches_look_the_same(pool):
    images = torch.randn(3, 1, 28, 28)
    assert ib.patch_shuffle_change(_vit("none", pool), images) < 1e-4
    assert ib.patch_shuffle_change(_vit("learned", pool), images) > 1e-2


@pytest.mark.parametrize("layers", [1, 2, 5])
def test_conv_receptive_field_grows_by_two_pixels_per_layer(layers):
    field = ib.conv_receptive_field(layers)
    side = 2 * layers + 1
    assert field.sum().item() == side * side
    rows, cols = field.nonzero().unbind(1)
    assert rows.max() - rows.min() + 1 == side and cols.max() - cols.min() + 1 == side


def test_one_attention_layer_sees_every_pixel():
    assert ib.attention_receptive_field(_vit("learned")).all()


def test_cnn_baseline_is_sized_like_the_vit():
    vit_size = VisionTransformer(ViTConfig.from_preset("mnist")).num_parameters()
    cnn_size = SmallCNN().num_parameters()
    assert abs(cnn_size - vit_size) / vit_size < 0.05
    assert SmallCNN()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_budget_rule_keeps_images_seen_constant():
    assert ib.epochs_for(500, 440_000) == 880
    assert ib.epochs_for(55_000, 440_000) == 8
    assert ib.epochs_for(100_000, 440_000) == 4
    assert ib.epochs_for(10**6, 10) == 1


def test_quick_experiment_writes_results(data_root, tmp_path):
    assert ib.main(["--quick", "--data", str(data_root), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert {(row["model"], row["train_size"]) for row in result["rows"]} == {
        (model, size) for model in ("CNN", "ViT") for size in ib.QUICK_SIZES
    }
    assert all(0.0 <= row["test_acc"] <= 1.0 for row in result["rows"])
    assert (tmp_path / "results.png").stat().st_size > 10_000
    assert ib.load_results(tmp_path / "results.json") == result


def test_kept_full_run_covers_every_size_for_both_models_with_its_command():
    kept = ib.load_results()  # the full run shipped with vitlib, which chapter 1 draws
    assert {(row["model"], row["train_size"]) for row in kept["rows"]} == {
        (model, size) for model in ("CNN", "ViT") for size in ib.SIZES
    }
    assert all(row["epochs"] == ib.epochs_for(row["train_size"], 8 * 55_000) for row in kept["rows"])
    assert all(0.5 < row["test_acc"] <= 1.0 for row in kept["rows"])
    assert kept["command"].startswith("python -m vitlib.experiments.inductive_bias")
    assert "--quick" not in kept["command"]
    assert kept["seconds"] > 0 and kept["machine"]
    figure = ib.plot_results(kept["rows"])
    assert len(figure.axes[0].lines) == 2 and figure._repr_png_()[:4] == b"\x89PNG"
