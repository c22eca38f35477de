"""What a ViT learned: attention maps, attention rollout, and the paper's Figure 7 analyses.

Book chapter 6, "Train and visualize". Functions named ``compute_*`` or returning tensors do the
maths (and are tested); functions named ``plot_*`` draw it and return a matplotlib ``Figure``.
Everything works for any image size, patch size, channel count and depth.

Figure 7 of Dosovitskiy et al. (2020): left, the principal components of the patch-embedding
filters; centre, the cosine similarity between position embeddings; right, the mean attention
distance of every head against depth. Attention rollout is from Abnar & Zuidema (2020).

The figures are drawn for a page about 700 pixels wide: none is wider than 7 inches (shown at
100 pixels per inch), no text is smaller than 9 points, and the background is opaque white, so
they stay readable on a dark page too.
"""

import io
import math
from collections.abc import Sequence

import torch
from einops import rearrange
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vitlib.data import MNIST_MEAN, MNIST_STD
from vitlib.model import VisionTransformer

__all__ = [
    "attention_rollout",
    "cls_attention",
    "confusion_matrix",
    "mean_attention_distance",
    "patch_distances",
    "patch_embedding_components",
    "plot_attention_distance",
    "plot_cls_attention",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_lr_schedule",
    "plot_most_confident_mistakes",
    "plot_patch_embedding_components",
    "plot_position_similarity",
    "plot_rollout",
    "position_embedding_similarity",
    "rollout_maps",
]

PAGE_DPI = 100  # the page shows a figure at 100 CSS pixels per inch: 7 inches fill its ~700 px column
PNG_DPI = 144  # the PNG holds more pixels than that, so it stays sharp on high-density screens
SMALL = 9  # points: the smallest text in any figure (9 pt at 100 px per inch is 12.5 px on the page)
OUTLINE = "#33e0ff"  # the digit's outline over a heat map: visible on dark purple and on pale yellow


class NotebookFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG without pyplot, and without showing it twice.

    The PNG is rendered at ``PNG_DPI`` and shown at ``PAGE_DPI`` (its ``width`` metadata), on an
    opaque white background: a transparent one would leave black text on a dark page.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight", facecolor="white")
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict, dict]:
        """The PNG with the width to show it at, which Jupyter and myst-nb both honour."""
        png = self._repr_png_()
        width = int.from_bytes(png[16:20], "big")  # the PNG header's IHDR chunk holds width, height
        return {"image/png": png}, {"image/png": {"width": round(width * PAGE_DPI / PNG_DPI)}}


def _require_cls_token(model: VisionTransformer, what: str) -> None:
    if model.cls_token is None:
        raise ValueError(
            f"{what} needs a CLS token, and this model has none (pool={model.config.pool!r}): use a model "
            f"built with pool='cls', or look at mean_attention_distance, which works without one"
        )


# --- The numbers --------------------------------------------------------------------------------


def cls_attention(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """Where the CLS token looks, in every layer and head: (L, h, gh, gw) for one (C, H, W) image.

    Row 0 of each attention matrix, without the prefix tokens' entries (the CLS token attending to
    itself, and to the distillation token in a distilled model): the N weights of one map sum to 1
    minus what the CLS token gives the prefix tokens.
    """
    _require_cls_token(model, "the CLS attention map")
    prefix = model.num_prefix_tokens
    with torch.no_grad():
        maps = torch.stack(model.get_attention_maps(image[None]))  # (L, 1, h, T, T)
    from_cls = maps[:, 0, :, 0, prefix:]  # (L, h, N): row 0 is the CLS query, columns prefix: the patches
    return rearrange(from_cls, "l h (gh gw) -> l h gh gw", gh=model.patch_embed.grid_size[0])


def attention_rollout(maps: Sequence[torch.Tensor], residual_weight: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each output token draws on each input.

    Each layer's attention is averaged over the heads, mixed with the identity for the residual
    connection, A' = (1 - w) A + w I, its rows renormalized, and the layers multiplied:
    R = A'_L ... A'_2 A'_1. Only attention weights enter: the values, the output projection, the
    MLPs and the LayerNorms do not, and every head counts the same.

    Args:
        maps: L tensors (B, h, T, T), as ``VisionTransformer.get_attention_maps`` returns them.
        residual_weight: w, the share of the identity.

    Returns:
        (B, T, T); row i says how token i at the output is made of the input tokens (it sums to 1).
    """
    if not maps:
        raise ValueError("attention_rollout needs the attention maps of at least one layer")
    num_tokens = maps[0].shape[-1]
    identity = torch.eye(num_tokens, dtype=maps[0].dtype, device=maps[0].device)
    rollout = identity.expand(maps[0].shape[0], -1, -1)  # (B, T, T)
    for weights in maps:
        mixed = (1 - residual_weight) * weights.mean(dim=1) + residual_weight * identity  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


def rollout_maps(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """The rollout from the CLS token to every patch: (B, gh, gw) for (B, C, H, W) images.

    Row 0 of the rollout without the prefix tokens' entries: the N values sum to 1 minus the
    share of the CLS token (and of the distillation token in a distilled model).
    """
    _require_cls_token(model, "the attention rollout map")
    with torch.no_grad():
        rollout = attention_rollout(model.get_attention_maps(images))  # (B, T, T)
    return rollout[:, 0, model.num_prefix_tokens :].reshape(-1, *model.patch_embed.grid_size)  # (B, gh, gw)


def rollout_map(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """The rollout from the CLS token to every patch, as a (gh, gw) map for one (C, H, W) image."""
    return rollout_maps(model, image[None])[0]


def position_embedding_similarity(model: VisionTransformer) -> torch.Tensor:
    """Figure 7, centre: cosine similarity between the position embeddings of every pair of patches.

    The patches' rows of the (1, T, D) position-embedding table, whatever its kind (learned,
    learned 2-D or sin-cos); the prefix tokens' rows are left out, since they mark no place in the image.

    Returns:
        (N, N), entry [i, j] = cos(E_i, E_j) for patches i and j in raster order (1 on the diagonal).
    """
    table = model.position_embeddings()  # (1, T, D) or None
    if table is None:
        raise ValueError("this model has no position embeddings (pos_embed='none')")
    patches = table[0, model.num_prefix_tokens :].detach()  # (N, D)
    unit = torch.nn.functional.normalize(patches, dim=-1)
    return unit @ unit.T  # (N, N)


def patch_embedding_components(model: VisionTransformer, num_components: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of the D patch-embedding filters (Figure 7, left).

    Each of the D output channels of the patch embedding is a filter: a (C, P, P) image, flattened
    to C*P*P numbers. PCA over these D filters, centred (the mean filter subtracted), finds the
    patterns they are built from. Figure 7 shows 28 components.

    Returns:
        components: (n, C, P, P) with n = min(num_components, C*P*P), orthonormal when flattened,
            by decreasing variance;
        explained: (n,), the share of the centred filters' total variance each one explains.
    """
    filters = model.patch_embed.proj.weight.detach().flatten(1).double()  # (D, C*P*P)
    centred = filters - filters.mean(dim=0)
    _, singular, components = torch.linalg.svd(centred, full_matrices=False)  # components: (r, C*P*P)
    count = min(num_components, components.shape[0])
    explained = singular**2 / (singular**2).sum()
    shape = model.patch_embed.proj.weight.shape[1:]  # (C, P, P)
    return components[:count].float().reshape(count, *shape), explained[:count].float()


def patch_distances(grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of every pair of patches: (N, N).

    Patches in raster order (row by row), as ``patchify`` lays them out: patch n sits in row
    n // gw and column n % gw. The diagonal is exactly 0.
    """
    rows, cols = torch.meshgrid(torch.arange(grid_size[0]), torch.arange(grid_size[1]), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size  # (N, 2)
    return (centres[:, None] - centres[None, :]).norm(dim=-1)  # (N, N)


def mean_attention_distance(maps: Sequence[torch.Tensor], grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """How far each head looks, in pixels (Figure 7, right): (L, h).

    For a query patch i, the attention-weighted mean of the distances from its centre to the
    centres of the patches j it attends to, itself included (at distance 0); averaged over the
    query patches and the images. The prefix tokens have no position, so they are left out as
    queries and as keys, and each row is renormalized over the N patches: sum_j a_ij d_ij / sum_j a_ij.

    Args:
        maps: L tensors (B, h, T, T) with T = N, N + 1 (a CLS token first) or N + 2 (and a
            distillation token).
        grid_size: (gh, gw); patch_size: P, to turn grid steps into pixels.
    """
    num_patches = grid_size[0] * grid_size[1]
    distances = patch_distances(grid_size, patch_size)  # (N, N)
    per_layer = []
    for weights in maps:
        prefix = weights.shape[-1] - num_patches
        if prefix not in (0, 1, 2):
            raise ValueError(f"attention over {weights.shape[-1]} tokens does not fit a {grid_size} grid")
        patch_weights = weights[..., prefix:, prefix:]  # (B, h, N, N)
        patch_weights = patch_weights / patch_weights.sum(dim=-1, keepdim=True)
        per_query = (patch_weights * distances.to(weights.device)).sum(dim=-1)  # (B, h, N)
        per_layer.append(per_query.mean(dim=(0, 2)))  # (h,)
    return torch.stack(per_layer)  # (L, h)


def confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int = 10) -> torch.Tensor:
    """(num_classes, num_classes) counts; entry [t, p] counts images of class t predicted as p."""
    index = torch.as_tensor(labels) * num_classes + torch.as_tensor(predictions)
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


# --- The pictures -------------------------------------------------------------------------------


def _show_image(image: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """A (C, H, W) normalized tensor as something imshow draws: (H, W) grey or (H, W, 3) colour."""
    image = image.detach().cpu().float()
    if image.shape[0] == 1:
        return (image[0] * MNIST_STD + MNIST_MEAN).numpy(), "gray"
    shown = image.permute(1, 2, 0)
    low, high = shown.min(), shown.max()
    return ((shown - low) / (high - low + 1e-8)).numpy(), None


def _heat_map(ax, image: torch.Tensor, heat: torch.Tensor, vmax: float, cmap: str = "inferno"):
    """A heat map at patch resolution, true to its colour bar, with the image's outline drawn on it."""
    height, width = image.shape[-2:]
    shown = ax.imshow(
        heat.detach().cpu().numpy(),
        vmin=0,
        vmax=vmax,
        cmap=cmap,
        interpolation="nearest",
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
    )
    grey = image.detach().cpu().float().mean(dim=0)  # (H, W)
    low, high = grey.min().item(), grey.max().item()
    if high - low > 1e-6:  # the strokes: where the image is brighter than half its range
        ax.contour(grey.numpy(), levels=[(low + high) / 2], colors=OUTLINE, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def plot_cls_attention(model: VisionTransformer, image: torch.Tensor, title: str | None = None) -> Figure:
    """Where the CLS token looks in every layer (rows) and head (columns), one colour scale for all."""
    maps = cls_attention(model, image)  # (L, h, gh, gw)
    layers, heads = maps.shape[:2]
    side = min(1.25, 5.4 / heads)  # inches per map: the grid and its colour bar fit 7 inches
    figure = NotebookFigure(figsize=(side * heads + 1.4, side * layers + 0.7), layout="constrained")
    axes = figure.subplots(layers, heads, squeeze=False)
    vmax = maps.max().item()
    for layer in range(layers):
        for head in range(heads):
            shown = _heat_map(axes[layer, head], image, maps[layer, head], vmax)
            if layer == 0:
                axes[layer, head].set_title(f"head {head + 1}", fontsize=10)
            if head == 0:
                axes[layer, head].set_ylabel(f"block {layer + 1}", fontsize=10)
    figure.colorbar(shown, ax=axes, shrink=0.5, label="attention weight from the CLS token")
    figure.suptitle(title or "Attention of the CLS token to each patch (outline: the digit)", fontsize=11)
    return figure


def plot_rollout(model: VisionTransformer, images: torch.Tensor, labels: Sequence[int] | None = None) -> Figure:
    """Attention rollout from the CLS token for a few images, four to a row, one colour scale for all.

    Each map is the CLS token's row of the rollout over the N patches, drawn at patch resolution
    with the image's outline on top; the line marked 1/N on the colour bar is an even spread.
    """
    heat = rollout_maps(model, images)  # (B, gh, gw)
    count = images.shape[0]
    cols = min(4, count)
    rows = math.ceil(count / cols)
    side = 1.35
    figure = NotebookFigure(figsize=(side * cols + 1.4, (side + 0.3) * rows + 0.5), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_axis_off()
    vmax = heat.max().item()
    for index, ax in enumerate(axes.flat[:count]):
        shown = _heat_map(ax, images[index], heat[index], vmax)
        if labels is not None:
            ax.set_title(f"label {labels[index]}", fontsize=10)
    bar = figure.colorbar(shown, ax=axes, shrink=0.8, label="rollout weight of the patch")
    uniform = 1 / heat[0].numel()
    bar.ax.axhline(uniform, color="white", linewidth=2.5)
    bar.ax.axhline(uniform, color="black", linewidth=1.0)
    bar.ax.text(-0.15, uniform, "1/N", transform=bar.ax.get_yaxis_transform(), ha="right", va="center", fontsize=SMALL)
    figure.suptitle("Attention rollout from the CLS token", fontsize=11)
    return figure


def plot_position_similarity(model: VisionTransformer) -> Figure:
    """Figure 7, centre: for each patch, the cosine similarity of its position embedding with all others.

    The small map in row r, column c shows patch (r, c)'s similarity with every patch, laid out on
    the grid. The colour scale spans the values shown, from the lowest similarity to 1 (each
    patch with itself), so a narrow range is not drawn flat.
    """
    similarity = position_embedding_similarity(model)  # (N, N)
    rows, cols = model.patch_embed.grid_size
    maps = similarity.reshape(rows, cols, rows, cols)
    side = min(1.1, 5.2 / cols, 6.0 / rows)
    figure = NotebookFigure(figsize=(side * cols + 1.7, side * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    low = similarity.min().item()
    for row in range(rows):
        for col in range(cols):
            ax = axes[row, col]
            shown = ax.imshow(maps[row, col].numpy(), cmap="viridis", vmin=low, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(str(row + 1), fontsize=SMALL, rotation=0, labelpad=8, va="center")
            if row == rows - 1:
                ax.set_xlabel(str(col + 1), fontsize=SMALL)
    figure.supxlabel("column of the patch", fontsize=10)
    figure.supylabel("row of the patch", fontsize=10)
    figure.colorbar(shown, ax=axes, shrink=0.6, label="cosine similarity")
    figure.suptitle("Position embedding similarity (patches only)", fontsize=11)
    return figure


def plot_patch_embedding_components(model: VisionTransformer, num_components: int = 28) -> Figure:
    """Figure 7, left: the top principal components of the patch-embedding filters.

    Each component on its own symmetric colour scale (white is 0, red positive, blue negative; the
    sign of a principal component is arbitrary), titled with its share of the variance.
    """
    components, explained = patch_embedding_components(model, num_components)  # (n, C, P, P), (n,)
    count = components.shape[0]
    cols = min(7, count)
    rows = math.ceil(count / cols)
    side = 0.9
    figure = NotebookFigure(figsize=(side * cols + 0.4, (side + 0.25) * rows + 0.5), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= count:
            continue
        component = components[index]
        if component.shape[0] == 3:
            low, high = component.min(), component.max()
            ax.imshow(((component - low) / (high - low + 1e-8)).permute(1, 2, 0).numpy())
        else:
            picture = component.mean(0)
            limit = picture.abs().max().item() or 1.0
            ax.imshow(picture.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        share = explained[index].item()  # a small share keeps a decimal
        label = f"{share:.0%}" if share >= 0.095 else f"{share:.1%}"
        ax.set_title(f"{index + 1}: {label}", fontsize=SMALL)
    figure.suptitle(f"The first {count} principal components of the patch-embedding filters", fontsize=11)
    return figure


def plot_attention_distance(
    maps: Sequence[torch.Tensor], grid_size: tuple[int, int], patch_size: int, image_size: int | None = None
) -> Figure:
    """Figure 7, right: mean attention distance of every head against the layer.

    Heads are drawn side by side within a layer so that equal values stay visible; the dashed
    line is what uniform attention over the patches would give (the mean of all patch distances).
    """
    distance = mean_attention_distance(maps, grid_size, patch_size)  # (L, h)
    layers, heads = distance.shape
    figure = NotebookFigure(figsize=(6.2, 3.6), layout="constrained")
    ax = figure.subplots()
    offsets = torch.linspace(-0.2, 0.2, heads) if heads > 1 else torch.zeros(1)
    for head in range(heads):
        positions = [layer + 1 + offsets[head].item() for layer in range(layers)]
        ax.scatter(positions, distance[:, head].tolist(), s=22, label=f"head {head + 1}", zorder=3)
    uniform = patch_distances(grid_size, patch_size).mean().item()
    ax.axhline(uniform, color="grey", ls="--", lw=1, label=f"uniform ({uniform:.1f} px)")
    ax.set_xlabel("network depth (block)")
    ax.set_ylabel("mean attention distance (px)")
    ax.set_xticks(range(1, layers + 1))
    if image_size is not None:
        ax.set_ylim(0, image_size)
    ax.legend(fontsize=SMALL, ncol=3 if heads > 4 else 2, loc="lower right")
    ax.set_title("How far each head looks")
    return figure


def plot_confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int = 10) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, off-diagonal = mistakes."""
    matrix = confusion_matrix(predictions, labels, num_classes)
    figure = NotebookFigure(figsize=(5.6, 4.6), layout="constrained")
    ax = figure.subplots()
    mistakes = matrix.clone()
    mistakes.fill_diagonal_(0)
    shown = ax.imshow(mistakes.numpy(), cmap="Reds", vmin=0)
    for true in range(num_classes):
        for predicted in range(num_classes):
            count = matrix[true, predicted].item()
            if count:
                dark = mistakes[true, predicted] > 0.6 * mistakes.max()  # white text on the darkest reds
                colour = "tab:blue" if true == predicted else ("white" if dark else "black")
                ax.text(predicted, true, str(count), ha="center", va="center", fontsize=SMALL, color=colour)
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    bar = figure.colorbar(shown, ax=ax, label="mistakes (off the diagonal)")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Confusion matrix ({mistakes.sum().item()} mistakes)")
    return figure


def plot_most_confident_mistakes(
    images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, count: int = 12, title: str | None = None
) -> Figure:
    """The wrong predictions the model was surest of, with its confidence; ``title`` replaces the default."""
    probabilities = logits.softmax(dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:count]
    cols = min(6, max(1, len(order)))
    rows = max(1, math.ceil(len(order) / cols))
    figure = NotebookFigure(figsize=(1.05 * cols, 1.5 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, index in zip(axes.flat, order.tolist(), strict=False):
        picture, cmap = _show_image(images[index])
        ax.imshow(picture, cmap=cmap)
        ax.set_title(
            f"true {labels[index].item()}, said {predicted[index].item()}\n{confidence[index]:.0%} sure", fontsize=SMALL
        )
    figure.suptitle(title or f"Most confident mistakes ({len(wrong)} wrong in all)", fontsize=11)
    return figure


def plot_learning_curves(history: Sequence[dict]) -> Figure:
    """Loss and accuracy per epoch, training and validation, from ``fit``'s history."""
    epochs = [row["epoch"] for row in history]
    style = "o-" if len(epochs) <= 30 else "-"  # a dot per epoch, while the dots stay apart
    figure = NotebookFigure(figsize=(6.4, 3.0), layout="constrained")
    loss_ax, acc_ax = figure.subplots(1, 2)
    loss_ax.plot(epochs, [row["train_loss"] for row in history], style, label="train (with augmentation)")
    loss_ax.plot(epochs, [row["val_loss"] for row in history], style, label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("Loss")
    loss_ax.legend(fontsize=SMALL)
    acc_ax.plot(epochs, [100 * row["train_acc"] for row in history], style, label="train")
    acc_ax.plot(epochs, [100 * row["val_acc"] for row in history], style, label="validation")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title("Accuracy")
    acc_ax.legend(fontsize=SMALL)
    return figure


def plot_lr_schedule(learning_rates: Sequence[float], steps_per_epoch: int | None = None) -> Figure:
    """The learning rate at every optimizer step, with epochs marked if ``steps_per_epoch`` is given."""
    figure = NotebookFigure(figsize=(6.2, 3.0), layout="constrained")
    ax = figure.subplots()
    ax.plot(range(len(learning_rates)), learning_rates)
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, len(learning_rates), steps_per_epoch):
            ax.axvline(boundary, color="grey", lw=0.5, alpha=0.5)
    ax.set_xlabel("optimizer step" + (" (grey lines: epochs)" if steps_per_epoch else ""))
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    return figure
