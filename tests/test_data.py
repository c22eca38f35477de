import pytest
import torch

from vitlib.data import (
    MNIST_MEAN,
    MNIST_STD,
    RandomAffineBatch,
    RandomElasticBatch,
    affine_batch,
    elastic_batch,
    load_mnist,
    make_loaders,
    resolve_data_root,
    train_val_split,
)


def test_root_comes_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VITLIB_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("VITLIB_DATA")
    assert resolve_data_root().name == "vitlib"  # the download cache


def test_missing_data_says_how_to_point_at_it(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST is not in .*VITLIB_DATA=/absolute/path"):
        load_mnist(True, tmp_path, download=False)


def test_split_is_fixed_and_disjoint():
    train, val = train_val_split(60_000)
    assert (len(train), len(val)) == (55_000, 5_000)
    assert not set(train) & set(val)
    assert train_val_split(60_000) == (train, val)
    with pytest.raises(ValueError, match="validation_size"):
        train_val_split(100, 100)


def test_loaders(data_root):
    loaders = make_loaders(data_root, batch_size=256, augment=False)
    assert len(loaders.train.dataset) == 55_000
    assert len(loaders.val.dataset) == 5_000
    assert len(loaders.test.dataset) == 10_000
    images, labels = next(iter(loaders.val))
    assert images.shape == (256, 1, 28, 28) and images.dtype == torch.float32
    assert labels.min() >= 0 and labels.max() <= 9


def test_normalization_constants_are_the_training_set_statistics(data_root):
    raw = load_mnist(True, data_root).data.float() / 255  # (60000, 28, 28)
    assert raw.mean().item() == pytest.approx(MNIST_MEAN, abs=1e-4)
    assert raw.std().item() == pytest.approx(MNIST_STD, abs=1e-4)


def test_augmentation_changes_pixels_not_shape(data_root):
    plain = make_loaders(data_root, batch_size=8, augment=False, train_subset=8).train
    augmented = make_loaders(data_root, batch_size=8, augment=True, train_subset=8).train
    (x_plain, y_plain), (x_aug, y_aug) = next(iter(plain)), next(iter(augmented))
    assert x_aug.shape == x_plain.shape and torch.equal(y_aug, y_plain)
    assert not torch.equal(x_aug, x_plain)


def test_affine_batch_shift_is_exact():
    images = torch.rand(3, 1, 8, 8)
    shifted = affine_batch(images, torch.zeros(3), torch.ones(3), torch.tensor([[2.0, 0.0]] * 3))
    expected = torch.zeros_like(images)
    expected[..., 2:] = images[..., :-2]  # two pixels right, zeros coming in
    torch.testing.assert_close(shifted, expected, rtol=0, atol=1e-6)
    down = affine_batch(images, torch.zeros(3), torch.ones(3), torch.tensor([[0.0, 1.0]] * 3))
    torch.testing.assert_close(down[..., 1:, :], images[..., :-1, :], rtol=0, atol=1e-6)


def test_affine_batch_rotates_anticlockwise():
    images = torch.rand(2, 1, 6, 6)
    rotated = affine_batch(images, torch.full((2,), 90.0), torch.ones(2), torch.zeros(2, 2))
    torch.testing.assert_close(rotated, torch.rot90(images, 1, dims=(2, 3)), rtol=0, atol=1e-5)
    same = affine_batch(images, torch.zeros(2), torch.ones(2), torch.zeros(2, 2))
    torch.testing.assert_close(same, images, rtol=0, atol=1e-6)


def test_random_affine_moves_each_image_differently():
    images = torch.zeros(4, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0  # the same bar in every image
    moved = RandomAffineBatch()(images)
    assert moved.shape == images.shape
    assert all(not torch.allclose(moved[0], moved[i]) for i in range(1, 4))
    assert moved.sum((1, 2, 3)).sub(32).abs().max() < 8  # roughly the same ink: a small zoom at most


def test_elastic_batch_moves_each_pixel_by_its_displacement():
    images = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(elastic_batch(images, torch.zeros(2, 2, 8, 8)), images, rtol=0, atol=1e-6)
    right = torch.zeros(2, 2, 8, 8)
    right[:, 0] = 1.0  # every output pixel reads the input one pixel to its right
    torch.testing.assert_close(elastic_batch(images, right)[..., :-1], images[..., 1:], rtol=0, atol=1e-6)
    down = torch.zeros(2, 2, 8, 8)
    down[:, 1, 3, 5] = 2.0  # one pixel reads two rows further down, the others stay
    moved = elastic_batch(images, down)
    assert moved[..., 3, 5].allclose(images[..., 5, 5], atol=1e-6)
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[3, 5] = False
    torch.testing.assert_close(moved[..., mask], images[..., mask], rtol=0, atol=1e-6)


def test_elastic_blur_matrix_is_torchvisions_gaussian_blur():
    from torchvision.transforms.v2.functional import gaussian_blur

    elastic = RandomElasticBatch(alpha=34.0, sigma=4.0)
    noise = torch.rand(3, 2, 28, 28) * 2 - 1
    blurred = elastic.blur_matrix(28) @ noise @ elastic.blur_matrix(28).T
    torch.testing.assert_close(blurred, gaussian_blur(noise, [25, 25], [4.0, 4.0]), rtol=0, atol=1e-5)
    assert elastic.blur_matrix(20).sum(dim=1).allclose(torch.ones(20))  # a blur keeps a constant constant


def test_random_elastic_bends_each_digit_differently_and_keeps_its_ink(data_root):
    digits = load_mnist(False, data_root).data[:16, None].float() / 255  # (16, 1, 28, 28)
    bent = RandomElasticBatch()(digits)
    assert bent.shape == digits.shape and bent.min() >= 0 and bent.max() <= 1
    moved = (bent - digits).abs().mean((1, 2, 3))
    assert (moved > 0.01).all() and len(set(moved.tolist())) == 16  # every digit bent, each its own way
    ink = bent.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    assert ((ink > 0.5) & (ink < 1.5)).all()  # bent (strokes stretch and thin), not erased or smeared


def test_elastic_refuses_bad_settings(data_root):
    with pytest.raises(ValueError, match=r"alpha must be >= 0 and sigma > 0 \(pixels\), got alpha=1, sigma=0"):
        RandomElasticBatch(alpha=1, sigma=0)
    with pytest.raises(ValueError, match=r"images of 6 pixels are too small for sigma=4\.0: need more than 12"):
        RandomElasticBatch()(torch.rand(1, 1, 6, 6))
    with pytest.raises(ValueError, match="elastic=True adds to the affine augmentation"):
        make_loaders(data_root, augment=False, elastic=True)
