"""Sphinx extension of the book: writes the drawing pad's model.js and fallback.png into the site.

The pad's code (vit.js, pad.js) is in _assets/vitpad/, copied as it is; the model is exported from
the shipped checkpoint at every build by ``vitlib.export.write_pad_assets``, so the page always
carries the weights that ``vitlib.load_pretrained()`` returns.
"""

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def write_pad_assets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from vitlib.export import write_pad_assets as write

    sizes = write(Path(app.outdir) / "vitpad")
    logger.info(f"drawing pad: {', '.join(f'{name} {size / 1e6:.2f} MB' for name, size in sizes.items())}")


def setup(app):
    app.connect("build-finished", write_pad_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
