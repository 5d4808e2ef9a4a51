"""Export orchestration: one trained model → a versioned, checked, TFX-style export.

    EXPORT_DIR/<unix-time>/            (written as EXPORT_DIR/.tmp-export-*, then renamed)
      saved_model.pb, variables/       signatures serving_default (encoded image files,
                                       `image_bytes`), serving_images (raw uint8 pixels)
                                       and serving_tf_example (serialized tf.Example)
      model_fp32.tflite  model_fp16.tflite  model_int8.tflite  model_qat_int8.tflite
                                       each: raw uint8 RGB pixels [N, H, W, 3] in (grey
                                       models convert inside), float32 logits out
      labels.txt                       one class name a line, in label order
      export_report.json export_report.md
      BLESSED | NOT_BLESSED            JSON: accuracy, threshold, reasons

An export is four steps, each its own module:

  plan       `plan.ExportPlan`: the model, its encoding, the run's `DataConfig`, where to
             and how (`ExportConfig`); `plan.load_export_data` reads the arrays from the
             one data layer (`eatnas_tf.data.datasets`).
  convert    `converters.CONVERTERS`: a table, one entry per TFLite format.
  check      `checks`: Keras reference, SavedModel parity, image-bytes (PNG) and
             tf.Example signatures, each file in LiteRT (accuracy, drop, parity, input
             convention, graph MAdds vs analytic), latency (formats timed round-robin),
             sizes, QAT drop ≤ 1 pt, blessing.
  publish    `publish`: everything is written in a hidden temp dir, renamed to the next
             version only when complete; a failure removes the temp dir and raises
             `ExportError` with one line. A version dir is never overwritten.

Entry points: `export_plan` (a plan), `export_model` (a Keras model in memory),
`export_artifact` (a model artifact dir), `export_keras_file` (a `.keras` file + encoding),
`export_candidate` (a searched candidate's stored weights, not retrained) and `export_run`
(a search run dir: the winner, or the best candidate when nothing was retrained, and
optionally the Pareto front).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.errors import one_line
from eatnas_tf.store import atomic
from export import checks as checks_lib
from export import metadata as metadata_lib
from export import publish as publish_lib
from export import report as report_lib
from export import run_source
from export import saved_model as sm_lib
from export import tflite as tflite_lib
from export.converters import CONVERTERS
from export.plan import (
    ExportConfig,
    ExportData,
    ExportError,
    ExportPlan,
    data_config,
    data_facts,
    load_export_data,
)

__all__ = ["ExportConfig", "ExportError", "ExportPlan", "export_plan", "export_model",
           "export_artifact", "export_keras_file", "export_candidate", "export_run",
           "report_lib"]

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
LABELS_FILE = "labels.txt"
BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
DEFAULT_CONFIG = ExportConfig()


# -- the export ------------------------------------------------------------------------------
def _base_report(plan: ExportPlan, data: ExportData, cost, model) -> Dict[str, Any]:
    from eatnas_tf.arch import codec

    config = plan.config
    return {
        "version": None, "path": None, "created": None,
        "source": plan.source, "weights": plan.weights,
        "arch": codec.to_text(plan.arch), "arch_json": codec.to_dict(plan.arch),
        "space": plan.space, "dataset": plan.data.dataset,
        "data": dataclasses.asdict(plan.data), "macro": dataclasses.asdict(plan.macro),
        "preprocessing": {"mean": list(data.spec.mean), "std": list(data.spec.std),
                          "image_size": plan.size, "raw_size": list(data.spec.raw_size)},
        "labels": {"file": LABELS_FILE, "class_names": list(data.class_names)},
        "params": cost.params, "params_keras": int(model.count_params()), "madds": cost.madds,
        "claim": plan.claim,
        "eval": {"split": data.heldout_split, "samples": int(len(data.y_test))},
        "latency_threads": list(config.latency_threads),
        "latency_settings": {"batch": 1, "warmup": config.latency_warmup,
                             "runs": config.latency_runs, "runtime": "ai_edge_litert"},
        "config": {**config.describe(), "representative_samples": int(len(data.x_rep))},
    }


def _write_saved_model(model, data: ExportData, tmp: str) -> None:
    try:
        sm_lib.write_saved_model(model, data.spec, tmp)
    except Exception as e:
        raise ExportError(f"SavedModel export failed: {one_line(e)}") from e


def _convert_all(plan: ExportPlan, model, data: ExportData, tmp: str, keras: Dict[str, Any],
                 analytic_madds: int, timing: Dict[str, float]) -> Dict[str, Dict[str, Any]]:
    """Every format of the plan through its converter and its LiteRT check."""
    from eatnas_tf.store import atomic

    formats: Dict[str, Dict[str, Any]] = {}
    for fmt in plan.config.formats:
        conv = CONVERTERS[fmt]
        t0 = time.perf_counter()
        out = conv.convert(plan, model, data)
        path = atomic.write_bytes(os.path.join(tmp, conv.filename), out.blob)
        t_md = time.perf_counter()  # TFLite metadata (name, input, labels) before the checks
        md = metadata_lib.for_export(path, plan, data, fmt)
        t1 = time.perf_counter()
        entry = checks_lib.tflite_file(path, data, keras, analytic_madds)
        entry.update(out.facts, metadata=md)
        timing[f"{fmt}_convert"] = t_md - t0
        timing[f"{fmt}_metadata"] = t1 - t_md
        timing[f"{fmt}_check"] = time.perf_counter() - t1
        formats[fmt] = entry
    return formats


def _write_outputs(tmp: str, report: Dict[str, Any], data: ExportData) -> None:
    from eatnas_tf.store import atomic

    blessed = report["blessing"]["blessed"]
    atomic.write_json(os.path.join(tmp, BLESSED if blessed else NOT_BLESSED),
                      report["blessing"], sort_keys=False)
    atomic.write_text(os.path.join(tmp, LABELS_FILE), "".join(f"{n}\n" for n in data.class_names))
    report_lib.write_json(os.path.join(tmp, REPORT_JSON), report)
    report_lib.write_markdown(os.path.join(tmp, REPORT_MD), report_lib.to_markdown(report))


def export_plan(plan: ExportPlan) -> Dict[str, Any]:
    """Exports and checks `plan`'s model; returns the report (also written to disk).

    Raises:
      ExportError: with one line; nothing is left under `plan.export_dir` but what was there.
    """
    from eatnas_tf.arch.cost import count

    base = publish_lib.prepare_export_dir(plan.export_dir)
    model = tflite_lib.inference_model(plan.model)
    data = load_export_data(plan)
    cost = count(plan.arch, plan.cost_macro)
    timing: Dict[str, float] = {}
    report = _base_report(plan, data, cost, model)
    with publish_lib.staging(base) as tmp:
        try:
            t = time.perf_counter()
            keras = checks_lib.keras_reference(model, data)
            report["keras"] = {"accuracy": keras["accuracy"]}
            timing["keras_eval"] = time.perf_counter() - t

            t = time.perf_counter()
            _write_saved_model(model, data, tmp)
            timing["saved_model_write"] = time.perf_counter() - t
            t = time.perf_counter()
            report["saved_model"] = checks_lib.saved_model(tmp, data, keras)
            timing["saved_model_check"] = time.perf_counter() - t

            formats = _convert_all(plan, model, data, tmp, keras, cost.madds, timing)
            t = time.perf_counter()
            lat = checks_lib.latency({f: os.path.join(tmp, e["file"]) for f, e in formats.items()},
                                     plan.config)
            timing["latency"] = time.perf_counter() - t
            for fmt, ratio in checks_lib.size_ratios(formats).items():
                formats[fmt]["latency"] = lat[fmt]
                formats[fmt]["size_ratio_vs_fp32"] = ratio
            report["formats"] = formats
            from export import latency_report  # predicted vs measured (issue 16)

            latency_report.attach(report, plan)

            report["checks"] = checks_lib.summary(report["saved_model"], formats, plan.config,
                                                  cost.madds, plan.claim)
            report["blessing"] = checks_lib.blessing(report["saved_model"]["accuracy"],
                                                     report["checks"], plan.config.bless_threshold)
            report["timing_s"] = {k: round(v, 3) for k, v in timing.items()}

            # Name the version last, write the report into the temp dir, then publish.
            version = publish_lib.next_version(base)
            report["version"] = str(version)
            report["path"] = os.path.join(base, str(version))
            report["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")
            _write_outputs(tmp, report, data)
            publish_lib.publish(tmp, base, version)
        except ExportError:
            raise
        except tflite_lib.ConversionError as e:
            raise ExportError(str(e)) from e
        except Exception as e:
            raise ExportError(f"export failed: {one_line(e)}") from e
    return report


def export_model(model, arch, macro, *, mean: Sequence[float], std: Sequence[float],
                 dataset: Union[str, DataConfig, Mapping[str, Any]], space: str,
                 export_dir: str, config: ExportConfig = DEFAULT_CONFIG,
                 image_size: Optional[int] = None, claim: Optional[Dict[str, Any]] = None,
                 source: Optional[Dict[str, Any]] = None,
                 weights: str = "retrained") -> Dict[str, Any]:
    """Exports and checks one Keras 3 model in memory (`export_plan` of its plan).

    Args:
      dataset: the data to check on: a dataset name, a `DataConfig` or its stored dict
        (see `plan.data_config`).
      the others: the fields of `ExportPlan`.
    """
    return export_plan(ExportPlan(
        model=model, arch=arch, macro=macro, data=data_config(dataset), mean=tuple(mean),
        std=tuple(std), space=space, export_dir=export_dir, config=config,
        image_size=image_size, claim=dict(claim or {}), source=dict(source or {}),
        weights=weights))


# -- entry points ----------------------------------------------------------------------------
def _load_artifact(model_dir: str):
    from eatnas_tf.model import artifact

    if not os.path.isdir(model_dir):
        raise ExportError(f"model_dir: {model_dir} is not a directory")
    for f in (artifact.MODEL_FILE, artifact.META_FILE):
        if not os.path.isfile(os.path.join(model_dir, f)):
            raise ExportError(f"model_dir: {model_dir} has no {f}")
    try:
        model, meta = artifact.load(model_dir)
        arch, macro = artifact.arch_and_macro(meta)
    except Exception as e:  # corrupt zip, bad JSON, unknown layer, ...
        raise ExportError(f"model_dir: cannot load {model_dir}: {one_line(e)}") from None
    return model, meta, arch, macro


def export_artifact(model_dir: str, export_dir: str, *,
                    formats: Optional[Sequence[str]] = None, threshold: Optional[float] = None,
                    config: Optional[ExportConfig] = None,
                    claim: Optional[Dict[str, Any]] = None,
                    data: Union[None, str, Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Exports a model artifact (`model.keras` + `meta.json`, see `eatnas_tf.model.artifact`).

    `formats` and `threshold`, when given, override the config's `formats` /
    `bless_threshold`; the search claim defaults to the artifact's recorded params, MAdds
    and test accuracy; `data` (the run's stored data config) defaults to the artifact's
    dataset name.
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
        model, arch, macro, mean=pre["mean"], std=pre["std"],
        dataset=data if data is not None else meta.get("dataset"),
        space=meta.get("space", ""), export_dir=export_dir, config=config,
        image_size=pre.get("image_size"), claim=claim,
        source={"kind": "artifact", "model_dir": os.path.abspath(model_dir)})


def export_keras_file(model_path: str, arch_text: str, *, space: str,
                      dataset: Union[str, Mapping[str, Any]], export_dir: str,
                      config: ExportConfig = DEFAULT_CONFIG) -> Dict[str, Any]:
    """Exports a bare `.keras` file given its encoding; the macro comes from the space and,
    with no meta.json, mean/std from the data layer's bundle of `dataset`."""
    from eatnas_tf.arch import codec
    from eatnas_tf.arch.space import get_space

    sp = get_space(space)
    arch = sp.validate(codec.parse_arch(arch_text, **sp.arch_defaults()))
    if not os.path.isfile(model_path):
        raise ExportError(f"model: {model_path} is not a file")
    try:
        from eatnas_tf.model.artifact import load_keras_model

        model = load_keras_model(model_path)
    except Exception as e:
        raise ExportError(f"model: cannot load {model_path}: {one_line(e)}") from None
    cfg = data_config(dataset)
    facts = data_facts(cfg)
    return export_model(model, arch, sp.macro, mean=facts.mean, std=facts.std, dataset=cfg,
                        space=space, export_dir=export_dir, config=config,
                        source={"kind": "keras_file", "model": os.path.abspath(model_path)})


def export_candidate(run_dir: str, export_dir: str, *, config: ExportConfig = DEFAULT_CONFIG,
                     report: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Exports the best searched candidate of a run that retrained nothing: its stored
    weights (`DIR/weights/NNNNN.npz`) in the model the builder makes of its architecture,
    whitened with the statistics of the data it was trained on. The report says so
    (`"weights": "search candidate cNNNNN, not retrained"`).

    Raises:
      ExportError: no candidate with weights, or the run's space / data cannot be read.
    """
    import keras

    from eatnas_tf.arch import codec
    from eatnas_tf.model import layer_weights, weights_io
    from eatnas_tf.model.builder import build_model

    report = run_source.run_report(run_dir) if report is None else report
    rec, wpath, rank = run_source.best_candidate(run_dir)
    space, macro, defaults = run_source.stored_space(run_dir, report)
    stored = run_source.stored_data(run_dir, report)
    if stored is None:
        raise ExportError(f"run_dir: {run_dir} records no data config (config.json)")
    searched = data_config(stored)
    # The candidate's whitening is that of the data it trained on (the stored split).
    facts = data_facts(dataclasses.replace(
        searched, split=stored.get("split", "search") if isinstance(stored, dict) else "search"))
    h, _, c = facts.image_shape
    macro = macro.with_(image_size=h, in_channels=c, num_classes=facts.num_classes)
    cid = int(rec["id"])
    try:
        arch = codec.parse_arch(rec["arch"], **defaults)
        model = build_model(arch, macro)
        layer_weights.assign(model, weights_io.load(wpath), strict=True)
    except Exception as e:
        keras.backend.clear_session()
        raise ExportError(f"run_dir: cannot rebuild candidate c{cid:05d} from {wpath}: "
                          f"{one_line(e)}") from None
    note = f"search candidate c{cid:05d}, not retrained"
    if rank > 1:
        note += f" (rank {rank} by score: the better ones have no stored weights)"
    claim = {"params": rec.get("params"), "madds": rec.get("madds"),
             "val_acc": rec.get("val_acc"), "score": rec.get("score")}
    return export_model(model, arch, macro, mean=facts.mean, std=facts.std, dataset=searched,
                        space=space, export_dir=export_dir, config=config, claim=claim,
                        source={"kind": "search_candidate", "run_dir": os.path.abspath(run_dir),
                                "candidate": cid, "weights_file": os.path.abspath(wpath),
                                "stage": rec.get("stage"), "rank_by_score": rank},
                        weights=note)


def _export_pareto(run_dir: str, export_dir: str, run_report: Dict[str, Any],
                   config: ExportConfig, data) -> List[Dict[str, Any]]:
    members: List[Dict[str, Any]] = []
    for k, m in enumerate(run_report.get("pareto") or []):
        if not m.get("model_dir"):
            continue
        row = {"arch": m.get("arch"), "val_acc": m.get("val_acc"), "madds": m.get("madds"),
               "model_dir": m.get("model_dir")}
        mdir = m["model_dir"]
        mdir = mdir if os.path.isabs(mdir) else os.path.join(run_dir, mdir)
        try:
            row["report"] = export_artifact(
                mdir, os.path.join(export_dir, "pareto", f"{k:02d}"), config=config,
                claim={"madds": m.get("madds"), "val_acc": m.get("val_acc")}, data=data)
        except ExportError as e:  # one bad member must not lose the others
            row["error"] = str(e)
        members.append(row)
    return members


def export_run(run_dir: str, export_dir: Optional[str] = None, *, pareto: bool = False,
               config: ExportConfig = DEFAULT_CONFIG) -> Dict[str, Any]:
    """Exports a search run's winner (`run_dir/winner/`) — or, when the search retrained
    nothing, its best candidate's stored weights (`export_candidate`) — and, with
    `pareto`, every member of `report.json`'s `pareto` list that has a `model_dir` (to
    `export_dir/pareto/<index>/<version>/`).

    The data the model is checked on is the run's stored data config (test split).
    Writes the winner's export_report.md with a Pareto table and, when `run_dir/report.md`
    exists, (re)places its "## Export" section.

    Returns:
      {"winner": report, "pareto": [{"arch", "val_acc", "madds", "model_dir", "report" |
      "error"}], "export_dir": ...}.
    """
    if not os.path.isdir(run_dir):
        raise ExportError(f"run_dir: {run_dir} is not a directory")
    export_dir = export_dir or os.path.join(run_dir, "export")
    run_report = run_source.run_report(run_dir)
    data = run_source.stored_data(run_dir, run_report)
    winner_dir = os.path.join(run_dir, "winner")
    if os.path.isdir(winner_dir):
        w = run_report.get("winner") or {}
        claim = ({"params": w.get("params"), "madds": w.get("madds"),
                  "test_accuracy": w.get("test_accuracy")} if w else None)
        winner = export_artifact(winner_dir, export_dir, config=config, claim=claim, data=data)
    else:
        winner = export_candidate(run_dir, export_dir, config=config, report=run_report)
    members: List[Dict[str, Any]] = []
    if pareto:
        members = _export_pareto(run_dir, export_dir, run_report, config, data)
        md = report_lib.to_markdown(winner, pareto=members)
        report_lib.write_markdown(os.path.join(winner["path"], REPORT_MD), md)
    run_md = os.path.join(run_dir, "report.md")
    if os.path.exists(run_md):
        report_lib.update_run_report(run_md, report_lib.to_markdown(winner, pareto=members,
                                                                    heading="###"))
    return {"winner": winner, "pareto": members, "export_dir": os.path.abspath(export_dir)}


EXPORT_SUMMARY = "export_summary.json"


def export_run_once(run_dir: str, qat_epochs: int = 1, qat_samples: int = 5000) -> Dict[str, Any]:
    """The export phase of `eatnas_tf.run`: exports the run's winner once (a rerun reuses
    the stored summary, `DIR/export_summary.json`) and returns the summary the pipeline's
    report keeps (`markdown`: the report.md section)."""
    marker = os.path.join(run_dir, EXPORT_SUMMARY)
    if os.path.exists(marker):
        return atomic.read_json(marker)
    config = ExportConfig(qat=tflite_lib.QATConfig(epochs=qat_epochs, max_samples=qat_samples))
    out = export_run(run_dir, config=config)
    w = out["winner"]
    summary = {"export_dir": out["export_dir"], "path": w.get("path"),
               "checks": w.get("checks"), "timing_s": w.get("timing_s"),
               "markdown": report_lib.to_markdown(w, heading="###"),
               "formats": {k: {"accuracy": v.get("accuracy"), "size_bytes": v.get("size_bytes"),
                               "latency_ms_1thread": (v.get("latency") or {}).get("1", {})
                               .get("median_ms")}
                           for k, v in (w.get("formats") or {}).items()}}
    atomic.write_json(marker, summary)
    return summary
