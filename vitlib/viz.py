"""What a ViT learned: attention maps, attention rollout, and the paper's Figure 7 analyses.

Book chapter 6, "Train and visualize". Functions named ``compute_*`` or returning tensors do the
maths (and are tested); functions named ``plot_*`` draw it and return a matplotlib ``Figure``.
Everything works for any image size, patch size, channel count and depth.

Figure 7 of Dosovitskiy et al. (2020): left, the principal components of the patch-embedding
filters; centre, the cosine similarity between position embeddings; right, the mean attention
distance of every head against depth. Attention rollout is from Abnar & Zuidema (2020).
"""

import io
import math
from collections.abc import Sequence

import torch
from einops import rearrange
from matplotlib.figure import Figure

from vitlib.data import MNIST_MEAN, MNIST_STD
from vitlib.model import VisionTransformer

__all__ = [
    "attention_rollout",
    "cls_attention",
    "confusion_matrix",
    "mean_attention_distance",
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
]


class NotebookFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG without pyplot, and without showing it twice."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _require_cls_token(model: VisionTransformer, what: str) -> None:
    if model.num_prefix_tokens != 1:
        raise ValueError(
            f"{what} needs a CLS token, and this model has none (pool={model.config.pool!r}): use a model "
            f"built with pool='cls', or look at mean_attention_distance, which works without one"
        )


# --- The numbers --------------------------------------------------------------------------------


def cls_attention(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """Where the CLS token looks, in every layer and head: (L, h, gh, gw) for one (C, H, W) image."""
    _require_cls_token(model, "the CLS attention map")
    maps = torch.stack(model.get_attention_maps(image[None]))  # (L, 1, h, T, T)
    from_cls = maps[:, 0, :, 0, 1:]  # (L, h, N): row 0 is the CLS query, columns 1: the patches
    return rearrange(from_cls, "l h (gh gw) -> l h gh gw", gh=model.patch_embed.grid_size[0])


def attention_rollout(maps: Sequence[torch.Tensor], residual_weight: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each output token draws on each input.

    Each layer's attention is averaged over the heads, mixed with the identity for the residual
    connection, A' = (1 - w) A + w I, its rows renormalized, and the layers multiplied:
    R = A'_L ... A'_2 A'_1.

    Args:
        maps: L tensors (B, h, T, T), as ``VisionTransformer.get_attention_maps`` returns them.
        residual_weight: w, the share of the identity.

    Returns:
        (B, T, T); row i says how token i at the output is made of the input tokens.
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


def rollout_map(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """The rollout from the CLS token to every patch, as a (gh, gw) map for one (C, H, W) image."""
    _require_cls_token(model, "the attention rollout map")
    rollout = attention_rollout(model.get_attention_maps(image[None]))  # (1, T, T)
    return rollout[0, 0, 1:].reshape(model.patch_embed.grid_size)  # (gh, gw)


def position_embedding_similarity(model: VisionTransformer) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches: (N, N)."""
    if model.pos_embed is None:
        raise ValueError("this model has no position embeddings (pos_embed='none')")
    patches = model.pos_embed[0, model.num_prefix_tokens :].detach()  # (N, D)
    unit = torch.nn.functional.normalize(patches, dim=-1)
    return unit @ unit.T  # (N, N)


def patch_embedding_components(model: VisionTransformer, k: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of the D patch-embedding filters (Figure 7, left).

    Each of the D output channels of the patch embedding is a filter: a (C, P, P) image. PCA over
    these D filters finds the patterns they are built from.

    Returns:
        components: (k, C, P, P), orthonormal when flattened, by decreasing variance;
        explained: (k,), the share of the filters' variance each one explains.
    """
    filters = model.patch_embed.proj.weight.detach().flatten(1).double()  # (D, C*P*P)
    centred = filters - filters.mean(dim=0)
    _, singular, components = torch.linalg.svd(centred, full_matrices=False)  # components: (r, C*P*P)
    k = min(k, components.shape[0])
    explained = singular**2 / (singular**2).sum()
    shape = model.patch_embed.proj.weight.shape[1:]  # (C, P, P)
    return components[:k].float().reshape(k, *shape), explained[:k].float()


def patch_distances(grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of every pair of patches: (N, N)."""
    rows, cols = torch.meshgrid(torch.arange(grid_size[0]), torch.arange(grid_size[1]), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size  # (N, 2)
    return torch.cdist(centres, centres)


def mean_attention_distance(maps: Sequence[torch.Tensor], grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """How far each head looks, in pixels (Figure 7, right): (L, h).

    For a query patch i, the attention-weighted mean of the distances to the patches it attends
    to; averaged over query patches and images. The CLS token has no position, so it is left out
    as query and as key, and each row is renormalized over the patches.

    Args:
        maps: L tensors (B, h, T, T) with T = N or N + 1 (with a CLS token first).
        grid_size: (gh, gw); patch_size: P, to turn grid steps into pixels.
    """
    num_patches = grid_size[0] * grid_size[1]
    distances = patch_distances(grid_size, patch_size)  # (N, N)
    per_layer = []
    for weights in maps:
        prefix = weights.shape[-1] - num_patches
        if prefix not in (0, 1):
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


def _overlay(ax, image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.6, vmax: float | None = None):
    """The image with a heat map (at patch resolution) stretched over it; colours span [0, vmax]."""
    picture, cmap = _show_image(image)
    height, width = picture.shape[:2]
    ax.imshow(picture, cmap=cmap)
    shown = ax.imshow(
        heat.detach().cpu().numpy(),
        vmin=0,
        vmax=vmax,
        cmap="inferno",
        alpha=alpha,
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def plot_cls_attention(model: VisionTransformer, image: torch.Tensor, title: str | None = None) -> Figure:
    """Where the CLS token looks in every layer (rows) and head (columns), laid over the image."""
    maps = cls_attention(model, image)  # (L, h, gh, gw)
    layers, heads = maps.shape[:2]
    figure = NotebookFigure(figsize=(1.6 * heads + 1.0, 1.6 * layers + 0.6), layout="constrained")
    axes = figure.subplots(layers, heads, squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            shown = _overlay(axes[layer, head], image, maps[layer, head], vmax=maps.max().item())
            if layer == 0:
                axes[layer, head].set_title(f"head {head + 1}", fontsize=9)
            if head == 0:
                axes[layer, head].set_ylabel(f"layer {layer + 1}", fontsize=9)
    figure.colorbar(shown, ax=axes, shrink=0.6, label="attention from the CLS token")
    figure.suptitle(title or "Attention of the CLS token to each patch")
    return figure


def plot_rollout(model: VisionTransformer, images: torch.Tensor, labels: Sequence[int] | None = None) -> Figure:
    """Attention rollout from the CLS token for a few images, each beside its heat map."""
    count = images.shape[0]
    figure = NotebookFigure(figsize=(2.0 * count, 4.4), layout="constrained")
    axes = figure.subplots(2, count, squeeze=False)
    for column in range(count):
        picture, cmap = _show_image(images[column])
        axes[0, column].imshow(picture, cmap=cmap)
        axes[0, column].set_axis_off()
        if labels is not None:
            axes[0, column].set_title(f"label {labels[column]}", fontsize=9)
        shown = _overlay(axes[1, column], images[column], rollout_map(model, images[column]))
    figure.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="rollout weight")
    figure.suptitle("Attention rollout: what the CLS token draws on, through all layers")
    return figure


def plot_position_similarity(model: VisionTransformer) -> Figure:
    """Figure 7, centre: for each patch, the cosine similarity of its position embedding with all others."""
    similarity = position_embedding_similarity(model)  # (N, N)
    rows, cols = model.patch_embed.grid_size
    maps = similarity.reshape(rows, cols, rows, cols)
    figure = NotebookFigure(figsize=(0.9 * cols + 1.2, 0.9 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for row in range(rows):
        for col in range(cols):
            shown = axes[row, col].imshow(maps[row, col].numpy(), cmap="viridis", vmin=-1, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if col == 0:
                axes[row, col].set_ylabel(str(row + 1), fontsize=8)
            if row == rows - 1:
                axes[row, col].set_xlabel(str(col + 1), fontsize=8)
    figure.supxlabel("input patch column")
    figure.supylabel("input patch row")
    figure.colorbar(shown, ax=axes, shrink=0.6, label="cosine similarity")
    figure.suptitle("Position embedding similarity")
    return figure


def plot_patch_embedding_components(model: VisionTransformer, k: int = 28) -> Figure:
    """Figure 7, left: the top principal components of the patch-embedding filters."""
    components, explained = patch_embedding_components(model, k)  # (k, C, P, P), (k,)
    k = components.shape[0]
    cols = min(7, k)
    rows = math.ceil(k / cols)
    figure = NotebookFigure(figsize=(1.3 * cols, 1.45 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= k:
            continue
        component = components[index]
        if component.shape[0] == 3:
            low, high = component.min(), component.max()
            ax.imshow(((component - low) / (high - low + 1e-8)).permute(1, 2, 0).numpy())
        else:
            ax.imshow(component.mean(0).numpy(), cmap="RdBu_r")
        ax.set_title(f"{index + 1}: {explained[index]:.0%}", fontsize=8)
    figure.suptitle("Principal components of the patch-embedding filters (share of variance)")
    return figure


def plot_attention_distance(
    maps: Sequence[torch.Tensor], grid_size: tuple[int, int], patch_size: int, image_size: int | None = None
) -> Figure:
    """Figure 7, right: mean attention distance of every head against the layer."""
    distance = mean_attention_distance(maps, grid_size, patch_size)  # (L, h)
    layers, heads = distance.shape
    figure = NotebookFigure(figsize=(5.5, 3.8), layout="constrained")
    ax = figure.subplots()
    for head in range(heads):
        ax.scatter(range(1, layers + 1), distance[:, head].tolist(), s=18, label=f"head {head + 1}")
    uniform = patch_distances(grid_size, patch_size).mean().item()
    ax.axhline(uniform, color="grey", ls="--", lw=1, label=f"uniform attention ({uniform:.1f} px)")
    ax.set_xlabel("network depth (layer)")
    ax.set_ylabel("mean attention distance (pixels)")
    ax.set_xticks(range(1, layers + 1))
    if image_size is not None:
        ax.set_ylim(0, image_size)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("How far each head looks")
    return figure


def plot_confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int = 10) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, off-diagonal = mistakes."""
    matrix = confusion_matrix(predictions, labels, num_classes)
    figure = NotebookFigure(figsize=(5.2, 4.4), layout="constrained")
    ax = figure.subplots()
    mistakes = matrix.clone()
    mistakes.fill_diagonal_(0)
    shown = ax.imshow(mistakes.numpy(), cmap="Reds")
    for true in range(num_classes):
        for predicted in range(num_classes):
            count = matrix[true, predicted].item()
            if count:
                colour = "black" if true != predicted else "tab:blue"
                ax.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    figure.colorbar(shown, ax=ax, label="mistakes")
    ax.set_title(f"Confusion matrix ({mistakes.sum().item()} mistakes)")
    return figure


def plot_most_confident_mistakes(
    images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, count: int = 12
) -> Figure:
    """The wrong predictions the model was surest of, with its confidence."""
    probabilities = logits.softmax(dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:count]
    cols = min(6, max(1, len(order)))
    rows = max(1, math.ceil(len(order) / cols))
    figure = NotebookFigure(figsize=(1.7 * cols, 2.0 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, index in zip(axes.flat, order.tolist(), strict=False):
        picture, cmap = _show_image(images[index])
        ax.imshow(picture, cmap=cmap)
        ax.set_title(
            f"true {labels[index].item()}, said {predicted[index].item()}\n{confidence[index]:.0%} sure", fontsize=8
        )
    figure.suptitle(f"Most confident mistakes ({len(wrong)} wrong in all)")
    return figure


def plot_learning_curves(history: Sequence[dict]) -> Figure:
    """Loss and accuracy per epoch, training and validation, from ``fit``'s history."""
    epochs = [row["epoch"] for row in history]
    figure = NotebookFigure(figsize=(9, 3.4), layout="constrained")
    loss_ax, acc_ax = figure.subplots(1, 2)
    loss_ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train (with augmentation)")
    loss_ax.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("Loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * row["train_acc"] for row in history], "o-", label="train")
    acc_ax.plot(epochs, [100 * row["val_acc"] for row in history], "o-", label="validation")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title("Accuracy")
    acc_ax.legend()
    return figure


def plot_lr_schedule(learning_rates: Sequence[float], steps_per_epoch: int | None = None) -> Figure:
    """The learning rate at every optimizer step, with epochs marked if ``steps_per_epoch`` is given."""
    figure = NotebookFigure(figsize=(6, 3), layout="constrained")
    ax = figure.subplots()
    ax.plot(range(len(learning_rates)), learning_rates)
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, len(learning_rates), steps_per_epoch):
            ax.axvline(boundary, color="grey", lw=0.5, alpha=0.5)
    ax.set_xlabel("optimizer step" + (" (grey lines: epochs)" if steps_per_epoch else ""))
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    return figure
