import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib.attention import Attention, causal_mask, scaled_dot_product_attention


@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(causal):
    q, k, v = torch.randn(3, 2, 4, 9, 16).unbind(0)  # (B, h, N, d) each
    mask = causal_mask(9) if causal else None
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 9))
    if causal:
        assert (weights.triu(diagonal=1) == 0).all()
        assert weights[..., 0, 0].eq(1).all()  # the first token can only see itself


def test_weights_are_softmax_of_scaled_scores():
    q, k, v = torch.randn(3, 5, 8).unbind(0)
    _, weights = scaled_dot_product_attention(q, k, v)
    by_hand = torch.exp(q @ k.T / 8**0.5)
    torch.testing.assert_close(weights, by_hand / by_hand.sum(-1, keepdim=True))


def test_refuses_mismatched_query_and_key_dims():
    with pytest.raises(ValueError, match="same last dim, got 8 and 4"):
        scaled_dot_product_attention(torch.zeros(2, 8), torch.zeros(2, 4), torch.zeros(2, 4))


def _copy_into_multihead(attention: Attention, dim: int, heads: int) -> nn.MultiheadAttention:
    reference = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(attention.qkv.weight)  # [W_q; W_k; W_v], same layout
        reference.in_proj_bias.copy_(attention.qkv.bias)
        reference.out_proj.weight.copy_(attention.proj.weight)
        reference.out_proj.bias.copy_(attention.proj.bias)
    return reference


@pytest.mark.parametrize("dim,heads", [(32, 4), (48, 3), (16, 1)])
@pytest.mark.parametrize("fused", [False, True])
def test_attention_matches_multihead_attention(dim, heads, fused):
    attention = Attention(dim, heads=heads, fused=fused).eval()
    reference = _copy_into_multihead(attention, dim, heads).eval()
    x = torch.randn(3, 10, dim)
    expected, expected_weights = reference(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-5)
    _, weights = attention(x, return_attention=True)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_fused_and_manual_paths_agree():
    manual = Attention(64, heads=8, fused=False)
    fused = Attention(64, heads=8, fused=True)
    fused.load_state_dict(manual.state_dict())
    x = torch.randn(2, 17, 64)
    torch.testing.assert_close(manual(x), fused(x), rtol=1e-5, atol=1e-5)


def test_dim_not_divisible_by_heads_is_refused():
    with pytest.raises(ValueError, match="dim 30 is not divisible by heads 4"):
        Attention(30, heads=4)


@pytest.mark.parametrize("fused", [False, True])
def test_scale_one_removes_the_square_root(fused):
    """The scaling ablation: scale=1.0 gives softmax(q k^T) v, on both kernels."""
    attention = Attention(16, heads=2, fused=fused).eval()
    attention.scale = 1.0
    x = torch.randn(2, 5, 16)
    q, k, v = attention.qkv(x).reshape(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)  # (B, h, N, d) each
    weights = (q @ k.transpose(-2, -1)).softmax(-1)  # no 1 / sqrt(8)
    expected = attention.proj((weights @ v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-6)
