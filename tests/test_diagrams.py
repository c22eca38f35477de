"""vitlib.diagrams: each diagram shows the shapes the code computes, legibly, with no text on text."""

import importlib.util
import io
import itertools
from pathlib import Path

import matplotlib
import matplotlib.image
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

import vitlib
from vitlib import diagrams, viz

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("diagrams_script", ROOT / "scripts" / "diagrams.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)

DIAGRAMS = {
    "architecture": diagrams.plot_architecture,
    "qkv_heads": diagrams.plot_qkv_heads,
    "norm_blocks": diagrams.plot_norm_blocks,
    "rollout_product": diagrams.plot_rollout_product,
}
# what each must say: the shapes in the book's notation, and the steps
EXPECTED = {
    "architecture": [
        "(B, C, H, W)", "(B, N, P²C)", "(B, N, D)", "(B, T, D)", "(B, D)", "(B, K)", "T = N + 1",
        "ch. 2", "ch. 3-4", "ch. 4", "ch. 5", "final\nLayerNorm", "Linear(D, K)",
    ],
    "qkv_heads": [
        "qkv = Linear(D, 3D)", "(B, T, 3D)", "q: (B, T, D)", "k: (B, T, D)", "v: (B, T, D)",
        "q: (B, h, T, d)", "k: (B, h, T, d)", "v: (B, h, T, d)", "d = D/h", "(three h d)",
        "b h t d -> b t (h d)", "(B, h, T, T)", "proj = Linear(D, D)",
    ],
    "norm_blocks": ["pre-norm (ViT, Eq. 2-3)", "post-norm", "residual path", "LN", "MSA", "MLP", "+", "(B, T, D)"],
    "rollout_product": [
        "(B, h, T, T)", "mean over\nthe h heads", r"$\bar{A}_\ell$", r"\frac{1}{2}(\bar{A}_\ell + I)",
        r"$\hat{A}_1$", r"$\hat{A}_L$", r"$\tilde{A}$", "row 0 (the class token)", "on the patch grid",
    ],
}  # fmt: skip


def _texts(figure: Figure) -> list[Text]:
    return [text for text in figure.findobj(Text) if text.get_text().strip() and text.get_visible()]


@pytest.fixture(scope="module", params=list(DIAGRAMS))
def drawn(request) -> tuple[str, Figure]:
    figure = DIAGRAMS[request.param]()
    FigureCanvasAgg(figure).draw()  # lays the text out, as saving the PNG does
    return request.param, figure


def test_each_diagram_is_a_figure_that_shows_the_shapes_it_must(drawn):
    name, figure = drawn
    assert isinstance(figure, Figure)
    shown = "\n".join(text.get_text() for text in _texts(figure))
    missing = [label for label in EXPECTED[name] if label not in shown]
    assert not missing, f"{name} lacks {missing}"


def _overlapping_texts(figure: Figure) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes, as the renderer lays them out, intersect."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in _texts(figure)]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def test_the_overlap_check_finds_overlapping_texts():
    figure = diagrams.DiagramFigure(figsize=(3, 2))
    figure.text(0.5, 0.5, "a label")
    figure.text(0.55, 0.52, "another")
    figure.text(0.1, 0.1, "apart")
    assert _overlapping_texts(figure) == [("a label", "another")]


def test_no_two_texts_overlap_and_every_text_is_inside_the_figure(drawn):
    name, figure = drawn
    overlapping = _overlapping_texts(figure)
    assert not overlapping, f"{name}: texts overlap: {overlapping}"
    renderer = FigureCanvasAgg(figure).get_renderer()
    page = figure.bbox
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in _texts(figure)]
    outside = [text for text, box in boxes if not (page.x0 <= box.x0 and box.x1 <= page.x1)]
    outside += [text for text, box in boxes if not (page.y0 <= box.y0 and box.y1 <= page.y1)]
    assert not outside, f"{name}: texts cut off at the edge: {outside}"


def test_diagrams_fit_the_page_with_legible_text(drawn):
    name, figure = drawn
    width, _ = figure.get_size_inches()
    assert width * viz.PAGE_DPI <= 700, name  # the content column
    assert min(text.get_fontsize() for text in _texts(figure)) >= viz.SMALL, name
    data, metadata = figure._repr_mimebundle_()  # shown in a notebook as a PNG, at its page width
    assert metadata["image/png"]["width"] <= 700
    image = matplotlib.image.imread(io.BytesIO(data["image/png"]))  # (height, width, RGBA)
    assert image.shape[2] == 3 or (image[..., 3] == 1).all()  # opaque: readable on a dark page too


def test_diagrams_are_drawn_without_pyplot():
    """No display side effects: pyplot keeps no figure that a notebook would show a second time."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for draw in DIAGRAMS.values():
        draw()
    assert plt.get_fignums() == before


def test_qkv_layout_is_the_one_attention_uses():
    """The bar's order, q1 ... qh, k1 ... kh, v1 ... vh, is vitlib.Attention's: head j's query is block j of qkv."""
    dim, heads = 8, 4
    layer = vitlib.Attention(dim, heads=heads)
    captured = {}
    layer.qkv.register_forward_hook(lambda module, args, out: captured.setdefault("qkv", out))
    x = torch.randn(1, 3, dim)
    _, weights = layer(x, return_attention=True)
    qkv = captured["qkv"]  # (B, T, 3D)
    head_dim = dim // heads
    for head in range(heads):  # the bar's segments, in order
        q = qkv[..., head * head_dim : (head + 1) * head_dim]
        k = qkv[..., dim + head * head_dim : dim + (head + 1) * head_dim]
        expected = (q @ k.transpose(-2, -1) / head_dim**0.5).softmax(-1)
        torch.testing.assert_close(weights[:, head], expected)
    figure = diagrams.plot_qkv_heads(heads=heads)
    segments = [text.get_text() for text in _texts(figure) if len(text.get_text()) == 2]
    assert segments == [f"{name}{head + 1}" for name in "qkv" for head in range(heads)]


def test_rollout_diagram_draws_what_attention_rollout_computes():
    """Its small matrices are the library's: Â = (Ā + I) / 2 has rows summing to 1, Ã = Â_L ... Â_1."""
    maps = diagrams._example_attention(tokens=5, blocks=3, heads=3)
    mixed = [0.5 * (weights[0].mean(0) + torch.eye(5, dtype=weights.dtype)) for weights in maps]
    torch.testing.assert_close(mixed[0].sum(-1), torch.ones(5, dtype=torch.float64))
    product = mixed[2] @ mixed[1] @ mixed[0]
    torch.testing.assert_close(viz.attention_rollout(maps)[0], product)


def test_the_committed_architecture_svg_is_what_the_code_draws():
    """book/intro.md shows book/figures/architecture.svg: regenerate it with python scripts/diagrams.py."""
    for path, draw in script.FIGURES.items():
        assert path.is_file(), f"{path} is missing: run python scripts/diagrams.py"
        assert path.read_bytes() == script.render(draw), f"{path.name} is stale: run python scripts/diagrams.py"
    assert b"<svg" in script.render(diagrams.plot_architecture)
    assert "architecture.svg" in (ROOT / "book" / "intro.md").read_text()


def test_svg_is_deterministic():
    first, second = script.render(diagrams.plot_architecture), script.render(diagrams.plot_architecture)
    assert first == second
    assert b"<dc:date>" not in first
    assert matplotlib.rcParams["svg.hashsalt"] is None  # the salt is set only while saving
