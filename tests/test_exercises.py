"""The exercise checkers: each passes a reader's correct answer and names the typical wrong ones."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitlib import exercises
from vitlib.exercises import attention, encoder, inductive_bias, patches, training, visualize
from vitlib.exercises._checking import Case, check
from vitlib.experiments.inductive_bias import conv_receptive_field

# --- Correct answers, written as a reader would (not vitlib's code) ---------------------------------


def receptive_field(num_layers, kernel_size):
    size = 1
    for _ in range(num_layers):
        size += kernel_size - 1
    return size


def translate(images, right, down):
    return images.roll(right, dims=3).roll(down, dims=2)


def weight_sharing(c_in, c_out, k, h, w):
    conv = torch.nn.Conv2d(c_in, c_out, k)
    conv_params = sum(p.numel() for p in conv.parameters())
    return conv_params, (c_in * h * w + 1) * (c_out * h * w)


def patchify_with_unfold(images, patch_size):
    b, c, _, _ = images.shape
    grid = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)  # (B, C, gh, gw, P, P)
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, patch_size * patch_size * c)


def sincos_1d(num_positions, dim):
    embed = torch.zeros(num_positions, dim)
    for pos in range(num_positions):
        for i in range(dim // 2):
            angle = pos / 10000 ** (2 * i / dim)
            embed[pos, 2 * i], embed[pos, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return embed


def embed_tokens(patch_tokens, cls_token, pos_embed):
    cls = cls_token.repeat(patch_tokens.shape[0], 1, 1)
    return torch.cat((cls, patch_tokens), dim=1) + pos_embed


def my_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def causal(n):
    return torch.tril(torch.ones(n, n)).bool()


def split_heads(x, heads):
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def block(x, blk):
    x = x + blk.attn(blk.norm1(x))
    return x + blk.mlp(blk.norm2(x))


def parameter_count(config):
    d, m, k, n = config.dim, config.mlp_dim, config.num_classes, config.num_patches
    qkv_bias = 3 * d if config.qkv_bias else 0
    per_block = 2 * d + (3 * d * d + qkv_bias) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d)
    tokens = n + (config.pool == "cls")
    embedding = config.patch_size**2 * config.in_chans * d + d
    embedding += d * (config.pool == "cls") + tokens * d * (config.pos_embed == "learned")
    return embedding + config.depth * per_block + 2 * d + d * k + k


def lr_schedule(step, total_steps, warmup_steps):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return (1 + math.cos(math.pi * progress)) / 2


def smoothed_cross_entropy(logits, labels, smoothing):
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean()


def mean_pool(tokens):
    return tokens[:, 1:, :].mean(1)


def rollout(maps, residual_weight):
    result = None
    for weights in maps:
        a = weights.mean(1)
        a = (1 - residual_weight) * a + residual_weight * torch.eye(a.shape[-1])
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    return result


CORRECT = [
    (inductive_bias.check_receptive_field, receptive_field),
    (inductive_bias.check_translate, translate),
    (inductive_bias.check_weight_sharing, weight_sharing),
    (patches.check_patchify, patchify_with_unfold),
    (patches.check_sincos_1d, sincos_1d),
    (patches.check_embed_tokens, embed_tokens),
    (attention.check_attention, my_attention),
    (attention.check_causal_mask, causal),
    (attention.check_split_heads, split_heads),
    (attention.check_merge_heads, merge_heads),
    (encoder.check_layer_norm, layer_norm),
    (encoder.check_block, block),
    (encoder.check_parameter_count, parameter_count),
    (training.check_lr_schedule, lr_schedule),
    (training.check_smoothed_cross_entropy, smoothed_cross_entropy),
    (training.check_accuracy, accuracy),
    (visualize.check_mean_pool, mean_pool),
    (visualize.check_attention_rollout, rollout),
]


@pytest.mark.parametrize("checker, answer", CORRECT, ids=[c.__name__ for c, _ in CORRECT])
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    verdict = checker(answer)
    assert verdict.passed, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✓") and "correct on all" in printed


def test_every_chapter_has_at_least_three_checkers_but_the_last():
    modules = [inductive_bias, patches, attention, encoder, training]
    assert all(len(module.__all__) >= 3 for module in modules)
    assert len(visualize.__all__) >= 2
    checkers = {f"{m.__name__}.{name}" for m in [*modules, visualize] for name in m.__all__}
    assert checkers == {f"{c.__module__}.{c.__name__}" for c, _ in CORRECT}


def test_receptive_field_formula_matches_the_gradient_measurement():
    for layers, kernel in [(1, 3), (3, 3), (2, 5)]:
        seen = conv_receptive_field(layers, image_size=28, kernel_size=kernel)  # (H, W) bool
        assert seen.any(dim=0).sum() == seen.any(dim=1).sum() == inductive_bias._receptive_field(layers, kernel)


def test_weight_sharing_reference_matches_real_layers():
    conv, dense = inductive_bias._weight_sharing(2, 3, 3, 5, 4)
    assert conv == sum(p.numel() for p in torch.nn.Conv2d(2, 3, 3, padding=1).parameters())
    assert dense == sum(p.numel() for p in torch.nn.Linear(2 * 5 * 4, 3 * 5 * 4).parameters())


# --- Wrong answers a reader writes, and what the checker must call them ---------------------------


def _attention_variant(*, scale=None, dim=-1, fill=float("-inf"), causal_always=False, invert=False, weights=False):
    def attend(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1)
        scores = scores / math.sqrt(q.shape[-1]) if scale is None else scores * scale(q)
        if causal_always:
            mask = torch.ones(q.shape[-2], k.shape[-2]).tril().bool()
        if mask is not None:
            scores = scores.masked_fill(mask if invert else ~mask, fill)
        attn = torch.softmax(scores, dim=dim)
        return attn if weights else attn @ v

    return attend


def _zero_padded_translate(images, right, down):
    padded = F.pad(images, (abs(right), abs(right), abs(down), abs(down)))
    h, w = images.shape[-2:]
    top, left = abs(down) - down, abs(right) - right
    return padded[..., top : top + h, left : left + w]


def _post_norm_block(x, blk):
    x = blk.norm1(x + blk.attn(x))
    return blk.norm2(x + blk.mlp(x))


def _normalizes_the_stream(x, blk):
    x = blk.norm1(x)
    x = x + blk.attn(x)
    x = blk.norm2(x)
    return x + blk.mlp(x)


def _one_norm_for_both(x, blk):
    x = x + blk.attn(blk.norm1(x))
    return x + blk.mlp(blk.norm1(x))


def _lr_linear_decay(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 1 - (step - warmup) / (total - warmup)


def _rollout_reversed(maps, w):
    result = torch.eye(maps[0].shape[-1])
    for weights in maps:
        a = (1 - w) * weights.mean(1) + w * torch.eye(weights.shape[-1])
        result = result @ (a / a.sum(-1, keepdim=True))
    return result


def _sincos_i_over_d(n, d):
    position = torch.arange(n, dtype=torch.float64)[:, None]
    angle = position / 10000 ** (torch.arange(d // 2) / d)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(n, d).float()


def _smoothed_others(logits, labels, eps):
    target = torch.full_like(logits, eps / (logits.shape[1] - 1)).scatter(1, labels[:, None], 1 - eps)
    return -(target * logits.log_softmax(1)).sum(1).mean()


def smoothed_cross_entropy_from(logits, labels, eps, to_log_probs):
    target = F.one_hot(labels, logits.shape[1]) * (1 - eps) + eps / logits.shape[1]
    return -(target * to_log_probs(logits)).sum(1).mean()


WRONG = [
    # chapter 1
    (inductive_bias.check_receptive_field, lambda layers, k: layers * k, "kernel sizes are added up"),
    (inductive_bias.check_receptive_field, lambda layers, k: k**layers, "kernel sizes are multiplied"),
    (inductive_bias.check_receptive_field, lambda layers, k: layers * (k - 1), "centre pixel is missing"),
    (inductive_bias.check_receptive_field, lambda layers, k: 2 * layers + 1, "kernel size is ignored"),
    (inductive_bias.check_translate, lambda x, r, d: x.roll((r, d), (2, 3)), "right and down are swapped"),
    (inductive_bias.check_translate, lambda x, r, d: x.roll((-d, -r), (2, 3)), "moves the wrong way"),
    (inductive_bias.check_translate, _zero_padded_translate, "dropped (zeros come in)"),
    (inductive_bias.check_translate, lambda x, r, d: x.roll(r, 3), "only the horizontal shift"),
    (
        inductive_bias.check_weight_sharing,
        lambda ci, co, k, h, w: (ci * co * k * k, ci * co * (h * w) ** 2),
        "the biases are missing",
    ),
    (
        inductive_bias.check_weight_sharing,
        lambda ci, co, k, h, w: (co * ci * k * k, weight_sharing(ci, co, k, h, w)[1]),
        "convolution's bias is missing",
    ),
    (
        inductive_bias.check_weight_sharing,
        lambda ci, co, k, h, w: (co * k * k + co, weight_sharing(ci, co, k, h, w)[1]),
        "forget the input channels",
    ),
    (
        inductive_bias.check_weight_sharing,
        lambda ci, co, k, h, w: (co * (ci * k * k + 1), ci * co * (h * w) ** 2),
        "dense layer's bias is missing",
    ),
    (
        inductive_bias.check_weight_sharing,
        lambda ci, co, k, h, w: (co * (ci * k * k + 1), ci * co * (h * w) ** 2 + co),
        "one per output channel",
    ),
    # chapter 2
    (patches.check_patchify, lambda x, p: F.unfold(x, p, stride=p).transpose(1, 2), "channel-first"),
    (
        patches.check_patchify,
        lambda x, p: (
            patchify_with_unfold(x.transpose(2, 3), p)
            .reshape(x.shape[0], x.shape[3] // p, x.shape[2] // p, -1)
            .transpose(1, 2)
            .flatten(1, 2)
        ),
        "(p2 p1)",
    ),
    (
        patches.check_patchify,
        lambda x, p: (
            patchify_with_unfold(x, p)
            .reshape(x.shape[0], x.shape[2] // p, x.shape[3] // p, -1)
            .transpose(1, 2)
            .flatten(1, 2)
        ),
        "column by column, (gw gh)",
    ),
    (patches.check_patchify, lambda x, p: x.reshape(x.shape[0], -1, p * p * x.shape[1]), "without moving any axis"),
    (
        patches.check_patchify,
        lambda x, p: patchify_with_unfold(x, p).reshape(x.shape[0], x.shape[2] // p, x.shape[3] // p, -1),
        "not flattened",
    ),
    (
        patches.check_sincos_1d,
        lambda n, d: torch.cat([sincos_1d(n, d)[:, 0::2], sincos_1d(n, d)[:, 1::2]], 1),
        "concatenated",
    ),
    (patches.check_sincos_1d, lambda n, d: sincos_1d(n, d).view(n, -1, 2).flip(-1).reshape(n, d), "swapped"),
    (patches.check_sincos_1d, _sincos_i_over_d, "i / D"),
    (patches.check_sincos_1d, lambda n, d: sincos_1d(n + 1, d)[1:], "start at 1"),
    (
        patches.check_embed_tokens,
        lambda x, cls, pos: torch.cat([cls.expand(len(x), -1, -1), x + pos[:, 1:]], 1),
        "got none",
    ),
    (
        patches.check_embed_tokens,
        lambda x, cls, pos: torch.cat([cls.expand(len(x), -1, -1), x + pos[:, : x.shape[1]]], 1),
        "rows 0..N-1",
    ),
    (
        patches.check_embed_tokens,
        lambda x, cls, pos: torch.cat([x, cls.expand(len(x), -1, -1)], 1) + pos,
        "appended at the end",
    ),
    (
        patches.check_embed_tokens,
        lambda x, cls, pos: torch.cat([cls.expand(len(x), -1, -1), x], 1),
        "position embeddings are missing",
    ),
    # chapter 3
    (attention.check_attention, _attention_variant(scale=lambda q: 1.0), "not scaled"),
    (attention.check_attention, _attention_variant(scale=lambda q: 1 / q.shape[-1]), "divided by d instead"),
    (attention.check_attention, _attention_variant(dim=-2), "wrong axis"),
    (attention.check_attention, _attention_variant(causal_always=True), "causal mask was applied"),
    (attention.check_attention, lambda q, k, v, mask=None: my_attention(q, k, v), "mask is ignored"),
    (attention.check_attention, _attention_variant(fill=0.0), "set to 0 instead of -inf"),
    (attention.check_attention, _attention_variant(invert=True), "mask is inverted"),
    (attention.check_attention, _attention_variant(weights=True), "returns the attention weights"),
    (attention.check_causal_mask, lambda n: torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1), "inverted"),
    (attention.check_causal_mask, lambda n: torch.ones(n, n).triu().bool(), "see the future"),
    (attention.check_causal_mask, lambda n: torch.ones(n, n).tril(-1).bool(), "diagonal is masked"),
    (attention.check_causal_mask, lambda n: torch.full((n, n), float("-inf")).triu(1), "additive float mask"),
    (attention.check_split_heads, lambda x, h: x.view(x.shape[0], h, x.shape[1], -1), "straight to (B, h, N, d)"),
    (
        attention.check_split_heads,
        lambda x, h: x.view(*x.shape[:2], -1, h).permute(0, 3, 1, 2),
        "(d h) instead of (h d)",
    ),
    (attention.check_split_heads, lambda x, h: x.view(*x.shape[:2], h, -1), "the result is (B, N, h, d)"),
    (attention.check_merge_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1), "straight to (B, N, D)"),
    (attention.check_merge_heads, lambda x: x.permute(0, 2, 3, 1).flatten(2), "(d h) instead of (h d)"),
    # chapter 4
    (
        encoder.check_layer_norm,
        lambda x, w, b, eps: F.layer_norm(x.transpose(1, 2), x.shape[1:2], None, None, eps).transpose(1, 2) * w + b,
        "over the tokens",
    ),
    (
        encoder.check_layer_norm,
        lambda x, w, b, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt() * w + b,
        "BatchNorm",
    ),
    (
        encoder.check_layer_norm,
        lambda x, w, b, eps: (x - x.mean(-1, True)) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b,
        "unbiased",
    ),
    (
        encoder.check_layer_norm,
        lambda x, w, b, eps: (x - x.mean(-1, True)) / (x.std(-1, keepdim=True, unbiased=False) + eps) * w + b,
        "standard deviation instead",
    ),
    (encoder.check_layer_norm, lambda x, w, b, eps: layer_norm(x, 1.0, 0.0, eps), "scale and shift are missing"),
    (encoder.check_layer_norm, lambda x, w, b, eps: layer_norm(x, b, w, eps), "weight and bias are swapped"),
    (encoder.check_block, _post_norm_block, "post-norm"),
    (
        encoder.check_block,
        lambda x, blk: (lambda z: z + blk.mlp(blk.norm2(z)))(blk.attn(blk.norm1(x))),
        "around the attention is missing",
    ),
    (encoder.check_block, lambda x, blk: blk.mlp(blk.norm2(x + blk.attn(blk.norm1(x)))), "around the MLP is missing"),
    (encoder.check_block, lambda x, blk: blk.mlp(blk.norm2(blk.attn(blk.norm1(x)))), "both residuals"),
    (
        encoder.check_block,
        _normalizes_the_stream,
        "residual stream itself",
    ),
    (
        encoder.check_block,
        _one_norm_for_both,
        "norm1 is used before the MLP",
    ),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) - (2 * c.depth + 1) * 2 * c.dim,
        "LayerNorm parameters are missing",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - 2 * c.dim, "final LayerNorm"),
    (
        encoder.check_parameter_count,
        lambda c: (
            parameter_count(c)
            - c.num_classes
            - c.dim
            - c.depth * ((3 * c.dim if c.qkv_bias else 0) + 2 * c.dim + c.mlp_dim)
        ),
        "biases are missing",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - c.dim, "class token (D), or its row"),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + (c.dim * 2 if c.pool == "mean" else 0),
        "with pool='mean'",
    ),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + (c.num_patches + 1) * c.dim * (c.pos_embed != "learned"),
        "not learned",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - c.dim * c.num_classes - c.num_classes, "head"),
    # chapter 5
    (training.check_lr_schedule, lambda s, t, w: s / w if s < w else lr_schedule(s, t, w), "starts at 0"),
    (
        training.check_lr_schedule,
        lambda s, t, w: lr_schedule(s, t, w) if s < w else (1 + math.cos(math.pi * s / t)) / 2,
        "over all total_steps",
    ),
    (training.check_lr_schedule, lambda s, t, w: (1 + math.cos(math.pi * s / t)) / 2, "no warm-up"),
    (training.check_lr_schedule, _lr_linear_decay, "linear, not a cosine"),
    (
        training.check_lr_schedule,
        lambda s, t, w: lr_schedule(s, t, w) if s < w else math.cos(math.pi * (s - w) / (t - w)),
        "goes negative",
    ),
    (training.check_lr_schedule, lambda s, t, w: min(1.0, (s + 1) / w), "stays at its peak"),
    (training.check_smoothed_cross_entropy, lambda z, y, eps: F.cross_entropy(z, y), "smoothing is ignored"),
    (training.check_smoothed_cross_entropy, lambda z, y, eps: _smoothed_others(z, y, eps), "K - 1 wrong classes"),
    (
        training.check_smoothed_cross_entropy,
        lambda z, y, eps: smoothed_cross_entropy_from(z, y, eps, lambda t: t),
        "without log_softmax",
    ),
    (
        training.check_smoothed_cross_entropy,
        lambda z, y, eps: smoothed_cross_entropy_from(z, y, eps, lambda t: t.softmax(1)),
        "softmax was used",
    ),
    (training.check_smoothed_cross_entropy, lambda z, y, eps: smoothed_cross_entropy(z, y, eps) * len(y), "summed"),
    (training.check_accuracy, lambda z, y: (z.argmax(1) == y).sum(), "number of correct predictions"),
    (training.check_accuracy, lambda z, y: 100.0 * (z.argmax(1) == y).float().mean(), "percentage"),
    (training.check_accuracy, lambda z, y: (z.argmax(0) == y).float().mean(), "over the batch (dim=0)"),
    (training.check_accuracy, lambda z, y: (z.argmax(1) != y).float().mean(), "error rate"),
    # chapter 6
    (visualize.check_mean_pool, lambda z: z.mean(1), "class token is in the average"),
    (visualize.check_mean_pool, lambda z: z[:, 1:].mean(2), "over the features"),
    (visualize.check_mean_pool, lambda z: z[:, 0, :], "class token itself"),
    (visualize.check_mean_pool, lambda z: z[:, 1:].sum(1), "summed"),
    (visualize.check_attention_rollout, _rollout_reversed, "wrong order"),
    (visualize.check_attention_rollout, lambda maps, w: rollout(maps, 0.0), "residual connection is left out"),
    (
        visualize.check_attention_rollout,
        lambda maps, w: rollout([m.max(1, keepdim=True).values for m in maps], w),
        "with a max",
    ),
    (visualize.check_attention_rollout, lambda maps, w: rollout(maps[-1:], w), "only the last layer"),
]


@pytest.mark.parametrize("checker, answer, named", WRONG, ids=[f"{c.__name__}-{n}" for c, _, n in WRONG])
def test_checker_names_the_mistake(checker, answer, named, capsys):
    verdict = checker(answer)
    assert not verdict.passed
    assert verdict.mistake is not None and named in verdict.mistake, verdict.report
    printed = capsys.readouterr().out
    assert printed.startswith("✗") and "wrong on case" in printed and "Likely mistake: " in printed


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    catalogues = [
        inductive_bias.RECEPTIVE_FIELD_MISTAKES, inductive_bias.TRANSLATE_MISTAKES,
        inductive_bias.WEIGHT_SHARING_MISTAKES, patches.PATCHIFY_MISTAKES, patches.SINCOS_MISTAKES,
        patches.EMBED_MISTAKES, attention.ATTENTION_MISTAKES, attention.CAUSAL_MISTAKES,
        attention.SPLIT_MISTAKES, attention.MERGE_MISTAKES, encoder.LAYER_NORM_MISTAKES,
        encoder.BLOCK_MISTAKES, encoder.PARAMETER_MISTAKES, training.SCHEDULE_MISTAKES,
        training.SMOOTHING_MISTAKES, training.ACCURACY_MISTAKES, visualize.MEAN_POOL_MISTAKES,
        visualize.ROLLOUT_MISTAKES,
    ]  # fmt: skip
    named = {checker(answer).mistake for checker, answer, _ in WRONG}
    listed = {mistake.description for catalogue in catalogues for mistake in catalogue}
    assert listed - named == set()


def test_unknown_wrong_answer_gets_the_first_failing_case_and_shapes():
    verdict = patches.check_patchify(lambda x, p: patchify_with_unfold(x, p)[:, :-1])
    assert not verdict.passed and verdict.mistake is None
    assert "case 1 of 5 (batch 2, 1x28x28 images, patch 7)" in verdict.report
    assert "expected shape (2, 16, 49), got shape (2, 15, 49)" in verdict.report


def test_values_report_names_the_first_wrong_entry():
    verdict = training.check_accuracy(lambda z, y: accuracy(z, y) + 0.01)
    assert "expected" in verdict.report and "got" in verdict.report and verdict.mistake is None


def test_exception_in_readers_code_shows_it_with_the_input_and_no_checker_frames():
    def broken_patchify(images, patch_size):
        return images.view(-1, patch_size, 3)

    verdict = patches.check_patchify(broken_patchify)
    assert "raised an error on case 1 of 5 (batch 2, 1x28x28 images, patch 7)" in verdict.report
    assert "broken_patchify" in verdict.report and "RuntimeError" in verdict.report
    assert "_checking.py" not in verdict.report


def test_forgotten_return_and_unwritten_function_are_named():
    def forgot_return(images, patch_size):
        patchify_with_unfold(images, patch_size)

    assert "forget to `return`" in patches.check_patchify(forgot_return).report

    def not_yet(images, patch_size):
        raise NotImplementedError

    assert "not written yet" in patches.check_patchify(not_yet).report


def test_in_place_change_of_an_input_is_reported():
    def normalizes_in_place(x, weight, bias, eps):
        x -= x.mean(-1, keepdim=True)
        return layer_norm(x, weight, bias, eps)

    verdict = encoder.check_layer_norm(normalizes_in_place)
    assert not verdict.passed and "changed its input 1 in place" in verdict.report

    def rollout_in_place(maps, w):
        maps[0].mul_(1.0 + 1e-3)
        return rollout(maps, w)

    assert "in place" in visualize.check_attention_rollout(rollout_in_place).report


def test_passing_something_not_callable_is_a_clear_type_error():
    with pytest.raises(TypeError, match="expects your function itself"):
        patches.check_patchify(patchify_with_unfold(torch.zeros(1, 1, 4, 4), 2))


def test_verbose_false_prints_nothing(capsys):
    verdict = check("double", lambda x: 2 * x, lambda x: 2 * x, [Case("x = 3", (3,))], verbose=False)
    assert verdict and capsys.readouterr().out == ""


def test_package_exports_every_chapter():
    assert {"inductive_bias", "patches", "attention", "encoder", "training", "visualize"} <= set(exercises.__all__)
