"""Sphinx extension of the book: launch buttons only on notebook pages, opening reader notebooks.

sphinx-book-theme gives every executed page a Colab button. For a MyST Markdown page (the back
matter's going_further.md) that button links the .md file, which Colab cannot open, so such pages
keep their download button and lose the launch one. The chapters (.ipynb) keep theirs.

The theme's button opens the chapter itself, book/<chapter>.ipynb, whose Markdown is MyST:
Colab would show its glue roles, citations and dropdowns raw. So a chapter's Colab button opens
its reader notebook instead, notebooks/<chapter>.ipynb, the same chapter in plain Markdown with
the numbers the build measured (scripts/reader_notebooks.py writes it). A chapter without one
yet keeps the link to its source.

The page's download button offers the same file: the site's copy of a chapter's source,
_sources/book/<chapter>.ipynb, is replaced by its reader notebook once the site is written.
"""

import shutil
from pathlib import Path

from sphinx.util import logging

READER_NOTEBOOKS = "notebooks"  # beside book/, at the repository's root: scripts/reader_notebooks.py's OUT

logger = logging.getLogger(__name__)


def _launch_group(context) -> dict | None:
    groups = [button for button in context.get("header_buttons", []) if button.get("label") == "launch-buttons"]
    return groups[0] if groups else None


def reader_notebook_url(url: str, pagename: str) -> str:
    """The theme's Colab URL of a chapter, .../blob/<branch>/book/01_x.ipynb, made to open notebooks/01_x.ipynb."""
    source = f"/{pagename}.ipynb"
    if not url.endswith(source):
        raise ValueError(f"the Colab button of {pagename} links {url}, not the chapter's notebook")
    return url.removesuffix(source) + f"/{READER_NOTEBOOKS}/{Path(pagename).name}.ipynb"


def drop_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    group = _launch_group(context)
    if group is None:
        return
    if context.get("page_source_suffix") != ".ipynb":
        context["header_buttons"] = [button for button in context["header_buttons"] if button is not group]
        return
    reader = Path(app.srcdir) / READER_NOTEBOOKS / f"{Path(pagename).name}.ipynb"
    if not reader.is_file():
        logger.info(f"{pagename}: no {reader.relative_to(app.srcdir)}, so its Colab button opens the chapter")
        return
    for button in group.get("buttons", []):
        if button.get("text") == "Colab":
            button["url"] = reader_notebook_url(button["url"], pagename)


def serve_reader_notebooks(app, exception) -> None:
    """The download button's .ipynb is the reader notebook, which Jupyter and Colab show as written."""
    if exception is not None or app.builder.format != "html":
        return
    for reader in sorted((Path(app.srcdir) / READER_NOTEBOOKS).glob("*.ipynb")):
        served = Path(app.outdir) / "_sources" / "book" / reader.name
        if served.is_file():  # the chapter is in the book
            shutil.copyfile(reader, served)


def setup(app):
    # after sphinx-book-theme's add_launch_buttons (priority 501) has added the group
    app.connect("html-page-context", drop_launch_buttons, priority=502)
    app.connect("build-finished", serve_reader_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
