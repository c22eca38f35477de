import pytest
import torch
from torch import nn

from vitlib.encoder import Block, DropPath, Mlp


def _as_torch_layer(block: Block, dim: int, heads: int, mlp_dim: int) -> nn.TransformerEncoderLayer:
    layer = nn.TransformerEncoderLayer(
        dim,
        heads,
        mlp_dim,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=block.norm_first,
        layer_norm_eps=1e-6,
    )
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for ours, theirs in [(block.norm1, layer.norm1), (block.norm2, layer.norm2),
                             (block.mlp.fc1, layer.linear1), (block.mlp.fc2, layer.linear2)]:  # fmt: skip
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return layer


@pytest.mark.parametrize("dim,heads,mlp_dim", [(32, 4, 64), (64, 8, 256)])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("norm_first", [True, False])
def test_block_matches_transformer_encoder_layer(dim, heads, mlp_dim, fused, norm_first):
    """Pre-norm and post-norm blocks both equal PyTorch's layer of the same norm_first."""
    block = Block(dim, heads=heads, mlp_dim=mlp_dim, fused_attn=fused, norm_first=norm_first)
    # random norms, so a swapped norm1/norm2 would show
    for norm in (block.norm1, block.norm2):
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    layer = _as_torch_layer(block, dim, heads, mlp_dim)
    x = torch.randn(4, 13, dim)
    # train mode keeps PyTorch on its plain (not the fast-path) code; dropout is 0 in both
    torch.testing.assert_close(block(x), layer.train()(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(block.eval()(x), layer.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_forward_with_attention_is_forward(norm_first):
    block = Block(32, heads=4, mlp_dim=64, norm_first=norm_first).eval()
    x = torch.randn(2, 5, 32)
    out, weights = block.forward_with_attention(x)
    torch.testing.assert_close(out, block(x))
    assert weights.shape == (2, 4, 5, 5)


def test_mlp_is_fc_gelu_fc():
    mlp = Mlp(8, mlp_dim=16)
    x = torch.randn(3, 8)
    expected = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x)))
    torch.testing.assert_close(mlp(x), expected)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    drop = DropPath(0.5).train()
    x = torch.ones(4000, 3, 2)
    out = drop(x)
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 2).all(1)).all()  # each sample all kept or all dropped
    assert abs(out.mean().item() - 1.0) < 0.05
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        DropPath(1.0)
