"""Held-out, representative and fine-tuning data for export, as numpy arrays.

Export needs three slices of a dataset: the held-out (test) split on which every exported
format is checked against the Keras model, a few hundred training images as the int8
converter's representative dataset, and training images for the short QAT fine-tune.
All are raw uint8 images `[N, H, W, C]` plus int64 labels; preprocessing happens in
`preprocess` (the same formula `(x / 255 - mean) / std` the serving graph runs).

Sources, offline only:
  fashion_mnist  the original IDX files (`eatnas_tf.data.idx`, DESIGN.md §5).
  digits         scikit-learn's 8×8 digits, 0..16 rescaled to 0..255 uint8 `[N, 8, 8, 1]`;
                 a fixed 20% (permutation seeded 0) is the test split, the same cut as the
                 training pipeline's.

This module deliberately does not import `eatnas_tf.data.datasets` (a separate, larger
pipeline): export only needs arrays.

    >>> x, y = load_split("digits", "test")
    >>> x.shape, x.dtype
    ((359, 8, 8, 1), dtype('uint8'))
"""

from __future__ import annotations

import functools
from typing import List, Optional, Sequence, Tuple

import numpy as np

from eatnas_tf.data import idx

DATASETS = ("fashion_mnist", "digits")
SPLITS = ("train", "test")
DIGITS_TEST_FRACTION = 0.2


class DataUnavailableError(ValueError):
    """The dataset is unknown or its files are not on this machine (one-line message)."""


def available(dataset: str) -> bool:
    """True when `load_split(dataset, ...)` can work offline on this machine."""
    if dataset == "fashion_mnist":
        return idx.available()
    if dataset == "digits":
        try:
            import sklearn.datasets  # noqa: F401, PLC0415
        except ImportError:
            return False
        return True
    return False


@functools.lru_cache(maxsize=4)
def _load(dataset: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    if dataset == "fashion_mnist":
        if not idx.available():
            raise DataUnavailableError(
                f"dataset fashion_mnist: IDX files not found in {idx.FASHION_MNIST_DIR} "
                "(apt-get install dataset-fashion-mnist)")
        x, y = idx.load_split(split)
    elif dataset == "digits":
        from sklearn.datasets import load_digits  # noqa: PLC0415

        d = load_digits()
        images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        labels = d.target.astype(np.int64)
        perm = np.random.RandomState(0).permutation(len(labels))
        n_test = int(round(len(labels) * DIGITS_TEST_FRACTION))
        sel = perm[:n_test] if split == "test" else perm[n_test:]
        x, y = images[sel], labels[sel]
    else:  # pragma: no cover - checked in load_split
        raise AssertionError(dataset)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_split(dataset: str, split: str, limit: Optional[int] = None,
               seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Raw images and labels of one split.

    Args:
      dataset: one of `DATASETS`.
      split: "train" or "test".
      limit: keep at most this many examples (None: all).
      seed: with `limit`, draw the subset at random with this seed instead of taking the
        first `limit` (representative and fine-tuning data should not be one class run).

    Returns:
      (uint8 images [N, H, W, C], int64 labels [N]), read-only arrays.

    Raises:
      DataUnavailableError: unknown dataset or split, or files missing.
    """
    if dataset not in DATASETS:
        raise DataUnavailableError(
            f"dataset: received {dataset!r}; allowed values: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataUnavailableError(f"split: received {split!r}; allowed values: {', '.join(SPLITS)}")
    x, y = _load(dataset, split)
    if limit is not None and limit < len(y):
        if seed is None:
            return x[:limit], y[:limit]
        sel = np.sort(np.random.RandomState(seed).choice(len(y), size=limit, replace=False))
        return x[sel], y[sel]
    return x, y


def mean_std(dataset: str) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of the train split in [0, 1] units (the whitening stats)."""
    x, _ = load_split(dataset, "train")
    xf = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
    return [float(v) for v in xf.mean(0)], [float(v) for v in xf.std(0)]


def preprocess(images: np.ndarray, mean: Sequence[float], std: Sequence[float],
               image_size: Optional[int] = None) -> np.ndarray:
    """`(x / 255 - mean) / std` as float32, resized (bilinear) to `image_size` if it differs.

    The same arithmetic as the serving graph (`saved_model.preprocess_graph`), so Keras and
    the exported files see identical inputs.
    """
    x = images.astype(np.float32) / np.float32(255.0)
    if image_size is not None and (x.shape[1], x.shape[2]) != (image_size, image_size):
        import tensorflow as tf  # noqa: PLC0415

        x = tf.image.resize(x, (image_size, image_size)).numpy()
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)
