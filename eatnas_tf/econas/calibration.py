"""Proxy calibration (EcoNAS §3): how well does each reduced setting keep the ranking of a
fixed sample of architectures under a reference setting, and at what cost?

    archs = sample_archs(space, 12, seed=0, proxies=["c2r0s0e2", "c4r2s0e2"])
    result = calibrate(run_dir, space, archs, "c0r0s0e6", ["c2r0s0e2", "c4r2s0e2"],
                       data_cfg, train_cfg, min_rho=0.6)
    result["recommended"]  # the cheapest proxy with rho >= 0.6 (or None)

Every (setting, architecture) is trained once, with the same initialisation seed for one
architecture under every setting, and stored as one line of `RUN_DIR/results.jsonl`
(appended and fsynced; a partial last line from a kill is dropped and that pair trained
again), so a rerun resumes where it stopped and a finished run only rewrites the outputs:

    RUN_DIR/config.json         the settings (a rerun with other settings is refused)
    RUN_DIR/results.jsonl       one record per (setting, architecture): key "PROXY|HASH"
    RUN_DIR/calibration.json    the table as data, with every accuracy
    RUN_DIR/calibration.md      the table
    RUN_DIR/calibration.png     rank correlation vs proxy cost (EcoNAS Fig. 8)

Accuracies are validation accuracies of the search split (the test split is never read),
at each setting's own resolution. Failed trainings leave their architecture out of the
correlations of that setting. Cost is EcoNAS' MAdds × training samples × epochs of the
reduced model (`proxy.training_cost`), summed over the architectures.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any, Callable, Dict, List, Optional, Sequence

from eatnas_tf.arch import codec
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.econas import proxy as proxy_lib
from eatnas_tf.econas import rank
from eatnas_tf.search.run_dir import RunDir, RunDirError
from eatnas_tf.store import atomic
from eatnas_tf.store.jsonl import JsonlStore
from eatnas_tf.train.config import TrainConfig

RESULTS = "results.jsonl"
RANK_METRICS = ("spearman", "tolerant_spearman", "kendall")


def sample_archs(space: SearchSpace, n: int, seed: int, proxies: Sequence[str] = (),
                 max_tries: int = 100000) -> List[ArchSpec]:
    """`n` distinct architectures drawn uniformly from `space` (seeded) that every proxy in
    `proxies` can reduce."""
    rng = random.Random(f"calibrate:{seed}")
    out, seen = [], set()
    for _ in range(max_tries):
        if len(out) == n:
            break
        a = space.sample(rng)
        h = codec.canonical_hash(a)
        if h in seen or not proxy_lib.reducible(a, proxies):
            continue
        seen.add(h)
        out.append(a)
    if len(out) < n:
        raise ValueError(f"num_archs: received {n}; only {len(out)} distinct architectures of "
                         f"space {space.name} survive proxies {list(proxies)}")
    return out


def key(setting: str, arch: ArchSpec) -> str:
    return f"{setting}|{codec.canonical_hash(arch)}"


# -- training one pair ----------------------------------------------------------------------
def evaluate_pair(setting: str, arch: ArchSpec, space: SearchSpace, data: DataConfig,
                  train: TrainConfig, seed: int, verbose: int = 0) -> Dict[str, Any]:
    """Trains `arch` under `setting` (a proxy name) and returns the stored record."""
    from eatnas_tf.search.evaluate import EvalRequest, evaluate

    red = proxy_lib.apply(setting, arch, data, train)
    req = EvalRequest(arch=codec.to_json(red.arch), space=space.name, data=red.data,
                      train=red.train, seed=seed)
    r = evaluate(req, verbose=verbose).record
    rec = {"key": key(setting, arch), "setting": setting, "arch": codec.to_text(arch),
           "hash": codec.canonical_hash(arch), "status": r["status"], "reason": r.get("reason"),
           "val_acc": r.get("val_acc"), "params": r.get("params"), "madds": r.get("madds"),
           "num_train": r.get("num_train"), "epochs": r.get("epochs"), "seed": seed,
           "wall_s": r.get("wall_s"), "train_s": r.get("train_s"),
           "train_acc": r.get("train_acc"), **{f"reduced_{k}": v
                                               for k, v in red.describe().items()}}
    if rec["status"] == "ok":
        rec["cost"] = proxy_lib.training_cost(rec["madds"], rec["num_train"], rec["epochs"])
    return rec


# -- the calibration --------------------------------------------------------------------------
def calibrate(run_dir: str, space: SearchSpace, archs: Sequence[ArchSpec], reference: str,
              proxies: Sequence[str], data: DataConfig, train: TrainConfig, *,
              min_rho: float = 0.6, rank_metric: str = "spearman",
              tolerance: float = rank.PAPER_TOLERANCE, seed: int = 0, verbose: int = 0,
              progress: Optional[Callable[[str], None]] = print,
              allow_change: bool = False, max_new: Optional[int] = None,
              train_missing: bool = True) -> Dict[str, Any]:
    """Trains every missing (setting, arch) pair, then writes the table and the plot.

    With `train_missing=False` nothing is trained: the table of what is stored so far
    (rows over the architectures done; no recommendation from an incomplete row).
    Returns the table (`calibration.json`'s content), {} when stopped by `max_new`.
    """
    if rank_metric not in RANK_METRICS:
        raise ValueError(f"rank_metric: received {rank_metric!r}; allowed values: "
                         f"{', '.join(RANK_METRICS)}")
    settings = [proxy_lib.Proxy.parse(reference).name] + [
        proxy_lib.Proxy.parse(p).name for p in proxies]
    if len(set(settings)) != len(settings):
        raise ValueError(f"proxies: received duplicates in {settings}; allowed values: "
                         "distinct settings, none equal to the reference")
    run = RunDir(run_dir)
    run.check_config({"space": space.name, "archs": [codec.to_text(a) for a in archs],
                      "reference": settings[0], "data": dataclasses.asdict(data),
                      "train": train.as_dict(), "seed": seed}, allow_change)
    results = JsonlStore(run.file(RESULTS), noun="results", hint="that pair is trained again")
    done = {r["key"]: r for r in results.read()}
    new = 0
    total = len(settings) * len(archs)
    for setting in settings:
        for i, arch in enumerate(archs):
            k = key(setting, arch)
            if k in done or not train_missing:
                continue
            if max_new is not None and new >= max_new:
                return {}
            rec = evaluate_pair(setting, arch, space, data, train, seed * 1_000_003 + i,
                                verbose=verbose)
            rec["arch_index"] = i
            results.append(rec)
            done[k] = rec
            new += 1
            if progress:
                acc = (
                    f"{rec['val_acc']:.4f}" if rec["status"] == "ok" else f"FAILED {rec['reason']}"
                )
                progress(f"[calibrate] {len(done)}/{total} {setting} arch {i:02d} val_acc "
                         f"{acc} madds {rec.get('madds')} {rec['wall_s']:.1f}s")
    table = summarise(settings, archs, done, min_rho=min_rho, rank_metric=rank_metric,
                      tolerance=tolerance)
    write_outputs(run_dir, table)
    if progress:
        rec = table["recommended"]
        progress(f"[calibrate] recommended: {rec or 'none'} (cheapest with {rank_metric} >= "
                 f"{min_rho}); table {os.path.join(run_dir, 'calibration.md')}")
    return table


def summarise(settings: Sequence[str], archs: Sequence[ArchSpec], done: Dict[str, Dict[str, Any]],
              *, min_rho: float, rank_metric: str, tolerance: float) -> Dict[str, Any]:
    """The table: one row per setting, reference first."""
    hashes = [codec.canonical_hash(a) for a in archs]
    ref = settings[0]
    ref_acc = {h: done[f"{ref}|{h}"]["val_acc"] for h in hashes
               if done.get(f"{ref}|{h}", {}).get("status") == "ok"}
    ref_cost = sum(done[f"{ref}|{h}"]["cost"] for h in ref_acc) or None
    rows = []
    for s in settings:
        recs = [done.get(f"{s}|{h}") for h in hashes]
        ok = [r for r in recs if r and r["status"] == "ok"]
        both = [r for r in ok if r["hash"] in ref_acc]
        row: Dict[str, Any] = {
            "setting": s, "reference": s == ref, "archs": len(ok), "failed": len(
                [r for r in recs if r and r["status"] != "ok"]),
            "cost": sum(r["cost"] for r in ok) if ok else None,
            "wall_s": sum(r["wall_s"] for r in recs if r) if any(recs) else None,
            "mean_val_acc": sum(r["val_acc"] for r in ok) / len(ok) if ok else None,
            "image_size": ok[0]["reduced_image_size"] if ok else None,
            "num_train": ok[0]["num_train"] if ok else None,
            "epochs": ok[0]["epochs"] if ok else None,
            "val_acc": {r["hash"]: r["val_acc"] for r in ok},
        }
        # Cost relative to the reference over the architectures both trained.
        if both and ref_cost:
            ref_part = sum(done[f"{ref}|{r['hash']}"]["cost"] for r in both)
            row["speedup"] = ref_part / max(sum(r["cost"] for r in both), 1e-9)
        else:
            row["speedup"] = None
        if len(both) >= 3:
            row.update(rank.consistency([ref_acc[r["hash"]] for r in both],
                                        [r["val_acc"] for r in both], tolerance))
        else:
            row.update(spearman=None, kendall=None, tolerant_spearman=None, top_retained=None)
        rows.append(row)
    candidates = [r for r in rows[1:] if r.get(rank_metric) is not None
                  and r[rank_metric] >= min_rho and r["archs"] == len(archs)]
    best = min(candidates, key=lambda r: (r["cost"], -r[rank_metric])) if candidates else None
    return {"reference": ref, "archs": [codec.to_text(a) for a in archs], "hashes": hashes,
            "rows": rows, "min_rho": min_rho, "rank_metric": rank_metric,
            "tolerance": tolerance, "recommended": best["setting"] if best else None,
            "complete": all(f"{s}|{h}" in done for s in settings for h in hashes)}


def _fmt(v, spec=".3f"):
    return "–" if v is None else format(v, spec)


def markdown(table: Dict[str, Any]) -> str:
    from eatnas_tf.report.plots import human

    m = table["rank_metric"]
    lines = [
        f"# EcoNAS proxy calibration: {len(table['archs'])} architectures, reference "
        f"`{table['reference']}`",
        "",
        f"Rank correlation of each proxy's validation accuracies with the reference's; "
        f"cost = MAdds × training samples × epochs summed over the architectures "
        f"(speed-up = reference cost / proxy cost). Tolerant ρ: EcoNAS A2 with "
        f"b = {table['tolerance']:.4g}. Top kept: reference top-{max(1, len(table['archs']) // 5)}"
        f" models within the proxy's top-{max(1, 3 * len(table['archs']) // 10)}.",
        "",
        "| setting | image | train samples | epochs | cost | speed-up | wall s | mean val acc "
        "| Spearman ρ | Kendall τ | tolerant ρ | top kept | archs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        name = f"`{r['setting']}`" + (" (reference)" if r["reference"] else "") + (
            " **recommended**" if r["setting"] == table["recommended"] else "")
        lines.append(
            f"| {name} | {r['image_size'] or '–'} | {r['num_train'] or '–'} | {r['epochs'] or '–'} "
            f"| {human(r['cost'])} | {_fmt(r['speedup'], '.1f')}× | {_fmt(r['wall_s'], '.0f')} "
            f"| {_fmt(r['mean_val_acc'], '.4f')} | {_fmt(r['spearman'])} | {_fmt(r['kendall'])} "
            f"| {_fmt(r['tolerant_spearman'])} "
            f"| {r['top_retained'] if r['top_retained'] is not None else '–'} "
            f"| {r['archs']}{' (' + str(r['failed']) + ' failed)' if r['failed'] else ''} |"
        )
    rec = table["recommended"]
    lines += ["", (f"Recommended: **`{rec}`**, the cheapest proxy with {m} ≥ {table['min_rho']}."
                   if rec else f"No proxy reaches {m} ≥ {table['min_rho']}.")]
    if not table["complete"]:
        lines.append("\n(incomplete: some pairs are still to be trained)")
    lines += ["", "Architectures:", ""] + [f"{i}. `{a}`" for i, a in enumerate(table["archs"])]
    return "\n".join(lines) + "\n"


def plot(table: Dict[str, Any], path: str) -> str:
    from eatnas_tf.report import plots

    m = table["rank_metric"]
    fig = plots._figure(6.4, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    rows = [r for r in table["rows"][1:] if r.get(m) is not None and r["cost"]]
    for r in rows:
        rec = r["setting"] == table["recommended"]
        good = r[m] >= table["min_rho"]
        ax.scatter([r["cost"]], [r[m]], s=60 if rec else 36, zorder=3,
                   color="#55A868" if rec else ("#DD8452" if good else "#4C72B0"))
        ax.annotate(r["setting"], (r["cost"], r[m]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ref = table["rows"][0]
    if ref["cost"]:
        ax.axvline(ref["cost"], color="#8C8C8C", ls=":", lw=1)
        ax.annotate(f"reference {ref['setting']}", (ref["cost"], 0.02),
                    xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    ha="right", va="bottom", color="#555555")
    ax.axhline(table["min_rho"], color="#C44E52", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("proxy cost: MAdds × samples × epochs (log)")
    ax.set_ylabel({"spearman": "Spearman ρ", "kendall": "Kendall τ",
                   "tolerant_spearman": "tolerant Spearman ρ"}[m] + " vs reference")
    ax.set_ylim(min([-0.1] + [r[m] - 0.05 for r in rows]), 1.05)
    ax.set_title(f"EcoNAS calibration: {len(table['archs'])} archs, reference "
                 f"{table['reference']} (green: recommended; orange: ≥ {table['min_rho']})",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    return plots._save(fig, path)


def write_outputs(run_dir: str, table: Dict[str, Any]) -> Dict[str, str]:
    out = {"json": os.path.join(run_dir, "calibration.json"),
           "md": os.path.join(run_dir, "calibration.md"),
           "png": os.path.join(run_dir, "calibration.png")}
    atomic.write_json(out["json"], table)
    atomic.write_text(out["md"], markdown(table))
    plot(table, out["png"])
    return out


__all__ = ["calibrate", "sample_archs", "summarise", "markdown", "plot", "RunDirError"]
