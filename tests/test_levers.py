import dataclasses
import json

from vitlib.experiments import levers
from vitlib.train import RECIPES


def test_each_lever_changes_one_thing_from_the_quick_recipe():
    plain = levers.LEVERS["plain"]
    assert dataclasses.replace(plain, ema_decay=None, epochs=RECIPES["quick"].epochs) == RECIPES["quick"]
    assert dataclasses.replace(levers.LEVERS["elastic"], elastic=False) == plain
    distilled = levers.LEVERS["distilled"]
    assert distilled.model_config().distilled and distilled.teacher == "teacher"
    assert dataclasses.replace(distilled, model_overrides=plain.model_overrides, teacher=None) == plain


def test_quick_run_writes_one_row_per_lever_and_skips_finished_ones(data_root, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--quick", "--data", str(data_root)]
    assert levers.main(argv) == 0
    rows = json.loads((tmp_path / "levers.json").read_text())["rows"]
    assert [row["lever"] for row in rows] == ["plain", "elastic", "distilled"]
    for row in rows:
        assert 0 <= row["test_acc_raw"] <= 1 and 0 <= row["test_acc_ema"] <= 1 and row["epochs"] == 1
    assert {"test_acc_class_head", "test_acc_distillation_head"} <= set(rows[2])
    capsys.readouterr()
    assert levers.main(argv) == 0
    assert capsys.readouterr().out.count("done, skipped") == 3
