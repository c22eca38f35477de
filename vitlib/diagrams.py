"""Diagrams of the model, drawn with matplotlib patches, arrows and text: no data, no training.

Book: the architecture overview opens the book (book/intro.md, as book/figures/architecture.svg,
which scripts/diagrams.py writes); chapter 3 draws the qkv layout and the head split, chapter 4
the pre-norm and post-norm blocks, chapter 6 the product of attention rollout. Each function
returns a ``Figure`` and shows nothing; in a notebook the figure is its cell's output.

The symbols are the book's (its notation table in book/intro.md): B batch, C channels, H/W image
height/width, P patch side, N patches, T = N + 1 tokens, D width, h heads, d = D / h head width,
L blocks, K classes. The shapes drawn are what the code computes: ``vitlib.attention.Attention``
for the qkv layout, ``vitlib.encoder.Block`` for the norms, ``vitlib.viz.attention_rollout``
for the rollout (whose numbers this diagram's small matrices are).

Like ``vitlib.viz``'s plots they fit the page's 7-inch column, their smallest text is 9 points,
and the colours are Okabe and Ito's, told apart by readers with any form of colour blindness;
every colour is also named by a label, so none carries meaning alone.
"""

import io

import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

from vitlib.viz import PNG_DPI, SMALL, NotebookFigure, attention_rollout

__all__ = ["plot_architecture", "plot_norm_blocks", "plot_qkv_heads", "plot_rollout_product"]

# Okabe & Ito (2008), a palette for every kind of colour vision
BLUE, ORANGE, GREEN, SKY, VERMILLION, PURPLE, YELLOW = (
    "#0072B2", "#E69F00", "#009E73", "#56B4E9", "#D55E00", "#CC79A7", "#F0E442",
)  # fmt: skip
INK = "#222222"  # text, outlines and arrows
TEXT = 10  # points: labels; SMALL (9) for notes
CHAPTER_COLOURS = {2: SKY, 3: ORANGE, 4: GREEN, 5: PURPLE}  # each box says its chapter in words too


def _tint(colour: str, amount: float = 0.3) -> tuple[float, float, float]:
    """``colour`` mixed with white: a pale fill that dark text stays readable on."""
    return tuple(amount * c + (1 - amount) for c in to_rgb(colour))


class DiagramFigure(NotebookFigure):
    """A ``NotebookFigure`` saved as drawn: a diagram lays out its own margins, so no tight crop.

    A tight crop would add its padding around the drawing and make a 7-inch diagram wider than
    the page's column.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=PNG_DPI, facecolor="white")
        return buffer.getvalue()


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of width x height inches whose one invisible Axes measures in inches from the bottom left."""
    figure = DiagramFigure(figsize=(width, height), facecolor="white")
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return figure, ax


def _box(ax: Axes, x: float, y: float, width: float, height: float, text: str, colour: str, **kwargs) -> None:
    """A rounded box centred on (x, y), pale ``colour`` inside, with centred ``text``."""
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0,rounding_size=0.06",
            facecolor=_tint(colour), edgecolor=colour, linewidth=1.5,
        )
    )  # fmt: skip
    ax.text(x, y, text, ha="center", va="center", fontsize=kwargs.pop("fontsize", TEXT), color=INK, **kwargs)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], colour: str = INK, **kwargs) -> None:
    """A straight arrow from ``start`` to ``end`` (or a line, with ``arrowstyle="-"``)."""
    style = kwargs.pop("arrowstyle", "-|>")
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=12, color=colour, linewidth=1.3,
            shrinkA=0, shrinkB=0, **kwargs,
        )
    )  # fmt: skip


def _matrix(ax: Axes, x: float, y: float, side: float, values: torch.Tensor, label: str | None = None) -> None:
    """A (T, T) matrix as T x T squares of ``side`` inches, top left at (x, y); darker is larger."""
    count = values.shape[0]
    cell = side / count
    top = values.max().item()
    for row in range(count):
        for col in range(count):
            shade = values[row, col].item() / top
            ax.add_patch(
                Rectangle(
                    (x + col * cell, y - (row + 1) * cell), cell, cell,
                    facecolor=_tint(BLUE, 0.08 + 0.92 * shade), edgecolor="white", linewidth=0.8,
                )
            )  # fmt: skip
    if label:
        ax.text(x + side / 2, y - side - 0.08, label, ha="center", va="top", fontsize=TEXT, color=INK)


# --- Book intro: the whole model -------------------------------------------------------------


def plot_architecture() -> Figure:
    """The ViT from image to class scores: each step, the shape it outputs, and the chapter that builds it.

    Two rows, read like a page: left to right, then right to left below. The book's ``(B, T, D)``
    tokens are the patches' N embeddings with the class token first, so T = N + 1.
    """
    figure, ax = _canvas(7.0, 3.55)
    top, bottom, height = 2.6, 0.95, 1.05
    width, step = 1.22, 1.42
    first = [  # (what, the shape it outputs, chapter)
        ("image", "(B, C, H, W)", 2),
        ("patchify:\nP × P patches", "(B, N, P²C)", 2),
        ("patch\nembedding E", "(B, N, D)", 2),
        ("prepend the\nclass token", "(B, T, D)", 2),
        ("add position\nembeddings", "(B, T, D)", 2),
    ]
    for index, (what, shape, chapter) in enumerate(first):
        x = 0.63 + index * step
        _stage(ax, x, top, width, height, what, shape, chapter)
        if index:
            _arrow(ax, (x - step + width / 2, top), (x - width / 2, top))
    second = [
        ("L encoder blocks:\nLN, MSA, LN, MLP", "(B, T, D)", "ch. 3-4", 4),
        ("final\nLayerNorm", "(B, T, D)", "ch. 4", 4),
        ("read the\nclass token", "(B, D)", "ch. 4", 4),
        ("head:\nLinear(D, K)", "(B, K)", "ch. 5", 5),
    ]
    wide, wide_step = 1.5, 1.72
    right = 0.63 + 4 * step + width / 2 - wide / 2 - 0.12  # room on the right for the stack's cards
    for index, (what, shape, tag, chapter) in enumerate(second):
        x = right - index * wide_step
        if index == 0:  # a stack of L blocks: two cards peek out behind the first
            for offset in (0.1, 0.05):
                ax.add_patch(
                    FancyBboxPatch(
                        (x - wide / 2 + offset, bottom - height / 2 + offset), wide, height,
                        boxstyle="round,pad=0,rounding_size=0.06", facecolor="white",
                        edgecolor=CHAPTER_COLOURS[chapter], linewidth=1.2,
                    )
                )  # fmt: skip
        _stage(ax, x, bottom, wide, height, what, shape, chapter, tag)
        if index:
            _arrow(ax, (x + wide_step - wide / 2, bottom), (x + wide / 2, bottom))
    x_last = 0.63 + 4 * step
    _arrow(ax, (x_last, top - height / 2), (x_last, bottom + height / 2 + 0.1))
    ax.text(
        0.05, 0.12, "T = N + 1: the N patches and the class token. Every block maps (B, T, D) to (B, T, D).",
        ha="left", va="center", fontsize=SMALL, color=INK,
    )  # fmt: skip
    ax.text(3.5, 3.38, "The Vision Transformer, from image to class scores", ha="center", fontsize=11, color=INK)
    return figure


def _stage(ax: Axes, x, y, width, height, what: str, shape: str, chapter: int, tag: str | None = None) -> None:
    """One step of the architecture: what it does, the shape it outputs, the chapter that builds it."""
    colour = CHAPTER_COLOURS[chapter]
    _box(ax, x, y, width, height, "", colour)
    ax.text(x, y + 0.2, what, ha="center", va="center", fontsize=TEXT, color=INK, linespacing=1.1)
    ax.text(x, y - 0.2, shape, ha="center", va="center", fontsize=TEXT, color=INK, fontweight="bold")
    ax.text(x, y - 0.4, tag or f"ch. {chapter}", ha="center", va="center", fontsize=SMALL, color=INK)


# --- Chapter 3: one qkv layer, h heads --------------------------------------------------------


def plot_qkv_heads(heads: int = 4) -> Figure:
    """The layout of ``qkv``'s 3D outputs and the split into heads, as ``vitlib.Attention`` does it.

    ``rearrange(qkv(x), "b t (three h d) -> three b h t d")``: the 3 is outermost, so the first D
    outputs are the queries of all heads, head 1's d channels first; then the keys, then the
    values. Args: ``heads``, the h heads drawn (4, the book's model).
    """
    figure, ax = _canvas(7.0, 5.55)
    colours = {"q": BLUE, "k": ORANGE, "v": GREEN}
    ax.text(3.5, 5.35, "One qkv layer, h heads: the shapes in vitlib.Attention", ha="center", fontsize=11, color=INK)
    # the tokens and the one linear layer
    _box(ax, 0.75, 4.8, 1.1, 0.5, "x\n(B, T, D)", SKY)
    _box(ax, 2.55, 4.8, 1.9, 0.5, "qkv = Linear(D, 3D)", PURPLE)
    _arrow(ax, (1.3, 4.8), (1.6, 4.8))
    ax.text(3.65, 4.8, "(B, T, 3D): each token's 3D outputs, in this order:", va="center", fontsize=SMALL, color=INK)
    _arrow(ax, (2.55, 4.55), (2.55, 4.21))
    # the 3D outputs of one token: q of every head, then k, then v
    left, bar_width, bar_y, bar_height = 0.35, 6.3, 4.0, 0.42
    third = bar_width / 3
    cell = third / heads
    for part, name in enumerate("qkv"):
        start = left + part * third
        for head in range(heads):
            ax.add_patch(
                Rectangle(
                    (start + head * cell, bar_y - bar_height / 2), cell, bar_height,
                    facecolor=_tint(colours[name], 0.45 if head % 2 else 0.25), edgecolor="white", linewidth=1.5,
                )
            )  # fmt: skip
            ax.text(start + (head + 0.5) * cell, bar_y, f"{name}{head + 1}", ha="center", va="center",
                    fontsize=SMALL, color=INK)  # fmt: skip
        ax.text(start + third / 2 + (0.25 if part == 1 else 0), bar_y + 0.35, f"{name}: (B, T, D)", ha="center",
                va="center", fontsize=TEXT, color=INK, fontweight="bold")  # fmt: skip
    # one head's share of the queries: d channels
    ax.annotate(
        "", (left, bar_y - 0.3), (left + cell, bar_y - 0.3),
        arrowprops=dict(arrowstyle="|-|, widthA=0.3, widthB=0.3", color=INK, linewidth=1, shrinkA=0, shrinkB=0),
    )  # fmt: skip
    ax.text(left, bar_y - 0.48, "head 1's queries: d = D/h channels", ha="left", va="center", fontsize=SMALL,
            color=INK)  # fmt: skip
    ax.text(
        3.5, 3.18, 'rearrange: "b t (three h d) -> three b h t d", then unbind the three', ha="center",
        va="center", fontsize=SMALL, color=INK, family="monospace",
    )  # fmt: skip
    # q, k and v, each a stack of h heads
    stack_y = 2.3
    for part, name in enumerate("qkv"):
        centre = left + (part + 0.5) * third
        _arrow(ax, (centre, 3.02), (centre, stack_y + 0.27))
        for head in reversed(range(heads)):
            offset = 0.07 * head
            ax.add_patch(
                Rectangle(
                    (centre - 0.6 + offset, stack_y - 0.25 - offset), 1.2, 0.5,
                    facecolor=_tint(colours[name], 0.35), edgecolor=colours[name], linewidth=1.2,
                )
            )  # fmt: skip
        ax.text(centre, stack_y, f"{name}: (B, h, T, d)", ha="center", va="center", fontsize=SMALL, color=INK)
        _arrow(ax, (centre + 0.1, stack_y - 0.25 - 0.07 * (heads - 1)), (centre + 0.1, 1.47))
    # attention in every head, then the heads merged and mixed
    _box(ax, 3.5, 1.22, 6.3, 0.5, "in each head: softmax(q kᵀ / √d) v  →  (B, h, T, d); weights (B, h, T, T)", YELLOW)
    _arrow(ax, (3.5, 0.97), (3.5, 0.67))
    _box(ax, 1.95, 0.4, 3.2, 0.5, 'merge the heads: "b h t d -> b t (h d)"\n(B, T, D)', SKY, fontsize=SMALL)
    _box(ax, 5.35, 0.4, 2.2, 0.5, "proj = Linear(D, D)\n(B, T, D)", PURPLE, fontsize=SMALL)
    _arrow(ax, (3.55, 0.4), (4.25, 0.4))
    return figure


# --- Chapter 4: where the LayerNorm sits ------------------------------------------------------


def plot_norm_blocks() -> Figure:
    """Pre-norm (ViT, Eq. 2-3) and post-norm (the original Transformer) blocks, residual paths drawn.

    In both, the straight line down the left is the residual path and the boxes to its right are
    the branches it skips. Pre-norm's LayerNorms sit inside the branches, so the residual path
    holds only additions; post-norm's sit on the residual path, after each addition.
    """
    figure, ax = _canvas(7.0, 4.95)
    _norm_block(ax, 0.2, pre_norm=True)
    _norm_block(ax, 3.7, pre_norm=False)
    ax.add_patch(Rectangle((3.5, 0.35), 0.0, 4.5, edgecolor="#bbbbbb", linewidth=1))  # between the panels
    ax.text(3.5, 0.15, "Every arrow carries (B, T, D) tokens.", ha="center", va="center", fontsize=SMALL, color=INK)
    return figure


def _norm_block(ax: Axes, left: float, pre_norm: bool) -> None:
    """One block, 3.1 inches wide from ``left``: its residual path on the left, its branches on the right."""
    main, branch = left + 0.75, left + 2.1
    title = "pre-norm (ViT, Eq. 2-3)" if pre_norm else "post-norm (the original Transformer)"
    note = "only additions on the residual path" if pre_norm else "a LayerNorm after each addition"
    ax.text(left + 1.55, 4.72, title, ha="center", va="center", fontsize=11, color=INK)
    ax.text(left + 1.55, 4.45, note, ha="center", va="center", fontsize=SMALL, color=INK)
    ax.text(main, 4.17, "$z_{\\ell-1}$", ha="center", va="center", fontsize=TEXT + 1, color=INK)
    top = 4.02  # where the residual path leaves the block's input
    for unit, sublayer in enumerate(("MSA", "MLP")):
        y = 4.0 - 1.6 * unit  # each sublayer and its norm take 1.6 inches, in either placement
        fork = y - 0.1
        _arrow(ax, (main, fork), (branch, fork), arrowstyle="-")  # to the branch
        centres = [y - 0.42, y - 0.98] if pre_norm else [y - 0.5]
        names = ["LN", sublayer] if pre_norm else [sublayer]
        level = fork
        for centre, name in zip(centres, names, strict=True):
            _arrow(ax, (branch, level), (branch, centre + 0.19))
            colour = GREEN if name == "LN" else (ORANGE if name == "MSA" else PURPLE)
            _box(ax, branch, centre, 0.95, 0.38, name, colour)
            level = centre - 0.19
        join = y - 1.35 if pre_norm else y - 0.85
        _arrow(ax, (branch, level), (branch, join), arrowstyle="-")
        _arrow(ax, (branch, join), (main + 0.13, join))  # back to the addition
        _arrow(ax, (main, top), (main, join + 0.13), colour=BLUE)  # the residual path
        _plus(ax, main, join)
        top = join - 0.13
        if not pre_norm:  # the norm sits on the residual path itself
            _arrow(ax, (main, top), (main, y - 1.16), colour=BLUE)
            _box(ax, main, y - 1.35, 0.7, 0.38, "LN", GREEN)
            top = y - 1.54
    _arrow(ax, (main, top), (main, 0.72), colour=BLUE)
    ax.text(main, 0.56, "$z_\\ell$", ha="center", va="center", fontsize=TEXT + 1, color=INK)
    ax.text(main - 0.5, 3.55, "residual path", rotation=90, ha="center", va="center", fontsize=SMALL, color=BLUE)


def _plus(ax: Axes, x: float, y: float) -> None:
    """The residual addition: a circled plus."""
    ax.add_patch(Circle((x, y), 0.13, facecolor="white", edgecolor=BLUE, linewidth=1.4))
    ax.text(x, y, "+", ha="center", va="center", fontsize=TEXT + 2, color=BLUE)


# --- Chapter 6: attention rollout -------------------------------------------------------------


def _example_attention(tokens: int, blocks: int, heads: int) -> list[torch.Tensor]:
    """Made-up attention weights (1, h, T, T) per block, rows summing to 1: a fixed pattern, not a model's."""
    position = torch.arange(tokens, dtype=torch.float64)
    maps = []
    for block in range(blocks):
        phase = torch.arange(heads, dtype=torch.float64)[:, None, None]  # (h, 1, 1)
        scores = torch.cos(0.9 * (block + 1) * position[:, None] + 1.7 * position[None, :] + phase)  # (h, T, T)
        maps.append((2.5 * scores).softmax(dim=-1)[None])
    return maps


def plot_rollout_product(blocks: int = 3) -> Figure:
    """Attention rollout as ``vitlib.viz.attention_rollout`` computes it, on a small made-up example.

    Per block: the h heads' weights averaged, Ā_ℓ; half of it mixed with half the identity,
    Â_ℓ = ½ (Ā_ℓ + I), whose rows still sum to 1; then the product Ã = Â_L ⋯ Â_2 Â_1, block 1's
    matrix on the right; the class token's row of Ã, without its own entry, laid on the patch
    grid. The small matrices (T = 5: the class token and a 2 x 2 grid) are computed by
    ``attention_rollout`` from a fixed pattern. Args: ``blocks``, the L matrices drawn.
    """
    tokens, heads, side = 5, 3, 0.8
    maps = _example_attention(tokens, blocks, heads)
    averaged = [weights[0].mean(0) for weights in maps]  # Ā_ℓ: (T, T)
    identity = torch.eye(tokens, dtype=torch.float64)
    mixed = [0.5 * (a + identity) for a in averaged]  # Â_ℓ, as attention_rollout mixes them
    rollout = attention_rollout(maps)[0]  # Ã: (T, T)
    figure, ax = _canvas(7.0, 3.95)
    ax.text(3.5, 3.75, "Attention rollout: one matrix per block, multiplied", ha="center", fontsize=11, color=INK)
    # one block: average the heads, mix in the identity
    y = 3.35
    ax.text(0.08, y - side / 2, "block ℓ:", ha="left", va="center", fontsize=TEXT, color=INK)
    for head in reversed(range(heads)):  # the heads as a stack of cards, head 1 in front
        offset = 0.08 * head
        x = 0.95 + offset
        ax.add_patch(Rectangle((x - 0.03, y - side - offset - 0.03), side + 0.06, side + 0.06, facecolor="white",
                               edgecolor=BLUE, linewidth=1))  # fmt: skip
        _matrix(ax, x, y - offset, side, maps[-1][0, head])
    ax.text(1.4, y - side - 0.3, "weights (B, h, T, T)", ha="center", va="top", fontsize=TEXT, color=INK)
    _arrow(ax, (2.05, y - side / 2), (2.65, y - side / 2))
    ax.text(2.35, y - side / 2 + 0.12, "mean over\nthe h heads", ha="center", va="bottom", fontsize=SMALL, color=INK)
    _matrix(ax, 2.75, y, side, averaged[-1], "$\\bar{A}_\\ell$  (B, T, T)")
    _arrow(ax, (3.65, y - side / 2), (4.25, y - side / 2))
    ax.text(3.95, y - side / 2 + 0.12, "+ I, halved", ha="center", va="bottom", fontsize=SMALL, color=INK)
    _matrix(ax, 4.35, y, side, mixed[-1], "$\\hat{A}_\\ell = \\frac{1}{2}(\\bar{A}_\\ell + I)$")
    ax.text(5.3, y - side / 2, "its rows still\nsum to 1", ha="left", va="center", fontsize=SMALL, color=INK)
    # the product over the blocks, and the class token's row of it
    y = 1.6
    x = 0.1
    for position, block in enumerate(reversed(range(blocks))):
        label = "$\\hat{A}_L$" if position == 0 else f"$\\hat{{A}}_{block + 1}$"
        _matrix(ax, x, y, side, mixed[block], label)
        x += side
        sign = "⋯" if position == 0 and blocks > 2 else ("=" if block == 0 else "·")
        ax.text(x + 0.15, y - side / 2, sign, ha="center", va="center", fontsize=TEXT + 2, color=INK)
        x += 0.3
    _matrix(ax, x, y, side, rollout, "$\\tilde{A}$  (B, T, T)")
    cell = side / tokens
    ax.add_patch(Rectangle((x + cell - 0.03, y - cell - 0.03), side - cell + 0.06, cell + 0.06, fill=False,
                           edgecolor=VERMILLION, linewidth=2.2))  # fmt: skip
    ax.text(x + side / 2, y + 0.1, "row 0 (the class token),\ncolumns 1 to N (the patches)", ha="center",
            va="bottom", fontsize=SMALL, color=VERMILLION)  # fmt: skip
    x += side + 0.15
    _arrow(ax, (x, y - side / 2), (x + 0.55, y - side / 2))
    grid = rollout[0, 1:].reshape(2, 2)  # (gh, gw)
    _matrix(ax, x + 0.65, y - 0.05, side - 0.1, grid, "on the patch grid:\nthe rollout map")
    ax.text(
        3.5, 0.17, "$\\tilde{A} = \\hat{A}_L \\; \\cdots \\; \\hat{A}_2 \\; \\hat{A}_1$: block 1's matrix acts first."
        "  Drawn with T = 5: the class token and N = 4 patches.", ha="center", va="center", fontsize=SMALL, color=INK,
    )  # fmt: skip
    return figure
