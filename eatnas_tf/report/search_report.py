"""The final report of a search run: `DIR/report.json`, `DIR/report.md` and `DIR/plots/`.

`write_report` is the last step of a search (docs/design.md §4 "Run directory"). It takes the
runner's summary dict, the candidate records (candidates.jsonl) and the per-step
population history, draws the plots and writes:

  * `report.json`: the given `report` dict plus `plots`, a map name → path relative to the
    run directory (`{"quality": "plots/quality.png", ...}`), for tools that post-process
    runs;
  * `report.md`: the human-readable summary — run facts, wall time per stage, the winner,
    the top-10 candidates by score, per-stage figures, the Pareto front and the plots.

Both files are written atomically (temp file + `os.replace`), so a run killed while
reporting leaves the previous report (or none), never a truncated one. Every key of
`report` except `winner` may be missing and `winner` may be None (a search without
retraining): the report still renders. A plot that fails to draw is left out and its
error recorded under `plot_errors` rather than losing the report of a long search.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from eatnas_tf.report import plots as plots_lib
from eatnas_tf.report.pareto import finite_float as _num
from eatnas_tf.report.plots import human
from eatnas_tf.store import atomic

PLOTS_DIR = "plots"
TOP_N = 10
_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------
def fmt_acc(v: Any) -> str:
    """0.91234 → "91.23%"; "–" when missing."""
    v = _num(v)
    return "–" if v is None else f"{100 * v:.2f}%"


def fmt_float(v: Any, digits: int = 4) -> str:
    v = _num(v)
    return "–" if v is None else f"{v:.{digits}f}"


def fmt_count(v: Any) -> str:
    """1234567 → "1.23M"."""
    v = _num(v)
    return "–" if v is None else human(v)


def fmt_duration(seconds: Any) -> str:
    """Seconds as "42.0 s", "12 min 03 s" or "2 h 05 min"."""
    s = _num(seconds)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _cell(v: Any) -> str:
    """A value as a Markdown table cell (pipes and newlines escaped)."""
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    return "–" if not text else f"`{_cell(text)}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


# ---------------------------------------------------------------------------------------
# json
# ---------------------------------------------------------------------------------------
def _json_default(o: Any) -> Any:
    """numpy scalars/arrays and other stragglers in the runner's dicts (anything else as
    its `str`: a report is never lost to one odd value)."""
    try:
        return atomic.to_plain(o)
    except TypeError:
        return str(o)


# ---------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------
def _ok(c: Mapping[str, Any]) -> bool:
    return c.get("status", "ok") == "ok" and _num(c.get("val_acc")) is not None


def top_candidates(candidates: Sequence[Mapping[str, Any]], n: int = TOP_N,
                   stage: Optional[str] = None) -> List[Mapping[str, Any]]:
    """The `n` best ok candidates by Eq. 1 score (then val_acc, then id), one per arch.

    A repeated architecture (a duplicate re-using an earlier evaluation) appears once.
    `stage` restricts to one stage; scores of stages on different data do not compare.
    """
    rows = [c for c in candidates if _ok(c) and (stage is None or c.get("stage") == stage)]

    def key(c):
        score = _num(c.get("score"))
        return (-(score if score is not None else -math.inf), -_num(c.get("val_acc")),
                c.get("id") if isinstance(c.get("id"), int) else 0)

    out, seen = [], set()
    for c in sorted(rows, key=key):
        k = (c.get("stage"), c.get("hash") or c.get("arch"))
        if k in seen:
            continue
        seen.add(k)
        out.append(c)
        if len(out) >= n:
            break
    return out


def _stage_names(report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> List[str]:
    names = [s.get("name") for s in report.get("stages") or [] if s.get("name")]
    for c in candidates:
        s = c.get("stage")
        if s and s not in names:
            names.append(s)
    return names


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------
def _winner_space(report: Mapping[str, Any]) -> Optional[str]:
    """The space the winner lives in: its stage's space, else the report's."""
    stage = _winner_stage(report)
    return stage.get("space") if stage.get("space") else report.get("space")


def _winner_stage(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stage summary of the winner's stage ({} when the report names none)."""
    winner = report.get("winner") or {}
    for s in report.get("stages") or []:
        if winner.get("stage") and s.get("name") == winner.get("stage"):
            return s
    return {}


def _winner_reader(report: Mapping[str, Any], space_name: str):
    """(MacroSpec, arch defaults) reading the winner's text: the stage's stored ones (a
    derived space, a channel mode), else the named space's."""
    from eatnas_tf.arch import space as space_lib
    from eatnas_tf.arch.cost import MacroSpec

    stage = _winner_stage(report)
    if isinstance(stage.get("macro"), dict) and isinstance(stage.get("arch_defaults"), dict):
        m = dict(stage["macro"])
        m["block_strides"] = tuple(m.get("block_strides", ()))
        return MacroSpec(**m), dict(stage["arch_defaults"])
    space = space_lib.get_space(space_name)
    return space.macro, space.arch_defaults()


def _pareto_target(report: Mapping[str, Any], metric: str = "madds") -> Optional[float]:
    """The last stage's resource target when its metric is `metric` (the scatter's x)."""
    stages = report.get("stages") or []
    if stages and stages[-1].get("cost_metric", "madds") == metric:
        return _num(stages[-1].get("target"))
    return None


def make_plots(run_dir: str, report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]],
               history: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, str]]:
    """Draws what the data allow under `run_dir/plots/`.

    Returns `{"plots": {name: relative path}, "errors": {name: message}}`.
    """
    jobs: Dict[str, Callable[[str], str]] = {}
    if any(_num(h.get("mean_acc")) is not None for h in history):
        jobs["quality"] = lambda p: plots_lib.quality_over_time(
            history, p, title=f"Population accuracy and quality — {report.get('space', 'search')}")
    if any(_ok(c) and _num(c.get("madds")) is not None for c in candidates):
        jobs["pareto"] = lambda p: plots_lib.pareto_scatter(
            candidates, p, cost_key="madds", target=_pareto_target(report),
            anchors=report.get("anchors"))
    if any(_ok(c) and _num(c.get("latency_ms")) is not None for c in candidates):
        jobs["pareto_latency"] = lambda p: plots_lib.pareto_scatter(
            candidates, p, cost_key="latency_ms", target=_pareto_target(report, "latency"))
    winner = report.get("winner")
    space_name = _winner_space(report)
    if winner and winner.get("arch") and space_name:
        def draw_winner(p):
            from eatnas_tf.arch import codec

            macro, defaults = _winner_reader(report, space_name)
            arch = codec.parse_arch(winner["arch"], **defaults)
            acc = winner.get("test_accuracy")
            acc = acc if acc is not None else winner.get("val_acc")
            label = "test" if winner.get("test_accuracy") is not None else "val"
            title = f"Winner ({space_name})" + (f", {label} accuracy {fmt_acc(acc)}"
                                                if _num(acc) is not None else "")
            return plots_lib.draw_arch(arch, macro, p, title=title)
        jobs["winner_arch"] = draw_winner
    done: Dict[str, str] = {}
    errors: Dict[str, str] = {}
    for name, job in jobs.items():
        rel = f"{PLOTS_DIR}/{name}.png"
        try:
            job(os.path.join(run_dir, PLOTS_DIR, f"{name}.png"))
            done[name] = rel
        except Exception as e:  # a plot must not cost the report of a long search
            errors[name] = f"{type(e).__name__}: {e}"
            _log.warning("report plot %s failed: %s", name, errors[name])
    return {"plots": done, "errors": errors}


# ---------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------
_SHOWN_KEYS = {"winner", "space", "strategy", "seed", "wall_s", "stages", "pareto", "topk",
               "plots", "plot_errors"}


def _run_section(report: Mapping[str, Any]) -> List[str]:
    rows = [("space", _code(report.get("space"))), ("strategy", _cell(report.get("strategy"))),
            ("seed", _cell(report.get("seed"))),
            ("total wall time", fmt_duration(report.get("wall_s")))]
    for s in report.get("stages") or []:
        rows.append((f"wall time {_cell(s.get('name', '?'))}", fmt_duration(s.get("wall_s"))))
    for k, v in report.items():  # the runner's extras (retrain time, export, ...), scalars only
        if k in _SHOWN_KEYS or isinstance(v, (dict, list, tuple)):
            continue
        rows.append((_cell(k), fmt_duration(v) if k.endswith("wall_s") else _cell(v)))
    return ["## Run", ""] + _table(["", ""], rows) + [""]


def _winner_section(report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]],
                    plots: Mapping[str, str]) -> List[str]:
    w = report.get("winner")
    out = ["## Winner", ""]
    if not w:
        out += ["_No winner: this search ran without retraining its top candidates._", ""]
        stages = _stage_names(report, candidates)
        best = top_candidates(candidates, 1, stage=stages[-1] if stages else None)
        if best:
            b = best[0]
            out += [f"Best candidate by score (stage {_cell(b.get('stage'))}, "
                    f"#{_cell(b.get('id'))}): val accuracy {fmt_acc(b.get('val_acc'))}, "
                    f"{fmt_count(b.get('params'))} params, {fmt_count(b.get('madds'))} MAdds.",
                    "", "```text", str(b.get("arch")), "```", ""]
        return out
    out += ["```text", str(w.get("arch", "")), "```", ""]
    rows = [("test accuracy", fmt_acc(w.get("test_accuracy"))),
            ("val accuracy", fmt_acc(w.get("val_acc"))),
            ("params", f"{fmt_count(w.get('params'))} ({_int(w.get('params'))})"),
            ("MAdds", f"{fmt_count(w.get('madds'))} ({_int(w.get('madds'))})"),
            ("source", _cell(w.get("source")))]
    for k in ("stage", "id", "model_dir"):
        if w.get(k) is not None:
            rows.append((k, _code(w[k]) if k == "model_dir" else _cell(w[k])))
    out += _table(["", ""], rows) + [""]
    if "winner_arch" in plots:
        out += [f"![Winner architecture]({plots['winner_arch']})", ""]
    return out


def _int(v: Any) -> str:
    v = _num(v)
    return "–" if v is None else f"{int(v):,}"


def _stages_section(report: Mapping[str, Any], plots: Mapping[str, str]) -> List[str]:
    stages = report.get("stages") or []
    out = ["## Stages", ""]
    if stages:
        rows = []
        for s in stages:
            rows.append([_cell(s.get("name")), _code(s.get("space")), _cell(s.get("dataset")),
                         _cell(s.get("candidates")), _cell(s.get("failed")),
                         fmt_duration(s.get("wall_s")), fmt_acc(s.get("best_val_acc")),
                         fmt_float(s.get("best_score")), fmt_float(s.get("best_quality")),
                         _converged(s)])
        out += _table(["stage", "space", "dataset", "candidates", "failed", "wall time",
                       "best val acc", "best score", "best quality", "converged at"], rows)
        out.append("")
    else:
        out += ["_No stage summary._", ""]
    if "quality" in plots:
        out += ["Population mean accuracy (± std) and population quality (Eq. 3) over the "
                "evaluated candidates; stars mark each stage's best-quality population.", "",
                f"![Population quality]({plots['quality']})", ""]
    return out


def _converged(stage: Mapping[str, Any]) -> str:
    """Candidates at convergence; "not converged" only when the runner reported None."""
    if "converged_at" not in stage:
        return "–"
    v = stage["converged_at"]
    return "not converged" if v is None else _cell(v)


def _top_section(report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> List[str]:
    out = [f"## Top-{TOP_N} candidates by score", ""]
    stages = _stage_names(report, candidates) or [None]
    any_rows = False
    for stage in stages:
        top = top_candidates(candidates, TOP_N, stage=stage)
        if not top:
            continue
        any_rows = True
        if len(stages) > 1:
            out += [f"### {stage}", ""]
        rows = [[rank, _cell(c.get("id")), _cell(c.get("origin")), fmt_acc(c.get("val_acc")),
                 fmt_float(c.get("score")), fmt_count(c.get("params")), fmt_count(c.get("madds")),
                 fmt_duration(c.get("wall_s")), _code(c.get("arch"))]
                for rank, c in enumerate(top, start=1)]
        out += _table(["#", "id", "origin", "val acc", "score", "params", "MAdds", "train time",
                       "arch"], rows) + [""]
    if not any_rows:
        out += ["_No successful candidate._", ""]
    n_ok = sum(1 for c in candidates if _ok(c))
    if candidates:
        out += [f"{len(candidates)} candidates recorded, {n_ok} ok, "
                f"{len(candidates) - n_ok} failed or without accuracy.", ""]
    return out


def _retrained_section(report: Mapping[str, Any]) -> List[str]:
    topk = report.get("topk") or []
    if not topk:
        return []
    rows = [[rank, _cell(t.get("stage")), fmt_acc(t.get("search_val_acc")),
             fmt_acc(t.get("val_acc")), fmt_acc(t.get("test_acc")), fmt_count(t.get("params")),
             fmt_count(t.get("madds")), _code(t.get("arch"))]
            for rank, t in enumerate(topk, start=1)]
    return (["## Retrained top-k", ""]
            + _table(["#", "stage", "search val acc", "val acc", "test acc", "params", "MAdds",
                      "arch"], rows) + [""])


def _pareto_section(report: Mapping[str, Any], plots: Mapping[str, str]) -> List[str]:
    front = report.get("pareto") or []
    if not front and "pareto" not in plots:
        return []
    out = ["## Accuracy vs MAdds", ""]
    if front:
        rows = [[_cell(p.get("id")), fmt_acc(p.get("val_acc")), fmt_count(p.get("madds")),
                 fmt_count(p.get("params")), _code(p.get("model_dir")), _code(p.get("arch"))]
                for p in front]
        out += ["Pareto front (validation accuracy vs MAdds):", ""]
        out += _table(["id", "val acc", "MAdds", "params", "model dir", "arch"], rows) + [""]
    if "pareto" in plots:
        out += [f"![Accuracy vs MAdds]({plots['pareto']})", ""]
    if "pareto_latency" in plots:
        out += [f"![Accuracy vs predicted latency]({plots['pareto_latency']})", ""]
    return out


def render_markdown(report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> str:
    """report.md's text; plot links come from `report["plots"]`."""
    plots = report.get("plots") or {}
    title = "# Search report"
    if report.get("space"):
        title += f": {report['space']}"
    if report.get("strategy"):
        title += f" ({report['strategy']})"
    lines = [title, ""]
    lines += _run_section(report)
    lines += _winner_section(report, candidates, plots)
    lines += _stages_section(report, plots)
    lines += _top_section(report, candidates)
    lines += _retrained_section(report)
    lines += _pareto_section(report, plots)
    if report.get("plot_errors"):
        lines += ["## Plot errors", ""]
        lines += [f"- {name}: {_cell(msg)}" for name, msg in report["plot_errors"].items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
def write_report(run_dir: str, report: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]],
                 history: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Writes `run_dir/plots/*.png`, `run_dir/report.json` and `run_dir/report.md`.

    Args:
      run_dir: the search's run directory (created if missing).
      report: the runner's summary (`winner`, `space`, `strategy`, `seed`, `wall_s`,
        `stages`, `pareto`, `topk`, any extras); not modified.
      candidates: candidate records as in candidates.jsonl; a record with
        `"winner": True` is highlighted in the Pareto plot.
      history: per-step population figures (`step`, `candidates`, `stage`, `mean_acc`,
        `std_acc`, `quality`, `best_acc`).

    Returns:
      The dict written to report.json: `report` plus `plots` (name → path relative to
      `run_dir`: quality, pareto, winner_arch — each only when it could be drawn) and,
      when a plot failed, `plot_errors`.
    """
    os.makedirs(run_dir, exist_ok=True)
    candidates = list(candidates or [])
    history = list(history or [])
    out: Dict[str, Any] = dict(report or {})
    out.setdefault("winner", None)
    drawn = make_plots(run_dir, out, candidates, history)
    out["plots"] = drawn["plots"]
    if drawn["errors"]:
        out["plot_errors"] = drawn["errors"]
    else:
        out.pop("plot_errors", None)
    atomic.write_text(os.path.join(run_dir, "report.json"),
                      json.dumps(out, indent=2, default=_json_default) + "\n")
    atomic.write_text(os.path.join(run_dir, "report.md"), render_markdown(out, candidates))
    return out
