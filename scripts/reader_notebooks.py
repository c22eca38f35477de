"""Reader notebooks: the chapters as Colab and Jupyter open them (issue #28).

A chapter, book/<chapter>.ipynb, is written for Jupyter Book. Its Markdown quotes the numbers the
build measures with myst-nb's {glue:text} role, cites with {footcite}, links other pages with
{ref} and folds asides into {dropdown} blocks. Colab and Jupyter know none of that and show it
raw. This script writes notebooks/<chapter>.ipynb, the notebook the book's Colab button opens
(_ext/launch_notebooks_only.py points it there), from the chapter and the last build:

- the cells whose code the page never shows (tagged remove-cell or remove-input: the glue calls,
  and the checks that the text still says what the numbers show) are left out, but for the
  remove-input cells that only draw a figure (the diagrams), which stay; so is every
  output; the first code cell, which installs vitlib in Colab, stays;
- {glue:text}`key:fmt` becomes the value the build glued, formatted as myst-nb formats it;
- {footcite}`key` becomes [n], numbered as on the page, and {footbibliography} the list of the
  works cited; {cite}`key` becomes (Author et al., year);
- {ref}, {numref} and {doc} become their text, or a link into the published book when
  _config.yml sets html.baseurl; (label)= targets go;
- a {dropdown} becomes an HTML <details> block, which Jupyter and Colab fold as the page does; an
  admonition becomes a bold title over its text.

Any other MyST-only markup stops the script, naming the chapter, rather than reach a reader raw.
Each notebook keeps the values it quotes in its metadata, so that --check (and the tests) can
tell, without a build, whether it is still what its chapter makes.

    make reader-notebooks                             # build the book (cached), then this
    VITLIB_BOOK_QUICK=1 make reader-notebooks         # the same from the quick build
    python scripts/reader_notebooks.py --build DIR    # after jupyter-book build . --path-output DIR
    python scripts/reader_notebooks.py --saved        # after an edit of prose only: no build
    python scripts/reader_notebooks.py --check        # are the committed notebooks current?
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from ast import literal_eval
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
OUT = ROOT / "notebooks"
BIBLIOGRAPHY = BOOK / "references.bib"  # _config.yml's bibtex_bibfiles
REMOVED_TAGS = {"remove-cell", "remove-input"}  # cells whose code the page does not show
METADATA_KEY = "reader_notebook"
BUILDS = {
    "quick": "the quick build (VITLIB_BOOK_QUICK=1: chapters 5-8 train and measure on subsets)",
    "full": "the full build (make book)",
}
# Under the title of a chapter whose numbers the quick build measured on a subset: a reader's own
# run trains in full, and should not be surprised that its numbers differ from the text's.
QUICK_NOTE = (
    "> **Note.** The numbers in this notebook's text come from the book's quick build, which trains"
    " and measures on subsets of MNIST to run fast. Run here, the code does the full runs, so the"
    " numbers it prints will differ from the text's."
)

# `{name}` followed by a code span is a role; a code span alone is left as it is
_ROLE_OR_CODE = re.compile(r"(\{(?P<role>[a-z][\w:-]*)\})?(?P<ticks>`+)(?P<content>.+?)(?<!`)(?P=ticks)(?!`)", re.S)
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<name>[\w-]+):\s*(?P<value>.*)$")
_TARGET = re.compile(r"^\(([^\s()]+)\)=\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
# what tells a reader the Markdown was meant for Jupyter Book: a role, a directive fence, a target
RAW_MARKUP = re.compile(r"\{[a-z][\w:-]*\}`|^\s*(?::{3,}|`{3,})\s*\{|^\(\S+\)=\s*$", re.M)
_ADMONITIONS = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
    "seealso": "See also",
}  # fmt: skip


class ReaderNotebookError(Exception):
    """Markup that has no plain-Markdown form, or a value the build did not glue."""


@dataclass
class Label:
    """A `(label)=` target of the book: the page it is on and the heading it names."""

    docname: str  # "book/results"
    title: str


@dataclass
class Context:
    """What converting one chapter's Markdown needs from the rest of the book."""

    chapter: str  # "01_inductive_bias", for the error messages
    glue: dict[str, str]  # glued key -> its text/plain value, as the build recorded it
    glue_source: str = "the build"  # where the values came from, for the error messages
    labels: dict[str, Label] = field(default_factory=dict)
    baseurl: str = ""  # the published book's address (_config.yml's html.baseurl), if any
    bibliography: object = None  # pybtex BibliographyData, read when the first citation needs it
    cited: list[str] = field(default_factory=list)  # footcite keys, in the order first cited
    quoted: dict[str, str] = field(default_factory=dict)  # the glued values the text used

    def entry(self, key: str):
        if self.bibliography is None:
            from pybtex.database import parse_file  # sphinxcontrib-bibtex's own parser

            self.bibliography = parse_file(str(BIBLIOGRAPHY))
        if key not in self.bibliography.entries:
            raise ReaderNotebookError(f"{self.chapter}: cites {key!r}, which {BIBLIOGRAPHY.name} does not hold")
        return self.bibliography.entries[key]


# --- glued values ----------------------------------------------------------------------------


def read_glue(executed: Path, chapter: str) -> dict[str, str]:
    """The text/plain value of every key one chapter glued, from a build's executed notebooks.

    myst-nb writes them to <chapter>.glue.json beside the executed notebook (in the build's
    _build/jupyter_execute/book/). A notebook executed by hand (jupyter nbconvert --execute) keeps
    them as outputs of mime type application/papermill.record/text/plain instead.
    """
    glue_file, notebook_file = executed / f"{chapter}.glue.json", executed / f"{chapter}.ipynb"
    if glue_file.is_file():
        recorded = json.loads(glue_file.read_text())
        return {key: output["data"]["text/plain"] for key, output in recorded.items() if "text/plain" in output["data"]}
    if not notebook_file.is_file():
        raise ReaderNotebookError(
            f"{chapter}: no executed notebook in {executed}. Build the book first (make book), "
            "then run this script with --build set to the build's --path-output folder"
        )
    values = {}
    for cell in json.loads(notebook_file.read_text())["cells"]:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record and record.get("mime_prefix", "") + "text/plain" in output.get("data", {}):
                values[record["name"]] = output["data"][record.get("mime_prefix", "") + "text/plain"]
    return values


def format_glue(text: str, spec: str) -> str:
    """A glued text/plain value as {glue:text}`key:spec` shows it.

    The same steps as myst-nb 1.x (myst_nb.core.variables.format_plain_text): the repr is read
    back as a Python literal where it is one, and the spec's last letter says int, float or str.
    """
    try:
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if spec == "":
        return str(value)
    kind = spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, spec)


def _escape(text: str) -> str:
    """Text to show as it is in Markdown: a glued string may hold *, _ or a $ that is no math."""
    return re.sub(r"([\\`*_\[\]<>$|])", r"\\\1", text)


# --- roles -----------------------------------------------------------------------------------


def _glue_role(role: str, content: str, context: Context) -> str:
    key, spec = content, ""
    if role == "glue:text" and ":" in content:
        key, spec = content.rsplit(":", 1)  # as myst-nb splits it: a key holds no ':'
    if "::" in key:
        raise ReaderNotebookError(f"{context.chapter}: {{{role}}}`{content}` glues from another page; not supported")
    if key not in context.glue:
        raise ReaderNotebookError(
            f"{context.chapter}: the text quotes the glued value {key!r}, which {context.glue_source} does not "
            f"hold. Build the book first (make book, or VITLIB_BOOK_QUICK=1 make book), then run "
            f"scripts/reader_notebooks.py on that build"
        )
    context.quoted[key] = context.glue[key]
    try:
        return _escape(format_glue(context.glue[key], spec))
    except (TypeError, ValueError) as error:
        raise ReaderNotebookError(f"{context.chapter}: cannot format {key!r} with {spec!r}: {error}") from None


def _authors(entry) -> str:
    """'Dosovitskiy et al.', 'Abnar and Zuidema' or 'Karpathy': the author-year style's names."""
    from pybtex.richtext import Text

    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [str(Text.from_latex(" ".join(person.last_names))) for person in persons]
    if len(names) > 2:
        return f"{names[0]} et al."
    return " and ".join(names) or entry.fields.get("title", "?")


def _citation(role: str, content: str, context: Context) -> str:
    keys = [key.strip() for key in content.split(",")]
    entries = [context.entry(key) for key in keys]  # every key must be in the .bib file
    if role in ("footcite", "footcite:p"):
        # numbered as sphinxcontrib-bibtex numbers a page's footnotes: in the order first cited
        for key in keys:
            if key not in context.cited:
                context.cited.append(key)
        return "[" + ", ".join(str(context.cited.index(key) + 1) for key in keys) + "]"
    years = [entry.fields.get("year", "n.d.") for entry in entries]
    if role in ("cite", "cite:p"):
        return "(" + "; ".join(f"{_authors(e)}, {y}" for e, y in zip(entries, years, strict=True)) + ")"
    if role == "cite:t":
        return "; ".join(f"{_authors(e)} ({y})" for e, y in zip(entries, years, strict=True))
    raise ReaderNotebookError(f"{context.chapter}: no plain form for the {{{role}}} role")


def _target(content: str) -> tuple[str, str]:
    """'Results page <results-levers>' -> ('Results page', 'results-levers'); 'label' -> ('', 'label')."""
    match = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content.strip(), re.S)
    return (match.group(1), match.group(2)) if match else ("", content.strip())


def _link(text: str, docname: str, anchor: str, context: Context) -> str:
    if not context.baseurl:
        return text  # nowhere to link to: the words alone still read as a sentence
    url = f"{context.baseurl.rstrip('/')}/{docname}.html" + (f"#{anchor}" if anchor else "")
    return f"[{text}]({url})"


def _cross_reference(role: str, content: str, context: Context) -> str:
    text, target = _target(content)
    if role == "doc":
        docname = os.path.normpath(f"book/{target}").removesuffix(".md").removesuffix(".ipynb")
        return _link(text or _page_title(ROOT / docname), docname, "", context)
    if role == "numref" and (not text or "{" in text or "%" in text):
        raise ReaderNotebookError(
            f"{context.chapter}: {{numref}}`{content}` needs its number, which only the build knows; "
            "give it words of its own, {numref}`the figure <label>`"
        )
    label = context.labels.get(target)
    if label is None:
        raise ReaderNotebookError(f"{context.chapter}: {{{role}}}`{content}` names {target!r}, a label no page has")
    return _link(text or label.title, label.docname, target, context)


def convert_roles(text: str, context: Context) -> str:
    """Text with every MyST role replaced by what the page shows in its place."""

    def replace(match: re.Match) -> str:
        role, content = match.group("role"), match.group("content")
        if role is None:
            return match.group(0)  # code, shown as code
        if role in ("glue", "glue:text", "glue:any"):
            return _glue_role(role, content, context)
        if role.startswith(("footcite", "cite")):
            return _citation(role, content, context)
        if role in ("ref", "numref", "doc"):
            return _cross_reference(role, content, context)
        if role == "math":
            return f"${content}$"
        raise ReaderNotebookError(
            f"{context.chapter}: no plain-Markdown form for the {{{role}}} role; add one to {Path(__file__).name}"
        )

    return _ROLE_OR_CODE.sub(replace, text)


# --- directives ------------------------------------------------------------------------------


def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive's `:name: value` lines (or --- YAML block), and the content after them."""
    options, index = {}, 0
    if body and body[0].strip() == "---":
        end = body.index("---", 1) if "---" in body[1:] else len(body)
        for line in body[1:end]:
            name, _, value = line.partition(":")
            options[name.strip()] = value.strip()
        index = end + 1
    while index < len(body) and (option := _OPTION.match(body[index].strip())):
        options[option.group("name")] = option.group("value")
        index += 1
    return options, body[index:]


def _inline_html(text: str) -> str:
    """Markdown of a title, for a <summary>, where Markdown is not read: code and emphasis as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*", r"<i>\1</i>", text)


def _references(context: Context) -> list[str]:
    """The works the chapter cited, numbered as cited: what {footbibliography} lists on the page."""
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", "unsrt")()  # the entries' text, as on the page
    lines = []
    for number, key in enumerate(context.cited, start=1):
        text = style.format_entry(str(number), context.entry(key)).text.render_as("markdown")
        text = re.sub(r"\\([.()\-+!#])", r"\1", " ".join(text.split()))  # escapes a line start needed
        text = text.replace("&amp;", "&")  # "data-efficient image transformers & distillation"
        lines += [f"[{number}] {text}", ""]
    return lines


def _directive(name: str, argument: str, body: list[str], context: Context) -> list[str]:
    options, content = _options(body)
    if name == "dropdown":
        title = _inline_html(convert_roles(argument, context)) or "Details"
        opened = " open" if "open" in options else ""
        inner = convert_markdown("\n".join(content), context)
        return ["", f"<details{opened}>", f"<summary>{title}</summary>", "", inner, "", "</details>", ""]
    if name == "admonition" or name in _ADMONITIONS:
        # for a named admonition, the line after the name is the first line of its text
        title = argument if name == "admonition" else _ADMONITIONS[name]
        content = content if name == "admonition" or not argument else [argument, *content]
        title = convert_roles(title, context)
        return ["", f"**{title}**", "", convert_markdown("\n".join(content), context), ""]
    if name == "footbibliography":
        return ["", *_references(context)]
    if name == "math":
        return ["$$", *content, "$$"]
    if name in ("code", "code-block", "sourcecode"):
        return [f"```{argument}", *content, "```"]
    raise ReaderNotebookError(
        f"{context.chapter}: no plain-Markdown form for the {{{name}}} directive; add one to {Path(__file__).name}"
    )


def convert_markdown(markdown: str, context: Context) -> str:
    """A Markdown cell of the book as plain Markdown, which Colab and Jupyter render as the page does."""
    lines, out, prose = markdown.split("\n"), [], []

    def flush() -> None:
        out.extend(convert_roles("\n".join(prose), context).split("\n") if prose else [])
        prose.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is None or (fence.group("fence")[0] == "`" and "`" in fence.group("info")):
            if not _TARGET.match(line):  # a (label)= target shows nothing on the page
                prose.append(line)
            index += 1
            continue
        flush()
        char, length = fence.group("fence")[0], len(fence.group("fence"))
        closing = re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}\s*$")
        end = next((i for i in range(index + 1, len(lines)) if closing.match(lines[i])), len(lines))
        body = lines[index + 1 : end]
        directive = _DIRECTIVE.match(fence.group("info").strip())
        if directive:
            out.extend(_directive(directive.group("name"), directive.group("argument"), body, context))
        elif char == ":":
            raise ReaderNotebookError(f"{context.chapter}: a ::: block without a directive name: {line!r}")
        else:
            out.extend(lines[index : end + 1])  # code, untouched
        index = end + 1
    flush()
    text = "\n".join(out).strip("\n")
    return re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)  # one blank line between blocks


# --- the book --------------------------------------------------------------------------------


def _markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    return path.read_text()


def _page_title(docname_path: Path) -> str:
    for suffix in (".md", ".ipynb"):
        path = docname_path.with_suffix(suffix)
        if path.is_file():
            for line in _markdown_of(path).split("\n"):
                if heading := _HEADING.match(line):
                    return heading.group(1)
    raise ReaderNotebookError(f"no page {docname_path.relative_to(ROOT)} with a title")


def book_labels() -> dict[str, Label]:
    """Every `(label)=` target in book/, with the heading below it, which {ref}`label` shows."""
    labels = {}
    for path in sorted([*BOOK.glob("*.md"), *BOOK.glob("*.ipynb")]):
        lines = _markdown_of(path).split("\n")
        for index, line in enumerate(lines):
            if target := _TARGET.match(line):
                below = (_HEADING.match(following) for following in lines[index + 1 :] if following.strip())
                heading = next(below, None)
                title = heading.group(1) if heading else target.group(1)
                labels[target.group(1)] = Label(path.relative_to(ROOT).with_suffix("").as_posix(), title)
    return labels


def book_baseurl() -> str:
    """_config.yml's html.baseurl: where the book is published, if it says."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return (config.get("html") or {}).get("baseurl") or ""


def chapters() -> list[str]:
    return sorted(path.stem for path in BOOK.glob("0*.ipynb"))


def kept_code(cell: dict) -> bool:
    """A code cell the reader notebook keeps: one whose code the page shows, or one that only
    draws a figure the page shows without its code (remove-input, no glue: the diagrams)."""
    if cell["cell_type"] != "code":
        return False
    tags = set(cell["metadata"].get("tags", []))
    draws_a_figure = tags & REMOVED_TAGS == {"remove-input"} and "glue(" not in "".join(cell["source"])
    return not tags & REMOVED_TAGS or draws_a_figure


def installs_vitlib(source: str) -> bool:
    return bool(re.search(r"^\s*%pip install .*vit-book", source, re.M))


def reader_notebook(chapter_notebook: dict, context: Context, build: str) -> dict:
    """The notebook a reader opens: the chapter's Markdown made plain, its shown code, no outputs."""
    cells = []
    for cell in chapter_notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            cells.append({**cell, "source": convert_markdown(source, context)})
        elif kept_code(cell):
            cells.append({**cell, "source": source, "execution_count": None, "outputs": []})
    code = [cell["source"] for cell in cells if cell["cell_type"] == "code"]
    if build == BUILDS["quick"] and any("VITLIB_BOOK_QUICK" in source for source in code):
        cells.insert(
            1, {"cell_type": "markdown", "id": "reader-quick-build-note", "metadata": {}, "source": QUICK_NOTE}
        )
    if not code or not installs_vitlib(code[0]):
        raise ReaderNotebookError(f"{context.chapter}: its first code cell must install vitlib (%pip install ...)")
    for cell in cells:
        cell["source"] = cell["source"].splitlines(keepends=True)  # as Jupyter saves it
    metadata = {
        **chapter_notebook["metadata"],
        METADATA_KEY: {
            "source": f"book/{context.chapter}.ipynb",
            "glued_by": build,
            "glue": dict(sorted(context.quoted.items())),  # lets --check remake it without a build
        },
    }
    return {**chapter_notebook, "metadata": metadata, "cells": cells}


def raw_markup(markdown: str) -> list[str]:
    """The MyST-only markup left in Markdown, which Colab and Jupyter would show as it is."""
    return [match.group(0) for match in RAW_MARKUP.finditer(markdown)]


def make(chapter: str, glue: dict[str, str], glue_source: str, build: str) -> dict:
    labels, baseurl = book_labels(), book_baseurl()
    context = Context(chapter, glue, glue_source, labels=labels, baseurl=baseurl)
    notebook = reader_notebook(json.loads((BOOK / f"{chapter}.ipynb").read_text()), context, build)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and (left := raw_markup("".join(cell["source"]))):
            raise ReaderNotebookError(f"{chapter}: markup left in a Markdown cell: {left}")
    return notebook


def dumps(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"  # Jupyter's own layout


def readme(build: str) -> str:
    caveat = (
        "\nIts training runs are short, so chapters 5 and 6 quote barely trained models; the notebooks\n"
        "of the chapters it shortens say so under their titles. Regenerate them from the full build,\n"
        "with `make reader-notebooks`, before their numbers are meant to reach readers.\n"
        if build == BUILDS["quick"]
        else ""
    )
    return f"""# Reader notebooks

The chapters as Colab and Jupyter open them: the book's Colab buttons open these, not
`book/*.ipynb`. `scripts/reader_notebooks.py` writes them from the chapters after a build. It
puts the numbers the build measured into the text, where the chapters quote them with MyST's
`glue:text` role. It turns the citations, cross-references and folded asides into plain
Markdown, and leaves out the cells the page hides (the glue calls and the checks on them) and
every output. Do not edit them by hand: edit the chapter, then regenerate.

The numbers in these notebooks come from {build}.
{caveat}
Regenerate them after a build with

    make reader-notebooks                        # the full build, then the notebooks
    VITLIB_BOOK_QUICK=1 make reader-notebooks    # the same from the quick build

or `python scripts/reader_notebooks.py --build DIR` after
`jupyter-book build . --path-output DIR`. After an edit of a chapter's prose only,
`python scripts/reader_notebooks.py --saved` remakes them from the numbers they hold, without a
build. `python scripts/reader_notebooks.py --check` says whether they are still what the
chapters make; tests/test_reader_notebooks.py checks that too.
"""


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("VITLIB_BOOK_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--build",
        type=Path,
        default=ROOT / ("_build/quick" if quick else "."),
        help="the --path-output folder of the book's build (default: the Makefile's, as VITLIB_BOOK_QUICK says), "
        "or a folder of chapters executed by hand",
    )
    source.add_argument(
        "--saved", action="store_true", help="reuse the values each notebook holds (after an edit of prose only)"
    )
    source.add_argument("--check", action="store_true", help="say whether the notebooks are what the chapters make")
    parser.add_argument("chapters", nargs="*", default=chapters(), help="default: every chapter")
    args = parser.parse_args(argv)
    stale = []
    try:
        for chapter in args.chapters:
            target = OUT / f"{chapter}.ipynb"
            if args.saved or args.check:
                if not target.is_file():
                    stale.append(f"{target.relative_to(ROOT)} is missing")
                    continue
                saved = json.loads(target.read_text())["metadata"][METADATA_KEY]
                notebook = make(chapter, saved["glue"], f"{target.relative_to(ROOT)}'s metadata", saved["glued_by"])
                if args.check:
                    if dumps(notebook) != target.read_text():
                        stale.append(f"{target.relative_to(ROOT)} is not what book/{chapter}.ipynb makes")
                    continue
            else:
                executed = args.build / "_build" / "jupyter_execute" / "book"
                executed = executed if executed.is_dir() else args.build
                glue = read_glue(executed, chapter)
                notebook = make(chapter, glue, str(executed), BUILDS["quick" if quick else "full"])
            OUT.mkdir(exist_ok=True)
            target.write_text(dumps(notebook))
            print(f"wrote {target.relative_to(ROOT)}")
    except ReaderNotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        print("regenerate them: make reader-notebooks (or, after an edit of prose only, --saved)", file=sys.stderr)
        return 1
    if not (args.saved or args.check):
        (OUT / "README.md").write_text(readme(BUILDS["quick" if quick else "full"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
