"""`tfrecord:GLOB`: `tf.Example` records in the TFDS / TF-Slim / TFX ExampleGen convention.

Each record needs `image/encoded` (bytes: JPEG, PNG, BMP or GIF) and `image/class/label`
(int64, 0-based); `image/class/text` (bytes), when present, names the classes. Files are
read in sorted order, records in file order (that is the examples' order); files ending in
`.gz` are read as GZIP (TFX ExampleGen writes those). The number of classes is the largest
label + 1; a label without a text is named by its number.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf

ENCODED = "image/encoded"
LABEL = "image/class/label"
TEXT = "image/class/text"
_NEEDS = f"tf.Example records with {ENCODED} (bytes) and {LABEL} (int64)"


@dataclasses.dataclass
class Records:
    files: List[str]
    compression: str
    ids: List[str]                # "file (relative to the files' common folder)#record index"
    labels: np.ndarray            # int64
    class_names: Tuple[str, ...]

    def raw(self) -> tf.data.Dataset:
        """The encoded images of every record, in order."""
        feats = {ENCODED: tf.io.FixedLenFeature([], tf.string)}
        return tf.data.TFRecordDataset(self.files, compression_type=self.compression).map(
            lambda r: tf.io.parse_single_example(r, feats)[ENCODED])


def _meta(serialized):
    parsed = tf.io.parse_example(serialized, {ENCODED: tf.io.VarLenFeature(tf.string),
                                              LABEL: tf.io.VarLenFeature(tf.int64),
                                              TEXT: tf.io.VarLenFeature(tf.string)})
    n = tf.shape(serialized)[0]

    counts = {k: tf.math.bincount(tf.cast(parsed[k].indices[:, 0], tf.int32), minlength=n,
                                  maxlength=n) for k in (ENCODED, LABEL, TEXT)}
    lab = tf.sparse.to_dense(parsed[LABEL], default_value=-1)
    txt = tf.sparse.to_dense(parsed[TEXT], default_value="")
    lab = tf.pad(lab, [[0, 0], [0, 1]], constant_values=-1)[:, 0]
    txt = tf.pad(txt, [[0, 0], [0, 1]], constant_values="")[:, 0]
    return counts[ENCODED], counts[LABEL], counts[TEXT], lab, txt


def read_records(pattern: str, spec: str) -> Records:
    """Lists and checks the records of `tfrecord:pattern` (no image decoding yet).

    Raises:
      ValueError: no file matches, a file is not a TFRecord file of tf.Examples, a record
        lacks image/encoded or image/class/label, a negative label, one label with two texts.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    files = [f for f in files if not tf.io.gfile.isdir(f)]
    if not files:
        raise ValueError(f"dataset: {spec}: the glob matches no files")
    gz = [f.endswith(".gz") for f in files]
    if any(gz) and not all(gz):
        raise ValueError(f"dataset: {spec}: mixes .gz (GZIP) and plain TFRecord files")
    comp = "GZIP" if all(gz) else ""
    ids, labels, text_of = [], [], {}
    common = os.path.dirname(files[0]) if len(files) == 1 else os.path.commonpath(files)
    for f in files:
        base = os.path.relpath(f, common) if common else f
        k = 0
        try:
            ds = tf.data.TFRecordDataset(f, compression_type=comp).batch(1024).map(_meta)
            for ne, nl, _nt, lab, txt in ds:
                ne, nl, lab, txt = ne.numpy(), nl.numpy(), lab.numpy(), txt.numpy()
                for j in range(len(lab)):
                    if ne[j] != 1 or nl[j] != 1:
                        missing = ENCODED if ne[j] != 1 else LABEL
                        raise ValueError(f"dataset: {spec}: record {base}#{k + j} has no single "
                                         f"{missing}; expected {_NEEDS}")
                    if lab[j] < 0:
                        raise ValueError(f"dataset: {spec}: record {base}#{k + j} has label "
                                         f"{lab[j]}; labels are 0-based class indices")
                    t = txt[j].decode("utf-8", "replace")
                    if t:
                        if text_of.setdefault(int(lab[j]), t) != t:
                            raise ValueError(f"dataset: {spec}: label {lab[j]} is named both "
                                             f"{text_of[int(lab[j])]!r} and {t!r} ({base}#{k + j})")
                    ids.append(f"{base}#{k + j}")
                    labels.append(int(lab[j]))
                k += len(lab)
        except tf.errors.OpError as e:
            msg = (e.message or str(e)).splitlines()[0][:160]
            raise ValueError(f"dataset: {spec}: {base} is not readable as {_NEEDS}: "
                             f"{msg}") from None
    if not ids:
        raise ValueError(f"dataset: {spec}: the matched files hold no records")
    k = max(labels) + 1
    names = tuple(text_of.get(i, str(i)) for i in range(k))
    return Records(files=files, compression=comp, ids=ids, labels=np.asarray(labels, np.int64),
                   class_names=names)
