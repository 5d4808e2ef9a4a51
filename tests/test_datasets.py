"""Data pipelines: offline Fashion-MNIST (IDX) and digits for real, cifar10 / imagenet2012
through `tfds.testing.mock_data`."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from eatnas_tf.data import datasets as D
from eatnas_tf.data import idx

needs_fmnist = pytest.mark.skipif(not idx.available(), reason="dataset-fashion-mnist not installed")


def _first(ds):
    return [t.numpy() for t in next(iter(ds))]


@needs_fmnist
def test_fashion_mnist_search_split_is_80_20_with_whitening_stats():
    data = D.load_data(D.DataConfig("fashion_mnist", augment=("crop", "flip")))
    assert data.config.resolved_source == "idx"
    assert (data.num_train, data.num_val, data.num_test) == (48000, 12000, 0)
    assert data.test is None
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10
    assert data.steps_per_epoch == 48000 // 128
    np.testing.assert_allclose(data.mean, [0.2860], atol=1e-3)
    np.testing.assert_allclose(data.std, [0.3530], atol=1e-3)
    x, y = _first(data.train)
    assert x.shape == (128, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int64
    # Validation is whitened with the train statistics: about zero mean, unit std.
    xs = np.concatenate([b[0].numpy() for b in data.val.take(20)])
    assert abs(xs.mean()) < 0.05 and abs(xs.std() - 1.0) < 0.05
    assert sum(1 for _ in data.train) == data.steps_per_epoch  # one pass = one epoch


@needs_fmnist
def test_fashion_mnist_pipeline_is_deterministic_per_seed_and_epoch():
    cfg = D.DataConfig("fashion_mnist", augment=("crop", "flip", "cutout"), max_train_examples=1024)
    a, b = D.load_data(cfg), D.load_data(cfg)
    xa, ya = _first(a.train)
    xb, yb = _first(b.train)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    xe1, _ = _first(a.train_dataset(1))
    assert not np.array_equal(xa, xe1)  # a new epoch reshuffles and re-augments
    xs, _ = _first(D.load_data(D.DataConfig("fashion_mnist", augment=("crop", "flip", "cutout"),
                                            max_train_examples=1024, seed=1)).train)
    assert not np.array_equal(xa, xs)
    # The 80/20 cut does not depend on the shuffling seed.
    np.testing.assert_array_equal(_first(a.val)[1], _first(D.load_data(
        D.DataConfig("fashion_mnist", seed=5, max_train_examples=1024)).val)[1])


@needs_fmnist
def test_fashion_mnist_econas_sample_fraction_and_resolution_and_final_split():
    data = D.load_data(D.DataConfig("fashion_mnist", sample_fraction=0.25, image_size=14,
                                    batch_size=64))
    assert data.num_train == 12000 and data.num_val == 12000
    assert _first(data.train)[0].shape == (64, 14, 14, 1)
    final = D.load_data(D.DataConfig("fashion_mnist", split="final", val_fraction=0.0))
    assert (final.num_train, final.num_val, final.num_test) == (60000, 0, 10000)
    assert final.val is None
    x, y = D.load_arrays(D.DataConfig("fashion_mnist", image_size=14), "test", max_examples=100)
    assert x.shape == (100, 14, 14, 1) and x.dtype == np.uint8 and y.shape == (100,)
    xh, _ = D.held_out_arrays(D.DataConfig("fashion_mnist"), max_examples=10)
    assert xh.shape == (10, 28, 28, 1)


def test_digits_from_scikit_learn():
    data = D.load_data(D.DataConfig("digits", batch_size=32, augment=("crop", "flip")))
    assert data.config.resolved_source == "sklearn"
    assert data.image_shape == (8, 8, 1) and data.num_classes == 10
    assert data.num_train + data.num_val == 1797 - 359
    x, y = _first(data.train)
    assert x.shape == (32, 8, 8, 1) and set(np.unique(y)) <= set(range(10))
    xr, _ = D.load_arrays(D.DataConfig("digits"), "test")
    assert xr.shape == (359, 8, 8, 1) and xr.dtype == np.uint8 and xr.max() == 255
    final = D.load_data(D.DataConfig("digits", split="final", val_fraction=0.1))
    assert final.num_test == 359 and final.test is not None and final.num_val > 0
    noaug = _first(final.train_noaug)[0]
    assert noaug.shape[1:] == (8, 8, 1)


def test_cifar10_through_tfds_mock_data():
    D._raw_arrays.cache_clear()
    try:
        with tfds.testing.mock_data(num_examples=300):
            cfg = D.DataConfig("cifar10", source="tfds", batch_size=32,
                               augment=("crop", "flip", "cutout"))
            data = D.load_data(cfg)
            assert data.image_shape == (32, 32, 3) and data.num_classes == 10
            assert (data.num_train, data.num_val) == (240, 60)
            x, y = _first(data.train)
            assert x.shape == (32, 32, 32, 3) and y.shape == (32,)
            assert len(data.mean) == 3 and all(0 < s for s in data.std)
            assert _first(data.val)[0].shape[1:] == (32, 32, 3)
    finally:
        D._raw_arrays.cache_clear()


@pytest.mark.parametrize("augment", [("random_resized_crop", "flip"), ("scale", "flip", "color")])
def test_imagenet2012_through_tfds_mock_data(augment, tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        cfg = D.DataConfig("imagenet2012", source="tfds", batch_size=4, image_size=32,
                           augment=augment, plain_last_epochs=1, data_dir=str(tmp_path))
        data = D.load_data(cfg)
        assert data.image_shape == (32, 32, 3) and data.num_classes == 1000
        x, y = _first(data.train)
        assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
        assert np.isfinite(x).all()
        assert _first(data.epoch_dataset(1, 2))[0].shape == (4, 32, 32, 3)  # plain epoch
        assert _first(data.val)[0].shape == (4, 32, 32, 3)


def test_bad_config_values_name_the_field():
    with pytest.raises(ValueError, match="dataset: received 'svhn'"):
        D.DataConfig("svhn")
    with pytest.raises(ValueError, match="augment: received 'mixup'"):
        D.DataConfig("digits", augment=("mixup",))
    with pytest.raises(ValueError, match="sample_fraction"):
        D.DataConfig("digits", sample_fraction=0.0)
    with pytest.raises(ValueError, match="source"):
        D.DataConfig("cifar10", source="idx")
