"""Chapters 7 and 8's checkers: correct answers written in several ways pass, the usual wrong ones are named."""

import checkers
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from test_exercises_ch2_ch3 import patchify_rectangular_unfold as _right_rectangular  # noqa: F401 (for test_exercises.py)
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import vitlib
from vitlib.exercises import distillation, resolution
from vitlib.experiments import levers

# A reader's F.kl_div(..., reduction="mean") below is one of the wrong answers: PyTorch warns about it too.
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")

# --- Correct answers, written as readers would (not vitlib's code), several ways each --------------


def sequence_cat_then_add(patches, cls_token, dist_token, pos_embed):
    batch = patches.shape[0]
    prefix = [token.expand(batch, -1, -1) for token in (cls_token, dist_token)]
    return torch.cat([*prefix, patches], dim=1) + pos_embed


def sequence_each_part_its_rows(patches, cls_token, dist_token, pos_embed):
    """Each part gets its own rows of E_pos, then the parts are joined."""
    batch = patches.shape[0]
    cls = (cls_token + pos_embed[:, :1]).repeat(batch, 1, 1)
    dist = (dist_token + pos_embed[:, 1:2]).repeat(batch, 1, 1)
    return torch.cat([cls, dist, patches + pos_embed[:, 2:]], dim=1)


def sequence_einops_repeat(patches, cls_token, dist_token, pos_embed):
    tokens = repeat(torch.cat([cls_token, dist_token], dim=1), "1 t d -> b t d", b=patches.shape[0])
    return pos_embed + torch.cat([tokens, patches], dim=1)


def sequence_filled_in(patches, cls_token, dist_token, pos_embed):
    batch, n, dim = patches.shape
    z = torch.empty(batch, n + 2, dim)
    z[:, 0], z[:, 1], z[:, 2:] = cls_token[0], dist_token[0], patches
    return z + pos_embed


def loss_cross_entropy(class_logits, distil_logits, labels, teacher_labels, weight=0.5, label_smoothing=0.1):
    true = F.cross_entropy(class_logits, labels, label_smoothing=label_smoothing)
    taught = F.cross_entropy(distil_logits, teacher_labels)
    return (1 - weight) * true + weight * taught


def loss_log_softmax_by_hand(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing):
    """Chapter 5's smoothed cross-entropy written out: (1 - eps) NLL + eps * the mean over the classes."""
    log_p = class_logits.log_softmax(dim=-1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    true = ((1 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=-1)).mean()
    taught = -distil_logits.log_softmax(dim=-1)[torch.arange(len(teacher_labels)), teacher_labels].mean()
    return (1 - weight) * true + weight * taught


def loss_probability_targets(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing):
    """Targets as distributions: the smoothed one-hot of y, and the teacher's label one-hot."""
    classes = class_logits.shape[1]
    smoothed = (1 - label_smoothing) * F.one_hot(labels, classes) + label_smoothing / classes
    taught = F.one_hot(teacher_labels, classes).float()
    return (1 - weight) * F.cross_entropy(class_logits, smoothed) + weight * F.cross_entropy(distil_logits, taught)


def loss_kl_div_batchmean(class_logits, distil_logits, labels, teacher_labels, weight, label_smoothing):
    """The teacher's term as a KL divergence to its one-hot answer (which has no entropy): the same number."""
    taught = F.one_hot(teacher_labels, distil_logits.shape[1]).float()
    kl = F.kl_div(distil_logits.log_softmax(dim=-1), taught, reduction="batchmean")
    return (1 - weight) * F.cross_entropy(class_logits, labels, label_smoothing=label_smoothing) + weight * kl


def agreement_as_levers(model_logits, teacher_logits, labels):
    said, taught = model_logits.argmax(dim=1), teacher_logits.argmax(dim=1)
    repeated = (taught != labels) & (said == taught)
    return (said == taught).float().mean().item(), int(repeated.sum())


def agreement_model_wrong_with_the_teachers_label(model_logits, teacher_logits, labels):
    """A mistake the model shares: the model is wrong, and says what the teacher says."""
    said, taught = model_logits.argmax(-1), teacher_logits.argmax(-1)
    agree = said == taught
    return agree.double().mean(), (agree & (said != labels)).sum()  # tensors, not Python numbers


def agreement_loops(model_logits, teacher_logits, labels):
    agree = shared = 0
    for m, t, y in zip(model_logits.tolist(), teacher_logits.tolist(), labels.tolist(), strict=True):
        said, taught = m.index(max(m)), t.index(max(t))
        agree += said == taught
        shared += taught != y and said == taught
    return agree / len(labels), shared


def resize_einops(pos_embed, old_grid, new_grid, num_prefix_tokens):
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = rearrange(patches, "b (h w) d -> b d h w", h=old_grid[0], w=old_grid[1])
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", antialias=True)
    return torch.cat([prefix, rearrange(grid, "b d h w -> b (h w) d")], dim=1)


def resize_timm(pos_embed, old_grid, new_grid, num_prefix_tokens):
    timm_layers = pytest.importorskip("timm.layers")
    return timm_layers.resample_abs_pos_embed(pos_embed, list(new_grid), list(old_grid), num_prefix_tokens)


def resize_float64(pos_embed, old_grid, new_grid, num_prefix_tokens):
    patches = pos_embed[0, num_prefix_tokens:].double().T.reshape(1, -1, *old_grid)  # (1, D, gh, gw)
    grid = F.interpolate(patches, size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=True)
    patches = grid.reshape(pos_embed.shape[-1], -1).T[None].float()
    return torch.cat([pos_embed[:, :num_prefix_tokens], patches], dim=1)


def resize_with_interpolate(pos_embed, old_grid, new_grid):
    cls, patch_rows = pos_embed[:, :1], pos_embed[:, 1:]  # (1, 1, D), (1, N, D)
    image = patch_rows.transpose(1, 2).reshape(1, -1, *old_grid)  # (1, D, gh, gw)
    image = F.interpolate(image, size=new_grid, mode="bilinear", align_corners=False)
    return torch.cat([cls, image.flatten(2).transpose(1, 2)], dim=1)


def _linear_weights(old, new):
    """(new, old): align_corners=False, each output the centre of its cell, clamped at the edges."""
    weights = torch.zeros(new, old)
    for out in range(new):
        source = max((out + 0.5) * old / new - 0.5, 0.0)
        low = min(int(source), old - 1)
        high, t = min(low + 1, old - 1), source - low
        weights[out, low] += 1 - t
        weights[out, high] += t
    return weights


def resize_with_matrices(pos_embed, old_grid, new_grid):
    """Bilinear interpolation is separable: one matrix for the rows, one for the columns."""
    grid = rearrange(pos_embed[0, 1:], "(gh gw) d -> d gh gw", gh=old_grid[0])
    grid = _linear_weights(old_grid[0], new_grid[0]) @ grid @ _linear_weights(old_grid[1], new_grid[1]).T
    return torch.cat([pos_embed[:, :1], rearrange(grid, "d gh gw -> 1 (gh gw) d")], dim=1)


def resize_with_grid_sample(pos_embed, old_grid, new_grid):
    """Sample the old grid at the centres of the new cells, in grid_sample's [-1, 1] coordinates."""
    image = rearrange(pos_embed[:, 1:], "b (gh gw) d -> b d gh gw", gh=old_grid[0])
    ys = (torch.arange(new_grid[0]) + 0.5) / new_grid[0] * 2 - 1
    xs = (torch.arange(new_grid[1]) + 0.5) / new_grid[1] * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    where = torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, gh', gw', 2), x first
    image = F.grid_sample(image, where, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.cat([pos_embed[:, :1], rearrange(image, "b d gh gw -> b (gh gw) d")], dim=1)


def stretch_interpolate(pos_embed, new_tokens, num_prefix_tokens):
    prefix = pos_embed[:, :num_prefix_tokens]
    rows = pos_embed[:, num_prefix_tokens:].transpose(1, 2)  # (1, D, N)
    rows = F.interpolate(rows, size=new_tokens, mode="linear")
    return torch.cat([prefix, rows.transpose(1, 2)], dim=1)


def stretch_with_a_matrix(pos_embed, new_tokens, num_prefix_tokens):
    """Linear interpolation is a (new, N) matrix of weights on the N rows."""
    rows = pos_embed[0, num_prefix_tokens:]  # (N, D)
    stretched = _linear_weights(rows.shape[0], new_tokens) @ rows  # (new, D)
    return torch.cat([pos_embed[:, :num_prefix_tokens], stretched[None]], dim=1)


def stretch_float64_by_hand(pos_embed, new_tokens, num_prefix_tokens):
    rows = pos_embed[0, num_prefix_tokens:].double()
    n = rows.shape[0]
    source = ((torch.arange(new_tokens, dtype=torch.float64) + 0.5) * n / new_tokens - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=n - 1)
    high, t = (low + 1).clamp(max=n - 1), (source - low)[:, None]
    stretched = (1 - t) * rows[low] + t * rows[high]
    return torch.cat([pos_embed[:, :num_prefix_tokens], stretched[None].float()], dim=1)


CORRECT = [
    (distillation.check_distilled_sequence, sequence_cat_then_add),
    (distillation.check_distilled_sequence, sequence_each_part_its_rows),
    (distillation.check_distilled_sequence, sequence_einops_repeat),
    (distillation.check_distilled_sequence, sequence_filled_in),
    (distillation.check_distillation_loss, loss_cross_entropy),
    (distillation.check_distillation_loss, loss_log_softmax_by_hand),
    (distillation.check_distillation_loss, loss_probability_targets),
    (distillation.check_distillation_loss, loss_kl_div_batchmean),
    (distillation.check_teacher_agreement, agreement_as_levers),
    (distillation.check_teacher_agreement, agreement_model_wrong_with_the_teachers_label),
    (distillation.check_teacher_agreement, agreement_loops),
    (resolution.check_resize_pos_embed, resize_einops),
    (resolution.check_resize_pos_embed, resize_timm),
    (resolution.check_resize_pos_embed, resize_float64),
    (resolution.check_resize_pos_embed_bilinear, resize_with_interpolate),
    (resolution.check_resize_pos_embed_bilinear, resize_with_matrices),
    (resolution.check_resize_pos_embed_bilinear, resize_with_grid_sample),
    (resolution.check_stretch_pos_embed, stretch_interpolate),
    (resolution.check_stretch_pos_embed, stretch_with_a_matrix),
    (resolution.check_stretch_pos_embed, stretch_float64_by_hand),
]


# Each checker with one correct answer and its catalogue of mistakes; test_exercises.py reads these
# (and _right_rectangular, chapter 2's transfer task, imported above) to see every checker tested.
CHECKS = [
    (distillation.check_distilled_sequence, sequence_cat_then_add, distillation.SEQUENCE_MISTAKES),
    (distillation.check_distillation_loss, loss_cross_entropy, distillation.LOSS_MISTAKES),
    (distillation.check_teacher_agreement, agreement_as_levers, distillation.AGREEMENT_MISTAKES),
    (resolution.check_resize_pos_embed, resize_float64, resolution.RESIZE_MISTAKES),
    (resolution.check_resize_pos_embed_bilinear, resize_with_interpolate, resolution.RESIZE_BILINEAR_MISTAKES),
    (resolution.check_stretch_pos_embed, stretch_interpolate, resolution.STRETCH_MISTAKES),
]


@checkers.right_answers(CORRECT)
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    """A right answer passes, and its verdict fits the book's code column, where the book shows it."""
    checkers.assert_passes(checker, answer, capsys)


def test_every_checker_of_both_chapters_is_tested_here():
    offered = {f"{m.__name__}.{name}" for m in (distillation, resolution) for name in m.__all__}
    assert offered == {f"{c.__module__}.{c.__name__}" for c, _ in CORRECT}
    assert offered == {f"{c.__module__}.{c.__name__}" for c, _, _ in CHECKS}
    assert len(distillation.__all__) >= 3 and len(resolution.__all__) >= 3  # every chapter: 3 exercises


@pytest.mark.parametrize(
    "checker, correct",
    [
        (distillation.check_distilled_sequence, sequence_cat_then_add),
        (distillation.check_distillation_loss, loss_cross_entropy),
        (resolution.check_resize_pos_embed, resize_float64),
        (resolution.check_resize_pos_embed_bilinear, resize_with_interpolate),
        (resolution.check_stretch_pos_embed, stretch_interpolate),
    ],
)
def test_tolerances_are_not_so_loose_that_a_small_error_passes(checker, correct):
    checkers.assert_a_small_error_fails(checker, correct)


def test_teacher_agreement_counts_one_input_more_or_less():
    def one_more_shared(*args):
        agree, shared = agreement_as_levers(*args)
        return agree, shared + 1

    def one_more_agreeing(*args):
        agree, shared = agreement_as_levers(*args)
        return agree + 1 / len(args[2]), shared

    assert not distillation.check_teacher_agreement(one_more_shared)
    assert not distillation.check_teacher_agreement(one_more_agreeing)


# --- The references are what vitlib and the chapters compute --------------------------------------


def test_the_distilled_sequence_is_what_a_distilled_model_embeds():
    model = vitlib.VisionTransformer(vitlib.ViTConfig(patch_size=7, distilled=True)).eval()
    images = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        by_hand = distillation._distilled_sequence(
            model.patch_embed(images), model.cls_token, model.dist_token, model.pos_embed
        )
        assert torch.equal(by_hand, model.embed(images))


class _Columns(nn.Module):
    """A stand-in model: its logits are columns of the input, so that a loader can carry both models'."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]


def test_teacher_agreement_is_what_the_levers_measure():
    for case in distillation._agreement_cases():
        model_logits, teacher_logits, labels = case.args
        k = model_logits.shape[1]
        loader = DataLoader(TensorDataset(torch.cat([model_logits, teacher_logits], dim=1), labels), batch_size=64)
        measured = levers.agreement_with_teacher(_Columns(0, k), _Columns(k, 2 * k), loader, "cpu")
        agree, shared = distillation._teacher_agreement(model_logits, teacher_logits, labels)
        assert agree == pytest.approx(measured["agree_model"], abs=1e-7)
        assert shared == measured["shared_mistakes_model"]


def test_the_agreement_cases_hold_every_kind_of_answer():
    """Shared mistakes with the teacher's label and with another, mistakes of the model's own, fixes."""
    model_logits, teacher_logits, labels = distillation._agreement_cases()[0].args
    said, taught = model_logits.argmax(1), teacher_logits.argmax(1)
    teacher_wrong = taught != labels
    assert (teacher_wrong & (said == taught)).any()  # repeated, same wrong label
    assert (teacher_wrong & (said != taught) & (said != labels)).any()  # both wrong, different labels
    assert (teacher_wrong & (said == labels)).any()  # the model right where the teacher is wrong
    assert (~teacher_wrong & (said != labels)).any()  # the model wrong where the teacher is right


def test_the_stretch_reference_is_the_chapters_control():
    model = vitlib.VisionTransformer(vitlib.ViTConfig(patch_size=4))  # 7 x 7 patches at 28 x 28
    flat = model.resized(56)
    prefix = flat.num_prefix_tokens
    with torch.no_grad():  # as chapter 8 writes it
        rows = model.pos_embed[:, prefix:].transpose(1, 2)  # (1, D, 49)
        n = flat.patch_embed.num_patches  # 196
        flat.pos_embed[:, prefix:] = F.interpolate(rows, size=n, mode="linear").transpose(1, 2)
        expected = resolution._stretch_pos_embed(model.pos_embed, n, prefix)
    assert torch.equal(flat.pos_embed, expected)


def test_the_resize_checkers_try_two_prefix_tokens_and_none():
    report = resolution.check_resize_pos_embed(resize_float64).report
    assert "pos_embed (1, 2 + 7x7" in report and "pos_embed (1, 0 + 4x4" in report
    report = resolution.check_stretch_pos_embed(stretch_interpolate).report
    assert "(1, 2 + 49, 64)" in report and "(1, 0 + 16, 8)" in report


# --- Wrong answers a reader writes, and what the checker must call them ---------------------------


def _tokens(patches, cls_token, dist_token):
    return [token.expand(patches.shape[0], -1, -1) for token in (cls_token, dist_token)]


def _ce(logits, labels, smoothing=0.0):
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _agreement_parts(model_logits, teacher_logits, labels):
    said, taught = model_logits.argmax(1), teacher_logits.argmax(1)
    return said, taught, taught != labels


def _stretch_rows(rows, new_tokens, **options):
    """(1, N, D) rows -> (1, new_tokens, D), interpolated along N."""
    return F.interpolate(rows.transpose(1, 2), size=new_tokens, **{"mode": "linear", **options}).transpose(1, 2)


def _bicubic(patches, old, new, **options):
    grid = patches.reshape(1, *old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new), **{"mode": "bicubic", "antialias": True, **options})
    return grid.permute(0, 2, 3, 1).reshape(1, -1, patches.shape[-1])


def _no_permute(patches, old, new):
    grid = F.interpolate(patches.reshape(1, -1, *old), size=tuple(new), mode="bicubic", antialias=True)
    return grid.reshape(1, -1, patches.shape[-1])


def _column_major(patches, old):
    """The rows re-read as if the patches were numbered down the columns."""
    return patches.reshape(1, old[1], old[0], -1).transpose(1, 2).reshape(1, -1, patches.shape[-1])


def _in_columns(patches, grid):
    """Row-major rows written back numbered down the columns."""
    return patches.reshape(1, grid[0], grid[1], -1).transpose(1, 2).reshape(1, -1, patches.shape[-1])


def _resize_no_cls(pos, old, new):
    return resize_with_interpolate(pos, old, new)[:, 1:]


def _resize_cls_last(pos, old, new):
    resized = resize_with_interpolate(pos, old, new)
    return torch.cat([resized[:, 1:], resized[:, :1]], dim=1)


def _resize_reshape_only(pos, old, new):
    image = pos[:, 1:].reshape(1, -1, *old)
    image = F.interpolate(image, size=new, mode="bilinear", align_corners=False)
    return torch.cat([pos[:, :1], image.reshape(1, -1, pos.shape[-1])], dim=1)


def _resize_with(**options):
    def resize(pos, old, new):
        image = pos[:, 1:].transpose(1, 2).reshape(1, -1, *old)
        image = F.interpolate(image, size=new, **options)
        return torch.cat([pos[:, :1], image.flatten(2).transpose(1, 2)], dim=1)

    return resize


def _resize_column_major(pos, old, new):
    image = rearrange(pos[:, 1:], "b (gw gh) d -> b d gh gw", gh=old[0])
    image = F.interpolate(image, size=new, mode="bilinear", align_corners=False)
    return torch.cat([pos[:, :1], rearrange(image, "b d gh gw -> b (gw gh) d")], dim=1)


def _resize_size_swapped(pos, old, new):
    return resize_with_interpolate(pos, old, (new[1], new[0]))


WRONG = [
    # the distilled sequence
    (
        distillation.check_distilled_sequence,
        lambda p, c, d, e: sequence_cat_then_add(p, d, c, e),
        "prefix tokens are swapped",
    ),
    (
        distillation.check_distilled_sequence,
        lambda p, c, d, e: torch.cat([_tokens(p, c, d)[0], p, _tokens(p, c, d)[1]], dim=1) + e,
        "comes after the patches",
    ),
    (
        distillation.check_distilled_sequence,
        lambda p, c, d, e: torch.cat([*_tokens(p, c, d), p + e[:, 2:]], dim=1),
        "to the patches only",
    ),
    (
        distillation.check_distilled_sequence,
        lambda p, c, d, e: torch.cat([*_tokens(p, c, d), p + e[:, : p.shape[1]]], dim=1),
        "before the tokens were put in front",
    ),
    (
        distillation.check_distilled_sequence,
        lambda p, c, d, e: torch.cat([*_tokens(p, c, d), p], dim=1),
        "E_pos is missing",
    ),
    # hard-label distillation
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y, s) + w * _ce(d, t, s),
        "smoothed too",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: (1 - w) * _ce(c, y) + w * _ce(d, t, s),
        "on the wrong term",
    ),
    (distillation.check_distillation_loss, lambda c, d, y, t, w, s: loss_cross_entropy(c, d, y, t, w, 0.0), "not used"),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: loss_cross_entropy(d, c, y, t, w, s),
        "heads are swapped",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: loss_cross_entropy(c, d, t, y, w, s),
        "labels are swapped",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: loss_cross_entropy(c, d, y, t, 1 - w, s),
        "weights are swapped",
    ),
    (distillation.check_distillation_loss, lambda c, d, y, t, w, s: loss_cross_entropy(c, d, y, t), "ignored"),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: _ce(c, y, s) + _ce(d, t),
        "full weight",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: loss_cross_entropy(c, c, y, t, w, s),
        "read the class head",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: loss_cross_entropy((c + d) / 2, (c + d) / 2, y, t, w, s),
        "mean of the two heads",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: (
            (1 - w) * _ce(c, y, s) + w * F.kl_div(d.log_softmax(-1), F.one_hot(t, d.shape[1]).float(), reduction="mean")
        ),
        "K times too small",
    ),
    (
        distillation.check_distillation_loss,
        lambda c, d, y, t, w, s: len(y) * loss_cross_entropy(c, d, y, t, w, s),
        "summed over the batch",
    ),
    # agreement with the teacher
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (
            agreement_as_levers(m, t, y)[0],
            int(((m.argmax(1) != y) & (t.argmax(1) != y)).sum()),
        ),
        "every input both get wrong",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (
            ((m.argmax(1) == t.argmax(1)) & (t.argmax(1) == y)).float().mean().item(),
            agreement_as_levers(m, t, y)[1],
        ),
        "only where the teacher is right",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (
            ((m.argmax(1) == y) == (t.argmax(1) == y)).float().mean().item(),
            agreement_as_levers(m, t, y)[1],
        ),
        "both are right or both are wrong",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: ((m.argmax(1) != t.argmax(1)).float().mean().item(), agreement_as_levers(m, t, y)[1]),
        "disagreement",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: ((m.argmax(1) == t.argmax(1)).sum().item(), agreement_as_levers(m, t, y)[1]),
        "is a count",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (100 * agreement_as_levers(m, t, y)[0], agreement_as_levers(m, t, y)[1]),
        "percentage",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: ((m.argmax(1) == y).float().mean().item(), agreement_as_levers(m, t, y)[1]),
        "model's accuracy",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (
            agreement_as_levers(m, t, y)[0],
            agreement_as_levers(m, t, y)[1] / (t.argmax(1) != y).sum().item(),
        ),
        "share of the teacher's mistakes",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (agreement_as_levers(m, t, y)[0], int(_agreement_parts(m, t, y)[2].sum())),
        "all the teacher's mistakes",
    ),
    (
        distillation.check_teacher_agreement,
        lambda m, t, y: (agreement_as_levers(m, t, y)[0], int((m.argmax(1) != y).sum())),
        "all the model's mistakes",
    ),
    # resize_pos_embed, bicubic (moved here from chapter 6)
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: F.interpolate(e.mT, size=p + new[0] * new[1], mode="linear").mT,
        "class token went through",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat(
            [e[:, :p], F.interpolate(e[:, p:].mT, size=new[0] * new[1], mode="linear").mT], dim=1
        ),
        "1-D sequence",
    ),
    (resolution.check_resize_pos_embed, lambda e, old, new, p: _bicubic(e[:, p:], old, new), "prefix tokens"),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([_bicubic(e[:, p:], old, new), e[:, :p]], dim=1),
        "put back at the end",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat(
            [e[:, :p], _in_columns(_bicubic(_column_major(e[:, p:], old), old, new), new)], dim=1
        ),
        "column order",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([e[:, :p], _no_permute(e[:, p:], old, new)], dim=1),
        "reshaped straight",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([e[:, :p], _bicubic(e[:, p:], old[::-1], new)], dim=1),
        "sides are swapped",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat(
            [e[:, :p], _bicubic(e[:, p:], old, new, mode="nearest", antialias=False)], dim=1
        ),
        "nearest",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([e[:, :p], _bicubic(e[:, p:], old, new, mode="bilinear")], dim=1),
        "bilinear",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([e[:, :p], _bicubic(e[:, p:], old, new, align_corners=True)], dim=1),
        "align_corners=True",
    ),
    (
        resolution.check_resize_pos_embed,
        lambda e, old, new, p: torch.cat([e[:, :p], _bicubic(e[:, p:], old, new, antialias=False)], dim=1),
        "antialias is off",
    ),
    # resize_pos_embed, bilinear (moved here from chapter 2)
    (resolution.check_resize_pos_embed_bilinear, _resize_no_cls, "row is missing"),
    (resolution.check_resize_pos_embed_bilinear, _resize_cls_last, "ends up last"),
    (resolution.check_resize_pos_embed_bilinear, _resize_reshape_only, "reshaped straight"),
    (resolution.check_resize_pos_embed_bilinear, _resize_with(), "'nearest'"),
    (
        resolution.check_resize_pos_embed_bilinear,
        _resize_with(mode="bilinear", align_corners=True),
        "align_corners=True",
    ),
    (resolution.check_resize_pos_embed_bilinear, _resize_with(mode="bicubic", align_corners=False), "bicubic"),
    (resolution.check_resize_pos_embed_bilinear, _resize_column_major, "column by column"),
    (resolution.check_resize_pos_embed_bilinear, _resize_size_swapped, "height and width are swapped"),
    # the 1-D control
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: _stretch_rows(e, k + n),
        "prefix rows were stretched",
    ),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat([e[:, :k], _stretch_rows(e[:, k:], n, align_corners=True)], dim=1),
        "align_corners=True",
    ),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat([e[:, :k], F.interpolate(e[:, k:], size=n, mode="linear").transpose(1, 2)], dim=1),
        "over the D channels",
    ),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat(
            [e[:, :k], F.interpolate(e[:, k:].reshape(1, e.shape[2], -1), size=n, mode="linear").reshape(1, n, -1)],
            dim=1,
        ),
        "reshaped to (1, D, N)",
    ),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat([e[:, :k], F.interpolate(e[:, k:].mT, size=n).mT], dim=1),
        "nearest",
    ),
    (resolution.check_stretch_pos_embed, lambda e, n, k: _stretch_rows(e[:, k:], n), "rows are missing"),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat([_stretch_rows(e[:, k:], n), e[:, :k]], dim=1),
        "at the end",
    ),
    (
        resolution.check_stretch_pos_embed,
        lambda e, n, k: torch.cat([e[:, :k], _stretch_rows(e[:, k:], n - k)], dim=1),
        "counts the patch rows only",
    ),
]


@checkers.wrong_answers(WRONG)
def test_checker_names_the_mistake(checker, answer, named, capsys):
    checkers.assert_names_mistake(checker, answer, named, capsys)


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    checkers.assert_every_mistake_is_named(WRONG, [catalogue for _, _, catalogue in CHECKS])
