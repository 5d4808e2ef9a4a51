"""Each augmentation does what the recipe says: shapes, value ranges, areas, seeding."""

import numpy as np
import pytest
import tensorflow as tf

from eatnas_tf.data import augment as aug

SEED = tf.constant([3, 7], tf.int64)


def _images(b=64, h=32, w=32, c=3, seed=0):
    return tf.constant(np.random.RandomState(seed).rand(b, h, w, c).astype(np.float32))


def test_whiten_gives_zero_mean_unit_std_per_channel():
    x = _images(c=3)
    mean = tf.reduce_mean(x, axis=[0, 1, 2]).numpy()
    std = tf.math.reduce_std(x, axis=[0, 1, 2]).numpy()
    y = aug.whiten(x, mean, std).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_pad_crop_is_a_shifted_window_of_the_padded_image():
    x = _images(b=16, h=32, w=32, c=1)
    y = aug.pad_crop(x, SEED, pad=4).numpy()
    assert y.shape == (16, 32, 32, 1)
    padded = np.pad(x.numpy(), [(0, 0), (4, 4), (4, 4), (0, 0)])
    offsets = set()
    for i in range(16):
        hits = [(oy, ox) for oy in range(9) for ox in range(9)
                if np.array_equal(padded[i, oy:oy + 32, ox:ox + 32], y[i])]
        assert hits, f"image {i} is not a window of its padded original"
        offsets.add(hits[0])
    assert len(offsets) > 1  # offsets are drawn per image


def test_flip_mirrors_about_half_of_the_images():
    x = _images(b=200, h=8, w=8, c=1)
    y = aug.flip(x, SEED).numpy()
    flipped = 0
    for a, b in zip(x.numpy(), y):
        if np.array_equal(a[:, ::-1], b):
            flipped += 1
        else:
            assert np.array_equal(a, b)
    assert 60 < flipped < 140


@pytest.mark.parametrize("length", [16, 8])
def test_cutout_zeroes_one_square_of_the_given_length(length):
    x = tf.ones([256, 32, 32, 3])
    y = aug.cutout(x, SEED, length).numpy()
    zeros = (y[..., 0] == 0).sum(axis=(1, 2))
    assert zeros.max() == length * length  # centre far from the borders: full square
    assert zeros.min() >= (length // 2) ** 2  # centre in a corner: a quarter of it
    assert (y == 0).all(axis=-1).sum() == (y == 0).any(axis=-1).sum()  # all channels at once
    for img in y[:20, ..., 0]:  # the zeros form one axis-aligned rectangle
        rows, cols = np.nonzero(img == 0)
        assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == len(rows)


def test_random_resized_crop_area_in_scale_and_output_size():
    boxes, area = aug.random_resized_crop_boxes(1000, 32, 48, SEED)
    area = area.numpy()
    assert area.min() >= 0.2 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert area.min() < 0.3 and area.max() > 0.8
    b = boxes.numpy()
    assert (b >= -1e-6).all() and (b <= 1 + 1e-6).all()
    y = aug.random_resized_crop(_images(b=8, h=32, w=48), SEED, size=24)
    assert y.shape == (8, 24, 24, 3)
    assert float(tf.reduce_min(y)) >= 0.0 and float(tf.reduce_max(y)) <= 1.0


def test_scale_augmentation_crops_224_of_a_shorter_side_in_256_480():
    boxes = aug.scale_crop_boxes(500, 300, 400, SEED, size=224).numpy()
    side_frac = (boxes[:, 2] - boxes[:, 0]) * 299 / 300  # ≈ crop side / shorter side
    assert side_frac.min() >= 224 / 480 - 0.01 and side_frac.max() <= 224 / 256 + 0.01
    assert side_frac.min() < 0.5 and side_frac.max() > 0.8
    y = aug.scale_crop(_images(b=2, h=60, w=80), SEED, size=32)
    assert y.shape == (2, 32, 32, 3)


def test_color_stays_in_range_changes_images_and_handles_grey():
    for c in (3, 1):
        x = _images(b=16, h=8, w=8, c=c)
        y = aug.color(x, SEED).numpy()
        assert y.shape == x.shape
        assert y.min() >= 0.0 and y.max() <= 1.0
        assert not np.allclose(x.numpy(), y)


def test_apply_batch_is_deterministic_under_a_seed():
    x = tf.constant(np.random.RandomState(1).randint(0, 256, (16, 32, 32, 3)), tf.uint8)
    kw = dict(size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    names = ("crop", "flip", "color", "cutout")
    a = aug.apply_batch(x, SEED, names, **kw).numpy()
    b = aug.apply_batch(x, SEED, names, **kw).numpy()
    c = aug.apply_batch(x, SEED + 1, names, **kw).numpy()
    assert a.shape == (16, 32, 32, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    plain = aug.apply_batch(x, SEED, (), **kw).numpy()
    np.testing.assert_allclose(plain, (x.numpy() / 255.0 - 0.5) / 0.25, atol=1e-5)


def test_plain_keeps_only_crop_and_flip():
    assert aug.plain(("crop", "flip", "cutout")) == ("crop", "flip")
    assert aug.plain(("scale", "flip", "color")) == ("resize_crop", "flip")
    assert aug.plain(("random_resized_crop", "flip")) == ("resize_crop", "flip")
    with pytest.raises(ValueError, match="augment: received 'mixup'"):
        aug.validate(["mixup"])
