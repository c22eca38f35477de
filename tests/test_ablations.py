import json

import pytest
import torch

from vitlib.experiments import ablations


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """The CLI's smoke run: every ablation, one epoch on 256 images, one seed (about 20 s)."""
    out = tmp_path_factory.mktemp("ablations")
    assert ablations.main(["--out", str(out), "--quick"]) == 0
    return out / "ablations.json"


def test_quick_run_gives_a_complete_row_for_every_variant(quick_results):
    rows = ablations.load_results(quick_results)["rows"]
    fields = {"ablation", "variant", "seed", "epochs", "lr", "test_acc", "val_acc", "train_seconds",
              "parameters", "multiply_adds", "machine", "torch"}  # fmt: skip
    for row in rows:
        assert fields <= row.keys()
        assert 0 <= row["test_acc"] <= 1 and row["parameters"] > 0 and row["multiply_adds"] > 0
    ran = {(row["ablation"], row["variant"]) for row in rows}
    expected = {(name, variant.name) for name, variants in ablations.ABLATIONS.items() for variant in variants}
    assert ran == expected
    swept = [row for row in rows if row["variant"] == "mean pooling"]
    assert sorted(row["lr"] for row in swept) == sorted(ablations.POOLING_LRS)


def test_a_second_invocation_skips_the_rows_already_there(quick_results):
    before = json.loads(quick_results.read_text())["rows"]
    after = ablations.run_ablations(results=quick_results, quick=True, log=lambda line: pytest.fail(line))
    assert after == before


def test_variants_change_only_what_they_name(quick_results):
    rows = {(row["ablation"], row["variant"]): row for row in ablations.load_results(quick_results)["rows"]}
    by_patch = [rows["patch_size", f"P={p}"]["multiply_adds"] for p in (4, 7, 14)]
    assert by_patch[0] > by_patch[1] > by_patch[2]  # fewer, larger patches: fewer multiply-adds
    assert rows["position", "none"]["parameters"] == rows["position", "sin-cos 2-D"]["parameters"]
    assert rows["position", "learned 1-D"]["parameters"] - rows["position", "none"]["parameters"] == 17 * 64
    assert rows["position", "learned 2-D"]["parameters"] - rows["position", "none"]["parameters"] == (4 + 4) * 32
    shapes = [rows["shape", name]["parameters"] for name in ("12 blocks x D 48", "6 blocks x D 64", "3 blocks x D 96")]
    assert max(shapes) / min(shapes) < 1.2  # about equal parameters


def test_the_sweep_picks_the_best_validation_rate_for_the_later_seeds():
    sweep = [{"ablation": "pooling", "variant": "class token", "seed": 0, "lr": lr, "val_acc": acc}
             for lr, acc in zip(ablations.POOLING_LRS, (0.97, 0.99, 0.98), strict=True)]  # fmt: skip
    later = [run for run in ablations.plan(["pooling"], (0, 1, 2), 5, sweep) if run.seed > 0]
    assert {run.lr for run in later if run.variant.name == "class token"} == {ablations.POOLING_LRS[1]}
    # mean pooling's sweep has not run: its later seeds wait
    assert not [run for run in later if run.variant.name == "mean pooling"]


def test_unscaled_variant_removes_the_square_root_in_every_block():
    model = ablations.build_model(ablations.ABLATIONS["scaling"][1], seed=0)
    assert all(block.attn.scale == 1.0 for block in model.blocks)
    assert all(block.attn.scale is None for block in ablations.build_model(ablations.ABLATIONS["scaling"][0], 0).blocks)


def test_bad_requests_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"unknown ablation 'dropout': expected one or more of pooling, position"):
        ablations.run_ablations(["dropout"], results=tmp_path / "a.json", quick=True)
    with pytest.raises(ValueError, match="quick runs must not go into the shipped"):
        ablations.run_ablations(["scaling"], quick=True)
    with pytest.raises(SystemExit):
        ablations.main(["--only", "dropout", "--quick", "--out", str(tmp_path)])


def test_shipped_rows_are_consistent():
    """Every shipped row is a full run: the same epochs per ablation (but time-matched ones), seeds from SEEDS."""
    if not ablations.RESULTS_FILE.exists():
        pytest.fail(f"{ablations.RESULTS_FILE} is missing: run python -m vitlib.experiments.ablations")
    rows = ablations.load_results()["rows"]
    assert rows, "the shipped results hold no rows"
    for row in rows:
        variant = next(v for v in ablations.ABLATIONS[row["ablation"]] if v.name == row["variant"])
        if variant.time_matched_to is None:
            assert row["epochs"] == ablations.EPOCHS, row
        assert row["seed"] in ablations.SEEDS
        assert 0.0 <= row["test_acc"] <= 1.0 and row["multiply_adds"] > 0, row


def test_report_is_a_markdown_row_per_variant(quick_results, capsys):
    assert ablations.main(["--report", "--results", str(quick_results), "--only", "scaling"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 2 + len(ablations.ABLATIONS["scaling"]) and table[2].startswith("| scaling | 1/sqrt(d) |")


@pytest.mark.parametrize("name", list(ablations.ABLATIONS))
def test_every_ablation_plots_and_prints_in_the_books_column(quick_results, name):
    rows = ablations.load_results(quick_results)["rows"]
    figure = ablations.plot_ablation(rows, name)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert [label.split(" (")[0] for label in labels] == [variant.name for variant in ablations.ABLATIONS[name]]
    assert all(label.endswith(" ep)") == ("equal time" in label) for label in labels)  # time-matched epochs shown
    # the columns the chapters print: every size for the ablations that change the model's size
    resized = name in ("shape", "patch_size")
    columns = (
        ("error", "seeds", "s/epoch", "parameters", "multiply_adds") if resized else ("error", "seeds", "lr", "s/epoch")
    )
    table = ablations.format_summary(rows, name, columns)
    lines = table.splitlines()
    assert len(lines) == 1 + len(ablations.ABLATIONS[name])
    assert max(map(len, lines)) <= 74, table  # the book's code column
    assert "(1 seed)" in lines[1]  # one seed has no spread to show


def test_summary_gives_mean_and_spread_over_seeds():
    rows = [{"ablation": "scaling", "variant": "1/sqrt(d)", "seed": seed, "lr": 2e-3, "epochs": 5, "test_acc": acc,
             "seconds_per_epoch": 10.0, "parameters": 1, "multiply_adds": 1, "train_seconds": 50.0,
             "machine": "m", "torch": "t"} for seed, acc in enumerate((0.98, 0.97, 0.99))]  # fmt: skip
    (line,) = ablations.summarize(rows, "scaling")
    assert line["seeds"] == 3 and line["error_mean"] == pytest.approx(2.0) and line["error_std"] == pytest.approx(1.0)
    assert "2.00 ± 1.00" in ablations.format_summary(rows, "scaling")
    assert ablations.provenance(rows, "scaling") == {
        "runs": 3, "seeds": [0, 1, 2], "machines": ["m"], "torch": ["t"], "train_minutes": 2.5
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown column 'accuracy'"):
        ablations.format_summary(rows, "scaling", ("accuracy",))
    with pytest.raises(ValueError, match="no rows for ablation 'norm'"):
        ablations.plot_ablation(rows, "norm")


def test_provenance_names_one_thread_in_the_singular():
    rows = [{"ablation": "scaling", "seed": 0, "torch": "t", "train_seconds": 60.0, "machine": machine}
            for machine in ("CPU X, 1 torch threads", "CPU X, 11 torch threads", "CPU X, 2 torch threads")]  # fmt: skip
    assert ablations.provenance(rows, "scaling")["machines"] == [
        "CPU X, 1 torch thread", "CPU X, 11 torch threads", "CPU X, 2 torch threads"
    ]  # fmt: skip
    assert ablations.machine().endswith((" 1 torch thread", " torch threads"))


def test_the_baseline_variants_are_the_book_model_and_recipe_unchanged():
    reference = ablations.build_model(ablations.Variant("unchanged"), seed=0)
    for name, variant_name in ablations.BASELINE:
        variant = next(v for v in ablations.ABLATIONS[name] if v.name == variant_name)
        model = ablations.build_model(variant, seed=0)
        assert model.config == reference.config, variant_name
        assert not variant.unscaled_attention and variant.time_matched_to is None
        recipe = {**{"lr": ablations.BASE.lr, "warmup_epochs": ablations.BASE.warmup_epochs}, **variant.recipe}
        assert recipe["lr"] == ablations.BASE.lr and recipe["warmup_epochs"] == ablations.BASE.warmup_epochs
        if variant.lr_sweep:
            assert ablations.BASE.lr in variant.lr_sweep
    rows = [{"ablation": "norm", "variant": "pre-norm, warm-up, lr 0.002", "lr": 2e-3, "test_acc": 0.98},
            {"ablation": "norm", "variant": "pre-norm, warm-up, lr 0.006", "lr": 6e-3, "test_acc": 0.97},
            {"ablation": "pooling", "variant": "class token", "lr": 4e-3, "test_acc": 0.97}]  # fmt: skip
    assert ablations.baseline_errors(rows) == [pytest.approx(2.0)]


def test_the_same_run_of_the_baseline_counts_once():
    """Seed 2 of the unchanged model, run by two ablations, is one draw of the noise, not two."""
    run = {"lr": 2e-3, "seed": 2, "test_acc": 0.9815, "val_acc": 0.9776}
    rows = [
        {"ablation": "shape", "variant": "6 blocks x D 64", **run},
        {"ablation": "patch_size", "variant": "P=7", **run},
        {"ablation": "patch_size", "variant": "P=7", **run, "seed": 1},  # another seed: another run
        {"ablation": "scaling", "variant": "1/sqrt(d)", **run, "test_acc": 0.98},
    ]
    assert ablations.baseline_errors(rows) == [pytest.approx(1.85), pytest.approx(1.85), pytest.approx(2.0)]


def test_a_row_depends_on_its_seed_not_on_the_runs_before_it(tmp_path):
    data = ablations.load_data(None, quick=True)
    run = next(ablations.plan(["scaling"], (0,), 1, []))
    first = ablations.train_and_test(run, data, torch.device("cpu"))
    ablations.train_and_test(next(ablations.plan(["position"], (1,), 1, [])), data, torch.device("cpu"))
    again = ablations.train_and_test(run, data, torch.device("cpu"))
    assert again["test_acc"] == first["test_acc"] and again["train_loss"] == first["train_loss"]


def test_a_run_far_off_the_others_is_drawn_at_the_edge_not_stretching_the_axis():
    def row(variant, seed, error):
        return {"ablation": "scaling", "variant": variant, "seed": seed, "lr": 2e-3, "epochs": 5,
                "test_acc": 1 - error / 100, "seconds_per_epoch": 1.0, "parameters": 1, "multiply_adds": 1}  # fmt: skip

    rows = [row("1/sqrt(d)", 0, 2.0), row("1/sqrt(d)", 1, 2.2), row("no scaling", 0, 1.9), row("no scaling", 1, 74.0)]
    ax = ablations.plot_ablation(rows, "scaling").axes[0]
    assert ax.get_xlim()[1] < 3  # the axis ends past the ordinary runs
    texts = [text.get_text() for text in ax.texts]
    assert "1 of 2 seeds off the scale: 74.0% →" in texts


def test_step_seconds_times_each_variant_and_the_bigger_model_takes_longer():
    small = ablations.Variant("D=16", {"dim": 16, "depth": 1, "heads": 1, "mlp_dim": 32})
    big = ablations.Variant("D=128", {"dim": 128, "depth": 3, "heads": 4, "mlp_dim": 256})
    seconds = ablations.step_seconds([small, big], batch_size=32, repeats=3)
    assert list(seconds) == ["D=16", "D=128"]
    assert 0 < seconds["D=16"] < seconds["D=128"]  # 3 blocks of 128 against 1 of 16: far apart
