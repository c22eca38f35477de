"""Chapters 7 and 8's checkers: a right answer passes, and each catalogued mistake is named."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.exercises import distillation, resolution


def _right_sequence(patches, cls_token, dist_token, pos_embed):
    batch = patches.shape[0]
    prefix = [t.expand(batch, -1, -1) for t in (cls_token, dist_token)]
    return torch.cat([*prefix, patches], dim=1) + pos_embed


def _right_loss(class_logits, distil_logits, labels, teacher, weight, smoothing):
    true_part = F.cross_entropy(class_logits, labels, label_smoothing=smoothing)
    return (1 - weight) * true_part + weight * F.cross_entropy(distil_logits, teacher)


def _right_agreement(model_logits, teacher_logits, labels):
    said, taught = model_logits.argmax(1), teacher_logits.argmax(1)
    shared = ((taught != labels) & (said == taught)).sum().item()
    return (said == taught).float().mean().item(), shared


def _right_stretch(pos_embed, new_tokens, num_prefix_tokens):
    rows = pos_embed[:, num_prefix_tokens:].transpose(1, 2)  # (1, D, N)
    stretched = F.interpolate(rows, size=new_tokens, mode="linear")
    return torch.cat([pos_embed[:, :num_prefix_tokens], stretched.transpose(1, 2)], dim=1)


CHECKS = [
    (distillation.check_distilled_sequence, _right_sequence, distillation.SEQUENCE_MISTAKES),
    (distillation.check_distillation_loss, _right_loss, distillation.LOSS_MISTAKES),
    (distillation.check_teacher_agreement, _right_agreement, distillation.AGREEMENT_MISTAKES),
    (resolution.check_stretch_pos_embed, _right_stretch, resolution.STRETCH_MISTAKES),
]


@pytest.mark.parametrize(("checker", "right", "mistakes"), CHECKS, ids=lambda x: getattr(x, "__name__", ""))
def test_a_right_answer_passes(checker, right, mistakes):
    assert checker(right)


@pytest.mark.parametrize(
    ("checker", "mistake"),
    [(checker, mistake) for checker, _, mistakes in CHECKS for mistake in mistakes],
    ids=lambda x: getattr(x, "__name__", getattr(x, "description", "")[:30]),
)
def test_each_mistake_fails_and_is_named(checker, mistake):
    verdict = checker(mistake.answer)
    assert not verdict
    assert verdict.mistake == mistake.description


def test_the_distilled_sequence_matches_vitlibs_model():
    import vitlib

    model = vitlib.VisionTransformer(vitlib.ViTConfig(patch_size=7, distilled=True)).eval()
    images = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        z0 = _right_sequence(model.patch_embed(images), model.cls_token, model.dist_token, model.pos_embed)
        logits = model.head(model.norm(model.blocks(z0))[:, 0])
        assert torch.allclose(logits, model.forward_heads(model.forward_features(images))[0], atol=1e-6)


def _right_rectangular(images, patch_size):
    ph, pw = patch_size
    b, c, h, w = images.shape
    if h % ph or w % pw:
        raise ValueError(f"{h} x {w} does not cut into {ph} x {pw} patches")
    grid = images.unfold(2, ph, ph).unfold(3, pw, pw)  # (B, C, gh, gw, ph, pw)
    return grid.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, ph * pw * c)


def test_rectangular_patches_right_answer_passes():
    from vitlib.exercises import patches

    assert patches.check_patchify_rectangular(_right_rectangular)


def test_rectangular_patches_mistakes_are_named():
    from vitlib.exercises import patches

    for mistake in patches.PATCHIFY_RECTANGULAR_MISTAKES:
        verdict = patches.check_patchify_rectangular(mistake.answer)
        assert not verdict and verdict.mistake == mistake.description


def test_rectangular_patches_must_refuse_an_uneven_image():
    from vitlib.exercises import patches

    def no_check(images, patch_size):  # right on every even image, silent on an uneven one
        ph, pw = patch_size
        grid = images[..., : images.shape[-2] // ph * ph, : images.shape[-1] // pw * pw]
        return _right_rectangular(grid, patch_size)

    verdict = patches.check_patchify_rectangular(no_check)
    assert not verdict and "ValueError" in verdict.report
