"""The exercise checkers: each passes a reader's correct answer and names the typical wrong ones."""

import checkers
import pytest
import torch
import torch.nn.functional as F
from test_exercises_ch2_ch3 import CORRECT as CORRECT_CH2_CH3
from test_exercises_ch4_ch5 import CORRECT as CORRECT_CH4_CH5
from test_exercises_ch6 import CORRECT as CORRECT_CH6
from test_exercises_ch7_ch8 import CHECKS as CHECKS_CH7_CH8
from test_exercises_ch7_ch8 import _right_rectangular

from vitlib import exercises
from vitlib.exercises import attention, distillation, encoder, inductive_bias, patches, resolution, training, visualize
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


def split_heads(x, heads):
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def parameter_count(config):
    d, m, k, n = config.dim, config.mlp_dim, config.num_classes, config.num_patches
    qkv_bias = 3 * d if config.qkv_bias else 0
    per_block = 2 * d + (3 * d * d + qkv_bias) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d)
    tokens = n + (config.pool == "cls")
    embedding = config.patch_size**2 * config.in_chans * d + d
    embedding += d * (config.pool == "cls") + tokens * d * (config.pos_embed == "learned")
    embedding += (config.image_size // config.patch_size) * d * (config.pos_embed == "learned_2d")  # (gh + gw) D / 2
    return embedding + config.depth * per_block + 2 * d * config.norm_first + d * k + k


def smoothed_cross_entropy(logits, labels, smoothing):
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


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
    (attention.check_split_heads, split_heads),
    (attention.check_merge_heads, merge_heads),
    (encoder.check_parameter_count, parameter_count),
    (training.check_smoothed_cross_entropy, smoothed_cross_entropy),
    (visualize.check_attention_rollout, rollout),
]


@checkers.right_answers(CORRECT)
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    checkers.assert_passes(checker, answer, capsys)


def test_every_chapter_has_at_least_three_checkers_but_the_last():
    """Every checker a chapter offers is tested with a right answer, here or in its own test file."""
    modules = [inductive_bias, patches, attention, encoder, training, distillation, resolution]
    assert all(len(module.__all__) >= 3 for module in modules)
    assert len(visualize.__all__) >= 2
    offered = {f"{m.__name__}.{name}" for m in [*modules, visualize] for name in m.__all__}
    tested = CORRECT + CORRECT_CH2_CH3 + CORRECT_CH4_CH5 + CORRECT_CH6  # new checkers: their own test files
    tested += [(checker, right) for checker, right, _ in CHECKS_CH7_CH8] + [
        (patches.check_patchify_rectangular, _right_rectangular)
    ]
    assert offered == {f"{c.__module__}.{c.__name__}" for c, _ in tested}


def test_receptive_field_formula_matches_the_gradient_measurement():
    for layers, kernel in [(1, 3), (3, 3), (2, 5)]:
        seen = conv_receptive_field(layers, image_size=28, kernel_size=kernel)  # (H, W) bool
        assert seen.any(dim=0).sum() == seen.any(dim=1).sum() == inductive_bias._receptive_field(layers, kernel)


def test_weight_sharing_reference_matches_real_layers():
    conv, dense = inductive_bias._weight_sharing(2, 3, 3, 5, 4)
    assert conv == sum(p.numel() for p in torch.nn.Conv2d(2, 3, 3, padding=1).parameters())
    assert dense == sum(p.numel() for p in torch.nn.Linear(2 * 5 * 4, 3 * 5 * 4).parameters())


# --- Wrong answers a reader writes, and what the checker must call them ---------------------------


def _zero_padded_translate(images, right, down):
    padded = F.pad(images, (abs(right), abs(right), abs(down), abs(down)))
    h, w = images.shape[-2:]
    top, left = abs(down) - down, abs(right) - right
    return padded[..., top : top + h, left : left + w]


def _rollout_reversed(maps, w):
    result = torch.eye(maps[0].shape[-1])
    for weights in maps:
        a = (1 - w) * weights.mean(1) + w * torch.eye(weights.shape[-1])
        result = result @ (a / a.sum(-1, keepdim=True))
    return result


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
    (inductive_bias.check_receptive_field, lambda layers, k: 1 + 2 * layers * (k // 2), "odd kernels only"),
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
    # chapter 3 (its other checkers are tested in test_exercises_ch2_ch3.py)
    (attention.check_split_heads, lambda x, h: x.view(x.shape[0], h, x.shape[1], -1), "straight to (B, h, T, d)"),
    (
        attention.check_split_heads,
        lambda x, h: x.view(*x.shape[:2], -1, h).permute(0, 3, 1, 2),
        "(d h) instead of (h d)",
    ),
    (attention.check_split_heads, lambda x, h: x.view(*x.shape[:2], h, -1), "the result is (B, T, h, d)"),
    (attention.check_merge_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1), "straight to (B, T, D)"),
    (attention.check_merge_heads, lambda x: x.permute(0, 2, 3, 1).flatten(2), "(d h) instead of (h d)"),
    # chapter 4 (its other checkers are tested in test_exercises_ch4_ch5.py)
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
    # chapter 5 (its other checkers are tested in test_exercises_ch4_ch5.py)
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
    # chapter 6
    (visualize.check_attention_rollout, _rollout_reversed, "wrong order"),
    (visualize.check_attention_rollout, lambda maps, w: rollout(maps, 0.0), "residual connection is left out"),
    (
        visualize.check_attention_rollout,
        lambda maps, w: rollout([m.max(1, keepdim=True).values for m in maps], w),
        "with a max",
    ),
    (visualize.check_attention_rollout, lambda maps, w: rollout(maps[-1:], w), "only the last layer"),
]


@checkers.wrong_answers(WRONG)
def test_checker_names_the_mistake(checker, answer, named, capsys):
    checkers.assert_names_mistake(checker, answer, named, capsys)


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    catalogues = [
        inductive_bias.RECEPTIVE_FIELD_MISTAKES, inductive_bias.TRANSLATE_MISTAKES,
        inductive_bias.WEIGHT_SHARING_MISTAKES, patches.PATCHIFY_MISTAKES,
        attention.SPLIT_MISTAKES, attention.MERGE_MISTAKES, training.SMOOTHING_MISTAKES,
        visualize.ROLLOUT_MISTAKES,
    ]  # fmt: skip
    checkers.assert_every_mistake_is_named(WRONG, catalogues)


def test_unknown_wrong_answer_gets_the_first_failing_case_and_shapes():
    verdict = patches.check_patchify(lambda x, p: patchify_with_unfold(x, p)[:, :-1])
    assert not verdict.passed and verdict.mistake is None
    assert "case 1 of 5 (batch 2, 1x28x28 images, patch 7)" in verdict.report
    assert "expected shape (2, 16, 49), got shape (2, 15, 49)" in verdict.report


def test_values_report_names_the_first_wrong_entry():
    verdict = training.check_smoothed_cross_entropy(lambda z, y, eps: smoothed_cross_entropy(z, y, eps) + 0.01)
    assert "expected" in verdict.report and "got" in verdict.report and verdict.mistake is None


def test_exception_in_readers_code_shows_it_with_the_input_and_no_checker_frames():
    def broken_patchify(images, patch_size):
        return images.view(-1, patch_size, 3)

    verdict = patches.check_patchify(broken_patchify)
    report = " ".join(verdict.report.split())  # the report is folded to the page's width
    assert "raised an error on case 1 of 5 (batch 2, 1x28x28 images, patch 7)" in report
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
    def smooths_in_place(logits, labels, eps):
        logits -= logits.max(-1, keepdim=True).values
        return smoothed_cross_entropy(logits, labels, eps)

    verdict = training.check_smoothed_cross_entropy(smooths_in_place)
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


def test_reports_are_folded_to_the_page_width_but_tracebacks_are_not():
    from vitlib.exercises._checking import REPORT_WIDTH, _wrap

    prose = "✗ patchify: wrong on case 2 of 5. " + "the patches are read column by column " * 4
    code = "    return images.view(-1, patch_size, 3)  # " + "x" * 80
    folded = _wrap(f"{prose}\n{code}").splitlines()
    assert all(len(line) <= REPORT_WIDTH for line in folded[:-1]) and len(folded) > 2
    assert folded[-1] == code  # a traceback's code line is shown as written
    assert " ".join(" ".join(folded[:-1]).split()) == " ".join(prose.split())
