"""What one export does, decided before anything is written: `ExportConfig` (how to export
and check), `ExportPlan` (which model, which data, where to) and `ExportData` (the arrays
the converters and checks read).

Data comes from the project's one data layer, `eatnas_tf.data.datasets`: the plan holds
the run's `DataConfig` (rebuilt from the dict a run stored, `data_config`) with
`split="final"`, and `load_export_data` reads from it, as raw uint8 images
(`datasets.load_arrays`), the held-out split every format is checked on, a seeded
representative subset of the training part for the int8 converter and the QAT
fine-tuning images. So any dataset a search can use (digits, fashion_mnist, tfds names,
folder:, tfrecord:, tfds:) can be exported.

    plan = ExportPlan(model=m, arch=a, macro=macro, data=data_config({"dataset": "digits"}),
                      mean=(0.3,), std=(0.4,), space="digits", export_dir="out")
    data = load_export_data(plan)      # data.x_test uint8 [N, H, W, C], data.spec
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.data.datasets import DataConfig
from export import saved_model as sm_lib
from export import tflite as tflite_lib


class ExportError(RuntimeError):
    """An export that could not be completed; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How to export and check.

    Attributes:
      formats: TFLite formats to write, a subset of `tflite.FORMATS` (the SavedModel is
        always written).
      bless_threshold: held-out accuracy (0..1) the SavedModel must reach to be BLESSED.
      eval_samples: held-out images to check on (None: the whole test split).
      representative_samples: training images calibrating the int8 converter.
      int8_io: the int8 and QAT files take uint8 raw pixels (scale 1, zero point 0; else
        float32 pixel values in [0, 255]); normalisation is inside and the output float32
        either way.
      qat: the QAT fine-tuning settings.
      latency_threads: LiteRT thread counts to time (batch 1).
      latency_warmup, latency_runs: untimed and timed runs per measurement.
      parity_tolerance: fp32 TFLite and SavedModel max |Δlogit| vs Keras.
      seed: data subset seed.
    """

    formats: Tuple[str, ...] = tflite_lib.FORMATS
    bless_threshold: float = 0.0
    eval_samples: Optional[int] = None
    representative_samples: int = 200
    int8_io: bool = True
    qat: tflite_lib.QATConfig = tflite_lib.QATConfig()
    latency_threads: Tuple[int, ...] = (1, 2)
    latency_warmup: int = 5
    latency_runs: int = 30
    parity_tolerance: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "latency_threads", tuple(int(t) for t in self.latency_threads))
        bad = [f for f in self.formats if f not in tflite_lib.FORMATS]
        if bad:
            raise ValueError(f"formats: received {bad[0]!r}; allowed values: "
                             f"{', '.join(tflite_lib.FORMATS)}")
        if not 0.0 <= self.bless_threshold <= 1.0:
            raise ValueError(f"bless_threshold: received {self.bless_threshold}; "
                             "allowed values: an accuracy in [0, 1]")
        if any(t < 1 for t in self.latency_threads) or self.latency_runs < 1:
            raise ValueError(f"latency: received threads={self.latency_threads}, "
                             f"runs={self.latency_runs}; allowed values: positive integers")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise ValueError(f"eval_samples: received {self.eval_samples}; allowed values: >= 1")
        if self.representative_samples < 1:
            raise ValueError(f"representative_samples: received {self.representative_samples}; "
                             "allowed values: >= 1")

    def describe(self) -> Dict[str, Any]:
        """The settings recorded in the report."""
        return {"formats": list(self.formats), "int8_io": self.int8_io,
                "qat": dataclasses.asdict(self.qat), "parity_tolerance": self.parity_tolerance}


def data_config(stored: Union[str, DataConfig, Mapping[str, Any]]) -> DataConfig:
    """The `DataConfig` export reads from: the run's stored one (a dataset name, a config
    or its `dataclasses.asdict` dict) with `split="final"` (train part + test split).

    Keys the dataclass does not have (a newer or older writer) are ignored and missing ones
    take their defaults, so the dict of any version of a run loads.

    Raises:
      ExportError: no dataset named, or a value `DataConfig` rejects (one line).
    """
    if isinstance(stored, DataConfig):
        fields = dataclasses.asdict(stored)
    elif isinstance(stored, str):
        fields = {"dataset": stored}
    else:
        fields = dict(stored)
    known = {f.name for f in dataclasses.fields(DataConfig)}
    kw = {k: v for k, v in fields.items() if k in known}
    if not kw.get("dataset"):
        raise ExportError("data: the run records no dataset; allowed values: a run directory "
                          "whose config.json or model artifact names its dataset")
    if isinstance(kw.get("augment"), list):
        kw["augment"] = tuple(kw["augment"])
    kw["split"] = "final"
    try:
        return DataConfig(**kw)
    except (TypeError, ValueError) as e:
        raise ExportError(f"data: {e}") from None


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """One model to export and check.

    Attributes:
      model: Keras 3 model, normalised float input → logits (an aux head is dropped).
      arch, macro: its encoding, for the tf_keras QAT rebuild and the analytic cost.
      data: where held-out and representative images come from (`data_config`).
      mean, std: per-channel whitening statistics in [0, 1] units.
      space: search space name (recorded).
      export_dir: the base directory; the export goes to `export_dir/<version>/`.
      config: formats, thresholds and measurement settings.
      image_size: network input side (None: `macro.image_size`).
      claim: what the search reported (`params`, `madds`, accuracy), recorded and compared.
      source: where the model came from (recorded), e.g. {"kind": "artifact", ...}.
      weights: how its weights were made, for the report: "retrained", or e.g. "search
        candidate c00003, not retrained".
    """

    model: Any
    arch: ArchSpec
    macro: MacroSpec
    data: DataConfig
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    space: str
    export_dir: str
    config: ExportConfig = ExportConfig()
    image_size: Optional[int] = None
    claim: Dict[str, Any] = dataclasses.field(default_factory=dict)
    source: Dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: str = "retrained"

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def size(self) -> int:
        """The network's input side."""
        return int(self.image_size or self.macro.image_size)

    @property
    def cost_macro(self) -> MacroSpec:
        """The macro the analytic cost is counted with (at the served input size)."""
        return self.macro if self.size == self.macro.image_size else self.macro.with_(
            image_size=self.size)


@dataclasses.dataclass(frozen=True)
class ExportData:
    """Raw uint8 images [N, H, W, C] and int64 labels the converters and checks use.

    Attributes:
      x_test, y_test: held-out images (the test split, else validation).
      x_rep: representative images for the int8 converter (seeded subset of training).
      x_qat, y_qat: QAT fine-tuning images (empty when no QAT file is made).
      spec: the serving graph's preprocessing for these images.
      class_names: label names, one per class (from the data source, else "0".."N-1").
      heldout_split: the split `x_test` comes from ("test", else "val").
    """

    x_test: np.ndarray
    y_test: np.ndarray
    x_rep: np.ndarray
    x_qat: np.ndarray
    y_qat: np.ndarray
    spec: sm_lib.ServingSpec
    class_names: Tuple[str, ...] = ()
    heldout_split: str = "test"


def _subset(x: np.ndarray, y: np.ndarray, n: Optional[int], seed: int):
    if n is None or n >= len(y):
        return x, y
    sel = np.sort(np.random.RandomState(seed).choice(len(y), size=n, replace=False))
    return x[sel], y[sel]


def load_export_data(plan: ExportPlan) -> ExportData:
    """The held-out, representative and QAT arrays of `plan.data` (the one data layer).

    Raises:
      ExportError: the data cannot be read or does not fit the model (one line).
    """
    from eatnas_tf.data import datasets

    cfg, config = plan.data, plan.config
    qat = "qat" in config.formats
    pool = max(config.representative_samples, (config.qat.max_samples or 0) if qat else 0)
    try:
        try:
            split = "test"
            x_test, y_test = datasets.load_arrays(cfg, "test", config.eval_samples)
        except ValueError:  # no test split: the validation part is held out
            split = "val"
            x_test, y_test = datasets.load_arrays(cfg, "val", config.eval_samples)
        if qat and config.qat.max_samples is None:
            x_pool, y_pool = datasets.load_arrays(cfg, "train")
        else:
            x_pool, y_pool = datasets.load_arrays(cfg, "train", 4 * pool)
    except (OSError, ValueError, ImportError) as e:
        raise ExportError(f"data {cfg.dataset}: {' '.join(str(e).split())}") from None
    if x_test.shape[-1] != plan.macro.in_channels:
        raise ExportError(f"dataset {cfg.dataset}: {x_test.shape[-1]} channels but the model "
                          f"takes {plan.macro.in_channels}")
    x_rep, _ = _subset(x_pool, y_pool, config.representative_samples, config.seed)
    if qat:
        x_qat, y_qat = _subset(x_pool, y_pool, config.qat.max_samples, config.seed + 1)
    else:
        x_qat, y_qat = x_pool[:0], y_pool[:0]
    try:
        spec = sm_lib.ServingSpec(mean=plan.mean, std=plan.std, image_size=plan.size,
                                  raw_size=x_test.shape[1:3], channels=plan.macro.in_channels,
                                  num_classes=plan.macro.num_classes)
    except ValueError as e:
        raise ExportError(f"preprocessing: {e}") from None
    names = data_facts(cfg).class_names
    if len(names) != plan.macro.num_classes:
        raise ExportError(f"dataset {cfg.dataset}: {len(names)} classes but the model has "
                          f"{plan.macro.num_classes}")
    return ExportData(x_test=x_test, y_test=np.asarray(y_test, np.int64), x_rep=x_rep,
                      x_qat=x_qat, y_qat=np.asarray(y_qat, np.int64), spec=spec,
                      class_names=names, heldout_split=split)


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What the data layer's bundle says about a dataset (`load_data`)."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    num_classes: int
    class_names: Tuple[str, ...]
    image_shape: Tuple[int, int, int]


def data_facts(cfg: DataConfig) -> DataFacts:
    """Whitening statistics and class names of `cfg`, from `datasets.load_data(cfg)` (the
    bundle a search or retraining of `cfg` trains on).

    Raises:
      ExportError: the data cannot be read (one line).
    """
    from eatnas_tf.data import datasets

    try:
        bundle = datasets.load_data(cfg)
    except (OSError, ValueError, ImportError) as e:
        raise ExportError(f"data {cfg.dataset}: {' '.join(str(e).split())}") from None
    names = tuple(str(n) for n in (bundle.class_names or ()))
    if len(names) != bundle.num_classes:
        names = tuple(str(i) for i in range(bundle.num_classes))
    return DataFacts(tuple(bundle.mean), tuple(bundle.std), int(bundle.num_classes), names,
                     tuple(int(v) for v in bundle.image_shape))
