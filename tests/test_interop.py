import dataclasses

import pytest
import timm
import torch
import torchvision

from vitlib.interop import from_timm, from_torchvision, to_timm
from vitlib.model import VisionTransformer, ViTConfig

TIMM_CONFIGS = [
    dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=3, num_heads=4, mlp_ratio=2.0),
    dict(img_size=32, patch_size=8, in_chans=3, num_classes=7, embed_dim=48, depth=2, num_heads=3, mlp_ratio=4.0),
    dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
         class_token=False, global_pool="avg", fc_norm=False),
    # the ViT-B/16 shape at a small depth
    dict(img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768, depth=2, num_heads=12),
]  # fmt: skip


def _randomize(model: torch.nn.Module) -> None:
    """Random values everywhere (also norms, biases, CLS), so a mis-mapped tensor cannot hide."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.05).add_(1.0 if parameter.dim() == 1 and parameter.numel() > 1 else 0.0)


@pytest.mark.parametrize(
    "kwargs", TIMM_CONFIGS, ids=lambda k: f"{k['img_size']}px-p{k['patch_size']}-d{k['embed_dim']}"
)
def test_from_timm_gives_the_same_logits(kwargs):
    reference = timm.models.VisionTransformer(**kwargs).eval()
    _randomize(reference)
    ours = from_timm(reference)
    images = torch.randn(2, kwargs["in_chans"], kwargs["img_size"], kwargs["img_size"])
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), rtol=0, atol=1e-5)
    assert ours.config.depth == kwargs["depth"] and ours.config.heads == kwargs["num_heads"]


TORCHVISION_CONFIGS = [
    dict(image_size=28, patch_size=7, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=10),
    dict(image_size=32, patch_size=4, num_layers=3, num_heads=2, hidden_dim=48, mlp_dim=96, num_classes=5),
    dict(image_size=224, patch_size=16, num_layers=2, num_heads=12, hidden_dim=768, mlp_dim=3072),  # ViT-B/16 shape
]


@pytest.mark.parametrize("kwargs", TORCHVISION_CONFIGS, ids=lambda k: f"{k['image_size']}px-p{k['patch_size']}")
def test_from_torchvision_gives_the_same_logits(kwargs):
    reference = torchvision.models.VisionTransformer(**kwargs).eval()
    _randomize(reference)
    ours = from_torchvision(reference)
    images = torch.randn(2, 3, kwargs["image_size"], kwargs["image_size"])
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_to_timm_round_trip(pool, pos_embed):
    config = ViTConfig(image_size=16, patch_size=4, in_chans=2, num_classes=3, dim=32, depth=2, heads=4,
                       mlp_dim=100, pool=pool, pos_embed=pos_embed)  # fmt: skip
    ours = VisionTransformer(config).eval()
    _randomize(ours)
    exported = to_timm(ours)
    images = torch.randn(3, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(exported(images), ours(images), rtol=0, atol=1e-5)
        back = from_timm(exported)
        torch.testing.assert_close(back(images), ours(images), rtol=0, atol=1e-5)
    expected = dataclasses.replace(config, pos_embed="learned")  # timm learns every position embedding
    assert back.config == expected


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(norm_first=False), r"norm_first=False \(post-norm blocks\).*pre-norm blocks only"),
        (dict(pos_embed="learned_2d"), r"pos_embed='learned_2d'.*no factored 2-D table"),
    ],
)
def test_to_timm_refuses_what_timm_cannot_hold(change, message):
    config = ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=4, mlp_dim=64, **change)
    with pytest.raises(ValueError, match=message):
        to_timm(VisionTransformer(config))


@pytest.mark.parametrize("training", [False, True])
def test_distilled_model_equals_timms_deit_both_ways(training):
    from timm.models.deit import VisionTransformerDistilled

    kwargs = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=4,
                  mlp_ratio=2.0)  # fmt: skip
    reference = VisionTransformerDistilled(**kwargs).train(training)  # no dropout: training mode is deterministic
    _randomize(reference)
    ours = from_timm(reference)
    assert ours.config.distilled and ours.num_prefix_tokens == 2 and ours.training == training
    images = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), rtol=0, atol=1e-5)  # the heads' mean
        reference.set_distilled_training(True)
        if training:  # timm then returns the two heads apart, as our forward_heads does
            for theirs, mine in zip(reference(images), ours.forward_heads(ours.forward_features(images)), strict=True):
                torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
        back = to_timm(ours)
        assert isinstance(back, VisionTransformerDistilled)
        torch.testing.assert_close(back(images), ours(images), rtol=0, atol=1e-5)


def test_from_timm_refuses_other_models():
    with pytest.raises(ValueError, match=r"expected a timm\.models\.VisionTransformer, got Linear"):
        from_timm(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="register tokens"):
        from_timm(
            timm.models.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, reg_tokens=4)
        )
    with pytest.raises(ValueError, match="ls1"):
        from_timm(
            timm.models.VisionTransformer(
                img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, init_values=1e-5
            )
        )
    with pytest.raises(ValueError, match="fc_norm"):
        from_timm(timm.models.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2,
                                                class_token=False, global_pool="avg"))  # fmt: skip


def test_from_torchvision_refuses_other_models():
    with pytest.raises(ValueError, match=r"expected a torchvision\.models\.VisionTransformer"):
        from_torchvision(timm.models.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match="representation layer"):
        from_torchvision(torchvision.models.VisionTransformer(16, 4, 1, 2, 32, 64, representation_size=16))
