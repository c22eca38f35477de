import dataclasses

import pytest
import torch
import torch.nn.functional as F
import torchvision

from vitlib.model import PRESETS, VisionTransformer, ViTConfig
from vitlib.patches import resize_pos_embed

SMALL = ViTConfig(image_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, heads=4, mlp_dim=64)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("pos_embed", ["learned", "learned_2d", "sincos", "none"])
def test_output_shapes(pool, pos_embed):
    model = VisionTransformer(dataclasses.replace(SMALL, pool=pool, pos_embed=pos_embed))
    images = torch.randn(3, 3, 16, 16)
    tokens = model.forward_features(images)
    assert tokens.shape == (3, 16 + (pool == "cls"), 32)
    assert model(images).shape == (3, 5)
    assert model.forward_head(tokens, pre_logits=True).shape == (3, 32)
    assert torch.isfinite(model(images)).all()


def test_forward_is_features_then_head_by_hand():
    model = VisionTransformer(SMALL).eval()
    images = torch.randn(2, 3, 16, 16)
    x = model.patch_embed(images)
    x = torch.cat([model.cls_token.expand(2, -1, -1), x], 1) + model.pos_embed
    for block in model.blocks:
        x = x + block.attn(block.norm1(x))
        x = x + block.mlp(block.norm2(x))
    logits = model.head(model.norm(x)[:, 0])
    torch.testing.assert_close(model(images), logits)


def test_mean_pool_has_no_cls_token_and_averages_tokens():
    model = VisionTransformer(dataclasses.replace(SMALL, pool="mean"))
    assert model.cls_token is None and model.num_prefix_tokens == 0
    images = torch.randn(2, 3, 16, 16)
    tokens = model.forward_features(images)
    torch.testing.assert_close(model(images), model.head(tokens.mean(1)))


def test_sincos_pos_embed_is_fixed():
    model = VisionTransformer(dataclasses.replace(SMALL, pos_embed="sincos"))
    assert "pos_embed" not in dict(model.named_parameters())
    assert model.pos_embed[0, 0].abs().sum() == 0  # the CLS token has no position


def test_every_parameter_gets_a_gradient():
    model = VisionTransformer(SMALL)
    F.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_overfits_a_tiny_batch():
    model = VisionTransformer(SMALL)
    images, labels = torch.randn(8, 3, 16, 16), torch.arange(8) % 5
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert (model(images).argmax(1) == labels).all()


def test_fused_switch_gives_the_same_logits():
    model = VisionTransformer(SMALL).eval()
    images = torch.randn(2, 3, 16, 16)
    manual = model(images)
    model.set_fused_attn(True)
    torch.testing.assert_close(model(images), manual, rtol=1e-5, atol=1e-5)


def test_attention_maps_one_per_layer():
    model = VisionTransformer(dataclasses.replace(SMALL, depth=3, fused_attn=True)).eval()
    maps = model.get_attention_maps(torch.randn(2, 3, 16, 16))
    assert len(maps) == 3
    for weights in maps:
        assert weights.shape == (2, 4, 17, 17)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 17))


def test_mnist_preset_size():
    model = VisionTransformer(ViTConfig.from_preset("mnist"))
    assert model.num_parameters() < 250_000
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_vit_b_16_has_the_papers_86m_parameters():
    with torch.device("meta"):
        model = VisionTransformer(ViTConfig.from_preset("vit_b_16"))
        reference = torchvision.models.vit_b_16()
    assert model.num_parameters() == sum(p.numel() for p in reference.parameters()) == 86_567_656  # Table 1: 86M


def test_presets_override():
    config = ViTConfig.from_preset("mnist", depth=2, pool="mean")
    assert config.depth == 2 and config.pool == "mean" and config.dim == PRESETS["mnist"].dim


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(patch_size=5), "28x28 is not divisible by patch size 5"),
        (dict(dim=30, heads=4), "dim 30 is not divisible by heads 4"),
        (dict(pool="max"), "unknown pool 'max'"),
        (dict(pos_embed="rope"), "unknown pos_embed 'rope'"),
        (dict(pos_embed="sincos", dim=18, heads=2), "divisible by 4"),
        (dict(pos_embed="learned_2d", dim=63, heads=3), r"dim must be even, got dim=63: pick an even dim"),
        (dict(depth=0), "depth must be a positive integer"),
        (dict(distilled=True, pool="mean"), r"distilled=True needs pool='cls', got pool='mean'"),
    ],
)
def test_bad_configs_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PRESETS["mnist"], **change)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'vit_z'.*'mnist'"):
        ViTConfig.from_preset("vit_z")


def test_wrong_input_is_refused_with_the_expected_shape():
    model = VisionTransformer(ViTConfig())
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))


def test_learned_2d_positions_are_a_row_vector_beside_a_column_vector():
    """The paper's App. D.4 2-D variant, checked against a table built patch by patch."""
    config = dataclasses.replace(SMALL, image_size=12, patch_size=4, pos_embed="learned_2d")  # 3x3 grid
    model = VisionTransformer(config)
    row, col = model.pos_embed_2d.row, model.pos_embed_2d.col  # (3, 16) each
    assert row.shape == col.shape == (3, 16)
    expected = torch.zeros(1, 1 + 9, 32)  # the class token gets no position
    for r in range(3):
        for c in range(3):
            expected[0, 1 + 3 * r + c] = torch.cat([row[r], col[c]])
    torch.testing.assert_close(model.position_embeddings(), expected, rtol=0, atol=0)
    assert (
        model.num_parameters()
        == VisionTransformer(dataclasses.replace(config, pos_embed="none")).num_parameters() + 2 * 3 * 16
    )
    images = torch.randn(2, 3, 12, 12)
    by_hand = model.patch_embed(images)
    by_hand = torch.cat([model.cls_token.expand(2, -1, -1), by_hand], dim=1) + expected
    torch.testing.assert_close(model.embed(images), by_hand)
    model(images).sum().backward()
    assert row.grad.abs().sum() > 0 and col.grad.abs().sum() > 0


def test_post_norm_model_stacks_post_norm_blocks_with_no_final_norm():
    model = VisionTransformer(dataclasses.replace(SMALL, norm_first=False)).eval()
    assert all(not block.norm_first for block in model.blocks)
    assert isinstance(model.norm, torch.nn.Identity)
    images = torch.randn(2, 3, 16, 16)
    tokens = model.embed(images)
    for block in model.blocks:  # Vaswani et al.: z' = LN(z + MSA(z)), z = LN(z' + MLP(z'))
        tokens = block.norm1(tokens + block.attn(tokens))
        tokens = block.norm2(tokens + block.mlp(tokens))
    torch.testing.assert_close(model(images), model.head(tokens[:, 0]))
    maps = model.get_attention_maps(images)
    assert len(maps) == SMALL.depth and maps[0].shape == (2, 4, 17, 17)


@pytest.mark.parametrize("pos_embed", ["learned", "learned_2d", "sincos", "none"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_resized_model_reads_bigger_images_with_the_same_weights(pos_embed, pool):
    model = VisionTransformer(ViTConfig(depth=2, pos_embed=pos_embed, pool=pool)).eval()
    bigger = model.resized(56)
    assert bigger.config.image_size == 56 and bigger.patch_embed.grid_size == (14, 14) and not bigger.training
    assert bigger(torch.randn(2, 1, 56, 56)).shape == (2, 10)
    for name, tensor in bigger.state_dict().items():  # everything but the positions is copied
        if not name.startswith("pos_embed"):
            assert torch.equal(tensor, model.state_dict()[name]), name
    if pos_embed in ("learned", "learned_2d"):  # the table as a whole, interpolated on its grid
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_()  # positions that differ from place to place
            bigger = model.resized(56)
            expected = resize_pos_embed(model.position_embeddings(), (7, 7), (14, 14), model.num_prefix_tokens)
            torch.testing.assert_close(bigger.position_embeddings(), expected, rtol=0, atol=1e-5)
    same = model.resized(28)  # the same size: the same model
    images = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(same(images), model(images), rtol=0, atol=0)
    if pos_embed == "sincos":
        torch.testing.assert_close(bigger.pos_embed, VisionTransformer(bigger.config).pos_embed)


def test_resized_model_interpolates_learned_positions_as_timm_does():
    timm_layers = pytest.importorskip("timm.layers")
    model = VisionTransformer(ViTConfig(depth=1))
    bigger = model.resized(44)  # 11 x 11 patches of 4 pixels
    expected = timm_layers.resample_abs_pos_embed(model.pos_embed.detach(), [11, 11], [7, 7], num_prefix_tokens=1)
    torch.testing.assert_close(bigger.pos_embed.detach(), expected, rtol=0, atol=1e-6)


def test_resized_keeps_what_was_set_after_building_and_leaves_the_rng_alone():
    model = VisionTransformer(ViTConfig(depth=2)).train()
    model.set_fused_attn(True)
    model.blocks[1].attn.scale = 1.0
    model.patch_embed.requires_grad_(False)
    state = torch.get_rng_state()
    bigger = model.resized(44)
    assert torch.equal(torch.get_rng_state(), state)
    assert bigger.training and [b.attn.fused for b in bigger.blocks] == [True, True]
    assert bigger.blocks[1].attn.scale == 1.0 and bigger.blocks[0].attn.scale is None
    assert not any(p.requires_grad for p in bigger.patch_embed.parameters()) and bigger.head.weight.requires_grad


def test_resized_refuses_a_size_the_patches_do_not_tile():
    with pytest.raises(ValueError, match="30"):
        VisionTransformer(ViTConfig(depth=1)).resized(30)


def test_distilled_model_reads_two_prefix_tokens_and_averages_its_two_heads():
    model = VisionTransformer(ViTConfig(depth=2, distilled=True, drop_path=0.0)).eval()
    images = torch.randn(3, 1, 28, 28)
    tokens = model.forward_features(images)  # (B, 2 + 49, D)
    assert model.num_prefix_tokens == 2 and tokens.shape == (3, 51, 64)
    assert model.pos_embed.shape == (1, 51, 64)
    class_logits, distillation_logits = model.forward_heads(tokens)
    torch.testing.assert_close(class_logits, model.head(tokens[:, 0]))  # the CLS token, token 0
    torch.testing.assert_close(distillation_logits, model.head_dist(tokens[:, 1]))  # the distillation token
    torch.testing.assert_close(model(images), (class_logits + distillation_logits) / 2)
    assert not torch.allclose(class_logits, distillation_logits)  # two heads, two tokens
    # Eq. 1 with the distillation token: [x_class; x_distil; x_p E] + E_pos
    embedded = model.embed(images)
    torch.testing.assert_close(embedded[:, 1], (model.dist_token[0] + model.pos_embed[:, 1]).expand(3, -1))
    assert model.num_parameters() == VisionTransformer(ViTConfig(depth=2)).num_parameters() + 64 * 2 + 64 * 10 + 10


def test_forward_heads_refuses_a_model_with_one_head():
    model = VisionTransformer(ViTConfig(depth=1))
    with pytest.raises(ValueError, match="forward_heads needs a model built with distilled=True"):
        model.forward_heads(model.forward_features(torch.randn(1, 1, 28, 28)))


@pytest.mark.parametrize("pos_embed", ["learned", "learned_2d", "sincos"])
def test_resized_distilled_model_keeps_both_prefix_tokens(pos_embed):
    model = VisionTransformer(ViTConfig(depth=1, distilled=True, pos_embed=pos_embed)).eval()
    bigger = model.resized(56).eval()
    assert bigger(torch.randn(2, 1, 56, 56)).shape == (2, 10)
    assert torch.equal(bigger.dist_token, model.dist_token)
    assert torch.equal(bigger.head_dist.weight, model.head_dist.weight)
    torch.testing.assert_close(bigger.position_embeddings()[:, :2], model.position_embeddings()[:, :2])
