"""What a search run directory holds for export: its stored configs, its data config, its
winner artifact or, for a search that did no retraining, its best candidate's weights.

  DIR/report.json        "winner", "pareto", "topk", "stages" (written by the search)
  DIR/config.json        {"config": {"stage": {"data", "space", ...}}} (search) or
                         {"config": {"pipeline": {"data", ...}}} (the EAT-NAS pipeline)
  DIR/winner/            the retrained winner (`eatnas_tf.model.artifact`)
  DIR/candidates.jsonl   one record per candidate (arch, score, stage, status)
  DIR/weights/NNNNN.npz  trained weights of the candidates kept as possible parents

The data config is the one the run trained on, found in this order: a `data` dict of
report.json's last stage, config.json's stage / pipeline `data`, the artifact's `dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from eatnas_tf.errors import one_line
from export.plan import ExportError

ARCH_DEFAULTS = ("stem", "head", "channel_mode", "shortcut")


def read_json(path: str, what: str) -> Dict[str, Any]:
    """The JSON object in `path` ({} when absent); ExportError (one line) when unreadable."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            out = json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError(f"{what}: cannot read {path}: {one_line(e)}") from None
    return out if isinstance(out, dict) else {}


def run_report(run_dir: str) -> Dict[str, Any]:
    return read_json(os.path.join(run_dir, "report.json"), "run_dir")


def run_config(run_dir: str) -> Dict[str, Any]:
    """The experiment config the run stored (config.json's "config"; a legacy flat file as
    it is)."""
    c = read_json(os.path.join(run_dir, "config.json"), "run_dir")
    return c.get("config", c) if isinstance(c.get("config"), dict) else c


def _stage_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("stage", "pipeline"):
        if isinstance(config.get(key), dict):
            return config[key]
    return {}


def stored_data(run_dir: str, report: Optional[Mapping[str, Any]] = None,
                fallback: Optional[str] = None):
    """The run's data config as stored (a dict, or the `fallback` dataset name), or None."""
    report = run_report(run_dir) if report is None else report
    stages = report.get("stages") or []
    if stages and isinstance(stages[-1].get("data"), dict):
        return stages[-1]["data"]
    data = _stage_config(run_config(run_dir)).get("data")
    if isinstance(data, dict) and data.get("dataset"):
        return data
    return fallback


def stored_space(run_dir: str, report: Mapping[str, Any]):
    """(space name, MacroSpec, arch defaults) of the space the run searched: config.json's
    space dict, else the named space of report.json. The defaults (stem, head,
    channel_mode, shortcut) complete an architecture's text form."""
    from eatnas_tf.arch.cost import MacroSpec
    from eatnas_tf.arch.space import get_space

    sp = _stage_config(run_config(run_dir)).get("space")
    if isinstance(sp, dict) and isinstance(sp.get("macro"), dict):
        known = {f.name for f in dataclasses.fields(MacroSpec)}
        m = {k: v for k, v in sp["macro"].items() if k in known}
        m["block_strides"] = tuple(m.get("block_strides", ()))
        defaults = {k: sp[k] for k in ARCH_DEFAULTS if k in sp}
        return sp.get("name", report.get("space", "")), MacroSpec(**m), defaults
    name = report.get("space")
    if not name:
        raise ExportError(f"run_dir: {run_dir} records no search space (config.json, report.json)")
    try:
        space = get_space(name)
        return name, space.macro, space.arch_defaults()
    except Exception as e:
        raise ExportError(f"run_dir: {one_line(e)}") from None


def candidates(run_dir: str) -> List[Dict[str, Any]]:
    path = os.path.join(run_dir, "candidates.jsonl")
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:  # a torn last line of a killed run
                        continue
    return out


def weights_file(run_dir: str, cid: int) -> str:
    return os.path.join(run_dir, "weights", f"{cid:05d}.npz")


def best_candidate(run_dir: str) -> Tuple[Dict[str, Any], str, int]:
    """(record, weights file, rank) of the best-scored ok candidate of the last stage that
    has stored weights; rank 1 is the top candidate by score.

    Raises:
      ExportError: no ok candidate, or none with a weights file.
    """
    from eatnas_tf.report.search_report import top_candidates

    recs = candidates(run_dir)
    if not recs:
        raise ExportError(f"run_dir: {run_dir} has no winner/ model artifact and no "
                          "candidates.jsonl")
    stage = recs[-1].get("stage")
    ranked = top_candidates(recs, n=len(recs), stage=stage)
    for rank, rec in enumerate(ranked, 1):
        path = weights_file(run_dir, int(rec["id"]))
        if os.path.exists(path):
            return rec, path, rank
    raise ExportError(f"run_dir: {run_dir} has no winner/ model artifact and no stored "
                      f"weights of an ok candidate in {os.path.join(run_dir, 'weights')}")
