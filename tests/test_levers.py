import dataclasses
import json
from pathlib import Path

import torch

from vitlib.checkpoint import load_checkpoint, write_json
from vitlib.experiments import levers
from vitlib.train import RECIPES, TRUE_LABELS


def test_each_lever_changes_one_thing_from_the_quick_recipe():
    plain = levers.LEVERS["plain"]
    assert dataclasses.replace(plain, ema_decay=None, epochs=RECIPES["quick"].epochs) == RECIPES["quick"]
    assert dataclasses.replace(levers.LEVERS["elastic"], elastic=False) == plain
    distilled = levers.LEVERS["distilled"]
    assert distilled.model_config().distilled and distilled.teacher == "teacher"
    assert dataclasses.replace(distilled, model_overrides=plain.model_overrides, teacher=None) == plain
    control = levers.LEVERS["true_labels"]  # the distilled lever with the teacher's labels made true
    assert control.teacher == TRUE_LABELS and dataclasses.replace(control, teacher="teacher") == distilled


def test_quick_run_writes_one_row_per_lever_and_skips_finished_ones(data_root, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--quick", "--data", str(data_root)]
    assert levers.main(argv) == 0
    rows = json.loads((tmp_path / "levers.json").read_text())["rows"]
    assert [row["lever"] for row in rows] == ["plain", "elastic", "distilled", "true_labels"]
    for row in rows:
        assert 0 <= row["test_acc_raw"] <= 1 and 0 <= row["test_acc_ema"] <= 1 and row["epochs"] == 1
        assert 0 <= row["train_acc"] <= 1  # the last epoch's, on augmented digits
    for row in rows[2:]:  # the two with a distillation head
        assert {"test_acc_class_head", "test_acc_distillation_head"} <= set(row)
    for row in rows:  # every row measures itself against the teacher
        assert 0 <= row["agree_model"] <= 1 and 0 <= row["shared_mistakes_model"] <= row["teacher_mistakes"]
    assert {"agree_class_head", "agree_distillation_head"} <= set(rows[2]) and "agree_class_head" not in rows[0]
    capsys.readouterr()
    assert levers.main(argv) == 0
    assert capsys.readouterr().out.count("done, skipped") == 4


def test_more_seeds_add_rows_beside_the_first_and_keep_their_own_runs(data_root, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--quick", "--data", str(data_root), "--only", "plain"]
    assert levers.main([*argv, "--seeds", "0", "1"]) == 0
    rows = json.loads((tmp_path / "levers.json").read_text())["rows"]
    assert [(row["lever"], row["seed"]) for row in rows] == [("plain", 0), ("plain", 1)]
    first, second = (load_checkpoint(tmp_path / run / "checkpoint.pt")["model"] for run in ("plain", "plain_seed1"))
    assert not torch.equal(first["pos_embed"], second["pos_embed"])  # another seed, another model
    capsys.readouterr()
    assert levers.main([*argv, "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "plain, seed 1: done, skipped" in out and "plain, seed 2: test accuracy" in out
    assert len(json.loads((tmp_path / "levers.json").read_text())["rows"]) == 3


def test_a_run_that_another_process_finished_meanwhile_is_skipped(tmp_path, monkeypatch, capsys):
    results = tmp_path / "levers.json"
    trained = []

    def train_and_test(name, recipe, out_dir, data, seed, device):
        trained.append((name, seed))
        other = {"lever": "plain", "seed": 1, "test_acc_raw": 0.99, "test_acc_ema": 0.99}
        write_json(results, {"rows": [*levers.load_results(results)["rows"], other]})  # the other process
        return {"lever": name, "seed": seed, "test_acc_raw": 0.98, "test_acc_ema": 0.98}

    monkeypatch.setattr(levers, "train_and_test", train_and_test)
    rows = levers.run_levers(["plain"], tmp_path, results, seeds=(0, 1))
    assert trained == [("plain", 0)]
    assert "plain, seed 1: done, skipped" in capsys.readouterr().out
    assert sorted((row["lever"], row["seed"]) for row in rows) == [("plain", 0), ("plain", 1)]


class _Fixed(torch.nn.Module):
    """A 'model' that says the given labels, one batch of four digits."""

    def __init__(self, said):
        super().__init__()
        self.said = torch.tensor(said)

    def forward(self, images):
        return torch.nn.functional.one_hot(self.said, 10).float()


def test_agreement_counts_the_teachers_mistakes_made_with_the_teachers_label():
    loader = [(torch.zeros(4, 1, 28, 28), torch.tensor([1, 2, 3, 4]))]
    teacher = _Fixed([1, 2, 5, 6])  # wrong on the last two
    student = _Fixed([1, 7, 5, 4])  # agrees on 0 and 2: one correct, one the teacher's mistake
    result = levers.agreement_with_teacher(student, teacher, loader, "cpu")
    assert result == {"teacher_mistakes": 2, "agree_model": 0.5, "shared_mistakes_model": 1}


def _row(lever, **more):
    row = {"lever": lever, "seed": 0, "test_acc_raw": 0.9912, "test_acc_ema": 0.992, "agree_model": 0.9934,
           "shared_mistakes_model": 3, "teacher_mistakes": 27, "train_seconds": 630.0,
           "machine": "x86_64, 2 threads"}  # fmt: skip
    return {**row, **more}


def test_report_is_a_markdown_row_per_lever_with_heads_only_where_there_are_two():
    rows = [_row("plain"), _row("distilled", test_acc_class_head=0.99, test_acc_distillation_head=0.9921)]
    lines = levers.markdown_report(rows).splitlines()
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == lines[3].count("|") == 9
    assert lines[2].startswith("| `plain` | 0 | 99.12% | 99.20% |  | 99.34% | 3 of 27 | 10 min |")
    assert "| 99.00% / 99.21% |" in lines[3]
    assert lines[-1] == "Machine: x86_64, 2 threads"


def test_report_of_the_committed_results_reads_every_row(capsys):
    assert levers.main(["--report"]) == 0
    table = capsys.readouterr().out
    assert table.count("\n| `") == len(levers.load_results()["rows"])


def test_the_distilled_recipes_run_ships_with_its_heads_and_history():
    run = levers.load_recipe_run()
    summary, history = run["summary"], run["history"]
    assert summary["preset"] == "distilled" and summary["epochs"] == len(history)
    for name in ("test_acc", "test_acc_raw", "test_acc_class_head", "test_acc_distillation_head"):
        assert 0.9 < summary[name] < 1, name
    assert [entry["epoch"] for entry in history] == list(range(1, len(history) + 1))
    assert {"val_acc_class_head", "val_acc_distillation_head"} <= set(history[-1])


def test_the_distilled_best_run_ships_as_its_results_folder_recorded_it():
    """The packaged copy (read by chapter 7 in Colab) is the run's own files, evaluated twice alike."""
    run = levers.load_recipe_run(levers.BEST_RECIPE_RUN_FILE)
    folder = Path(__file__).resolve().parent.parent / "results" / "distilled_best"
    for name in ("summary", "history", "independent_evaluate", "teacher_labels"):
        assert run[name] == json.loads((folder / f"{name}.json").read_text()), name
    summary = run["summary"]
    assert summary["preset"] == "distilled_best" and summary["epochs"] == len(run["history"]) == 85
    assert run["independent_evaluate"]["right"] == round(10_000 * summary["test_acc"])
    differ = run["teacher_labels"]["teacher_label_differs"]
    assert 0 < differ["as_they_are"] <= differ["moved"] < run["teacher_labels"]["training_digits"]


def test_the_distilled_best_second_seed_ships_as_its_results_folder_recorded_it():
    """Seed 1 of the same recipe (issue #27), packaged beside seed 0 for chapter 7: finished, not in progress."""
    run = levers.load_recipe_run(levers.BEST_RECIPE_RUN_FILE)
    folder = Path(__file__).resolve().parent.parent / "results" / "distilled_best_seed1"
    [other] = run["other_seeds"]
    assert other["seed"] == 1 and "--seed 1" in other["summary"]["command"]
    for name in ("summary", "history", "independent_evaluate"):
        assert other[name] == json.loads((folder / f"{name}.json").read_text()), name
    assert not (folder / "in_progress").exists()
    assert other["summary"]["epochs"] == len(other["history"]) == 85
    assert [entry["epoch"] for entry in other["history"]] == list(range(1, 86))
    assert other["independent_evaluate"]["right"] == round(10_000 * other["summary"]["test_acc"])
