"""The user's own data (`folder:`, `tfrecord:`, `tfds:`): listing, checking and scanning once,
then in-memory or streamed pipelines behind the same `DataBundle` as the built-in datasets.

Size and channels: `image_size` when set, else `images.default_size` over a sample (folder:
up to 256 files spread evenly; tfrecord: the first 256 records; tfds: the image feature's
shape when fixed, else its first 256 images); 1 channel when every sampled image is grey.

Memory: a source whose images (at that size) fit in `memory_cap_mb` is decoded once into
uint8 arrays; a larger one is streamed (decode + resize in tf.data), never held whole.
Streamed folders read files by index, so their batches hold the same images in the same
order as in memory; streamed TFRecords / tfds read in file order through a shuffle buffer
(the same images per epoch, another order). Whitening statistics: in memory, the float64
per-channel statistics of the train+val images (as for the built-in datasets); streamed,
exact integer sums from the scan (equal up to float rounding).

Bad files (undecodable, empty, not an image) are skipped, counted and named in one
warning on stderr and in `DataBundle.bad_files`. Every check runs before `split_file` is
written.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from eatnas_tf.data import images as im
from eatnas_tf.data import splits as sp
from eatnas_tf.data.sources import parse_dataset

BAD_SHOWN = 5


@dataclasses.dataclass
class Source:
    """A scanned user source (good examples only, in the examples' order)."""

    spec: str
    kind: str
    class_names: Tuple[str, ...]
    ids: List[str]
    labels: np.ndarray
    given: Optional[List[str]]
    size: int
    channels: int
    streamed: bool
    images: Optional[np.ndarray]     # uint8 [N, size, size, C] in memory, else None
    sums: np.ndarray
    sq_sums: np.ndarray
    bad: List[str]
    paths: Optional[List[str]]       # folder: one file per example (random access)
    raw_all: object                  # () -> tf.data.Dataset over every listed example
    raw_pos: np.ndarray              # position of each good example in raw_all

    @property
    def bad_summary(self) -> Dict:
        return {"count": len(self.bad), "first": list(self.bad[:BAD_SHOWN])}

    def raw_dataset(self, positions: np.ndarray) -> tf.data.Dataset:
        """Raw images (encoded or decoded) of good examples `positions`, in that order for
        folders, in the source's order for records (see the module docstring)."""
        if self.paths is not None:
            paths = tf.constant([self.paths[i] for i in positions], tf.string)
            return tf.data.Dataset.from_tensor_slices(paths).map(tf.io.read_file)
        mask = np.zeros(int(self.raw_pos.max()) + 1 if len(self.raw_pos) else 1, bool)
        mask[self.raw_pos[positions]] = True
        m = tf.constant(mask)
        ds = tf.data.Dataset.zip((tf.data.Dataset.range(2 ** 62), self.raw_all()))
        return ds.filter(lambda i, r: tf.gather(m, i)).map(lambda i, r: r)

    def labels_in_stream_order(self, positions: np.ndarray) -> np.ndarray:
        return self.labels[positions] if self.paths is not None else self.labels[np.sort(positions)]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _warn(spec: str, bad: List[str]) -> None:
    if bad:
        shown = ", ".join(bad[:BAD_SHOWN]) + (", ..." if len(bad) > BAD_SHOWN else "")
        print(f"warning: dataset {spec}: skipped {len(bad)} bad file(s): {shown}", file=sys.stderr,
              flush=True)


@functools.lru_cache(maxsize=4)
def load_source(spec: str, data_dir: Optional[str], image_size: Optional[int],
                memory_cap_mb: float) -> Source:
    """Lists, checks and scans a user source once (cached per arguments).

    Raises:
      ValueError: one line naming the problem (see the folder / tfrecord / tfds modules).
    """
    ds_spec = parse_dataset(spec)
    paths = None
    if ds_spec.kind == "folder":
        from eatnas_tf.data import folder

        lst = folder.list_folder(ds_spec.location, spec)
        names, ids, given, bad = lst.class_names, lst.ids, lst.given, list(lst.bad)
        labels = np.asarray(lst.labels, np.int64)
        paths_all = lst.paths
        paths = paths_all
        if not ids:
            raise ValueError(f"dataset: {spec}: no image files found ({len(bad)} bad file(s))")

        def raw_all():
            return tf.data.Dataset.from_tensor_slices(tf.constant(paths_all)).map(tf.io.read_file)

        def sample():
            return [im.pil_geometry(_read(paths_all[i])) for i in im.sample_positions(len(ids))]
    elif ds_spec.kind == "tfrecord":
        from eatnas_tf.data import tfrecord

        rec = tfrecord.read_records(ds_spec.location, spec)
        names, ids, labels, given, bad = rec.class_names, rec.ids, rec.labels, None, []
        raw_all = rec.raw

        def sample():
            return [im.pil_geometry(r.numpy()) for r in rec.raw().take(im.SIZE_SAMPLE)]
    else:
        from eatnas_tf.data import tfds_source

        src = tfds_source.open_tfds(ds_spec.tfds_name, data_dir, spec)
        names, ids, labels, given, bad = src.class_names, src.ids, src.labels, src.given, []
        raw_all = src.raw

        def sample():
            shape = src.image_shape
            if len(shape) == 3 and shape[0] and shape[1] and shape[2]:
                return [(min(shape[0], shape[1]), shape[2] == 1)]
            out = []
            for x in src.raw().take(im.SIZE_SAMPLE):
                a = x.numpy()
                out.append((min(a.shape[0], a.shape[1]), im.is_grey(a)))
            return out

    size, channels = im.geometry_rule(sample())
    size = image_size or size
    streamed = len(ids) * size * size * channels > memory_cap_mb * 2 ** 20
    res = im.scan(raw_all(), size, channels, keep=not streamed)
    good = res.good
    dropped = np.setdiff1d(np.arange(len(ids)), good)
    bad += [f"{ids[i]} (cannot be decoded as an image)" for i in dropped]
    ids = [ids[i] for i in good]
    labels = np.asarray(labels)[good]
    given = [given[i] for i in good] if given is not None else None
    if paths is not None:
        paths = [paths[i] for i in good]
    counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names), int)
    if ds_spec.kind == "folder":
        pool = labels if given is None else labels[np.asarray(given) == "train"]
        pc = np.bincount(pool, minlength=len(names))
        for c, n in enumerate(pc):
            if n == 0:
                raise ValueError(f"dataset: {spec}: class {names[c]!r} has no readable images "
                                 f"({len(bad)} bad file(s) in the folder)")
    if int((counts > 0).sum()) < 2:
        raise ValueError(f"dataset: {spec}: the readable examples have {int((counts > 0).sum())} "
                         "class(es); needs at least 2")
    _warn(spec, bad)
    if res.images is not None:
        res.images.setflags(write=False)
    return Source(spec=spec, kind=ds_spec.kind, class_names=tuple(names), ids=ids, labels=labels,
                  given=given, size=size, channels=channels, streamed=streamed, images=res.images,
                  sums=res.sums, sq_sums=res.sq_sums, bad=bad, paths=paths, raw_all=raw_all,
                  raw_pos=good)


def source_of(cfg) -> Source:
    return load_source(cfg.dataset, cfg.data_dir, cfg.image_size, float(cfg.memory_cap_mb))


@dataclasses.dataclass
class Parts:
    train: np.ndarray
    val: Optional[np.ndarray]
    test: Optional[np.ndarray]
    stats: np.ndarray      # positions whose images give the whitening statistics


def parts_of(cfg, src: Source) -> Parts:
    """Positions of the examples `cfg` uses (see splits.py and the DataConfig docs)."""
    cut = sp.resolve_cut(src.ids, src.labels, src.given, src.class_names, split_file=cfg.split_file,
                         seed=cfg.split_seed, val_fraction=cfg.val_fraction,
                         test_fraction=cfg.test_fraction, spec=cfg.dataset)
    train, val, test = cut.parts["train"], cut.parts["val"], cut.parts["test"]
    stats = np.sort(np.concatenate([train, val]))
    if cfg.split == "final" and cfg.val_fraction == 0.0:
        train, val = np.concatenate([train, val]), val[:0]
    keep = max(1, int(math.floor(len(train) * cfg.sample_fraction)))
    if cfg.max_train_examples is not None:
        keep = min(keep, cfg.max_train_examples)
    return Parts(train=np.sort(train[:keep]), val=np.sort(val) if len(val) else None,
                 test=np.sort(test) if cfg.split == "final" and len(test) else None, stats=stats)


def arrays_of(src: Source, positions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images and int64 labels of good examples `positions` (decoded when streamed)."""
    if src.images is not None:
        return src.images[positions], src.labels[positions]
    pos = positions if src.paths is not None else np.sort(positions)
    ds = src.raw_dataset(pos).map(lambda r: im.prepare(r, src.size, src.channels),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    xs = [b.numpy() for b in ds.batch(512)]
    x = np.concatenate(xs) if xs else np.zeros((0, src.size, src.size, src.channels), np.uint8)
    return x, src.labels[pos]


def stream_pipelines(cfg, src: Source, parts: Parts, epoch_seed, aug):
    """(bundle kwargs, train factory) reading the images from the source as they are used."""
    size, c, b = src.size, src.channels, cfg.batch_size
    mean, std = im.exact_stats(src.sums[parts.stats], src.sq_sums[parts.stats], size * size)
    n = len(parts.train)
    drop = n >= b
    prep = functools.partial(im.prepare, size=size, channels=c)

    def make_train(epoch: int, augment, shuffle: bool):
        if src.paths is not None:  # random access: the in-memory index order
            order = tf.data.Dataset.range(n)
            if shuffle:
                order = order.shuffle(n, seed=epoch_seed(cfg.seed, epoch, 1),
                                      reshuffle_each_iteration=False)
            paths = tf.constant([src.paths[i] for i in parts.train])
            labels = tf.constant(src.labels[parts.train])
            ds = order.map(lambda i: (prep(tf.io.read_file(tf.gather(paths, i))),
                                      tf.gather(labels, i)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            pos = np.sort(parts.train)
            ds = tf.data.Dataset.zip((src.raw_dataset(pos).map(prep),
                                      tf.data.Dataset.from_tensor_slices(src.labels[pos])))
            if shuffle:
                ds = ds.shuffle(min(n, cfg.shuffle_buffer), seed=epoch_seed(cfg.seed, epoch, 1),
                                reshuffle_each_iteration=False)
        ds = ds.batch(b, drop_remainder=drop)
        return aug.augment_batches(ds, epoch_seed(cfg.seed, epoch, 2), augment, size=size,
                                   mean=mean, std=std, cutout_length=cfg.cutout_length)

    def make_eval(pos):
        if pos is None:
            return None
        x = src.raw_dataset(pos).map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        y = tf.data.Dataset.from_tensor_slices(src.labels_in_stream_order(pos))
        ds = tf.data.Dataset.zip((x, y))
        ds = ds.batch(b).map(lambda x, y: (aug.eval_batch(x, mean=mean, std=std), y),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    kwargs = dict(val=make_eval(parts.val), test=make_eval(parts.test),
                  num_classes=len(src.class_names), image_shape=(size, size, c), num_train=n,
                  num_val=0 if parts.val is None else len(parts.val),
                  num_test=0 if parts.test is None else len(parts.test), mean=mean, std=std,
                  steps_per_epoch=max(1, n // b) if drop else 1)
    return kwargs, make_train
