"""Shared absl flags of the data and training settings, turned into configs once.

Binaries call `define_data_flags()` / `define_train_flags()` at import time (each is a
no-op when the flags already exist, so the search app and retrain can both use them),
then `data_config_from_flags()` / `train_config_from_flags()` in `main()`. Library code
never reads FLAGS. Bad values raise `cli.UsageError` (one line, exit 2 under `cli.run`).

Paper settings ship as flagfiles: `flags/train_cifar10_search.inc.cfg`,
`flags/train_imagenet_search.inc.cfg` (included by the search flagfiles),
`flags/eat_cifar10_retrain.cfg`, `flags/eat_imagenet_retrain.cfg`.
"""

from __future__ import annotations

from absl import flags

from eatnas_tf import cli
from eatnas_tf.data import augment as aug
from eatnas_tf.data.datasets import SOURCES, DataConfig
from eatnas_tf.data.sources import FORMS, parse_dataset
from eatnas_tf.train.config import LR_SCHEDULES, TrainConfig


def _defined(name: str, fv) -> bool:
    return name in fv


def define_data_flags(flag_values=flags.FLAGS) -> None:
    """--dataset --data_dir --data_source --manual_dir --val_fraction --sample_fraction
    --resolution --batch_size --augment --plain_last_epochs --cutout_length --cache
    --max_train_examples --data_seed --test_fraction --memory_cap_mb."""
    if _defined("dataset", flag_values):
        return
    fv = flag_values
    flags.DEFINE_string("dataset", "fashion_mnist", f"Dataset, one of: {', '.join(FORMS)}. "
                        "folder:DIR has one sub-folder of images per class (or train/ and "
                        "test/ folders of those); tfrecord:GLOB holds tf.Examples with "
                        "image/encoded and image/class/label; tfds:... must be prepared in "
                        "--data_dir (nothing is downloaded).", flag_values=fv)

    def _valid_dataset(value):
        try:
            parse_dataset(value)
        except ValueError as e:
            raise flags.ValidationError(str(e)) from None
        return True

    flags.register_validator("dataset", _valid_dataset, flag_values=fv)
    flags.DEFINE_string("data_dir", None, "tfds data dir, or the IDX directory for "
                        "--data_source=idx (default: tfds's / Debian's).", flag_values=fv)
    flags.DEFINE_enum("data_source", "auto", list(SOURCES),
                      "auto: our IDX reader for fashion_mnist when "
                      "/usr/share/datasets/fashion-mnist exists, scikit-learn for digits, "
                      "tfds otherwise.", flag_values=fv)
    flags.DEFINE_string("manual_dir", None, "ImageNet manual download dir (default "
                        "<data_dir>/downloads/manual, as tfds).", flag_values=fv)
    flags.DEFINE_float("val_fraction", 0.2, "Validation share of the train split (paper: 0.2; "
                       "0 trains on the whole split).", flag_values=fv)
    flags.DEFINE_float("sample_fraction", 1.0, "Share of training samples kept (EcoNAS s).",
                       flag_values=fv)
    flags.DEFINE_integer("resolution", None, "Image size: resize images to N×N (EcoNAS r; "
                         "default: the dataset's size, 224 for ImageNet; for folder:/tfrecord:/"
                         "tfds: data the median short side of a sample, rounded to a multiple "
                         "of 8, in [8, 224]).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 128, "Global batch size.", flag_values=fv)
    flags.DEFINE_list(
        "augment",
        [],
        f"Training augmentations, any of: {', '.join(aug.AUGMENTATIONS)}.",
        flag_values=fv,
    )
    flags.DEFINE_integer("plain_last_epochs", 0, "Crop + flip only for the last N epochs.",
                         flag_values=fv)
    flags.DEFINE_integer("cutout_length", 16, "Cutout square side.", flag_values=fv)
    flags.DEFINE_bool("cache", True, "Cache preprocessed validation/test batches in memory.",
                      flag_values=fv)
    flags.DEFINE_integer("max_train_examples", None, "Cap on training examples (tests, demos).",
                         flag_values=fv)
    flags.DEFINE_integer("data_seed", 0, "Seed of the train/val cut (same for every candidate).",
                         flag_values=fv)
    flags.DEFINE_float("test_fraction", 0.2, "folder:/tfrecord:/tfds: data without a test split: "
                       "share of each class held out as test (stored with the cut).",
                       flag_values=fv)
    flags.DEFINE_float("memory_cap_mb", 1024.0, "folder:/tfrecord:/tfds: data whose resized "
                       "images fit in this many MiB stay in memory; larger data is streamed "
                       "from its files.", flag_values=fv)


def define_train_flags(flag_values=flags.FLAGS) -> None:
    """--epochs --learning_rate --momentum --weight_decay --lr_schedule --lr_end
    --restart_epochs --restart_mult --lr_power --warmup_epochs --label_smoothing --aux_weight
    --mixed_precision --jit_compile --fused_bn --bn_recalibration_batches --steps_per_epoch
    --validate_every (and --batch_size, shared with the data flags)."""
    if _defined("epochs", flag_values):
        return
    fv = flag_values
    if not _defined("batch_size", fv):
        flags.DEFINE_integer("batch_size", 128, "Global batch size.", flag_values=fv)
    d = TrainConfig()
    flags.DEFINE_integer("epochs", d.epochs, "Training epochs.", flag_values=fv)
    flags.DEFINE_float("learning_rate", d.learning_rate, "Initial learning rate.", flag_values=fv)
    flags.DEFINE_float("momentum", d.momentum, "SGD momentum.", flag_values=fv)
    flags.DEFINE_float("weight_decay", d.weight_decay, "Coupled L2 weight decay on kernels.",
                       flag_values=fv)
    flags.DEFINE_enum("lr_schedule", d.lr_schedule, list(LR_SCHEDULES), "Learning-rate schedule.",
                      flag_values=fv)
    flags.DEFINE_float("lr_end", d.lr_end, "Final LR of cosine/polynomial, minimum of "
                       "cosine_restarts.", flag_values=fv)
    flags.DEFINE_float("restart_epochs", d.restart_epochs, "First SGDR period (epochs).",
                       flag_values=fv)
    flags.DEFINE_float("restart_mult", d.restart_mult, "SGDR period multiplier.", flag_values=fv)
    flags.DEFINE_float("lr_power", d.lr_power, "Exponent of the polynomial decay.", flag_values=fv)
    flags.DEFINE_float("warmup_epochs", d.warmup_epochs, "Linear LR warm-up (epochs).",
                       flag_values=fv)
    flags.DEFINE_float("label_smoothing", d.label_smoothing, "Label smoothing.", flag_values=fv)
    flags.DEFINE_float("aux_weight", d.aux_weight, "Auxiliary tower loss weight.", flag_values=fv)
    flags.DEFINE_bool("mixed_precision", d.mixed_precision, "mixed_float16 (GPUs).",
                      flag_values=fv)
    flags.DEFINE_bool("jit_compile", d.jit_compile, "XLA-compile the train step (GPUs).",
                      flag_values=fv)
    flags.DEFINE_bool("fused_bn", d.fused_bn, "Batch norms on TensorFlow's fused kernel (the "
                      "same function as Keras' layer, ~1.4x faster on CPU); --nofused_bn: "
                      "Keras' own layer, bit-exact with runs made before.", flag_values=fv)
    flags.DEFINE_integer("bn_recalibration_batches", d.bn_recalibration_batches,
                         "Recompute BN statistics on N training batches before validation.",
                         flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "Cap on steps per epoch.", flag_values=fv)
    flags.DEFINE_integer("validate_every", d.validate_every, "Validate every N epochs.",
                         flag_values=fv)


def data_config_from_flags(flag_values=flags.FLAGS, *, split: str = "search", seed: int = 0,
                           **overrides) -> DataConfig:
    """The `DataConfig` the data flags describe (`overrides` replace single fields)."""
    f = flag_values
    kw = dict(dataset=f.dataset, data_dir=f.data_dir, source=f.data_source, split=split,
              val_fraction=f.val_fraction, sample_fraction=f.sample_fraction,
              image_size=f.resolution, batch_size=f.batch_size, augment=tuple(f.augment),
              plain_last_epochs=f.plain_last_epochs, cache=f.cache, seed=seed,
              max_train_examples=f.max_train_examples, split_seed=f.data_seed,
              cutout_length=f.cutout_length, manual_dir=f.manual_dir,
              test_fraction=f.test_fraction, memory_cap_mb=f.memory_cap_mb)
    kw.update(overrides)
    try:
        return DataConfig(**kw)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def train_config_from_flags(flag_values=flags.FLAGS, *, seed: int = 0,
                            **overrides) -> TrainConfig:
    """The `TrainConfig` the train flags describe (`overrides` replace single fields)."""
    f = flag_values
    kw = dict(epochs=f.epochs, batch_size=f.batch_size, learning_rate=f.learning_rate,
              momentum=f.momentum, weight_decay=f.weight_decay, lr_schedule=f.lr_schedule,
              lr_end=f.lr_end, restart_epochs=f.restart_epochs, restart_mult=f.restart_mult,
              lr_power=f.lr_power, warmup_epochs=f.warmup_epochs,
              label_smoothing=f.label_smoothing, aux_weight=f.aux_weight,
              mixed_precision=f.mixed_precision, jit_compile=f.jit_compile,
              fused_bn=f.fused_bn, bn_recalibration_batches=f.bn_recalibration_batches,
              steps_per_epoch=f.steps_per_epoch, seed=seed, validate_every=f.validate_every)
    kw.update(overrides)
    try:
        return TrainConfig(**kw)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def check_plain_last_epochs(data_cfg: DataConfig, train_cfg: TrainConfig) -> None:
    """Raises UsageError when the plain epochs do not fit in the run."""
    if data_cfg.plain_last_epochs > train_cfg.epochs:
        raise cli.UsageError(f"plain_last_epochs: received {data_cfg.plain_last_epochs}; "
                             f"allowed values: <= epochs ({train_cfg.epochs})")
