"""Build the book in quick mode and open every chapter in headless Chromium.

Slow (a few minutes): it executes every notebook. Chromium comes from Debian's `chromium`
package, which .ci/run installs; elsewhere the test skips when Chromium is missing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(path.stem for path in (ROOT / "book").glob("*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
]  # fmt: skip

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    environment = {**os.environ, "VITLIB_BOOK_QUICK": "1"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"  # installed beside this Python
    command = [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return out / "_build" / "html"


def render(page: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (MathJax included), from headless Chromium."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs the Debian package 'chromium'")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000"]
        if screenshot is not None:
            subprocess.run([CHROMIUM, *flags, "--window-size=1280,2400", f"--screenshot={screenshot}",
                            page.as_uri()], capture_output=True, timeout=120)  # fmt: skip
        result = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                                timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_page_was_built(site):
    for chapter in CHAPTERS:
        assert (site / "book" / f"{chapter}.html").is_file(), chapter
    assert (site / "book" / "intro.html").is_file() and (site / "book" / "bibliography.html").is_file()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_renders_with_math_figures_and_colab_button(site, chapter, tmp_path):
    page = site / "book" / f"{chapter}.html"
    # VITLIB_SCREENSHOTS=DIR keeps a screenshot of every chapter there, to look at
    shots = Path(os.environ.get("VITLIB_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    dom = render(page, screenshot=shots / f"{chapter}.png")
    assert "<h1>" in dom or "<h1 " in dom
    # math typeset by the site's own MathJax, without errors
    assert dom.count("<mjx-container") >= 3, "math was not typeset"
    assert "<mjx-merror" not in dom
    # every figure is a file of the site, and it is not empty
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    figures = [src for src in images if "_images/" in src]
    assert figures, "no figures"
    for src in figures:
        assert not src.startswith("http"), src
        assert (page.parent / src).resolve().stat().st_size > 1000, src
    # the exercises' solutions sit behind a toggle, and each passed its checker during the build
    solutions = dom.count("Show the solution")
    assert solutions >= 3
    assert dom.count("✓ ") >= solutions and "✗ " not in dom
    # the launch button opens this chapter's reader notebook in Colab
    colab = f"https://colab.research.google.com/github/vit-from-scratch/vit-book/blob/main/notebooks/{chapter}.ipynb"
    assert colab in dom


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_button_opens_a_reader_notebook(site, chapter):
    """The notebook Colab opens is the repository's notebooks/<chapter>.ipynb, with no raw MyST in it."""
    import yaml
    from test_reader_notebooks import check_reader_notebook

    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    page = (site / "book" / f"{chapter}.html").read_text()
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
    assert len(links) == 1, f"not one Colab link: {links}"
    # Colab's address of a file on GitHub: /github/<owner>/<repo>/blob/<branch>/<path in the repository>
    opened = re.fullmatch(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", links.pop())
    assert opened, "not a Colab link to a GitHub file"
    assert f"https://github.com/{opened.group(1)}" == repository["url"] and opened.group(2) == repository["branch"]
    path = ROOT / opened.group(3)
    assert path.parent == ROOT / "notebooks" and path.suffix == ".ipynb", opened.group(3)
    check_reader_notebook(path, chapter)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_download_button_serves_the_reader_notebook(site, chapter):
    """The page's .ipynb download is the notebook Colab opens, not the chapter's MyST source."""
    page = (site / "book" / f"{chapter}.html").read_text()
    assert f"_sources/book/{chapter}.ipynb" in page  # the download button's link
    served = site / "_sources" / "book" / f"{chapter}.ipynb"
    assert served.read_bytes() == (ROOT / "notebooks" / f"{chapter}.ipynb").read_bytes()


def test_only_notebook_pages_have_a_colab_button(site):
    """A MyST Markdown page executes like a notebook, but Colab opens only .ipynb files."""
    page = (site / "book" / "going_further.html").read_text()
    assert "colab.research.google.com" not in page
    assert "_sources/book/going_further.md" in page  # its source is still offered for download


def test_no_page_loads_remote_assets(site):
    remote = re.compile(r'<(?:script|img|link|iframe)[^>]+(?:src|href)="(https?:)?//[^"]+"[^>]*>')
    for page in site.rglob("*.html"):
        for match in remote.finditer(page.read_text()):
            text = match.group(0)
            if text.startswith("<link") and 'rel="stylesheet"' not in text and "preload" not in text:
                continue  # plain links (canonical, author pages) load nothing
            pytest.fail(f"{page.relative_to(site)} loads a remote asset: {text[:200]}")
    assert (site / "mathjax" / "es5" / "tex-chtml.js").is_file()
    assert (site / "mathjax" / "es5" / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()  # autoloaded


def test_every_page_loads_mathjax_once_and_no_extension_eagerly(site):
    for page in site.rglob("*.html"):
        scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', page.read_text())
        if scripts:  # a page without math may load none
            assert len(scripts) == 1 and "tex-chtml.js" in scripts[0], f"{page.relative_to(site)}: {scripts}"


def require_playwright() -> Path:
    """The folder of the Playwright scripts, once Chromium and playwright-core are known to be there."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs the Debian package 'chromium'")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    browser_tests = ROOT / "tests" / "browser"
    if not (browser_tests / "node_modules" / "playwright-core").is_dir():
        if os.environ.get("CI"):
            pytest.fail("playwright-core is missing: .ci/run installs it with npm ci --prefix tests/browser")
        pytest.skip("playwright-core not installed (npm ci --prefix tests/browser)")
    return browser_tests


def test_code_and_output_fit_the_column_at_1280_px(site):
    """No code cell, printed output or figure makes the reader scroll sideways (issue: the page as read)."""
    browser_tests = require_playwright()
    pages = [str(site / "book" / f"{chapter}.html") for chapter in [*CHAPTERS, "drawing_pad"]]
    command = ["node", str(browser_tests / "page_layout.mjs"), CHROMIUM, "1280", "800", *pages]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    problems = [f"{Path(page).stem}: {problem}" for page, found in report.items() for problem in found]
    assert not problems, "\n".join(problems)


def test_no_page_scrolls_sideways_on_a_phone(site):
    """At 390 px a code block may scroll inside its box, but the page itself must not."""
    browser_tests = require_playwright()
    pages = [str(site / "book" / f"{name}.html") for name in [*CHAPTERS, "drawing_pad", "intro", "bibliography"]]
    command = ["node", str(browser_tests / "page_layout.mjs"), CHROMIUM, "390", "844", *pages]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    wide = [f"{Path(page).stem}: {why}" for page, found in report.items() for why in found if why.startswith("page")]
    assert not wide, "\n".join(wide)


@pytest.mark.parametrize("page", ["06_train_and_visualize", "drawing_pad"])
def test_drawing_pad_reads_what_a_reader_draws(site, page, tmp_path):
    """Draws digits on the pad with the mouse, presses its buttons, reads the page (issue: the model in the page)."""
    browser_tests = require_playwright()
    shots = Path(os.environ.get("VITLIB_SCREENSHOTS", tmp_path))  # pad_desktop.png, pad_phone.png, ...
    shots.mkdir(parents=True, exist_ok=True)
    html = site / "book" / f"{page}.html"
    command = ["node", str(browser_tests / "vitpad_page.mjs"), CHROMIUM, str(html), str(shots)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert not [error for error in report["errors"] if "vitpad" in error], report["errors"]
    assert report["requests"] == []  # nothing but the site's own files
    # an empty pad asks for a digit, and shows no number
    for empty in (report["empty"], report["cleared"]):
        assert empty["state"] == "empty" and "Draw a digit" in empty["verdict"]
        assert set(empty["bars"]) == {"–"} and set(empty["widths"]) == {"0px"}
    # digits drawn with the mouse, and the test digits behind the buttons, are read right
    for digit, seen in report["drawn"].items():
        assert seen["prediction"] == int(digit), (digit, seen["verdict"])
    assert [button["prediction"] for button in report["buttons"]] == [button["label"] for button in report["buttons"]]
    for seen in [*report["drawn"].values(), *report["buttons"], report["scribble"]]:
        assert sum(seen["bars"]) == pytest.approx(1, abs=0.01)  # ten probabilities, as text
        assert seen["bars"][seen["prediction"]] == max(seen["bars"])
        assert f"{100 * max(seen['bars']):.1f}%" in seen["verdict"]
        assert "NaN" not in json.dumps(seen)
    assert report["clearedByKeyboard"] == "empty"
    # the attention map follows the pointer, and says what it shows
    assert report["dot"]["state"] == "small" and "bigger" in report["dot"]["verdict"]  # a click is no digit
    assert report["hovered"].startswith("Attention rollout: how much of patch (row")
    assert report["menusInRollout"] == [False, True, True] and report["menusInAttention"] == [False, False, False]
    assert report["pinnedCaption"].startswith("Where patch (row") and "block 6" in report["pinnedCaption"]
    assert report["unpinned"].startswith("Where the class token looks")
    assert report["phone"]["prediction"] == report["buttons"][0]["label"] and report["phone"]["overflow"] <= 1
    # without JavaScript: the picture and its sentence, no widget
    still = report["withoutScript"]
    assert still["widget"] == 0 and still["imageLoaded"] and "JavaScript" in still["caption"]


_PLOT_CALL = re.compile(r"\b(?:viz|ib|ablations)\.plot_\w+\(")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_plot_call_shows_its_figure(site, chapter):
    """A figure a cell draws with vitlib's plot functions is on the page, one image per call."""
    notebook = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
    code_cells = [
        cell
        for cell in notebook["cells"]
        if cell["cell_type"] == "code" and "remove-cell" not in cell["metadata"].get("tags", [])
    ]
    html = (site / "book" / f"{chapter}.html").read_text()
    # myst-nb renders every code cell but the removed ones, in order, as a div of class "cell"
    rendered = re.split(r'<div class="cell(?: [\w-]+)* docutils container', html)[1:]
    assert len(rendered) == len(code_cells), "cells and rendered cells do not line up"
    for index, (cell, output) in enumerate(zip(code_cells, rendered, strict=True)):
        calls = len(_PLOT_CALL.findall("".join(cell["source"])))
        images = output.count("<img")
        assert images >= calls, f"code cell {index} calls {calls} plot functions but shows {images} images"
