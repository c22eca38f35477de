"""The book's notebooks: stored without outputs, listed in the table of contents, Colab-ready."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_there_are_eight_chapters_in_two_parts():
    assert [path.stem[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = {part["caption"]: [c["file"] for c in part["chapters"]] for part in toc["parts"]}
    assert parts["Building the Vision Transformer"] == [f"book/{path.stem}" for path in NOTEBOOKS[:6]]
    assert parts["Beyond the paper's recipe"] == [f"book/{path.stem}" for path in NOTEBOOKS[6:]]


def _visible_code_cells(notebook: dict) -> list[str]:
    hidden = {"remove-cell", "remove-input"}
    return [
        "".join(cell["source"])
        for cell in notebook["cells"]
        if cell["cell_type"] == "code" and not hidden & set(cell.get("metadata", {}).get("tags", []))
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reader_code_holds_no_glue_bookkeeping(path):
    """glue calls live in hidden cells: a reader copies the cells they see."""
    for source in _visible_code_cells(json.loads(path.read_text())):
        assert "glue(" not in source, f"{path.name}: a visible code cell glues:\n{source[:300]}"
        assert "myst_nb" not in source, f"{path.name}: a visible code cell imports myst_nb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        assert not cell.get("outputs"), f"{path.name} has outputs: clear them before committing"
        assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_vitlib_from_the_configured_repository(path):
    notebook = json.loads(path.read_text())
    first_code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    source = "".join(first_code["source"])
    repository = _config()["repository"]["url"]
    assert 'if "google.colab" in sys.modules:' in source  # does nothing outside Colab
    installs = re.findall(r"%pip install -q git\+(\S+)", source)
    assert installs == [repository], f"{path.name} installs from {installs}, _config.yml names {repository}"
    code = "".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    if "from myst_nb import glue" in code:  # Colab has no myst-nb: the first cell installs it
        assert re.search(r"%pip install -q git\+\S+ myst-nb", source), (
            f"{path.name} uses glue but does not install myst-nb"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_opens_with_a_plan_and_ends_with_summary_exercises_references(path):
    notebook = json.loads(path.read_text())
    markdown = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    assert markdown[0].startswith("# ")
    assert "What you will" in markdown[0]
    text = "\n".join(markdown)
    for heading in ("## Summary", "## Exercises", "## References"):
        assert heading in text, f"{path.name} lacks {heading}"
    assert "{footbibliography}" in text


def test_toc_lists_every_chapter_and_nothing_missing():
    listed = _toc_files()
    for name in listed:
        assert (ROOT / f"{name}.ipynb").exists() or (ROOT / f"{name}.md").exists(), name
    assert {f"book/{path.stem}" for path in NOTEBOOKS} <= set(listed)


def test_config_builds_strictly_and_offline():
    config = _config()
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "cache"  # tests and CI build into a new folder
    assert config["sphinx"]["config"]["nb_merge_streams"] is True
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    sphinx = config["sphinx"]["config"]
    # served from the site: _assets/ is copied to its root, and a relative path is read from _static/
    assert sphinx["html_extra_path"] == ["_assets"] and sphinx["mathjax_path"] == "../mathjax/es5/tex-chtml.js"
    assert (ROOT / "_assets" / "mathjax" / "es5" / "tex-chtml.js").is_file()
    assert not list((ROOT / "_static").rglob("*.js")), "Jupyter Book loads every .js under _static/ on every page"


def _solution_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text())
    return [cell for cell in notebook["cells"] if "".join(cell["source"]).startswith("# @title Solution")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercise_solutions_are_hidden_and_run_their_checker(path):
    solutions = _solution_cells(path)
    assert len(solutions) >= 3, f"{path.name}: too few checked exercises"
    for cell in solutions:
        assert cell["cell_type"] == "code"  # executed in the build, so the book shows the verdict
        assert "hide-input" in cell["metadata"]["tags"]  # Jupyter Book: behind a "Show the solution" toggle
        assert cell["metadata"]["mystnb"]["code_prompt_show"] == "Show the solution"
        assert cell["metadata"]["jupyter"]["source_hidden"]  # JupyterLab
        assert cell["metadata"]["cellView"] == "form"  # Colab
        assert re.search(r"exercises\.\w+\.check_\w+\(", "".join(cell["source"]))


def test_every_checker_is_used_by_a_solution_in_the_book():
    from vitlib import exercises

    called = set()
    for path in NOTEBOOKS:
        for cell in _solution_cells(path):
            called |= set(re.findall(r"exercises\.(\w+\.check_\w+)\(", "".join(cell["source"])))
    modules = [
        "inductive_bias",
        "patches",
        "attention",
        "encoder",
        "training",
        "visualize",
        "distillation",
        "resolution",
    ]
    checkers = {f"{name}.{function}" for name in modules for function in getattr(exercises, name).__all__}
    assert called == checkers


# Numbers a chapter's prose may type: the paper's own (quoted as the paper's), and settings
# (recipe values, sizes), which are chosen, not measured. Everything measured is glued.
TYPED_NUMBERS_ALLOWED = {
    r"\b0\.1\b",  # label smoothing, drop-path rate: settings
    r"\b0\.05\b",  # weight decay: a setting
    r"\b0\.9\b",  # the smoothed target on the right class: 1 - 0.1
    r"100\s*%",  # 'near 100%': a bound, not a measurement
}
_NOT_PROSE = re.compile(
    r"\$\$.*?\$\$|\$[^$\n]*\$"  # math: symbols and definitions
    r"|\{[a-z:]+\}`[^`]*`"  # roles: {glue:text}`name`, {footcite}`key`
    r"|```.*?```|`[^`]*`"  # code blocks and code spans
    r"|\]\([^)]*\)"  # link targets
    r"|(?:Sec\.|Section|Eq\.|Fig\.|Figure|Table|App\.|Appendix)\s*[A-Z]?[\d.]*\d"  # the paper's numbering
    r"|\d+(?:\.\d+)?\s*(?:million|billion)",  # data-set sizes the paper gives
    re.DOTALL,
)
_MEASURED = re.compile(
    r"\d+\.\d+\s*(?:%|x\b|times\b)?"  # 99.12, 3.7 times, 1.4e-5 (the mantissa)
    r"|\b\d+\s*%"  # 99 %
    r"|\b\d+(?:\.\d+)?\s*(?:ms|s|seconds|min|minutes|hours)\b"  # timings
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_measured_numbers_in_prose_are_glued_not_typed(path):
    """Accuracies, timings, ratios and differences in the text come from the chapter's code via glue."""
    typed = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        prose = _NOT_PROSE.sub(" ", "".join(cell["source"]))
        for match in _MEASURED.finditer(prose):
            if not any(re.fullmatch(allowed, match.group(0).strip()) for allowed in TYPED_NUMBERS_ALLOWED):
                context = prose[max(0, match.start() - 50) : match.end() + 20].replace("\n", " ")
                typed.append(f"{match.group(0)!r} in '...{context}...'")
    assert not typed, "measured numbers typed into the prose; glue them from code instead:\n" + "\n".join(typed)


def test_no_chapter_loads_weights_loosely():
    """strict=False hides a missing or misnamed parameter: the book never uses it."""
    for path in NOTEBOOKS:
        assert "strict=False" not in path.read_text(), f"{path.name} loads a state_dict with strict=False"


def test_chapter_5_has_the_reader_write_the_whole_vit_and_load_vitlibs_weights_strictly():
    notebook = json.loads((ROOT / "book" / "05_training.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    classes = re.findall(r"^class (\w+)\(nn\.Module\):", code, re.MULTILINE)
    assert len(classes) >= 3, classes  # the pieces (attention, MLP, block) and the model itself
    vit_class = next(name for name in classes if "vit" in name.lower())
    body = code[code.index(f"class {vit_class}(") :]
    body = body[: body.find("\nclass ", 1) if "\nclass " in body[1:] else len(body)]
    for piece in ("cls_token", "pos_embed", "blocks", "norm", "head"):  # Eq. 1-4 and the head
        assert piece in body, f"{vit_class} lacks {piece}"
    assert re.search(r"load_state_dict\([^)]*strict=True", code), "vitlib's weights are not loaded strictly"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_hidden_solutions_and_shell_blocks_fit_their_narrower_boxes(path):
    """ruff holds code cells to 76 characters; a folded solution and a Markdown code block show 74."""
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and "hide-input" in cell.get("metadata", {}).get("tags", []):
            lines = text.splitlines()
        elif cell["cell_type"] == "markdown":
            lines = [
                line for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.DOTALL) for line in block.splitlines()
            ]
        else:
            continue
        long = [line for line in lines if len(line) > 74]
        assert not long, f"{path.name} cell {index}: lines over 74 characters: {long}"


def test_every_ablation_is_shown_in_the_chapter_that_teaches_it():
    """Issue 13: each measured design choice is drawn from the shipped rows in its own chapter."""
    where = {"pooling": "02_patchifying", "position": "02_patchifying", "scaling": "03_attention",
             "norm": "04_encoder", "shape": "04_encoder", "patch_size": "05_training"}  # fmt: skip
    from vitlib.experiments import ablations

    assert set(where) == set(ablations.ABLATIONS)
    for name, chapter in where.items():
        cells = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())["cells"]
        code = "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        prose = "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
        assert f'ablations.plot_ablation(measured, "{name}")' in code, (name, chapter)
        assert f"--only {name}" in prose, f"{chapter} does not give the command that made {name}"
