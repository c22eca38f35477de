"""Sphinx extension of the book: a launch button only on the pages that are notebooks.

sphinx-book-theme gives every executed page a Colab button. For a MyST Markdown page (the back
matter's going_further.md) that button links the .md file, which Colab cannot open, so such pages
keep their download button and lose the launch one. The chapters (.ipynb) keep theirs.
"""


def drop_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    if context.get("page_source_suffix") == ".ipynb" or "header_buttons" not in context:
        return
    context["header_buttons"] = [
        button for button in context["header_buttons"] if button.get("label") != "launch-buttons"
    ]


def setup(app):
    # after sphinx-book-theme's add_launch_buttons (priority 501) has added the group
    app.connect("html-page-context", drop_launch_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
