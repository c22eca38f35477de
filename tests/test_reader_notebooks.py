"""The reader notebooks, notebooks/*.ipynb, which the book's Colab buttons open (issue #28).

Colab and Jupyter show a chapter's MyST Markdown raw: its {glue:text} numbers, {footcite}
citations, {ref} links and {dropdown} blocks. scripts/reader_notebooks.py writes each chapter
again in plain Markdown. These tests need no build: each notebook holds the glued values it
quotes, so it can be remade from its chapter and compared. tests/test_book.py checks, on a built
site, that every chapter's Colab button opens one of them.
"""

import ast
import builtins
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(path.stem for path in (ROOT / "book").glob("0*.ipynb"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reader_notebooks = _load("reader_notebooks", ROOT / "scripts" / "reader_notebooks.py")
ReaderNotebookError = reader_notebooks.ReaderNotebookError

# written here again, not imported, so that a bug in the script's own check cannot hide markup
RAW_ROLE = re.compile(r"\{[a-z][a-z:-]*\}`")
RAW_DIRECTIVE = re.compile(r"^\s*(:::|```)\s*\{", re.M)
RAW_TARGET = re.compile(r"^\([\w-]+\)=\s*$", re.M)
INSTALLS_VITLIB = re.compile(r"^\s*%pip install .*git\+https://github\.com/vit-from-scratch/vit-book\b", re.M)


def _cells(notebook: dict, kind: str) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == kind]


def shown_code(chapter_notebook: dict) -> list[str]:
    """The chapter's code cells a reader runs: those the page shows, and the figure-only ones."""
    return ["".join(cell["source"]) for cell in chapter_notebook["cells"] if reader_notebooks.kept_code(cell)]


def check_reader_notebook(path: Path, chapter: str) -> None:
    """What a reader notebook must be: it installs vitlib first, shows no MyST markup, and runs the page's code."""
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: make reader-notebooks"
    notebook = json.loads(path.read_text())
    code = _cells(notebook, "code")
    assert code and INSTALLS_VITLIB.search(code[0]), "its first code cell must install vitlib in Colab"
    for markdown in _cells(notebook, "markdown"):
        for pattern in (RAW_ROLE, RAW_DIRECTIVE, RAW_TARGET):
            match = pattern.search(markdown)
            assert match is None, f"raw markup {match.group(0)!r} in:\n{markdown}"
    chapter_notebook = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
    assert code == shown_code(chapter_notebook), "its code is not the chapter's: make reader-notebooks"
    assert all(cell["outputs"] == [] for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert _cells(notebook, "markdown"), "no text"


# --- the committed notebooks -----------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_has_a_reader_notebook_without_markup(chapter):
    check_reader_notebook(ROOT / "notebooks" / f"{chapter}.ipynb", chapter)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_reader_notebook_is_what_its_chapter_makes(chapter):
    """Not stale in its prose either: remade from the chapter and the values it holds, it is the same file."""
    path = ROOT / "notebooks" / f"{chapter}.ipynb"
    saved = json.loads(path.read_text())["metadata"][reader_notebooks.METADATA_KEY]
    try:
        made = reader_notebooks.make(chapter, saved["glue"], f"{path.name}'s metadata", saved["glued_by"])
    except ReaderNotebookError as error:  # the chapter quotes a value the last build did not glue
        pytest.fail(f"{error}\n(then make reader-notebooks)")
    assert reader_notebooks.dumps(made) == path.read_text(), (
        f"notebooks/{chapter}.ipynb is stale: make reader-notebooks, or after an edit of prose only "
        "python scripts/reader_notebooks.py --saved"
    )


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a cell defines and the names it reads (IPython's %magics read as `pass`)."""
    tree = ast.parse(re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M))
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return defined, read


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_reader_code_needs_no_cell_it_leaves_out(chapter):
    """No code a reader runs reads a name that only a left-out (bookkeeping) cell defines."""
    notebook = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
    known, left_out = set(dir(builtins)), set()
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        defined, read = _names("".join(cell["source"]))
        if reader_notebooks.kept_code(cell):
            missing = (read - known - defined) & left_out
            assert not missing, f"cell {index} reads {missing}, which only cells the reader notebook leaves out define"
            known |= defined
        else:
            left_out |= defined


def test_reader_notebooks_readme_names_its_build():
    text = (ROOT / "notebooks" / "README.md").read_text()
    builds = {
        json.loads(path.read_text())["metadata"]["reader_notebook"]["glued_by"]
        for path in (ROOT / "notebooks").glob("*.ipynb")
    }
    assert len(builds) == 1, f"the notebooks come from different builds: {builds}"
    assert builds.pop() in text and "make reader-notebooks" in text


# --- the substitutions -----------------------------------------------------------------------


def context(**glue: str):
    return reader_notebooks.Context("00_test", glue, "the test's build", labels=book_labels())


def book_labels():
    Label = reader_notebooks.Label
    return {"results-levers": Label("book/results", "Levers, one at a time"), "draw-a-digit": Label("book/x", "Draw")}


def test_glue_with_and_without_a_format_spec():
    ctx = context(minutes="54.92632900581669", epochs="880", params="3200", acc="0.9954", machine="'AMD EPYC'")
    text = (
        "took {glue:text}`minutes:.0f` min, {glue:text}`epochs` epochs, {glue:text}`params:,` "
        "parameters, {glue:text}`acc:.1%` right on {glue:text}`machine` ({glue}`epochs`)"
    )
    assert reader_notebooks.convert_roles(text, ctx) == (
        "took 55 min, 880 epochs, 3,200 parameters, 99.5% right on AMD EPYC (880)"
    )
    assert ctx.quoted == {"minutes": "54.92632900581669", "epochs": "880", "params": "3200", "acc": "0.9954",
                          "machine": "'AMD EPYC'"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "spec"),
    [("54.92632900581669", ".0f"), ("0.9955", ".2%"), ("3200", ","), ("1.5e-08", ".1e"), ("'a b'", ""),
     ("12", ".1f"), ("0.3000020980834961", ".2f"), ("7", "d"), ("'x'", "s"), ("True", "")],
)  # fmt: skip
def test_glue_is_formatted_as_myst_nb_formats_it(text, spec):
    from myst_nb.core.variables import format_plain_text

    assert reader_notebooks.format_glue(text, spec) == format_plain_text(text, spec)


def test_a_glued_string_stays_text():
    ctx = context(name="'learned_2d * $5'")
    assert reader_notebooks.convert_roles("{glue:text}`name`", ctx) == r"learned\_2d \* \$5"


def test_a_value_the_build_did_not_glue_says_which_and_to_build_first():
    with pytest.raises(ReaderNotebookError) as raised:
        reader_notebooks.convert_roles("took {glue:text}`ch9_minutes:.0f` minutes", context(other="1"))
    message = str(raised.value)
    assert "00_test" in message and "'ch9_minutes'" in message and "the test's build" in message
    assert "Build the book first" in message


def test_read_glue_from_a_build_and_from_a_notebook_executed_by_hand(tmp_path):
    record = {"metadata": {"scrapbook": {"name": "k", "mime_prefix": "application/papermill.record/"}},
              "data": {"text/plain": "0.5"}, "output_type": "display_data"}  # fmt: skip
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "01_x.glue.json").write_text(json.dumps({"k": record}))
    assert reader_notebooks.read_glue(tmp_path / "build", "01_x") == {"k": "0.5"}
    by_hand = {**record, "data": {"application/papermill.record/text/plain": "0.25"}}
    notebook = {"cells": [{"cell_type": "code", "source": "", "outputs": [by_hand]}]}
    (tmp_path / "01_x.ipynb").write_text(json.dumps(notebook))
    assert reader_notebooks.read_glue(tmp_path, "01_x") == {"k": "0.25"}
    with pytest.raises(ReaderNotebookError, match="Build the book first"):
        reader_notebooks.read_glue(tmp_path, "02_y")


def test_footcite_is_numbered_as_on_the_page_and_footbibliography_lists_the_works():
    ctx = context()
    markdown = (
        "The ViT paper {footcite}`dosovitskiy2021vit` builds on the Transformer "
        "{footcite}`vaswani2017attention`; the ViT paper {footcite}`dosovitskiy2021vit` again.\n\n"
        "## References\n\n```{footbibliography}\n```"
    )
    text = reader_notebooks.convert_markdown(markdown, ctx)
    assert text.startswith(
        "The ViT paper [1] builds on the Transformer [2]; the ViT paper [1] again.\n\n## References\n\n"
        "[1] Alexey Dosovitskiy, Lucas Beyer,"
    )
    assert "\n\n[2] Ashish Vaswani, " in text and "Łukasz Kaiser" in text and "Attention is all you need." in text
    assert "{" not in text and "\\" not in text


def test_cite_reads_author_and_year():
    ctx = context()
    assert reader_notebooks.convert_roles("{cite}`dosovitskiy2021vit`", ctx) == "(Dosovitskiy et al., 2021)"
    assert reader_notebooks.convert_roles("{cite:t}`abnar2020rollout`", ctx) == "Abnar and Zuidema (2020)"
    with pytest.raises(ReaderNotebookError, match="'nobody2099'"):
        reader_notebooks.convert_roles("{footcite}`nobody2099`", ctx)


def test_ref_with_and_without_text_and_with_a_published_book():
    ctx = context()
    assert reader_notebooks.convert_roles("The {ref}`Results page <results-levers>` lists", ctx) == (
        "The Results page lists"
    )
    assert reader_notebooks.convert_roles("see {ref}`results-levers`.", ctx) == "see Levers, one at a time."
    ctx.baseurl = "https://example.org/vit-book/"
    assert reader_notebooks.convert_roles("{ref}`Results page <results-levers>`", ctx) == (
        "[Results page](https://example.org/vit-book/book/results.html#results-levers)"
    )
    with pytest.raises(ReaderNotebookError, match="'no-such-label'"):
        reader_notebooks.convert_roles("{ref}`no-such-label`", ctx)


def test_dropdown_becomes_a_details_block_with_its_body_converted():
    ctx = context(gain="4.04")
    markdown = (
        "Before.\n\n:::{dropdown} Why `EMA` helps\n:open:\nIt gained {glue:text}`gain:.1f` digits, "
        "$x_{t}$ stays.\n\n```python\nprint('{glue:text}`gain`')\n```\n:::\n\n(a-label)=\n### After"
    )
    assert reader_notebooks.convert_markdown(markdown, ctx) == (
        "Before.\n\n<details open>\n<summary>Why <code>EMA</code> helps</summary>\n\n"
        "It gained 4.0 digits, $x_{t}$ stays.\n\n```python\nprint('{glue:text}`gain`')\n```\n\n"
        "</details>\n\n### After"
    )


def test_admonition_becomes_a_bold_title_over_its_text():
    markdown = "```{admonition} Read the noise first\nSeeds vary.\n```\n\n:::{note}\nA note.\n:::"
    assert reader_notebooks.convert_markdown(markdown, context()) == (
        "**Read the noise first**\n\nSeeds vary.\n\n**Note**\n\nA note."
    )


def test_markup_without_a_plain_form_stops_the_script():
    with pytest.raises(ReaderNotebookError, match=r"\{figure\} directive"):
        reader_notebooks.convert_markdown("```{figure} a.png\n```", context())
    with pytest.raises(ReaderNotebookError, match=r"\{eq\} role"):
        reader_notebooks.convert_markdown("as {eq}`loss` says", context())
    assert reader_notebooks.raw_markup("a {glue:text}`x` b\n:::{note}\n(lbl)=") == ["{glue:text}`", ":::{", "(lbl)="]


def test_code_spans_and_math_are_left_alone():
    markdown = "Call `f'{x}'` or ``a ` b``; $\\{x\\}$ and\n\n$$\nA = \\operatorname{softmax}(x)\n$$"
    assert reader_notebooks.convert_markdown(markdown, context()) == markdown


# --- the Colab button ------------------------------------------------------------------------


launch = _load("launch_notebooks_only", ROOT / "_ext" / "launch_notebooks_only.py")
COLAB = "https://colab.research.google.com/github/vit-from-scratch/vit-book/blob/main"


def _page(suffix: str, url: str) -> dict:
    colab = {"type": "link", "text": "Colab", "url": url}
    download = {"label": "download-buttons", "buttons": []}
    return {"page_source_suffix": suffix, "header_buttons": [download, {"label": "launch-buttons", "buttons": [colab]}]}


def test_the_colab_button_opens_the_reader_notebook():
    app = SimpleNamespace(srcdir=str(ROOT))
    page = _page(".ipynb", f"{COLAB}/book/{CHAPTERS[0]}.ipynb")
    launch.drop_launch_buttons(app, f"book/{CHAPTERS[0]}", "page.html", page, None)
    assert page["header_buttons"][1]["buttons"][0]["url"] == f"{COLAB}/notebooks/{CHAPTERS[0]}.ipynb"
    # a Markdown page keeps no launch button at all, as before
    page = _page(".md", f"{COLAB}/book/going_further.md")
    launch.drop_launch_buttons(app, "book/going_further", "page.html", page, None)
    assert [group["label"] for group in page["header_buttons"]] == ["download-buttons"]
    # a chapter without a reader notebook yet keeps its source's link
    page = _page(".ipynb", f"{COLAB}/book/09_new.ipynb")
    launch.drop_launch_buttons(app, "book/09_new", "page.html", page, None)
    assert page["header_buttons"][1]["buttons"][0]["url"] == f"{COLAB}/book/09_new.ipynb"
