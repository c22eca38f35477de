import io
import itertools

import matplotlib
import matplotlib.image
import matplotlib.text
import pytest
import torch
from matplotlib.figure import Figure

from vitlib import viz
from vitlib.model import VisionTransformer, ViTConfig
from vitlib.patches import sincos_2d_pos_embed

matplotlib.use("Agg")


def _model(**overrides) -> VisionTransformer:
    config = dict(image_size=16, patch_size=4, in_chans=1, num_classes=10, dim=32, depth=2, heads=2, mlp_dim=64)
    return VisionTransformer(ViTConfig(**{**config, **overrides})).eval()


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(5).expand(2, 3, 5, 5)  # (B, h, T, T): every token attends only to itself
    torch.testing.assert_close(viz.attention_rollout([eye, eye, eye]), torch.eye(5).expand(2, 5, 5))


def test_rollout_by_hand_for_one_and_two_layers():
    uniform = torch.full((1, 2, 4, 4), 0.25)
    mixed = 0.5 * torch.full((4, 4), 0.25) + 0.5 * torch.eye(4)  # rows already sum to 1
    torch.testing.assert_close(viz.attention_rollout([uniform])[0], mixed)
    torch.testing.assert_close(viz.attention_rollout([uniform, uniform])[0], mixed @ mixed)
    rows = viz.attention_rollout([torch.rand(3, 2, 6, 6).softmax(-1) for _ in range(4)]).sum(-1)
    torch.testing.assert_close(rows, torch.ones(3, 6))


def test_attention_distance_of_self_attention_is_zero():
    eye = torch.eye(17).expand(2, 3, 17, 17)  # CLS + a 4x4 grid
    assert viz.mean_attention_distance([eye], (4, 4), patch_size=4).abs().max() == 0


def test_attention_distance_of_uniform_attention_is_mean_pairwise_distance():
    grid, patch = (3, 4), 7
    uniform = torch.full((1, 2, 12, 12), 1 / 12)  # no CLS token
    centres = [(r * patch, c * patch) for r in range(grid[0]) for c in range(grid[1])]
    pairwise = [((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for a, b in itertools.product(centres, centres)]
    expected = sum(pairwise) / len(pairwise)
    distance = viz.mean_attention_distance([uniform, uniform], grid, patch)
    assert distance.shape == (2, 2)
    torch.testing.assert_close(distance, torch.full((2, 2), expected))


def test_patch_distances_follow_raster_order_on_a_non_square_grid():
    distances = viz.patch_distances((2, 3), patch_size=4)  # patch n: row n // 3, column n % 3
    assert distances.shape == (6, 6)
    assert (distances.diagonal() == 0).all()  # exactly: a patch is at distance 0 from itself
    torch.testing.assert_close(distances[0, 1], torch.tensor(4.0))  # one column right
    torch.testing.assert_close(distances[0, 3], torch.tensor(4.0))  # one row down
    torch.testing.assert_close(distances[0, 5], torch.tensor(80.0).sqrt())  # (1, 2) steps away
    torch.testing.assert_close(distances, distances.T)


def test_attention_distance_leaves_the_cls_token_out_and_renormalizes():
    grid, patch = (2, 3), 5
    num_patches = 6
    onto_patch_0 = torch.zeros(1, 1, 1 + num_patches, 1 + num_patches)  # (B, h, T, T)
    onto_patch_0[..., 1] = 1.0  # every query looks at patch 0 only
    half_on_cls = onto_patch_0.clone()
    half_on_cls[..., 0], half_on_cls[..., 1] = 0.5, 0.5  # half of it goes to the CLS token instead
    expected = viz.patch_distances(grid, patch)[:, 0].mean()  # the CLS query is not averaged in
    for weights in (onto_patch_0, half_on_cls):
        torch.testing.assert_close(viz.mean_attention_distance([weights], grid, patch), expected.reshape(1, 1))


def test_position_similarity_uses_every_kind_of_position_embedding():
    for pos_embed in ("learned", "sincos", "learned_2d"):
        model = _model(pos_embed=pos_embed)
        table = model.position_embeddings()[0, 1:]  # (N, D) without the CLS token's row
        expected = torch.nn.functional.cosine_similarity(table[:, None], table[None], dim=-1)
        torch.testing.assert_close(viz.position_embedding_similarity(model), expected)
    with pytest.raises(ValueError, match="no position embeddings"):
        viz.position_embedding_similarity(_model(pos_embed="none"))


def test_position_similarity_of_sincos_peaks_on_the_diagonal():
    model = _model(image_size=28, patch_size=4, pos_embed="sincos", dim=64)
    similarity = viz.position_embedding_similarity(model)  # (49, 49)
    torch.testing.assert_close(similarity.diagonal(), torch.ones(49))
    off_diagonal = similarity - 2 * torch.eye(49)
    assert (similarity.diagonal() > off_diagonal.max(dim=1).values).all()
    torch.testing.assert_close(model.pos_embed[0, 1:], sincos_2d_pos_embed((7, 7), 64))


def test_pca_components_are_orthonormal_and_sorted():
    model = _model(in_chans=3, patch_size=8, dim=64)
    components, explained = viz.patch_embedding_components(model, num_components=10)
    assert components.shape == (10, 3, 8, 8)
    flat = components.flatten(1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(10), rtol=0, atol=1e-5)
    assert (explained[:-1] >= explained[1:]).all() and explained.sum() <= 1


def test_cls_attention_rows_are_distributions_over_patches_and_cls():
    model = _model(depth=3, heads=4)
    maps = viz.cls_attention(model, torch.randn(1, 16, 16))
    assert maps.shape == (3, 4, 4, 4)
    assert (maps.sum((-2, -1)) <= 1 + 1e-6).all()  # the rest went to the CLS token itself


def test_rollout_maps_are_the_cls_row_without_its_own_entry():
    model = _model(depth=3)
    images = torch.randn(2, 1, 16, 16)
    maps = viz.rollout_maps(model, images)  # (B, gh, gw)
    rollout = viz.attention_rollout(model.get_attention_maps(images))  # (B, T, T)
    assert maps.shape == (2, 4, 4)
    torch.testing.assert_close(maps.flatten(1), rollout[:, 0, 1:])
    torch.testing.assert_close(maps.sum((-2, -1)) + rollout[:, 0, 0], torch.ones(2))  # the row sums to 1
    torch.testing.assert_close(viz.rollout_map(model, images[1]), maps[1])


def test_cls_maps_of_a_distilled_model_leave_both_prefix_tokens_out():
    model = _model(depth=2, distilled=True)
    images = torch.randn(2, 1, 16, 16)
    rollout = viz.attention_rollout(model.get_attention_maps(images))  # (B, 2 + N, 2 + N)
    maps = viz.rollout_maps(model, images)
    torch.testing.assert_close(maps.flatten(1), rollout[:, 0, 2:])
    torch.testing.assert_close(maps.sum((-2, -1)) + rollout[:, 0, :2].sum(-1), torch.ones(2))
    cls = viz.cls_attention(model, images[0])  # (L, h, gh, gw)
    weights = model.get_attention_maps(images[:1])[0][0, :, 0]  # layer 1: (h, T), the CLS query's row
    torch.testing.assert_close(cls[0].flatten(1), weights[:, 2:])
    maps = model.get_attention_maps(images)
    assert viz.mean_attention_distance(maps, (4, 4), 4).shape == (2, 2)
    similarity = viz.position_embedding_similarity(model)
    assert similarity.shape == (16, 16)


def _colour_limits(figure):
    return {image.get_clim() for ax in figure.axes for image in ax.images}


def test_small_multiples_share_one_colour_scale_that_fits_the_data():
    model = _model(depth=3, heads=4)
    images = torch.randn(5, 1, 16, 16)
    rollout = viz.rollout_maps(model, images)
    assert _colour_limits(viz.plot_rollout(model, images)) == {(0.0, rollout.max().item())}
    cls = viz.cls_attention(model, images[0])
    assert _colour_limits(viz.plot_cls_attention(model, images[0])) == {(0.0, cls.max().item())}
    # sin-cos similarities lie in a narrow range: the scale spans it, not -1..1
    sincos = _model(image_size=28, patch_size=4, pos_embed="sincos", dim=64)
    similarity = viz.position_embedding_similarity(sincos)
    assert _colour_limits(viz.plot_position_similarity(sincos)) == {(similarity.min().item(), 1.0)}
    assert similarity.min() > -0.5


def test_confusion_matrix_by_hand():
    matrix = viz.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], num_classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_models_without_cls_token_are_refused_where_one_is_needed():
    model = _model(pool="mean")
    image = torch.randn(1, 16, 16)
    for function in (viz.cls_attention, viz.rollout_map, viz.plot_cls_attention):
        with pytest.raises(ValueError, match="needs a CLS token, and this model has none"):
            function(model, image)
    maps = model.get_attention_maps(image[None])
    assert viz.mean_attention_distance(maps, (4, 4), 4).shape == (2, 2)  # no CLS needed


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(image_size=32, patch_size=8, in_chans=3, depth=3, heads=4),
        dict(image_size=12, patch_size=3, depth=1),
    ],
)
def test_every_plot_draws_for_any_shape(overrides):
    model = _model(**overrides)
    config = model.config
    images = torch.randn(3, config.in_chans, config.image_size, config.image_size)
    maps = model.get_attention_maps(images)
    logits = torch.randn(3, 10)
    labels = logits.argmin(1)  # all wrong
    history = [dict(epoch=e, train_loss=1 / e, val_loss=1 / e, train_acc=1 - 1 / e, val_acc=1 - 1 / e) for e in (1, 2)]
    figures = [
        viz.plot_cls_attention(model, images[0]),
        viz.plot_rollout(model, images, labels.tolist()),
        viz.plot_position_similarity(model),
        viz.plot_patch_embedding_components(model),
        viz.plot_attention_distance(maps, model.patch_embed.grid_size, config.patch_size, config.image_size),
        viz.plot_confusion_matrix(logits.argmax(1).tolist(), labels.tolist()),
        viz.plot_most_confident_mistakes(images, logits, labels),
        viz.plot_learning_curves(history),
        viz.plot_lr_schedule([0.1, 0.5, 1.0, 0.5, 0.0], steps_per_epoch=2),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        figure.canvas.draw()  # renders without error
        assert (figure.axes and figure.axes[0].get_title()) or figure.get_suptitle()


def _every_figure(model: VisionTransformer) -> list[Figure]:
    config = model.config
    images = torch.randn(8, config.in_chans, config.image_size, config.image_size)
    maps = model.get_attention_maps(images)
    logits = torch.randn(8, 10)
    labels = logits.argmin(1)
    history = [dict(epoch=e, train_loss=1 / e, val_loss=1 / e, train_acc=1 - 1 / e, val_acc=1 - 1 / e) for e in (1, 2)]
    return [
        viz.plot_cls_attention(model, images[0]),
        viz.plot_rollout(model, images, labels.tolist()),
        viz.plot_position_similarity(model),
        viz.plot_patch_embedding_components(model),
        viz.plot_attention_distance(maps, model.patch_embed.grid_size, config.patch_size, config.image_size),
        viz.plot_confusion_matrix(logits.argmax(1).tolist(), labels.tolist()),
        viz.plot_most_confident_mistakes(images, logits, labels),
        viz.plot_learning_curves(history),
        viz.plot_lr_schedule([0.1, 0.5, 1.0, 0.5, 0.0], steps_per_epoch=2),
    ]


@pytest.mark.parametrize("patch_size", [7, 4])  # the book's model and the shipped model: 4 x 4 and 7 x 7 grids
def test_figures_are_legible_at_page_width_on_any_background(patch_size):
    model = _model(image_size=28, patch_size=patch_size, dim=64, depth=6, heads=4)
    for figure in _every_figure(model):
        data, metadata = figure._repr_mimebundle_()
        png, metadata = data["image/png"], metadata["image/png"]
        image = matplotlib.image.imread(io.BytesIO(png))  # (height, width, RGBA) in [0, 1]
        # shown at most 700 CSS pixels wide, the content column, at 100 pixels per inch
        assert metadata["width"] <= 700, figure.get_suptitle() or figure.axes[0].get_title()
        assert abs(metadata["width"] - image.shape[1] * viz.PAGE_DPI / viz.PNG_DPI) <= 1
        # opaque: a transparent background leaves black text unreadable on a dark page
        assert image.shape[2] == 3 or (image[..., 3] == 1).all()
        # no text smaller than 9 points, that is 12.5 pixels on the page
        sizes = [text.get_fontsize() for text in figure.findobj(matplotlib.text.Text) if text.get_text()]
        assert min(sizes) >= viz.SMALL


def test_most_confident_mistakes_takes_a_title():
    logits = torch.eye(10)[[3, 3, 5]] * 4  # (3, 10): says 3, 3, 5
    labels = torch.tensor([3, 7, 5])  # one wrong
    images = torch.zeros(3, 1, 28, 28)
    assert viz.plot_most_confident_mistakes(images, logits, labels).get_suptitle() == (
        "Most confident mistakes (1 wrong in all)"
    )
    figure = viz.plot_most_confident_mistakes(images, logits, labels, title="Where the teacher differs")
    assert figure.get_suptitle() == "Where the teacher differs"
