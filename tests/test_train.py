import dataclasses
import itertools
import json
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from vitlib import train as train_module
from vitlib.checkpoint import load_checkpoint, load_model_weights, save_model_weights
from vitlib.cnn import SmallCNN
from vitlib.data import make_loaders
from vitlib.evaluate import load_trained_model, per_class_accuracy
from vitlib.model import VisionTransformer, ViTConfig
from vitlib.train import RECIPES, Recipe, distillation_loss, evaluate, fit, lr_at, train_one_epoch

TINY = Recipe(
    model_overrides=dict(patch_size=7, dim=16, depth=1, heads=2, mlp_dim=32, dropout=0.1, drop_path=0.1),
    epochs=3,
    batch_size=64,
    lr=3e-3,
    warmup_epochs=1,
    train_subset=256,
)


def _loaders(root, recipe=TINY):
    return make_loaders(root, batch_size=recipe.batch_size, augment=recipe.augment, train_subset=recipe.train_subset)


def _model(recipe=TINY, seed=0):
    torch.manual_seed(seed)
    return VisionTransformer(recipe.model_config())


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(step, 100, 10) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lr_at(100, 100, 10) == pytest.approx(0.0)
    assert lr_at(50, 100, 0, "constant") == 1.0


def test_train_one_epoch_overfits_a_small_batch():
    model = VisionTransformer(dataclasses.replace(TINY.model_config(), dropout=0.0, drop_path=0.0))
    images, labels = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        stats = train_one_epoch(model, loader, optimizer, progress=False)
    assert stats["acc"] == 1.0
    assert evaluate(model, loader)["acc"] == 1.0


def test_history_content(data_root, tmp_path):
    history = fit(_model(), *_split(data_root), TINY, out_dir=tmp_path, device="cpu", progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert set(row) == {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert json.loads((tmp_path / "history.json").read_text()) == history


def _split(root, recipe=TINY):
    loaders = _loaders(root, recipe)
    return loaders.train, loaders.val


def _crash_on_second_epoch(monkeypatch) -> None:
    """Make fit's second epoch raise, as a run killed during it would."""
    real_train_one_epoch = train_module.train_one_epoch
    calls = []

    def crash_on_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", crash_on_second_epoch)


def test_resume_ends_with_the_same_weights(data_root, tmp_path, monkeypatch):
    straight = _model()
    fit(straight, *_split(data_root), TINY, out_dir=tmp_path / "straight", device="cpu", progress=False)

    # The same run, killed during its second epoch...
    _crash_on_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), *_split(data_root), TINY, out_dir=tmp_path / "resumed", device="cpu", progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1

    # ...then resumed in a "new process": fresh model (other init), fresh loaders, other global RNG state.
    torch.manual_seed(1234)
    resumed = _model(seed=99)
    history = fit(resumed, *_split(data_root), TINY, out_dir=tmp_path / "resumed", resume=True, device="cpu",
                  progress=False)  # fmt: skip
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_resume_refuses_another_config(data_root, tmp_path):
    one_epoch = dataclasses.replace(TINY, epochs=1)
    fit(_model(), *_split(data_root), one_epoch, out_dir=tmp_path, progress=False)
    other = dataclasses.replace(one_epoch, model_overrides={**TINY.model_overrides, "dim": 32})
    with pytest.raises(ValueError, match=r"different model config \(differs in \['dim'\]\)"):
        fit(_model(other), *_split(data_root), other, out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"different recipe \(differs in \['lr'\]\)"):
        fit(_model(), *_split(data_root), dataclasses.replace(one_epoch, lr=1.0), out_dir=tmp_path, resume=True,
            progress=False)  # fmt: skip


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_checkpoint_is_refused(data_root, tmp_path, damage):
    fit(_model(), *_split(data_root), dataclasses.replace(TINY, epochs=1), out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint" * 100)
    with pytest.raises(ValueError, match="not a readable vitlib checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="not a readable vitlib checkpoint"):
        fit(_model(), *_split(data_root), dataclasses.replace(TINY, epochs=1), out_dir=tmp_path, resume=True,
            progress=False)  # fmt: skip


def test_checkpoint_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Evil()}, path)
    with pytest.raises(ValueError, match="not a readable vitlib checkpoint"):
        load_checkpoint(path)


def test_weights_round_trip(tmp_path):
    model = _model().eval()
    save_model_weights(tmp_path / "model.safetensors", model, {"note": {"epochs": 3}})
    loaded, metadata = load_model_weights(tmp_path / "model.safetensors")
    images = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
    assert loaded.config == model.config and metadata == {"note": {"epochs": 3}}
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model_weights(tmp_path / "bad.safetensors")


def test_training_checkpoint_loads_for_evaluation(data_root, tmp_path):
    model = _model()
    fit(model, *_split(data_root), dataclasses.replace(TINY, epochs=1), out_dir=tmp_path, progress=False)
    loaded = load_trained_model(tmp_path / "checkpoint.pt")
    images = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(images), model.eval()(images))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["normalization"] == {"mean": 0.1307, "std": 0.3081}
    assert {"optimizer", "scheduler", "rng", "loader_rng", "recipe", "model_config"} <= set(state)


def test_per_class_accuracy_by_hand():
    assert per_class_accuracy([0, 1, 1, 2], [0, 1, 2, 2], num_classes=3) == [1.0, 1.0, 0.5]


def test_command_line_help_and_bad_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--preset", "--epochs", "--data", "--out", "--resume", "--seed", "--teacher", "--quick", "--compile"):
        assert flag in help_text
    assert "torchrun --nproc_per_node=N -m vitlib.train" in " ".join(help_text.split())
    with pytest.raises(SystemExit):
        train_module.main(["--preset", "fastest"])
    assert "invalid choice: 'fastest'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_module.main(["--preset", "quick", "--epochs", "0"])
    assert "must be a positive integer, got 0" in capsys.readouterr().err


def test_command_line_trains_and_evaluates(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(RECIPES, "tiny", dataclasses.replace(TINY, epochs=1))
    out = tmp_path / "run"
    assert train_module.main(["--preset", "tiny", "--data", str(data_root), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_acc"] <= 1.0 and summary["epochs"] == 1
    # a second run into the same folder must not silently overwrite it
    assert train_module.main(["--preset", "tiny", "--data", str(data_root), "--out", str(out)]) == 2
    from vitlib import evaluate as evaluate_module

    assert evaluate_module.main([str(out / "model.safetensors"), "--data", str(data_root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["test_acc"] == pytest.approx(summary["test_acc"])
    assert len(result["per_class_acc"]) == 10


DISTILLED = dataclasses.replace(
    TINY, model_overrides={**TINY.model_overrides, "distilled": True}, teacher="teacher", ema_decay=0.9
)


class ConstantTeacher(torch.nn.Module):
    """A teacher that reads every digit as ``label``: whatever it says, the distillation head learns."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((len(images),), self.label), 10).float()


def test_distillation_loss_is_deits_hard_label_mix():
    class_logits, distillation_logits = torch.randn(5, 10), torch.randn(5, 10)
    labels, teacher_labels = torch.randint(0, 10, (5,)), torch.randint(0, 10, (5,))
    F = torch.nn.functional
    expected = 0.5 * F.cross_entropy(class_logits, labels, label_smoothing=0.1) + 0.5 * F.cross_entropy(
        distillation_logits, teacher_labels
    )  # smoothing on the true labels only
    got = distillation_loss(class_logits, distillation_logits, labels, teacher_labels, 0.5, 0.1)
    torch.testing.assert_close(got, expected)
    only_teacher = distillation_loss(class_logits, distillation_logits, labels, teacher_labels, 1.0)
    torch.testing.assert_close(only_teacher, F.cross_entropy(distillation_logits, teacher_labels))


def test_distillation_head_learns_the_teachers_labels_and_the_class_head_the_true_ones(data_root):
    model_overrides = {**DISTILLED.model_overrides, "dim": 32, "heads": 4, "dropout": 0.0, "drop_path": 0.0}
    recipe = dataclasses.replace(
        DISTILLED, model_overrides=model_overrides, epochs=6, ema_decay=None, train_subset=1024, augment=False
    )
    model = _model(recipe)
    train, val = _split(data_root, recipe)
    fit(model, train, None, recipe, teacher=ConstantTeacher(3), device="cpu", progress=False, verbose=False)
    result = evaluate(model, val)
    model.eval()
    images, _ = next(iter(val))
    with torch.no_grad():
        _, distillation_logits = model.forward_heads(model.forward_features(images))
    assert (distillation_logits.argmax(1) == 3).float().mean() > 0.95  # it says what the teacher says
    assert result["acc_class_head"] > 0.3  # the class head reads digits (chance: 0.1)
    assert result["acc_distillation_head"] < 0.2  # about the share of 3s


def test_fit_with_ema_ends_with_the_average_and_keeps_the_raw_weights(data_root, tmp_path):
    recipe = dataclasses.replace(TINY, epochs=2, ema_decay=0.9)
    model = _model(recipe)
    raw_start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    history = fit(model, *_split(data_root, recipe), recipe, out_dir=tmp_path, device="cpu", progress=False)
    raw = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    ema = load_checkpoint(tmp_path / "checkpoint.pt")["ema"]
    assert ema["n_averaged"].item() == 2 * len(_split(data_root, recipe)[0])  # one update per step
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, ema[f"module.{name}"])
        if tensor.is_floating_point() and not torch.equal(raw_start[name], raw[name]):
            assert not torch.equal(tensor, raw[name]), name  # the average is not the last step
    assert {"val_acc", "val_acc_raw"} <= set(history[-1])


def test_resume_with_teacher_and_ema_ends_with_the_same_weights(data_root, tmp_path, monkeypatch):
    recipe = dataclasses.replace(DISTILLED, epochs=2)
    teacher = SmallCNN().eval()
    straight = _model(recipe)
    fit(straight, *_split(data_root, recipe), recipe, teacher=teacher, out_dir=tmp_path / "a", device="cpu",
        progress=False)  # fmt: skip
    _crash_on_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(recipe), *_split(data_root, recipe), recipe, teacher=teacher, out_dir=tmp_path / "b",
            device="cpu", progress=False)  # fmt: skip
    monkeypatch.undo()
    resumed = _model(recipe, seed=5)
    fit(resumed, *_split(data_root, recipe), recipe, teacher=teacher, out_dir=tmp_path / "b", resume=True,
        device="cpu", progress=False)  # fmt: skip
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_distillation_refuses_what_does_not_fit(data_root):
    train, val = _split(data_root)
    with pytest.raises(ValueError, match=r"recipe.teacher is 'teacher' but teacher is None"):
        fit(_model(DISTILLED), train, val, DISTILLED, progress=False)
    with pytest.raises(ValueError, match=r"recipe.teacher is None but teacher is given"):
        fit(_model(), train, val, TINY, teacher=SmallCNN(), progress=False)
    with pytest.raises(ValueError, match=r"needs a student with a distillation token: add model_overrides"):
        dataclasses.replace(TINY, teacher="teacher")
    with pytest.raises(ValueError, match=r"ema_decay must be in \(0, 1\)"):
        dataclasses.replace(TINY, ema_decay=1.0)


def test_distilled_preset_quick_run_trains_teacher_then_student(data_root, tmp_path, capsys):
    out = tmp_path / "distilled"
    argv = ["--preset", "distilled", "--quick", "--data", str(data_root), "--out", str(out), "--no-progress"]
    assert train_module.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    teacher, metadata = load_model_weights(out / "teacher" / "model.safetensors")
    assert isinstance(teacher, SmallCNN) and metadata["summary"]["preset"] == "teacher"
    assert summary["teacher"]["test_acc"] == metadata["summary"]["test_acc"]
    for key in ("test_acc", "test_acc_class_head", "test_acc_distillation_head", "test_acc_raw"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["train_seconds_with_teacher"] > summary["train_seconds"]
    student, _ = load_model_weights(out / "model.safetensors")
    assert student.config.distilled
    # a second student reuses that teacher; --teacher is refused for a recipe without one
    again = ["--preset", "distilled", "--quick", "--data", str(data_root), "--out", str(tmp_path / "again"),
             "--teacher", str(out / "teacher" / "model.safetensors"), "--no-progress"]  # fmt: skip
    assert train_module.main(again) == 0
    assert not (tmp_path / "again" / "teacher").exists()
    assert train_module.main(["--preset", "quick", "--teacher", "x.safetensors", "--out", str(tmp_path / "q")]) == 2
    assert "'quick' has no teacher" in capsys.readouterr().err


def test_teacher_weights_round_trip(tmp_path):
    cnn = SmallCNN(widths=(8, 16)).eval()
    save_model_weights(tmp_path / "cnn.safetensors", cnn, {"summary": {"test_acc": 0.5}})
    loaded, metadata = load_model_weights(tmp_path / "cnn.safetensors")
    images = torch.randn(2, 1, 28, 28)
    assert isinstance(loaded, SmallCNN) and metadata == {"summary": {"test_acc": 0.5}}
    torch.testing.assert_close(loaded(images), cnn(images), rtol=0, atol=0)
    with pytest.raises(ValueError, match="can save a VisionTransformer or a SmallCNN, got Linear"):
        save_model_weights(tmp_path / "x.safetensors", torch.nn.Linear(2, 2), {})


def test_compiled_training_matches_eager(data_root, tmp_path, monkeypatch):
    recipe = dataclasses.replace(TINY, epochs=1, augment=False, model_overrides={**TINY.model_overrides, "dropout": 0.0,
                                 "drop_path": 0.0})  # fmt: skip
    eager, compiled = _model(recipe), _model(recipe)
    compiles = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **options: compiles.append(module) or real_compile(module))
    fit(eager, *_split(data_root, recipe), recipe, device="cpu", progress=False, verbose=False)
    assert compiles == []
    fit(compiled, *_split(data_root, recipe), recipe, out_dir=tmp_path, device="cpu", compile=True, progress=False,
        verbose=False)  # fmt: skip
    assert compiles == [compiled]
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():  # fused kernels round differently; Adam's steps keep that difference small
        torch.testing.assert_close(compiled.eval()(images), eager.eval()(images), rtol=0, atol=1e-3)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    assert set(saved) == set(eager.state_dict())  # the model's own names, not the compiled wrapper's


def test_compile_without_a_compiler_says_so_up_front(data_root, monkeypatch):
    monkeypatch.setattr(train_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"needs a C\+\+ compiler .* train without --compile"):
        fit(_model(), *_split(data_root), TINY, device="cpu", compile=True, progress=False)


@pytest.mark.parametrize(("native", "dtype"), [(False, torch.float16), (True, torch.bfloat16)])
def test_gpu_autocast_takes_bfloat16_only_where_the_gpu_has_it(monkeypatch, native, dtype):
    """A T4 (Colab's free GPU) only emulates bfloat16, and is_bf16_supported() counts emulation
    unless told not to: such a GPU must get float16 (with the gradient scaler), not bfloat16."""
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native or including_emulation  # an emulating GPU says yes when emulation counts

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without a GPU, autocast warns that it disables itself
        context = train_module._autocast(torch.device("cuda"))
    assert context.fast_dtype == dtype
    assert asked == [False]


def test_true_labels_teach_the_distillation_head_each_digits_own_label(monkeypatch):
    """The control for distillation: the second head's targets are the batch's labels, not a model's."""
    seen = []
    real_loss = train_module.distillation_loss

    def recording_loss(class_logits, distillation_logits, labels, teacher_labels, *args):
        seen.append((labels.clone(), teacher_labels.clone()))
        return real_loss(class_logits, distillation_logits, labels, teacher_labels, *args)

    monkeypatch.setattr(train_module, "distillation_loss", recording_loss)
    torch.manual_seed(0)
    student = VisionTransformer(ViTConfig(patch_size=7, depth=1, distilled=True))
    images, labels = torch.randn(8, 1, 28, 28), torch.arange(8)
    loader = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    train_one_epoch(student, loader, optimizer, teacher=train_module.TrueLabels(), progress=False)
    assert len(seen) == 2 and all(torch.equal(true, taught) for true, taught in seen)
    with pytest.raises(TypeError, match="reads no images"):
        train_module.TrueLabels()(images)
