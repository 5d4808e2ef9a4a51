"""Per-step table and plots of an EPNAS run: how often the constraints hold, the reward.

    python -m eatnas_tf.epnas.report --run_dir=DIR --out=docs/results/epnas

Reads `DIR/candidates.jsonl` and `DIR/config.json` (the `--constraint` flags the run was
started with), recomputes each candidate's reward `r = P × Π V(U_i)` and whether every
constraint holds, groups candidates by (episode, step) as the strategy proposed them
(`info`), and writes `OUT/steps.md` (table), `OUT/steps.json` and `OUT/epnas_run.png`
(fraction inside the constraints per step; reward per candidate with the step mean; the
constrained metric per candidate with its window).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

import numpy as np

from eatnas_tf.epnas import constraints as C
from eatnas_tf.record import CandidateRecord
from eatnas_tf.store import atomic


def load(run_dir: str):
    """(candidate records, constraints, the run's settings) of an EPNAS run directory."""
    with open(os.path.join(run_dir, "candidates.jsonl")) as f:
        recs = [CandidateRecord.from_json(json.loads(line)) for line in f if line.strip()]
    cfg = atomic.read_json(os.path.join(run_dir, "config.json"))
    return (recs, *_constraints(cfg))


def _constraints(cfg: Dict[str, Any]):
    """(constraints, settings) from config.json: the experiment config (`"format": 2`,
    the EPNAS options under `config.stage.options`) or an older run's flat flag values."""
    if "format" in cfg:
        settings = ((cfg.get("config") or {}).get("stage") or {}).get("options") or {}
        specs = settings.get("constraints") or []
        p = settings.get("constraint_penalty", C.PAPER_P)
        cons = [C.Constraint(**s) if isinstance(s, dict) else C.parse_constraint(s, p)
                for s in specs]
        return cons, settings
    flags = cfg.get("flags", cfg)
    cons = C.parse_constraints(
        flags.get("constraint") or [], flags.get("constraint_penalty", C.PAPER_P)
    )
    return cons, flags


def candidate_rows(recs: List[CandidateRecord], cons) -> List[Dict[str, Any]]:
    """One row per candidate: its reward `r = P × Π V(U_i)` under `cons` and whether every
    constraint holds (the strategy's own numbers are not stored in the records)."""
    from eatnas_tf.arch import space as space_lib

    out = []
    for r in recs:
        ok = r.ok and r.val_acc is not None
        usage = {"params": r.params, "madds": r.madds}
        if any(c.metric == "intensity" for c in cons):
            usage["intensity"] = None
        if usage["params"] is None or usage.get("intensity", 0) is None:
            space = space_lib.get_space(r.extra.get("space", "fashion_mnist"))
            cost = space.cost(r.spec(space))
            usage.update(params=usage["params"] or cost.params, madds=usage["madds"] or cost.madds,
                         intensity=cost.compute_intensity)
        info = r.info or {}
        out.append({"id": r.id, "episode": info.get("episode"), "step": info.get("step"),
                    "branch": info.get("branch"), "val_acc": r.val_acc,
                    "madds": usage["madds"], "params": usage["params"],
                    "reward": C.reward(r.val_acc if ok else None, usage, cons),
                    "satisfied": bool(ok and C.all_satisfied(usage, cons)),
                    "duplicate": not r.trained,
                    "inherited": (r.inherit or {}).get("fraction"),
                    "action": info.get("action")})
    return out


def step_rows(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["episode"], r["step"]), []).append(r)
    out = []
    for i, (key, g) in enumerate(
        sorted(groups.items(), key=lambda kv: min(r["id"] for r in kv[1]))
    ):
        accs = [r["val_acc"] for r in g if r["val_acc"] is not None]
        out.append({"step": i, "episode": key[0], "t": key[1], "candidates": len(g),
                    "satisfied": sum(r["satisfied"] for r in g),
                    "satisfied_frac": sum(r["satisfied"] for r in g) / len(g),
                    "mean_reward": float(np.mean([r["reward"] for r in g])),
                    "max_reward": float(np.max([r["reward"] for r in g])),
                    "mean_acc": float(np.mean(accs)) if accs else None,
                    "median_madds": float(np.median([r["madds"] for r in g])),
                    "duplicates": sum(r["duplicate"] for r in g)})
    return out


def markdown(steps, cons, rows) -> str:
    lines = [
        f"Constraints: {', '.join(str(c) for c in cons)} (p = {cons[0].p if cons else '-'})",
        "",
        "| step | episode | t | candidates | inside constraints | mean reward | max reward "
        "| mean val_acc | median MAdds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lines.append(f"| {s['step']} | {s['episode']} | {s['t']} | {s['candidates']} | "
                     f"{s['satisfied']}/{s['candidates']} ({100 * s['satisfied_frac']:.0f}%) | "
                     f"{s['mean_reward']:.4f} | {s['max_reward']:.4f} | "
                     f"{(s['mean_acc'] or 0):.4f} | {s['median_madds'] / 1e6:.2f}M |")
    half = len(rows) // 2
    first = sum(r["satisfied"] for r in rows[:half])
    last = sum(r["satisfied"] for r in rows[half:])
    lines += ["", f"First half of the candidates inside the constraints: {first}/{half}; "
              f"second half: {last}/{len(rows) - half}."]
    return "\n".join(lines) + "\n"


def plot(steps, rows, cons, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=False)
    ax = axes[0]
    xs = [s["step"] for s in steps]
    ax.bar(xs, [100 * s["satisfied_frac"] for s in steps], color="tab:green", alpha=0.7)
    ax.set_ylabel("% of the step's candidates\ninside the constraints")
    ax.set_xlabel("search step (episode boundaries dashed)")
    ax.set_ylim(0, 105)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for s in steps:
        if s["t"] == 0 and s["step"]:
            for a in axes[:1]:
                a.axvline(s["step"] - 0.5, color="grey", ls="--", lw=0.8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ids = [r["id"] for r in rows]
    ax.scatter(ids, [r["reward"] for r in rows], c=["tab:green" if r["satisfied"] else "tab:red"
                                                    for r in rows], s=14,
               label="candidate (green: inside)")
    step_x, step_y = [], []
    for s in steps:
        members = [r["id"] for r in rows if (r["episode"], r["step"]) == (s["episode"], s["t"])]
        step_x.append(float(np.mean(members)))
        step_y.append(s["mean_reward"])
    ax.plot(step_x, step_y, color="black", lw=1.5, marker="o", ms=3, label="step mean")
    ax.set_ylabel("reward r = P × Π V(U)")
    ax.set_xlabel("candidate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    metric = cons[0].metric if cons else "madds"
    vals = [r[metric] if metric in r else None for r in rows]
    ax.scatter(ids, vals, c=["tab:green" if r["satisfied"] else "tab:red" for r in rows], s=14)
    if cons:
        c = cons[0]
        ax.axhspan(
            c.lower or 0,
            c.upper or max(v for v in vals if v),
            color="tab:green",
            alpha=0.12,
            label=f"window {c}",
        )
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(metric)
    ax.set_xlabel("candidate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic.temp_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


def write(run_dir: str, out: str) -> Dict[str, Any]:
    recs, cons, _ = load(run_dir)
    rows = candidate_rows(recs, cons)
    steps = step_rows(rows)
    atomic.write_text(os.path.join(out, "steps.md"), markdown(steps, cons, rows))
    atomic.write_json(os.path.join(out, "steps.json"),
                      {"constraints": [str(c) for c in cons], "steps": steps, "candidates": rows},
                      indent=1, sort_keys=False)
    plot(steps, rows, cons, os.path.join(out, "epnas_run.png"))
    return {"steps": steps, "rows": rows}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    res = write(a.run_dir, a.out)
    sys.stdout.write(markdown(res["steps"], load(a.run_dir)[1], res["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
