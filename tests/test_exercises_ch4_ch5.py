"""The checkers of chapters 4 and 5: correct answers written in several ways pass, and each
common mistake, written as a reader would write it, is named."""

import json
import math
from pathlib import Path

import checkers
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import vitlib
from vitlib.exercises import encoder, training

# --- Correct answers, written differently from vitlib's own code ---------------------------------


def drop_path_bernoulli(x, p, training):
    if not training or p == 0:
        return x
    keep = x.new_empty(x.shape[0], 1, 1).bernoulli_(1 - p)
    return x * keep / (1 - p)


def drop_path_where(x, p, training):
    if not training:
        return x
    kept = torch.rand(x.shape[0]) >= p
    return torch.where(kept[:, None, None], x / (1 - p), torch.zeros_like(x))


def drop_path_any_rank(x, p, training):
    if training:
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        x = x.div(1 - p) * torch.bernoulli(torch.full(shape, 1 - p))
    return x


def drop_path_module(x, p, training):
    return vitlib.DropPath(p).train(training)(x)


def post_norm(x, blk):
    z = blk.norm1(x + blk.attn(x))
    return blk.norm2(z + blk.mlp(z))


def post_norm_spelled_out(x, blk):
    attended = blk.attn(x)
    x = blk.norm1(attended + x)
    hidden = blk.mlp.fc2(blk.mlp.act(blk.mlp.fc1(x)))
    return blk.norm2(hidden + x)


def parameter_count(c):
    d, m, k = c.dim, c.mlp_dim, c.num_classes
    grid = c.image_size // c.patch_size
    cls = c.pool == "cls"
    per_block = 4 * d + 3 * d * d + 3 * d * c.qkv_bias + d * d + d + 2 * d * m + m + d
    positions = {"learned": (grid * grid + cls) * d, "learned_2d": grid * d}.get(c.pos_embed, 0)
    embedding = c.patch_size**2 * c.in_chans * d + d + cls * d + positions
    return embedding + c.depth * per_block + 2 * d * c.norm_first + d * k + k


def parameter_count_by_modules(c):
    with torch.device("meta"):
        model = vitlib.VisionTransformer(c)
    return sum(p.numel() for p in model.parameters())


def resumed_schedule(num_images, batch_size, epochs, warmup_epochs, done_epochs, drop_last):
    per_epoch = num_images // batch_size if drop_last else math.ceil(num_images / batch_size)
    total, warmup = epochs * per_epoch, round(warmup_epochs * per_epoch)
    return [vitlib.train.lr_at(s, total, warmup) for s in range(done_epochs * per_epoch, total)]


def resumed_schedule_as_fit_resumes(num_images, batch_size, epochs, warmup_epochs, done_epochs, drop_last):
    """A real loader and LambdaLR, stepped through the finished epochs, saved and loaded into a new one."""
    loader = DataLoader(TensorDataset(torch.zeros(num_images)), batch_size=batch_size, drop_last=drop_last)
    total, warmup = epochs * len(loader), round(warmup_epochs * len(loader))

    def new_scheduler():
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: vitlib.train.lr_at(s, total, warmup))

    interrupted = new_scheduler()
    for _ in range(done_epochs * len(loader)):
        interrupted.optimizer.step()
        interrupted.step()
    resumed = new_scheduler()
    resumed.load_state_dict(interrupted.state_dict())  # what fit does with the checkpoint
    rates = []
    for _ in range((epochs - done_epochs) * len(loader)):
        rates.append(resumed.get_last_lr()[0])  # the rate this optimizer step uses
        resumed.optimizer.step()
        resumed.step()
    return rates


def resumed_schedule_float32(num_images, batch_size, epochs, warmup_epochs, done_epochs, drop_last):
    per_epoch = (num_images + (0 if drop_last else batch_size - 1)) // batch_size
    total, warmup = epochs * per_epoch, int(warmup_epochs * per_epoch + 0.5)
    step = torch.arange(done_epochs * per_epoch, total, dtype=torch.float32)
    progress = ((step - warmup) / max(1, total - warmup)).clamp(max=1.0)
    cosine = 0.5 * (1 + torch.cos(math.pi * progress))
    return torch.where(step < warmup, (step + 1) / max(warmup, 1), cosine)


def resumed_schedule_numpy(num_images, batch_size, epochs, warmup_epochs, done_epochs, drop_last):
    import numpy as np

    per_epoch = len(range(0, num_images - (batch_size - 1 if drop_last else 0), batch_size))
    total, warmup = epochs * per_epoch, round(warmup_epochs * per_epoch)
    step = np.arange(total)[done_epochs * per_epoch :]
    cosine = 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))
    return np.where(step < warmup, (step + 1) / max(warmup, 1), cosine)


def confusion_bincount(predictions, labels, num_classes):
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes**2).view(num_classes, -1)


def confusion_loop(predictions, labels, num_classes):
    matrix = torch.zeros(num_classes, num_classes)
    for true, guess in zip(labels.tolist(), predictions.tolist(), strict=True):
        matrix[true, guess] += 1
    return matrix


def confusion_index_put(predictions, labels, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int32)
    ones = torch.ones(len(labels), dtype=torch.int32)
    return matrix.index_put_((labels, predictions), ones, accumulate=True)


def confusion_one_hot(predictions, labels, num_classes):
    return F.one_hot(labels, num_classes).T.float() @ F.one_hot(predictions, num_classes).float()


def confusion_numpy(predictions, labels, num_classes):
    import numpy as np

    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.numpy(), predictions.numpy()), 1)
    return matrix


CORRECT = [
    *[(encoder.check_drop_path, f) for f in (drop_path_bernoulli, drop_path_where, drop_path_any_rank)],
    (encoder.check_drop_path, drop_path_module),
    (encoder.check_post_norm_block, post_norm),
    (encoder.check_post_norm_block, post_norm_spelled_out),
    (encoder.check_parameter_count, parameter_count),
    (encoder.check_parameter_count, parameter_count_by_modules),
    *[
        (training.check_resumed_schedule, f)
        for f in (
            resumed_schedule,
            resumed_schedule_as_fit_resumes,
            resumed_schedule_float32,
            resumed_schedule_numpy,
        )
    ],
    *[
        (training.check_confusion_matrix, f)
        for f in (confusion_bincount, confusion_loop, confusion_index_put, confusion_one_hot, confusion_numpy)
    ],
]


@checkers.right_answers(CORRECT)
def test_checker_passes_a_correct_answer(checker, answer, capsys):
    checkers.assert_passes(checker, answer, capsys)  # the verdict fits the book's code column too


# --- Wrong answers a reader writes, and what the checker must call them ---------------------------


def _drop_path(*, mask_shape=None, keep=lambda p: 1 - p, scale=lambda p: 1 / (1 - p), at_eval=None):
    def drop_path(x, p, training):
        if not training:
            return x if at_eval is None else at_eval(x, p)
        shape = mask_shape(x) if mask_shape else (x.shape[0], 1, 1)
        mask = (torch.rand(shape) < keep(p)).float()
        return x * mask * scale(p)

    return drop_path


def _post_norm_branch_only(x, blk):
    x = x + blk.norm1(blk.attn(x))
    return x + blk.norm2(blk.mlp(x))


def _post_norm_one_norm(x, blk):
    x = blk.norm1(x + blk.attn(x))
    return blk.norm1(x + blk.mlp(x))


def _post_norm_swapped(x, blk):
    x = blk.norm2(blk.attn(x) + x)
    return blk.norm1(blk.mlp(x) + x)


def _post_norm_residual_from_input(x, blk):
    z = blk.norm1(x + blk.attn(x))
    return blk.norm2(x + blk.mlp(z))


def _post_norm_normalize_first(x, blk):
    x = blk.norm1(x)
    x = blk.attn(x) + x
    x = blk.norm2(x)
    return blk.mlp(x) + x


def _counted_once(predictions, labels, num_classes):
    matrix = torch.zeros(num_classes, num_classes)
    matrix[labels, predictions] += 1
    return matrix


def _schedule(*, per_epoch=None, warmup=None, first_step=0, warmup_from_zero=False):
    """A reader's resumed schedule, correct but for one thing."""

    def answer(n, b, e, w, done, drop_last):
        steps = per_epoch(n, b, drop_last) if per_epoch else (n // b if drop_last else math.ceil(n / b))
        total = e * steps
        warm = warmup(w, steps) if warmup else round(w * steps)
        rates = []
        for step in range(done * steps + first_step, total + first_step):
            if step < warm:
                rates.append(step / warm if warmup_from_zero else (step + 1) / warm)
            else:
                progress = min(1.0, (step - warm) / max(1, total - warm))
                rates.append(0.5 * (1 + math.cos(math.pi * progress)))
        return rates

    return answer


def _schedule_restarted(n, b, e, w, done, drop_last):
    steps = n // b if drop_last else math.ceil(n / b)
    full = resumed_schedule(n, b, e, w, 0, drop_last)  # a fresh scheduler: step 0 again
    return full[: (e - done) * steps]


def _schedule_for_the_epochs_left(n, b, e, w, done, drop_last):
    return resumed_schedule(n, b, e - done, w, 0, drop_last)


def _count_learned_2d_as_a_table(c):
    tokens = c.num_patches + (c.pool == "cls")
    table = tokens * c.dim if c.pos_embed.startswith("learned") else 0
    return parameter_count(c.__class__(**{**c.to_dict(), "pos_embed": "none"})) + table


WRONG = [
    # chapter 4: DropPath
    (encoder.check_drop_path, _drop_path(mask_shape=lambda x: (1, 1, 1)), "whole batch"),
    (encoder.check_drop_path, lambda x, p, training: F.dropout(x, p, training), "every element"),
    (encoder.check_drop_path, _drop_path(mask_shape=lambda x: x.shape), "every element"),
    (encoder.check_drop_path, _drop_path(scale=lambda p: 1.0), "not rescaled"),
    (encoder.check_drop_path, _drop_path(scale=lambda p: 1 / p), "divided by p"),
    (encoder.check_drop_path, _drop_path(scale=lambda p: 1 - p), "multiplied by 1 - p"),
    (encoder.check_drop_path, _drop_path(keep=lambda p: p), "used as the keep probability"),
    (encoder.check_drop_path, lambda x, p, training: x.clone(), "nothing is dropped"),
    (encoder.check_drop_path, lambda x, p, training: drop_path_bernoulli(x, p, True), "unchanged"),
    (encoder.check_drop_path, _drop_path(at_eval=lambda x, p: x * (1 - p)), "test-time rule"),
    # chapter 4: the post-norm block
    (encoder.check_post_norm_block, lambda x, blk: blk(x), "pre-norm block"),
    (encoder.check_post_norm_block, _post_norm_branch_only, "output only"),
    (encoder.check_post_norm_block, _post_norm_one_norm, "norm1 is used after the MLP"),
    (encoder.check_post_norm_block, _post_norm_swapped, "swapped"),
    (
        encoder.check_post_norm_block,
        lambda x, blk: (lambda z: blk.norm2(z + blk.mlp(z)))(blk.norm1(blk.attn(x))),
        "around the attention is missing",
    ),
    (encoder.check_post_norm_block, lambda x, blk: blk.norm2(blk.mlp(blk.norm1(x + blk.attn(x)))), "around the MLP"),
    (encoder.check_post_norm_block, _post_norm_residual_from_input, "instead of z'"),
    (encoder.check_post_norm_block, _post_norm_normalize_first, "added back"),
    (
        encoder.check_post_norm_block,
        lambda x, blk: (lambda z: blk.norm2(z + blk.mlp(z)))(x + blk.attn(x)),
        "norm1 is missing",
    ),
    # chapter 4: the parameter count
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) - (2 * c.depth + c.norm_first) * 2 * c.dim,
        "LayerNorm parameters are missing",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - 2 * c.dim * c.norm_first, "final LayerNorm (after"),
    (encoder.check_parameter_count, lambda c: parameter_count(c) + 2 * c.dim * (not c.norm_first), "norm_first=False"),
    (
        encoder.check_parameter_count,
        lambda c: (
            parameter_count(c) - c.num_classes - c.dim - c.depth * (3 * c.dim * c.qkv_bias + 2 * c.dim + c.mlp_dim)
        ),
        "biases are missing",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - c.dim * (c.pool == "cls"), "class token (D)"),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + (c.dim + c.dim * (c.pos_embed == "learned")) * (c.pool == "mean"),
        "pool='mean'",
    ),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + (c.num_patches + (c.pool == "cls")) * c.dim * (c.pos_embed == "sincos"),
        "not learned",
    ),
    (encoder.check_parameter_count, _count_learned_2d_as_a_table, "full table"),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + (c.num_patches + (c.pool == "cls")) * c.dim * (c.pos_embed == "none"),
        "pos_embed='none' is counted",
    ),
    (
        encoder.check_parameter_count,
        lambda c: parameter_count(c) + c.dim * (c.pos_embed == "learned_2d" and c.pool == "cls"),
        "the class token gets no position",
    ),
    (encoder.check_parameter_count, lambda c: parameter_count(c) - c.dim * c.num_classes - c.num_classes, "head"),
    # chapter 5: the schedule of a resumed run
    (training.check_resumed_schedule, _schedule_restarted, "starts again at step 0"),
    (training.check_resumed_schedule, _schedule_for_the_epochs_left, "remaining epochs only"),
    (training.check_resumed_schedule, _schedule(per_epoch=lambda n, b, drop_last: n // b), "drop_last is ignored"),
    (
        training.check_resumed_schedule,
        _schedule(per_epoch=lambda n, b, drop_last: -(-n // b)),
        "incomplete batch is counted",
    ),
    (training.check_resumed_schedule, _schedule(warmup=lambda w, steps: math.floor(w * steps)), "truncated"),
    (training.check_resumed_schedule, _schedule(warmup=lambda w, steps: w), "given in epochs"),
    (training.check_resumed_schedule, _schedule(warmup=lambda w, steps: math.ceil(w * steps)), "rounded up"),
    (training.check_resumed_schedule, _schedule(first_step=1), "rate after its step"),
    (training.check_resumed_schedule, _schedule(warmup_from_zero=True), "warm-up starts at 0"),
    # chapter 5: the confusion matrix
    (training.check_confusion_matrix, lambda p, y, k: confusion_bincount(y, p, k), "swapped"),
    (training.check_confusion_matrix, _counted_once, "only once"),
    (
        training.check_confusion_matrix,
        lambda p, y, k: confusion_loop(p, y, k) / confusion_loop(p, y, k).sum(1, keepdim=True).clamp(min=1),
        "per-class rates",
    ),
    (training.check_confusion_matrix, lambda p, y, k: confusion_loop(p, y, k) / len(y), "number of examples"),
    (
        training.check_confusion_matrix,
        lambda p, y, k: confusion_bincount(p, y, int(torch.cat([p, y]).max()) + 1),
        "largest class present",
    ),
]


@checkers.wrong_answers(WRONG)
def test_checker_names_the_mistake(checker, answer, named, capsys):
    checkers.assert_names_mistake(checker, answer, named, capsys)


CATALOGUES = [
    encoder.DROP_PATH_MISTAKES,
    encoder.POST_NORM_MISTAKES,
    encoder.PARAMETER_MISTAKES,
    training.RESUMED_SCHEDULE_MISTAKES,
    training.CONFUSION_MISTAKES,
]


def test_every_listed_mistake_is_recognised_by_some_wrong_answer():
    checkers.assert_every_mistake_is_named(WRONG, CATALOGUES)


@pytest.mark.parametrize(
    "checker, mistake",
    [
        *[(encoder.check_drop_path, m) for m in encoder.DROP_PATH_MISTAKES],
        *[(encoder.check_post_norm_block, m) for m in encoder.POST_NORM_MISTAKES],
        *[(encoder.check_parameter_count, m) for m in encoder.PARAMETER_MISTAKES],
        *[(training.check_resumed_schedule, m) for m in training.RESUMED_SCHEDULE_MISTAKES],
        *[(training.check_confusion_matrix, m) for m in training.CONFUSION_MISTAKES],
    ],
)
def test_each_catalogued_wrong_answer_is_named_as_itself(checker, mistake):
    assert checker(mistake.answer).mistake == mistake.description


# --- The references are right, and the checks have no side effects ------------------------------


def test_post_norm_reference_is_pytorchs_post_norm_layer():
    block = encoder._random_block(16, 2, 32, seed=0)
    layer = nn.TransformerEncoderLayer(
        16, 2, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=False, layer_norm_eps=1e-6
    ).eval()
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for ours, theirs in [
            (block.norm1, layer.norm1),
            (block.norm2, layer.norm2),
            (block.mlp.fc1, layer.linear1),
            (block.mlp.fc2, layer.linear2),
        ]:
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(encoder._post_norm(x, block), layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("num_images, batch_size", [(55_000, 128), (5_000, 128), (60_000, 100), (1_000, 64)])
def test_schedule_reference_counts_what_the_loader_yields(num_images, batch_size, drop_last):
    loader = DataLoader(TensorDataset(torch.zeros(num_images)), batch_size=batch_size, drop_last=drop_last)
    assert len(training._resumed_schedule(num_images, batch_size, 1, 0, 0, drop_last)) == sum(1 for _ in loader)


def test_schedule_reference_is_what_fit_recorded_in_the_quick_run():
    """fit's history holds the learning rate at the start of every epoch: the reference's values."""
    path = Path(__file__).resolve().parents[1] / "results" / "quick" / "history.json"
    if not path.exists():
        pytest.skip("results/quick/history.json is not there")
    history = json.loads(path.read_text())
    recipe = vitlib.train.RECIPES["quick"]
    per_epoch = 55_000 // recipe.batch_size
    rates = training._resumed_schedule(55_000, recipe.batch_size, recipe.epochs, recipe.warmup_epochs, 0, True)
    recorded = [row["lr"] for row in history]
    expected = [recipe.lr * rates[epoch * per_epoch] for epoch in range(len(history))]
    assert recorded == pytest.approx(expected, rel=1e-12, abs=0)


def test_confusion_reference_on_a_worked_example():
    predictions, labels = torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 2, 2])
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 2]])  # row: true class, column: predicted
    assert torch.equal(training._confusion_matrix(predictions, labels, 3), expected)


def test_drop_path_check_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    encoder.check_drop_path(drop_path_where)
    assert torch.equal(state, torch.get_rng_state())


def test_drop_path_reports_exceptions_in_place_changes_and_unwritten_answers():
    def broken(x, p, training):
        return x.view(-1, 7)

    verdict = encoder.check_drop_path(broken)
    assert "raised an error on case 1 of 4" in verdict.report and "broken" in verdict.report
    assert "_checking.py" not in verdict.report and "exercises/encoder.py" not in verdict.report

    def in_place(x, p, training):
        return x.mul_(1 / (1 - p)) if training else x

    assert "changed x in place" in encoder.check_drop_path(in_place).report

    def not_yet(x, p, training):
        raise NotImplementedError

    assert "not written yet" in encoder.check_drop_path(not_yet).report
    assert "forget to `return`" in encoder.check_drop_path(lambda x, p, training: None).report
    with pytest.raises(TypeError, match="expects your function itself"):
        encoder.check_drop_path(torch.zeros(3))


def test_drop_path_names_the_first_odd_sample_of_an_unknown_wrong_answer():
    verdict = encoder.check_drop_path(lambda x, p, training: x * 2 if training else x)
    assert not verdict.passed and verdict.mistake is None
    assert "neither all zeros nor x / (1 - p)" in verdict.report


def test_confusion_matrix_accepts_any_dtype_but_not_a_wrong_shape():
    assert training.check_confusion_matrix(lambda p, y, k: confusion_bincount(p, y, k).double())
    verdict = training.check_confusion_matrix(lambda p, y, k: confusion_bincount(p, y, k).flatten())
    assert not verdict.passed and "expected shape (10, 10)" in verdict.report


# --- The holes that the first cases missed: each wrong answer here passed before its case existed.


def test_receptive_field_with_even_kernels_catches_the_odd_only_hint():
    from vitlib.exercises import inductive_bias

    assert inductive_bias.check_receptive_field(lambda layers, k: 1 + layers * (k - 1))
    odd_only = inductive_bias.check_receptive_field(lambda layers, k: 1 + 2 * layers * (k // 2))
    assert not odd_only and "odd kernels only" in odd_only.mistake


def test_parameter_count_catches_a_table_counted_for_pos_embed_none():
    from vitlib.exercises import encoder

    def counted_with_none_table(config):  # right for every table but 'none'
        model = vitlib.VisionTransformer(config)
        tokens = config.num_patches + (config.pool == "cls")
        return model.num_parameters() + tokens * config.dim * (config.pos_embed == "none")

    assert encoder.check_parameter_count(lambda config: vitlib.VisionTransformer(config).num_parameters())
    verdict = encoder.check_parameter_count(counted_with_none_table)
    assert not verdict and "pos_embed='none' is counted" in verdict.mistake


def test_resumed_schedule_catches_a_warmup_rounded_up():
    import math

    from vitlib.exercises import training

    def resumed(n, b, epochs, warmup_epochs, done, drop_last, rounding=round):
        per_epoch = n // b if drop_last else math.ceil(n / b)
        total, warmup = epochs * per_epoch, rounding(warmup_epochs * per_epoch)
        return [vitlib.train.lr_at(s, total, warmup) for s in range(done * per_epoch, total)]

    assert training.check_resumed_schedule(resumed)
    verdict = training.check_resumed_schedule(lambda *args: resumed(*args, rounding=math.ceil))
    assert not verdict and "rounded up" in verdict.mistake
