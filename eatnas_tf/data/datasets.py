"""Datasets and tf.data pipelines for search and retraining (paper §4.1, §4.2; EcoNAS).

One entry point, `load_data(DataConfig) -> DataBundle`, for every dataset the project
uses:

  fashion_mnist  our IDX reader on /usr/share/datasets/fashion-mnist (offline; tfds's own
                 builder rejects Debian's recompressed .gz files, docs/design.md §5), or tfds
  mnist, cifar10 tfds (`data_dir` as tfds has it)
  imagenet2012   tfds with a manual download dir (`manual_dir`, default
                 `<data_dir>/downloads/manual`, as tfds does), streamed, never in memory
  digits         scikit-learn's 8×8 digits, 0..16 rescaled to 0..255; a fixed 20% of it
                 (seed 0) is held out as the test split

Splits. `split="search"`: the dataset's train split is cut once (seeded by `split_seed`)
into train and validation (80/20, paper §4.1); candidates are scored on validation, the
test split is never read. `split="final"`: train on the train split (minus a validation
part when `val_fraction > 0`), report test accuracy on the test split. `sample_fraction`
keeps that fraction of the training part (EcoNAS `s`); `image_size` resizes every image
(EcoNAS `r`). Whitening statistics (`mean`, `std`, per channel, [0, 1] units) are computed
on the whole train split, so every proxy setting of one dataset shares them; the model
input is `(x / 255 - mean) / std`. ImageNet uses the usual ImageNet constants.

Pipelines. In-memory datasets shuffle *indices* with a per-epoch seed, gather a batch and
augment it batch-wise (`augment.apply_batch`), with seeds drawn from a seeded
`Dataset.random`: the same `DataConfig.seed` and epoch give the same batches. The train
dataset is not repeated (one pass = one epoch) and drops the last partial batch.

    >>> data = load_data(DataConfig("fashion_mnist", augment=("crop", "flip")))
    >>> for epoch in range(epochs):
    ...     model.fit(data.epoch_dataset(epoch, epochs), validation_data=data.val)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from eatnas_tf.data import augment as aug
from eatnas_tf.data import idx
from eatnas_tf.data.sources import BUILTIN, parse_dataset

DATASETS = BUILTIN  # the built-in names; `--dataset` also takes the user forms of `FORMS`
SOURCES = ("auto", "idx", "tfds", "sklearn")
SPLITS = ("search", "final")
STREAMED = ("imagenet2012",)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_NATIVE_SIZE = {"cifar10": 32, "imagenet2012": 224, "fashion_mnist": 28, "mnist": 28, "digits": 8}
_TEST_SPLIT = {"imagenet2012": "validation"}  # ImageNet's test labels are not public
DIGITS_TEST_FRACTION = 0.2
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
_CLASS_NAMES = {"fashion_mnist": FASHION_MNIST_CLASSES, "digits": tuple(str(i) for i in range(10)),
                "mnist": tuple(str(i) for i in range(10))}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What data a run trains on and how it is prepared.

    Attributes:
      dataset: one of `DATASETS`, or the user's data: `folder:DIR`, `tfrecord:GLOB`,
        `tfds:NAME[/CONFIG][:VERSION]` (sources.py; `FORMS` lists them).
      data_dir: tfds data dir, or the IDX directory for `source="idx"` (None: defaults).
      source: "auto" (IDX reader for fashion_mnist when its files exist, scikit-learn for
        digits, tfds otherwise), "idx", "tfds" or "sklearn".
      split: "search" (train/val cut of the train split) or "final" (train + test).
      val_fraction: validation share of the train split (0.2 = the paper's 80/20).
      sample_fraction: share of the training part kept (EcoNAS `s`).
      image_size: resize to this side (EcoNAS `r`); None keeps the dataset's size.
      batch_size: global batch size.
      augment: names from `augment.AUGMENTATIONS`, applied to training batches only.
      plain_last_epochs: the last N epochs use crop + flip only (paper §4.2: 20).
      cache: cache the preprocessed validation / test batches in memory.
      seed: shuffling and augmentation seed.
      max_train_examples: cap on training examples after `sample_fraction` (tests, demos).
      split_seed: seed of the train/val cut; fixed so every candidate sees the same split.
      cutout_length: side of the cutout square (paper §4.1: 16).
      manual_dir: ImageNet's manual download dir (default `<data_dir>/downloads/manual`).
      shuffle_buffer: shuffle buffer of streamed (tfds ImageNet, large TFRecord / tfds
        user sources) training data.
      test_fraction: user sources without a test split: share of each class cut off as
        test (splits.py; val is then `val_fraction` of the rest).
      split_file: user sources: JSON file holding the train/val/test cut; made on the first
        load, reused afterwards (the search uses RUN_DIR/data_split.json). None: the cut is
        made from the seed on every load and not stored.
      crop_then_resize: with `image_size` below the dataset's size, keep in-memory
        training images at full size and resize each batch after its pad-and-crop (EcoNAS
        A5.2: "The images are resized to reduced resolution after padding and random
        cropping"); False resizes first and crops at `image_size`.
      memory_cap_mb: user sources whose images fit in this many MiB are held in memory;
        larger ones are streamed from their files.
    """

    dataset: str
    data_dir: Optional[str] = None
    source: str = "auto"
    split: str = "search"
    val_fraction: float = 0.2
    sample_fraction: float = 1.0
    image_size: Optional[int] = None
    batch_size: int = 128
    augment: Tuple[str, ...] = ()
    plain_last_epochs: int = 0
    cache: bool = True
    seed: int = 0
    max_train_examples: Optional[int] = None
    split_seed: int = 0
    cutout_length: int = 16
    manual_dir: Optional[str] = None
    shuffle_buffer: int = 10000
    test_fraction: float = 0.2
    split_file: Optional[str] = None
    memory_cap_mb: float = 1024.0
    crop_then_resize: bool = False

    def __post_init__(self):
        object.__setattr__(self, "augment", tuple(self.augment))
        spec = parse_dataset(self.dataset)
        _check_in("source", self.source, SOURCES)
        if spec.user and self.source != "auto":
            raise ValueError(f"source: received {self.source!r} for dataset {self.dataset!r}; "
                             "allowed values for folder:/tfrecord:/tfds: datasets: auto")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction: received {self.test_fraction}; "
                             f"allowed values: [0, 1)")
        if not self.memory_cap_mb >= 0:
            raise ValueError(f"memory_cap_mb: received {self.memory_cap_mb}; allowed values: >= 0")
        _check_in("split", self.split, SPLITS)
        aug.validate(self.augment)
        if self.source == "idx" and self.dataset not in ("fashion_mnist", "mnist"):
            raise ValueError(f"source: received 'idx' for dataset {self.dataset!r}; "
                             "allowed values for idx: fashion_mnist, mnist")
        if self.source == "sklearn" and self.dataset != "digits":
            raise ValueError(f"source: received 'sklearn' for dataset {self.dataset!r}; "
                             "allowed values for sklearn: digits")
        if self.dataset == "digits" and self.source not in ("auto", "sklearn"):
            raise ValueError(f"source: received {self.source!r} for digits; "
                             f"allowed values: auto, sklearn")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: received {self.val_fraction}; allowed values: [0, 1)")
        if self.split == "search" and self.val_fraction <= 0.0:
            raise ValueError("val_fraction: received 0 with split='search'; allowed values: (0, 1)")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction: received {self.sample_fraction}; "
                             f"allowed values: (0, 1]")
        for f in ("batch_size", "cutout_length", "shuffle_buffer"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}: received {getattr(self, f)}; allowed values: >= 1")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size: received {self.image_size}; "
                             f"allowed values: >= 1 or None")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples: received {self.max_train_examples}; "
                             f"allowed values: >= 1")
        if self.plain_last_epochs < 0:
            raise ValueError(f"plain_last_epochs: received {self.plain_last_epochs}; "
                             f"allowed values: >= 0")

    @property
    def user(self) -> bool:
        """True for the user's own data (folder:, tfrecord:, tfds:)."""
        return parse_dataset(self.dataset).user

    @property
    def resolved_source(self) -> str:
        """The source "auto" stands for on this machine."""
        if self.user:
            return parse_dataset(self.dataset).kind
        if self.source != "auto":
            return self.source
        if self.dataset == "digits":
            return "sklearn"
        idx_dir = self.data_dir or idx.FASHION_MNIST_DIR
        if self.dataset == "fashion_mnist" and idx.available(idx_dir):
            return "idx"
        return "tfds"

    @property
    def size(self) -> int:
        """`image_size`, else the dataset's size (user data: the rule of user.py, which scans
        the source once)."""
        if self.image_size:
            return self.image_size
        if self.user:
            from eatnas_tf.data import user

            return user.source_of(self).size
        return _NATIVE_SIZE[self.dataset]


def _check_in(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: received {value!r}; allowed values: {', '.join(allowed)}")


@dataclasses.dataclass
class DataBundle:
    """Datasets of one `DataConfig` plus what the model and export need to know.

    `train` / `val` / `test` yield `(float32 images [B, H, W, C] whitened, int64 labels [B])`.
    `train` is epoch 0 with the full augmentation; use `epoch_dataset` for later epochs
    (new shuffle and augmentation seeds, plain crop + flip in the last N) and
    `train_dataset(augment=())` for un-augmented batches (BN recalibration).
    """

    config: DataConfig
    train: tf.data.Dataset
    val: Optional[tf.data.Dataset]
    test: Optional[tf.data.Dataset]
    num_classes: int
    image_shape: Tuple[int, int, int]
    num_train: int
    num_val: int
    num_test: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    steps_per_epoch: int
    _make_train: Callable[..., tf.data.Dataset] = dataclasses.field(repr=False)
    class_names: Tuple[str, ...] = ()
    bad_files: dict = dataclasses.field(default_factory=lambda: {"count": 0, "first": []})
    streamed: bool = False

    def train_dataset(self, epoch: int = 0, *, augment: Optional[Tuple[str, ...]] = None,
                      shuffle: bool = True) -> tf.data.Dataset:
        """Training batches of `epoch` (seeded by config.seed and epoch) with `augment`
        (None: the config's augmentation)."""
        augment = self.config.augment if augment is None else aug.validate(
            [a for a in augment if a != "resize_crop"]) + tuple(
                a for a in augment if a == "resize_crop")
        return self._make_train(epoch, augment, shuffle)

    def epoch_dataset(self, epoch: int, total_epochs: int) -> tf.data.Dataset:
        """Training batches of `epoch`; crop + flip only in the last `plain_last_epochs`."""
        if self.config.plain_last_epochs and epoch >= total_epochs - self.config.plain_last_epochs:
            return self.train_dataset(epoch, augment=aug.plain(self.config.augment))
        return self.train_dataset(epoch)

    @property
    def train_plain(self) -> tf.data.Dataset:
        """Crop + flip only (the recipe's last epochs)."""
        return self.train_dataset(augment=aug.plain(self.config.augment))

    @property
    def train_noaug(self) -> tf.data.Dataset:
        """Shuffled, un-augmented training batches (BN recalibration)."""
        return self.train_dataset(augment=())

    def describe(self) -> dict:
        return {"dataset": self.config.dataset, "source": self.config.resolved_source,
                "split": self.config.split, "num_train": self.num_train, "num_val": self.num_val,
                "num_test": self.num_test, "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "mean": list(self.mean), "std": list(self.std),
                "batch_size": self.config.batch_size, "steps_per_epoch": self.steps_per_epoch,
                "augment": list(self.config.augment), "class_names": list(self.class_names),
                "bad_files": dict(self.bad_files), "streamed": self.streamed}


# -- raw arrays -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Arrays:
    x_train: np.ndarray  # uint8 [N, H, W, C]
    y_train: np.ndarray  # int64 [N]
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    num_classes: int
    class_names: Tuple[str, ...] = ()


def _readonly(*arrays):
    for a in arrays:
        if a is not None:
            a.setflags(write=False)


@functools.lru_cache(maxsize=2)
def _raw_arrays(dataset: str, source: str, data_dir: Optional[str]) -> _Arrays:
    """The dataset's own train/test arrays (cached: a search loads them once)."""
    if source == "sklearn":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        y = d.target.astype(np.int64)
        perm = np.random.RandomState(0).permutation(len(y))
        n_test = int(round(len(y) * DIGITS_TEST_FRACTION))
        te, tr = perm[:n_test], perm[n_test:]
        out = _Arrays(x[tr], y[tr], x[te], y[te], 10, _CLASS_NAMES["digits"])
    elif source == "idx":
        root = data_dir or idx.FASHION_MNIST_DIR
        xtr, ytr = idx.load_split("train", root)
        xte, yte = idx.load_split("test", root)
        out = _Arrays(xtr, ytr, xte, yte, 10, _CLASS_NAMES.get(dataset, ()))
    else:
        import tensorflow_datasets as tfds

        (tr, te), info = tfds.load(dataset, split=["train", "test"], as_supervised=True,
                                   with_info=True, data_dir=data_dir)
        xtr, ytr = _to_numpy(tr)
        xte, yte = _to_numpy(te)
        out = _Arrays(xtr, ytr, xte, yte, int(info.features["label"].num_classes),
                      tuple(str(n) for n in info.features["label"].names))
    _readonly(out.x_train, out.y_train, out.x_test, out.y_test)
    return out


def _to_numpy(ds: tf.data.Dataset) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) of a supervised tfds split, read in large batches."""
    xs, ys = [], []
    for x, y in ds.batch(4096):
        xs.append(np.asarray(x, np.uint8))
        ys.append(np.asarray(y, np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 images resized to size×size (area when shrinking, bilinear when growing)."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    method = "area" if size < x.shape[1] else "bilinear"
    out = []
    for i in range(0, len(x), 8192):
        r = tf.image.resize(tf.cast(x[i:i + 8192], tf.float32), [size, size], method=method)
        out.append(np.clip(np.round(r.numpy()), 0, 255).astype(np.uint8))
    return np.concatenate(out) if out else x[:, :size, :size]


def _split_indices(n: int, cfg: DataConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of the train split under `cfg` (val never subsampled)."""
    perm = np.random.RandomState(cfg.split_seed).permutation(n)
    n_val = int(round(n * cfg.val_fraction))
    val, train = perm[:n_val], perm[n_val:]
    keep = max(1, int(math.floor(len(train) * cfg.sample_fraction)))
    if cfg.max_train_examples is not None:
        keep = min(keep, cfg.max_train_examples)
    return np.sort(train[:keep]), np.sort(val)


def _channel_stats(x: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units (float64 accumulation, chunked)."""
    c = x.shape[-1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    for i in range(0, len(x), 10000):
        chunk = x[i:i + 10000].reshape(-1, c).astype(np.float64) / 255.0
        s += chunk.sum(0)
        s2 += (chunk ** 2).sum(0)
    n = x.size // c
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _epoch_seed(seed: int, epoch: int, salt: int) -> int:
    return int((seed * 1_000_003 + epoch * 7919 + salt) % (2 ** 31 - 1))


def _array_pipelines(cfg: DataConfig):
    """(bundle kwargs, train factory) for datasets held in memory."""
    raw = _raw_arrays(cfg.dataset, cfg.resolved_source, cfg.data_dir)
    mean, std = _channel_stats(raw.x_train)
    tr_idx, val_idx = _split_indices(len(raw.y_train), cfg)
    size = cfg.size
    x_tr = (raw.x_train[tr_idx] if cfg.crop_then_resize and size < raw.x_train.shape[1]
            else _resize(raw.x_train[tr_idx], size))
    y_tr = raw.y_train[tr_idx]
    x_val = _resize(raw.x_train[val_idx], size) if len(val_idx) else None
    y_val = raw.y_train[val_idx] if len(val_idx) else None
    has_test = cfg.split == "final" and raw.x_test is not None
    x_te = _resize(raw.x_test, size) if has_test else None
    y_te = raw.y_test if has_test else None
    kwargs, make_train = _memory_pipelines(cfg, size, mean, std, raw.num_classes,
                                           (x_tr, y_tr), (x_val, y_val), (x_te, y_te))
    kwargs["class_names"] = raw.class_names
    return kwargs, make_train


def _memory_pipelines(cfg: DataConfig, size: int, mean, std, num_classes: int, train, val, test):
    """(bundle kwargs, train factory) of uint8 arrays held in memory; `train`, `val`, `test`
    are (images, labels) pairs (None, None when absent)."""
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = train, val, test
    b = cfg.batch_size
    n = len(y_tr)
    drop = n >= b
    xt, yt = tf.constant(x_tr), tf.constant(y_tr)

    def make_train(epoch: int, augment, shuffle: bool):
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=_epoch_seed(cfg.seed, epoch, 1), reshuffle_each_iteration=False)
        ds = ds.batch(b, drop_remainder=drop)
        seeds = tf.data.Dataset.random(seed=_epoch_seed(cfg.seed, epoch, 2)).batch(2)

        def fn(i, s):
            return (aug.apply_batch(tf.gather(xt, i), s, augment, size=size, mean=mean, std=std,
                                    cutout_length=cfg.cutout_length), tf.gather(yt, i))

        ds = tf.data.Dataset.zip((ds, seeds)).map(fn, num_parallel_calls=tf.data.AUTOTUNE,
                                                  deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def make_eval(x, y):
        if x is None:
            return None
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(b).map(
            lambda xi, yi: (aug.eval_batch(xi, mean=mean, std=std), yi),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if cfg.cache:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE)

    kwargs = dict(val=make_eval(x_val, y_val), test=make_eval(x_te, y_te),
                  num_classes=num_classes, image_shape=(size, size, int(x_tr.shape[-1])),
                  num_train=n, num_val=0 if y_val is None else len(y_val),
                  num_test=0 if y_te is None else len(y_te), mean=mean, std=std,
                  steps_per_epoch=max(1, n // b) if drop else 1)
    return kwargs, make_train


# -- streamed tfds (ImageNet) -----------------------------------------------------------------
def _tfds_builder(cfg: DataConfig):
    import tensorflow_datasets as tfds

    builder = tfds.builder(cfg.dataset, data_dir=cfg.data_dir)
    root = (cfg.data_dir or os.environ.get("TFDS_DATA_DIR")
            or os.path.expanduser("~/tensorflow_datasets"))
    manual = cfg.manual_dir or os.path.join(root, "downloads", "manual")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return builder


def _split_size(builder, split: str) -> int:
    """Examples in a tfds split: the dataset's cardinality, else the builder's info."""
    c = int(builder.as_dataset(split=split).cardinality())
    return c if c >= 0 else builder.info.splits[split].num_examples


def _stream_splits(cfg: DataConfig, n_train_split: int) -> Tuple[str, Optional[str], int, int]:
    """tfds split strings (train, val) and sizes; tfds's record order is already shuffled,
    so contiguous slices are the (unseeded) 80/20 cut."""
    n_val = int(round(n_train_split * cfg.val_fraction))
    n_tr = n_train_split - n_val
    keep = max(1, int(math.floor(n_tr * cfg.sample_fraction)))
    if cfg.max_train_examples is not None:
        keep = min(keep, cfg.max_train_examples)
    return f"train[:{keep}]", (f"train[{n_tr}:]" if n_val else None), keep, n_val


def _stream_pipelines(cfg: DataConfig):
    """(bundle kwargs, train factory) for tfds datasets too large for memory."""
    builder = _tfds_builder(cfg)
    info = builder.info
    size = cfg.size
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    b = cfg.batch_size
    tr_split, val_split, _, _ = _stream_splits(cfg, _split_size(builder, "train"))
    test_split = _TEST_SPLIT.get(cfg.dataset, "test") if cfg.split == "final" else None

    def read(split, shuffle_files, seed):
        import tensorflow_datasets as tfds

        rc = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=4)
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle_files,
                                  read_config=rc)

    def count(ds, split):
        c = int(ds.cardinality())
        return c if c >= 0 else info.splits[split].num_examples

    probe_tr = read(tr_split, False, 0)
    n_tr = count(probe_tr, tr_split)
    drop = n_tr >= b

    def geometric(augment):
        return [a for a in augment if a in ("random_resized_crop", "scale", "resize_crop")]

    def make_train(epoch: int, augment, shuffle: bool):
        s = _epoch_seed(cfg.seed, epoch, 3)
        ds = read(tr_split, shuffle, s)
        if shuffle:
            ds = ds.shuffle(cfg.shuffle_buffer, seed=s, reshuffle_each_iteration=False)
        geo = geometric(augment)
        seeds = tf.data.Dataset.random(seed=_epoch_seed(cfg.seed, epoch, 4)).batch(2)

        def per_image(example, seed):
            image, label = example
            image = tf.cast(image, tf.float32)[None]
            shape = tf.shape(image)
            if geo:  # box crop of the full-resolution image straight to size×size
                if "random_resized_crop" in geo:
                    boxes, _ = aug.random_resized_crop_boxes(1, shape[1], shape[2], seed)
                else:
                    rng = aug.SCALE_SHORTER if "scale" in geo else (256, 256)
                    boxes = aug.scale_crop_boxes(1, shape[1], shape[2], seed, size, rng)
            else:
                boxes = aug.center_crop_boxes(1, shape[1], shape[2])
            image = aug.crop_resize(image, boxes, size)[0]
            return image, label

        ds = tf.data.Dataset.zip((ds, seeds)).map(per_image, num_parallel_calls=tf.data.AUTOTUNE,
                                                  deterministic=True)
        ds = ds.batch(b, drop_remainder=drop)
        rest = tuple(a for a in augment if a not in geo)
        return aug.augment_batches(ds, _epoch_seed(cfg.seed, epoch, 5), rest, size=size,
                                   mean=mean, std=std, cutout_length=cfg.cutout_length)

    def make_eval(split):
        if split is None:
            return None, 0
        ds = read(split, False, 0)
        n = count(ds, split)
        ds = ds.map(lambda x, y: (_center_crop(x, size), y), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True).batch(b)
        ds = ds.map(lambda x, y: (aug.eval_batch(x, mean=mean, std=std), y),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if cfg.cache:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE), n

    val, n_val = make_eval(val_split)
    test, n_test = make_eval(test_split)
    kwargs = dict(val=val, test=test, num_classes=int(info.features["label"].num_classes),
                  class_names=tuple(str(n) for n in info.features["label"].names),
                  image_shape=(size, size, 3), num_train=n_tr, num_val=n_val, num_test=n_test,
                  mean=mean, std=std, steps_per_epoch=max(1, n_tr // b) if drop else 1)
    return kwargs, make_train


def _user_pipelines(cfg: DataConfig):
    """(bundle kwargs, train factory) of a folder:, tfrecord: or tfds: source (user.py)."""
    from eatnas_tf.data import user

    src = user.source_of(cfg)
    parts = user.parts_of(cfg, src)
    if src.streamed:
        kwargs, make_train = user.stream_pipelines(cfg, src, parts, _epoch_seed, aug)
    else:
        x = src.images
        mean, std = _channel_stats(x[parts.stats])

        def pair(pos):
            return (None, None) if pos is None else (x[pos], src.labels[pos])

        kwargs, make_train = _memory_pipelines(cfg, src.size, mean, std, len(src.class_names),
                                               pair(parts.train), pair(parts.val), pair(parts.test))
    kwargs.update(class_names=src.class_names, bad_files=src.bad_summary, streamed=src.streamed)
    return kwargs, make_train


def _center_crop(image, size: int):
    """Evaluation view of a variable-size image: shorter side to size·256/224, centre crop."""
    image = tf.cast(image, tf.float32)[None]
    shape = tf.shape(image)
    return aug.crop_resize(image, aug.center_crop_boxes(1, shape[1], shape[2]), size)[0]


# -- public -----------------------------------------------------------------------------------
def load_data(cfg: DataConfig) -> DataBundle:
    """Builds the pipelines of `cfg` (see the module docstring).

    Raises:
      ValueError: bad config values (raised by `DataConfig`).
      FileNotFoundError: the IDX files are missing for `source="idx"`.
      ValueError: user data that cannot be used (one line: a missing directory, a glob
        matching nothing, fewer than two classes, an empty or too small class, records
        without the expected features, a stored split of other data).
    """
    if cfg.user:
        kwargs, make_train = _user_pipelines(cfg)
    elif cfg.dataset in STREAMED and cfg.resolved_source == "tfds":
        kwargs, make_train = _stream_pipelines(cfg)
    else:
        kwargs, make_train = _array_pipelines(cfg)
    train = make_train(0, cfg.augment, True)
    return DataBundle(config=cfg, train=train, _make_train=make_train, **kwargs)


def check_data(cfg: DataConfig) -> dict:
    """Validates the data of `cfg` and writes nothing (binaries call it before they create a
    run directory). For user data it lists, scans and cuts the source (the scan is cached for
    the `load_data` that follows); built-in datasets are only checked by `DataConfig`.

    Returns:
      {"dataset", "num_examples", "num_classes", "class_names", "image_shape", "bad_files"}.

    Raises:
      ValueError: one line naming the problem (see `load_data`).
    """
    if not cfg.user:
        return {"dataset": cfg.dataset, "num_examples": None, "num_classes": None,
                "class_names": list(_CLASS_NAMES.get(cfg.dataset, ())), "image_shape": None,
                "bad_files": {"count": 0, "first": []}}
    from eatnas_tf.data import splits, user

    src = user.source_of(cfg)
    if not (cfg.split_file and os.path.exists(cfg.split_file)):
        splits.make_cut(src.labels, src.given, src.class_names, seed=cfg.split_seed,
                        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                        spec=cfg.dataset)
    else:
        splits.load_cut(cfg.split_file, src.ids, cfg.dataset)
    return {"dataset": cfg.dataset, "num_examples": len(src.ids),
            "num_classes": len(src.class_names), "class_names": list(src.class_names),
            "image_shape": [src.size, src.size, src.channels], "bad_files": src.bad_summary}


def load_arrays(cfg: DataConfig, split: str = "test",
                max_examples: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images [N, size, size, C] and int64 labels of one split, un-whitened.

    For export: representative data (`split="train"`) and held-out data (`"val"`, `"test"`),
    the same examples `load_data(cfg)` uses for that split (the model's preprocessing,
    `(x / 255 - mean) / std`, is left to the caller). ImageNet images are centre-cropped.
    """
    _check_in("split", split, ("train", "val", "test"))
    if cfg.user:
        from eatnas_tf.data import user

        src = user.source_of(cfg)
        parts = user.parts_of(dataclasses.replace(cfg, split="final"), src)
        pos = {"train": parts.train, "val": parts.val, "test": parts.test}[split]
        if pos is None or not len(pos):
            raise ValueError(f"split: {cfg.dataset} has no {split} split" if split == "test"
                             else "split: received 'val' but val_fraction is 0")
        x, y = user.arrays_of(src, pos[:max_examples] if max_examples else pos)
        return x, np.array(y)
    size = cfg.size
    if cfg.dataset in STREAMED and cfg.resolved_source == "tfds":
        builder = _tfds_builder(cfg)
        tr, val, _, _ = _stream_splits(cfg, _split_size(builder, "train"))
        name = {"train": tr, "val": val, "test": _TEST_SPLIT.get(cfg.dataset, "test")}[split]
        if name is None:
            raise ValueError("split: received 'val' but val_fraction is 0")
        ds = builder.as_dataset(split=name, as_supervised=True)
        if max_examples:
            ds = ds.take(max_examples)
        xs, ys = [], []
        for x, y in ds.map(lambda x, y: (_center_crop(x, size), y)).batch(256):
            xs.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
            ys.append(y.numpy().astype(np.int64))
        return np.concatenate(xs), np.concatenate(ys)
    raw = _raw_arrays(cfg.dataset, cfg.resolved_source, cfg.data_dir)
    if split == "test":
        if raw.x_test is None:
            raise ValueError(f"split: {cfg.dataset} has no test split")
        x, y = raw.x_test, raw.y_test
    else:
        tr, val = _split_indices(len(raw.y_train), cfg)
        sel = tr if split == "train" else val
        if not len(sel):
            raise ValueError("split: received 'val' but val_fraction is 0")
        x, y = raw.x_train[sel], raw.y_train[sel]
    if max_examples:
        x, y = x[:max_examples], y[:max_examples]
    return _resize(np.ascontiguousarray(x), size), np.array(y)


def held_out_arrays(cfg: DataConfig, max_examples: Optional[int] = None):
    """The test split when the dataset has one, the validation split otherwise."""
    try:
        return load_arrays(cfg, "test", max_examples)
    except ValueError:
        return load_arrays(cfg, "val", max_examples)
