"""Export orchestration: one trained model → a versioned, checked, TFX-style export.

    EXPORT_DIR/<unix-time>/            (written as EXPORT_DIR/.tmp-export-*, then renamed)
      saved_model.pb, variables/       signatures serving_default (raw uint8 images) and
                                       serving_tf_example (serialized tf.Example)
      model_fp32.tflite  model_fp16.tflite  model_int8.tflite  model_qat_int8.tflite
      export_report.json export_report.md
      BLESSED | NOT_BLESSED            JSON: accuracy, threshold, reasons

Every step runs in the hidden temp dir; only a complete export is renamed into place, and
a failure (unwritable dir, unconvertible op, ...) removes the temp dir and raises
`ExportError` with one line. A version dir is never overwritten: the version is the
current unix time, or the next free integer when that name is taken (two exports in the
same second). TF Serving ignores the dot-prefixed temp dir.

Checks made on held-out data (the dataset's test split): the SavedModel against the Keras
model (max |Δlogit|), the tf.Example signature against `serving_default`, every TFLite file
in LiteRT (accuracy and drop vs Keras in points; fp32 max |Δlogit| ≤ `parity_tolerance`;
latency at each thread count, batch 1, formats timed round-robin),
MAdds read from each graph against the analytic cost model, int8 file ≤ ¼ of fp32 and a
QAT drop ≤ 1 pt (DESIGN.md §5). The model is BLESSED when its SavedModel accuracy reaches
`bless_threshold` and the SavedModel / fp32 parity checks pass.

Entry points: `export_artifact` (a model artifact dir), `export_keras_file` (a `.keras`
file + encoding), `export_run` (a search run dir: winner and optionally the Pareto front);
all call `export_model`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from eatnas_tf.measure import latency as latency_lib
from export import data as data_lib
from export import graph_cost
from export import report as report_lib
from export import saved_model as sm_lib
from export import tflite as tflite_lib

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
TMP_PREFIX = ".tmp-export-"
INT8_SIZE_RATIO_MAX = 0.25
QAT_DROP_MAX_PTS = 1.0


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
      int8_io: int8 input/output tensors for the int8 and QAT files (else float32).
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


# -- version directories ---------------------------------------------------------------------
def prepare_export_dir(export_dir: str) -> str:
    """Creates `export_dir` if needed; raises ExportError if it cannot hold an export."""
    if not export_dir:
        raise ExportError("export_dir: received an empty path; allowed values: a writable directory")
    path = os.path.abspath(export_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExportError(f"export_dir: {export_dir} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ExportError(f"export_dir: cannot create {export_dir} ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExportError(f"export_dir: {export_dir} is not writable")
    return path


def list_versions(export_dir: str) -> List[int]:
    """The complete version dirs under `export_dir` (numeric names), ascending."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir)
                  if n.isdigit() and os.path.isdir(os.path.join(export_dir, n)))


def _now() -> float:
    """The clock versions are named by (a seam for tests)."""
    return time.time()


def next_version(export_dir: str, now: Optional[float] = None) -> int:
    """The current unix time, or the next integer after it that names no existing entry."""
    v = int(_now() if now is None else now)
    while os.path.lexists(os.path.join(export_dir, str(v))):
        v += 1
    return v


def _publish(tmp: str, export_dir: str, version: int) -> str:
    """Renames the finished temp dir to `export_dir/version`; never replaces anything."""
    final = os.path.join(export_dir, str(version))
    if os.path.lexists(final):  # raced with another exporter: never overwrite
        raise ExportError(f"export_dir: version {final} appeared during the export")
    os.rename(tmp, final)
    return final


# -- checks ----------------------------------------------------------------------------------
def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, -1) == labels).mean()) if len(labels) else float("nan")


def _drop_pts(ref: float, acc: float) -> float:
    return round(100.0 * (ref - acc), 4)


def _dir_size(path: str, exclude_ext: Sequence[str] = ()) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            if not f.endswith(tuple(exclude_ext)):
                total += os.path.getsize(os.path.join(root, f))
    return total


def _one_line(e: BaseException) -> str:
    return next((l.strip() for l in str(e).splitlines() if l.strip()), type(e).__name__)


# -- the export ------------------------------------------------------------------------------
def export_model(model, arch, macro, *, mean: Sequence[float], std: Sequence[float],
                 dataset: str, space: str, export_dir: str,
                 config: ExportConfig = ExportConfig(), image_size: Optional[int] = None,
                 claim: Optional[Dict[str, Any]] = None,
                 source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Exports and checks one Keras 3 model; returns the report (also written to disk).

    Args:
      model: Keras 3 model, normalised float input → logits (an aux head is dropped).
      arch, macro: its encoding (`ArchSpec`, `MacroSpec`), for the tf_keras QAT rebuild and
        the analytic cost.
      mean, std: per-channel whitening statistics in [0, 1] units.
      dataset: held-out / representative data source (`export.data.DATASETS`).
      space: search space name (recorded).
      export_dir: the base directory; the export goes to `export_dir/<version>/`.
      config: formats, thresholds and measurement settings.
      image_size: network input side (None: `macro.image_size`).
      claim: what the search reported (`params`, `madds`, accuracy), recorded and compared.
      source: where the model came from (recorded).

    Raises:
      ExportError: with one line; nothing is left under `export_dir` but what was there.
    """
    import tensorflow as tf  # noqa: PLC0415

    from eatnas_tf.arch import codec  # noqa: PLC0415
    from eatnas_tf.arch.cost import count  # noqa: PLC0415

    base = prepare_export_dir(export_dir)
    model = tflite_lib.inference_model(model)
    size = int(image_size or macro.image_size)
    try:
        x_test, y_test = data_lib.load_split(dataset, "test", config.eval_samples)
        x_rep, _ = data_lib.load_split(dataset, "train", config.representative_samples, config.seed)
        if "qat" in config.formats:
            x_qat, y_qat = data_lib.load_split(dataset, "train", config.qat.max_samples,
                                               config.seed + 1)
    except data_lib.DataUnavailableError as e:
        raise ExportError(str(e)) from None
    if x_test.shape[-1] != macro.in_channels:
        raise ExportError(f"dataset {dataset}: {x_test.shape[-1]} channels but the model takes "
                          f"{macro.in_channels}")
    try:
        spec = sm_lib.ServingSpec(mean=tuple(mean), std=tuple(std), image_size=size,
                                  raw_size=x_test.shape[1:3], channels=macro.in_channels,
                                  num_classes=macro.num_classes)
    except ValueError as e:
        raise ExportError(f"preprocessing: {e}") from None
    cost = count(arch, macro if size == macro.image_size else macro.with_(image_size=size))
    try:
        tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base)
    except OSError as e:
        raise ExportError(f"export_dir: cannot write in {export_dir} ({e.strerror})") from None

    timing: Dict[str, float] = {}
    report: Dict[str, Any] = {
        "version": None, "path": None,
        "created": None,
        "source": source or {},
        "arch": codec.to_text(arch), "arch_json": codec.to_dict(arch), "space": space,
        "dataset": dataset, "macro": dataclasses.asdict(macro),
        "preprocessing": {"mean": list(spec.mean), "std": list(spec.std), "image_size": size,
                          "raw_size": list(spec.raw_size)},
        "params": cost.params, "params_keras": int(model.count_params()), "madds": cost.madds,
        "claim": claim or {},
        "eval": {"split": "test", "samples": int(len(y_test))},
        "latency_threads": list(config.latency_threads),
        "latency_settings": {"batch": 1, "warmup": config.latency_warmup,
                             "runs": config.latency_runs, "runtime": "ai_edge_litert"},
        "config": {"formats": list(config.formats), "int8_io": config.int8_io,
                   "representative_samples": int(len(x_rep)),
                   "qat": dataclasses.asdict(config.qat),
                   "parity_tolerance": config.parity_tolerance},
    }
    try:
        t = time.perf_counter()
        x_norm = data_lib.preprocess(x_test, spec.mean, spec.std, size)
        keras_logits = np.asarray(model.predict(x_norm, batch_size=512, verbose=0))
        keras_acc = _accuracy(keras_logits, y_test)
        report["keras"] = {"accuracy": keras_acc}
        timing["keras_eval"] = time.perf_counter() - t

        # SavedModel (the version dir's root) + parity + tf.Example signature.
        t = time.perf_counter()
        try:
            sm_lib.write_saved_model(model, spec, tmp)
        except Exception as e:
            raise ExportError(f"SavedModel export failed: {_one_line(e)}") from e
        timing["saved_model_write"] = time.perf_counter() - t
        t = time.perf_counter()
        loaded = tf.saved_model.load(tmp)
        sm_logits = sm_lib.predict_logits(loaded, x_test)
        n_ex = min(64, len(x_test))
        examples = np.array([sm_lib.make_example(im) for im in x_test[:n_ex]], dtype=object)
        ex_logits = sm_lib.predict_logits(loaded, examples, signature=sm_lib.SERVING_TF_EXAMPLE)
        sm_acc = _accuracy(sm_logits, y_test)
        report["saved_model"] = {
            "signatures": sorted(loaded.signatures.keys()),
            "accuracy": sm_acc, "accuracy_drop_pts": _drop_pts(keras_acc, sm_acc),
            "max_abs_logit_diff": float(np.abs(sm_logits - keras_logits).max()),
            "tf_example_max_abs_diff": float(np.abs(ex_logits - sm_logits[:n_ex]).max()),
            "size_bytes": _dir_size(tmp, exclude_ext=(".tflite", ".json", ".md")),
        }
        del loaded
        timing["saved_model_check"] = time.perf_counter() - t

        # TFLite formats.
        formats: Dict[str, Any] = {}
        for fmt in config.formats:
            t0 = time.perf_counter()
            if fmt == "fp32":
                blob = tflite_lib.convert_float(model, spec)
            elif fmt == "fp16":
                blob = tflite_lib.convert_float(model, spec, fp16=True)
            elif fmt == "int8":
                blob = tflite_lib.convert_int8(model, spec, x_rep, config.int8_io)
            else:
                qat_model = tflite_lib.build_qat_model(model, arch, macro, image_size=size)
                hist = tflite_lib.finetune_qat(qat_model, x_qat, y_qat, spec, config.qat)
                blob = tflite_lib.convert_qat(qat_model, spec, config.int8_io)
            path = os.path.join(tmp, tflite_lib.FILENAMES[fmt])
            with open(path, "wb") as f:
                f.write(blob)
            t1 = time.perf_counter()
            logits = tflite_lib.predict(path, x_test, spec)
            acc = _accuracy(logits, y_test)
            g = graph_cost.tflite_madds(path)
            entry = {
                "file": tflite_lib.FILENAMES[fmt], "size_bytes": os.path.getsize(path),
                "input": tflite_lib.describe_input(path),
                "accuracy": acc, "accuracy_drop_pts": _drop_pts(keras_acc, acc),
                "max_abs_logit_diff": float(np.abs(logits - keras_logits).max()),
                "graph_madds": g, "madds_check": graph_cost.agreement(cost.madds, g["madds"]),
            }
            if fmt == "qat":
                entry["qat_history"] = hist
            timing[f"{fmt}_convert"] = t1 - t0
            timing[f"{fmt}_check"] = time.perf_counter() - t1
            formats[fmt] = entry
        # Timed round-robin across formats so load on a shared machine hits all alike.
        t = time.perf_counter()
        if formats:
            lat = latency_lib.measure_interleaved(
                {fmt: os.path.join(tmp, f["file"]) for fmt, f in formats.items()},
                config.latency_threads, config.latency_warmup, config.latency_runs)
            for fmt, entry in formats.items():
                entry["latency"] = lat[fmt]
        timing["latency"] = time.perf_counter() - t
        fp32_size = formats.get("fp32", {}).get("size_bytes")
        for entry in formats.values():
            entry["size_ratio_vs_fp32"] = (round(entry["size_bytes"] / fp32_size, 4)
                                           if fp32_size else None)
        report["formats"] = formats

        checks = {
            "saved_model_parity": report["saved_model"]["max_abs_logit_diff"] <= config.parity_tolerance,
            "tf_example_signature": (report["saved_model"]["tf_example_max_abs_diff"]
                                     <= config.parity_tolerance),
            "fp32_parity": (formats["fp32"]["max_abs_logit_diff"] <= config.parity_tolerance
                            if "fp32" in formats else None),
            "madds_agree": all(f["madds_check"]["agree"] for f in formats.values()) if formats else None,
            "madds_match_claim": (int(claim["madds"]) == cost.madds
                                  if claim and claim.get("madds") is not None else None),
            "int8_size_le_quarter": (formats["int8"]["size_ratio_vs_fp32"] <= INT8_SIZE_RATIO_MAX
                                     if "int8" in formats and fp32_size else None),
            "qat_drop_le_1pt": (formats["qat"]["accuracy_drop_pts"] <= QAT_DROP_MAX_PTS
                                if "qat" in formats else None),
        }
        report["checks"] = checks
        reasons = []
        if sm_acc < config.bless_threshold:
            reasons.append(f"accuracy {sm_acc:.4f} < threshold {config.bless_threshold:.4f}")
        for k in ("saved_model_parity", "tf_example_signature", "fp32_parity"):
            if checks[k] is False:
                reasons.append(f"{k} failed")
        blessed = not reasons
        report["blessing"] = {"blessed": blessed, "metric": "accuracy", "value": sm_acc,
                              "threshold": config.bless_threshold, "reasons": reasons}
        report["timing_s"] = {k: round(v, 3) for k, v in timing.items()}

        # Name the version last, write the report into the temp dir, then publish.
        version = next_version(base)
        report["version"] = str(version)
        report["path"] = os.path.join(base, str(version))
        report["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        with open(os.path.join(tmp, BLESSED if blessed else NOT_BLESSED), "w") as f:
            json.dump(report["blessing"], f, indent=2)
        report_lib.write_json(os.path.join(tmp, REPORT_JSON), report)
        report_lib.write_markdown(os.path.join(tmp, REPORT_MD), report_lib.to_markdown(report))
        _publish(tmp, base, version)
        return report
    except ExportError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except tflite_lib.ConversionError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(str(e)) from e
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception):
            raise ExportError(f"export failed: {type(e).__name__}: {_one_line(e)}") from e
        raise


# -- entry points ----------------------------------------------------------------------------
def _load_artifact(model_dir: str):
    from eatnas_tf.model import artifact  # noqa: PLC0415

    if not os.path.isdir(model_dir):
        raise ExportError(f"model_dir: {model_dir} is not a directory")
    for f in (artifact.MODEL_FILE, artifact.META_FILE):
        if not os.path.isfile(os.path.join(model_dir, f)):
            raise ExportError(f"model_dir: {model_dir} has no {f}")
    try:
        model, meta = artifact.load(model_dir)
        arch, macro = artifact.arch_and_macro(meta)
    except Exception as e:  # corrupt zip, bad JSON, unknown layer, ...
        raise ExportError(f"model_dir: cannot load {model_dir}: {_one_line(e)}") from None
    return model, meta, arch, macro


def export_artifact(model_dir: str, export_dir: str, *,
                    formats: Optional[Sequence[str]] = None, threshold: Optional[float] = None,
                    config: Optional[ExportConfig] = None,
                    claim: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Exports a model artifact (`model.keras` + `meta.json`, see `eatnas_tf.model.artifact`).

    `formats` and `threshold`, when given, override the config's `formats` /
    `bless_threshold`; the search claim defaults to the artifact's recorded params, MAdds
    and test accuracy.
    """
    config = config or ExportConfig()
    if formats is not None:
        config = dataclasses.replace(config, formats=tuple(formats))
    if threshold is not None:
        config = dataclasses.replace(config, bless_threshold=threshold)
    model, meta, arch, macro = _load_artifact(model_dir)
    pre = meta.get("preprocessing", {})
    if claim is None:
        claim = {"params": meta.get("params"), "madds": meta.get("madds"),
                 "test_accuracy": (meta.get("metrics") or {}).get("test_acc")}
    return export_model(
        model, arch, macro, mean=pre["mean"], std=pre["std"], dataset=meta["dataset"],
        space=meta.get("space", ""), export_dir=export_dir, config=config,
        image_size=pre.get("image_size"), claim=claim,
        source={"kind": "artifact", "model_dir": os.path.abspath(model_dir)})


def export_keras_file(model_path: str, arch_text: str, *, space: str, dataset: str,
                      export_dir: str, config: ExportConfig = ExportConfig()) -> Dict[str, Any]:
    """Exports a bare `.keras` file given its encoding; the macro comes from the space and,
    with no meta.json, mean/std are computed from the dataset's train split."""
    from eatnas_tf.arch import codec  # noqa: PLC0415
    from eatnas_tf.arch.space import get_space  # noqa: PLC0415

    sp = get_space(space)
    arch = sp.validate(codec.parse_arch(arch_text, **sp.arch_defaults()))
    if not os.path.isfile(model_path):
        raise ExportError(f"model: {model_path} is not a file")
    try:
        import keras  # noqa: PLC0415

        model = keras.models.load_model(model_path, compile=False)
    except Exception as e:
        raise ExportError(f"model: cannot load {model_path}: {_one_line(e)}") from None
    try:
        mean, std = data_lib.mean_std(dataset)
    except data_lib.DataUnavailableError as e:
        raise ExportError(str(e)) from None
    return export_model(model, arch, sp.macro, mean=mean, std=std, dataset=dataset,
                        space=space, export_dir=export_dir, config=config,
                        source={"kind": "keras_file", "model": os.path.abspath(model_path)})


def _read_run_report(run_dir: str) -> Dict[str, Any]:
    path = os.path.join(run_dir, "report.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError(f"run_dir: cannot read {path}: {_one_line(e)}") from None


def export_run(run_dir: str, export_dir: Optional[str] = None, *, pareto: bool = False,
               config: ExportConfig = ExportConfig()) -> Dict[str, Any]:
    """Exports a search run's winner (`run_dir/winner/`) and, with `pareto`, every member of
    `report.json`'s `pareto` list that has a `model_dir` (to
    `export_dir/pareto/<index>/<version>/`).

    Writes the winner's export_report.md with a Pareto table and, when `run_dir/report.md`
    exists, (re)places its "## Export" section.

    Returns:
      {"winner": report, "pareto": [{"arch", "val_acc", "madds", "model_dir", "report" |
      "error"}], "export_dir": ...}.
    """
    if not os.path.isdir(run_dir):
        raise ExportError(f"run_dir: {run_dir} is not a directory")
    export_dir = export_dir or os.path.join(run_dir, "export")
    run_report = _read_run_report(run_dir)
    winner_dir = os.path.join(run_dir, "winner")
    if not os.path.isdir(winner_dir):
        raise ExportError(f"run_dir: {run_dir} has no winner/ model artifact")
    w = run_report.get("winner") or {}
    claim = None
    if w:
        claim = {"params": w.get("params"), "madds": w.get("madds"),
                 "test_accuracy": w.get("test_accuracy")}
    winner = export_artifact(winner_dir, export_dir, config=config, claim=claim)
    members: List[Dict[str, Any]] = []
    if pareto:
        for k, m in enumerate(run_report.get("pareto") or []):
            row = {"arch": m.get("arch"), "val_acc": m.get("val_acc"), "madds": m.get("madds"),
                   "model_dir": m.get("model_dir")}
            if not m.get("model_dir"):
                continue
            mdir = m["model_dir"]
            mdir = mdir if os.path.isabs(mdir) else os.path.join(run_dir, mdir)
            claim_m = {"madds": m.get("madds"), "val_acc": m.get("val_acc")}
            try:
                row["report"] = export_artifact(
                    mdir, os.path.join(export_dir, "pareto", f"{k:02d}"), config=config,
                    claim=claim_m)
            except ExportError as e:  # one bad member must not lose the others
                row["error"] = str(e)
            members.append(row)
        md = report_lib.to_markdown(winner, pareto=members)
        report_lib.write_markdown(os.path.join(winner["path"], REPORT_MD), md)
    run_md = os.path.join(run_dir, "report.md")
    if os.path.exists(run_md):
        report_lib.update_run_report(run_md, report_lib.to_markdown(winner, pareto=members,
                                                                    heading="###"))
    return {"winner": winner, "pareto": members, "export_dir": os.path.abspath(export_dir)}
