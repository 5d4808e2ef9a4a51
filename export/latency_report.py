"""Predicted vs measured latency of each exported TFLite file (issue 16).

`attach(report, plan)` adds `report["latency_prediction"]`: for every exported format that
has a latency table of the same TFLite format (fp32, fp16, int8; the QAT file is an int8
graph and uses the int8 table) and a thread count the export timed, the predictor's
latency of the architecture (`eatnas_tf.latency`: sum of its layers' entries + the
table's fitted constant) next to the export's measured LiteRT median at those threads:

    {"tables": [...], "rows": [{"format": "fp32", "threads": 1, "predicted_ms": 0.41,
      "measured_ms": 0.43, "error_pct": -4.7, "table": ".../lat_fp32.json",
      "device": "host: ..."}, ...], "missing": {"fp16": "no fp16 table"}}

Tables come from the search that produced the model (its `--latency_table`, read from the
run's config.json) and from the host's table directory (`table_dir()`:
`$XDG_CACHE_HOME/eatnas_tf/latency/`, default `~/.cache/eatnas_tf/latency/`), where
`python -m eatnas_tf.latency_table --out=...` may put one per format. Nothing is measured
for a format without a table; a host table's missing layers are measured on this host and
added; a device table (adb) is never extended from the host. The exported files hold
the input conversion (uint8 → float, normalisation) that the layer table does not: for
large inputs the prediction is low by that much. A failure here never fails the export:
the section then holds `{"error": "..."}`.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Dict, List, Optional, Sequence

FORMAT_TABLE = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "qat": "int8"}


def table_dir() -> str:
    """Where host latency tables are looked for."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "eatnas_tf", "latency")


def _run_table(plan) -> Optional[str]:
    run_dir = (plan.source or {}).get("run_dir")
    if not run_dir:
        return None
    import json

    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f).get("config", {})
    except (OSError, ValueError):
        return None
    stages = [cfg.get("stage")] + [s for s in (cfg.get("stages") or [])]
    for st in stages:
        lat = ((st or {}).get("search") or {}).get("latency") or {}
        if lat.get("table"):
            return lat["table"]
    return None


def find_tables(plan, extra: Sequence[str] = ()) -> List[str]:
    """Table files for `plan`: `extra`, the producing search's, the host directory's."""
    paths = list(extra)
    run = _run_table(plan)
    if run:
        paths.append(run)
    paths += sorted(glob.glob(os.path.join(table_dir(), "*.json")))
    seen, out = set(), []
    for p in paths:
        p = os.path.abspath(p)
        if p not in seen and os.path.exists(p):
            seen.add(p)
            out.append(p)
    return out


def compare(formats: Dict[str, Dict[str, Any]], arch, macro, paths: Sequence[str]) -> Dict:
    """The `latency_prediction` section for `formats` (the export report's) from `paths`."""
    from eatnas_tf.latency.config import describe_device
    from eatnas_tf.latency.predictor import Predictor
    from eatnas_tf.latency.table import LatencyTable

    tables = []
    for p in paths:
        try:
            tables.append(LatencyTable.load(p))
        except ValueError:
            continue  # not a latency table
    rows, missing = [], {}
    for name, entry in formats.items():
        want = FORMAT_TABLE.get(name)
        measured = entry.get("latency") or {}
        usable = [t for t in tables if t.fmt == want and str(t.threads) in measured]
        if not usable:
            missing[name] = f"no {want} table for threads {sorted(measured)}"
            continue
        for t in usable:
            host = (t.device or {}).get("kind") == "host"
            before = t.measured
            try:
                pred = Predictor(t, measure_missing=host).predict_ms(arch, macro)
            except KeyError as e:
                missing[name] = f"{t.path}: {e.args[0]}"
                continue
            if t.measured != before:
                t.save()
            meas = float(measured[str(t.threads)]["median_ms"])
            rows.append({"format": name, "table_format": t.fmt, "threads": t.threads,
                         "predicted_ms": round(pred, 4), "measured_ms": round(meas, 4),
                         "error_pct": round((pred - meas) / meas * 100, 2) if meas else None,
                         "table": t.path, "device": describe_device(t.device),
                         "fitted": bool(t.fit)})
    return {"tables": [t.path for t in tables], "rows": rows, "missing": missing}


def attach(report: Dict[str, Any], plan, tables: Sequence[str] = ()) -> Dict[str, Any]:
    """Adds and returns `report["latency_prediction"]` (see the module docstring)."""
    try:
        macro = plan.cost_macro  # the network at the served input size
        out = compare(report.get("formats") or {}, plan.arch, macro, find_tables(plan, tables))
    except Exception as e:  # noqa: BLE001 - a prediction must not cost the export
        from eatnas_tf.errors import one_line

        out = {"error": one_line(e)}
    report["latency_prediction"] = out
    return out


def markdown(report: Dict[str, Any]) -> List[str]:
    """The section as Markdown lines (empty when there is nothing to show)."""
    sec = report.get("latency_prediction") or {}
    rows = sec.get("rows") or []
    if not rows:
        return []
    out = ["Predicted (layer table) vs measured LiteRT latency:", "",
           "| format | threads | predicted ms | measured ms | error % | table device |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['format']} | {r['threads']} | {r['predicted_ms']:.3f} | "
                   f"{r['measured_ms']:.3f} | {r['error_pct']:+.1f} | {r['device']} |")
    return out + [""]
