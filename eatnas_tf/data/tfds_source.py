"""`tfds:NAME[/CONFIG][:VERSION]`: a TFDS image-classification dataset already prepared in
`data_dir` (nothing is downloaded: `download=False`).

The image and label features are the dataset's `supervised_keys` (else `image` / `label`);
class names are `info.features[label].names`. Splits: `train` is the pool; `test` (else
`validation`) is the given test split when the dataset has one; without either, splits.py
cuts train/val/test from `train`. Examples keep tfds's record order (`shuffle_files=False`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class TfdsSource:
    name: str
    data_dir: Optional[str]
    image_key: str
    label_key: str
    class_names: Tuple[str, ...]
    splits: Tuple[str, ...]            # ("train",) or ("train", "test"/"validation")
    image_shape: Tuple                 # the feature's shape (None for variable sides)
    labels: np.ndarray                 # int64, over splits in order
    given: Optional[list]              # "train" / "test" per example, None with one split
    ids: list                          # "split:index"

    def raw(self) -> tf.data.Dataset:
        """The images of every example, in order (train, then the test split)."""
        ds = None
        for s in self.splits:
            d = _load(self.name, s, self.data_dir).map(lambda ex: ex[self.image_key])
            ds = d if ds is None else ds.concatenate(d)
        return ds


def _load(name: str, split: str, data_dir: Optional[str]):
    import tensorflow_datasets as tfds

    return tfds.load(name, split=split, data_dir=data_dir, download=False, shuffle_files=False)


def open_tfds(name: str, data_dir: Optional[str], spec: str) -> TfdsSource:
    """Checks the dataset and reads its labels (images are read later by the scan).

    Raises:
      ValueError: unknown name, not prepared in data_dir, not an image-classification dataset.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - DatasetNotFoundError, bad config/version
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"dataset: {spec}: {first}") from None
    info = builder.info
    keys = info.supervised_keys or ("image", "label")
    image_key, label_key = (keys[0], keys[1]) if len(keys) >= 2 else ("image", "label")
    feats = info.features
    if (not hasattr(feats, "keys") or image_key not in feats or label_key not in feats
            or not isinstance(feats[image_key], tfds.features.Image)
            or not isinstance(feats[label_key], tfds.features.ClassLabel)):
        raise ValueError(f"dataset: {spec}: not an image-classification dataset (needs an "
                         "Image feature and a ClassLabel feature)")
    try:
        train = _load(name, "train", data_dir)
    except AssertionError:
        raise ValueError(f"dataset: {spec}: not prepared in {builder.data_dir} (tfds looked "
                         "there; nothing is downloaded: prepare it with `tfds build` or set "
                         "--data_dir)") from None
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"dataset: {spec}: cannot read split 'train' from {builder.data_dir}: "
                         f"{first}") from None
    splits = ["train"]
    for cand in ("test", "validation"):
        if info.splits and cand not in info.splits:
            continue
        try:
            _load(name, cand, data_dir)
        except Exception:  # noqa: BLE001 - the split does not exist
            continue
        splits.append(cand)
        break
    labels, given, ids = [], [], []
    for s in splits:
        d = train if s == "train" else _load(name, s, data_dir)
        n0 = len(labels)
        for batch in d.map(lambda ex: ex[label_key]).batch(4096):
            labels.extend(int(v) for v in batch.numpy())
        given.extend(["train" if s == "train" else "test"] * (len(labels) - n0))
        ids.extend(f"{s}:{i}" for i in range(len(labels) - n0))
    names = tuple(str(n) for n in feats[label_key].names)
    return TfdsSource(name=name, data_dir=data_dir, image_key=image_key, label_key=label_key,
                      class_names=names, splits=tuple(splits),
                      image_shape=tuple(feats[image_key].shape),
                      labels=np.asarray(labels, np.int64), given=given if len(splits) > 1 else None,
                      ids=ids)
