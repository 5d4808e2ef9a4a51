"""Paired-by-seed statistics for the benchmark comparisons (issue 17 item 3).

Every comparison script (`eat_vs_random.py`, `transfer_vs_scratch_search.py`,
`inheritance_vs_scratch.py`, `econas_vs_eat_random.py`) runs both sides of its comparison
with the same seed, for each of several seeds, and hands the two lists of per-seed values
here. This module turns them into the differences' mean with a 95% t-interval, a paired
t-test, a Wilcoxon signed-rank and a sign test, writes the result JSON under
`benchmarks/results/seeds/` (with the machine's load, since other jobs share its cores)
and draws the figure under `docs/results/seeds/`.

    stats = paired_stats(eat_values, random_values)     # diffs = a - b
    write_result("eat_vs_random", setting, "EAT", "random", eat_values, random_values, ...)

    python benchmarks/seeds.py      # the stored results' lines again, figures redrawn

Significance: the 95% CI of the mean difference excludes 0 (equivalently the paired
t-test's two-sided p < 0.05). With n = 5 seeds the Wilcoxon and sign tests cannot go below
p = 0.0625 (all five the same sign), so they are reported as a check, not as the verdict.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "seeds")
FIGURES = os.path.join(ROOT, "docs", "results", "seeds")


def paired_stats(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Dict[str, Any]:
    """Statistics of the paired differences a[i] - b[i] (one pair per seed).

    Returns n, the differences, their mean and sample sd, the `level` t-interval of the
    mean, the paired t-test's two-sided p, the Wilcoxon signed-rank p (exact for small n;
    zero differences dropped), the sign test's p (binomial, ties dropped), how many pairs
    favour a, and `significant` (the interval excludes 0).
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired_stats: {len(a)} vs {len(b)} values; allowed: equal lengths")
    if len(a) < 2:
        raise ValueError(f"paired_stats: {len(a)} pairs; allowed values: >= 2")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    mean = statistics.fmean(d)
    sd = statistics.stdev(d)
    se = sd / math.sqrt(n)
    tcrit = float(stats.t.ppf(0.5 + level / 2, n - 1))
    lo, hi = mean - tcrit * se, mean + tcrit * se
    if se > 0:
        t_p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    else:  # every difference equal: no spread; p 0 unless they are all 0
        t_p = 1.0 if mean == 0 else 0.0
    nonzero = [x for x in d if x != 0]
    wil_p = float(stats.wilcoxon(nonzero).pvalue) if nonzero else 1.0
    pos = sum(x > 0 for x in nonzero)
    sign_p = float(stats.binomtest(pos, len(nonzero), 0.5).pvalue) if nonzero else 1.0
    return {"n": n, "diffs": d, "mean_diff": mean, "sd_diff": sd, "se_diff": se,
            "ci_level": level, "ci_low": lo, "ci_high": hi, "t_crit": tcrit,
            "t_test_p": t_p, "wilcoxon_p": wil_p, "sign_test_p": sign_p,
            "a_better": pos, "b_better": sum(x < 0 for x in nonzero),
            "ties": n - len(nonzero), "mean_a": statistics.fmean(a),
            "mean_b": statistics.fmean(b), "significant": bool(lo > 0 or hi < 0)}


def load() -> str:
    """`uptime`'s load averages (the machine is shared: record what else ran)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "; ".join(f"{x:.2f}" for x in os.getloadavg())


def describe(name: str, stats: Dict[str, Any], a_name: str, b_name: str,
             unit_scale: float = 100.0, unit: str = "pt") -> str:
    """One line: mean difference ± CI half-width, the interval, p-values, verdict."""
    s = unit_scale
    half = (stats["ci_high"] - stats["ci_low"]) / 2
    return (f"{name}: {a_name} − {b_name} = {s * stats['mean_diff']:+.2f} ± {s * half:.2f} "
            f"{unit} (95% CI [{s * stats['ci_low']:+.2f}, {s * stats['ci_high']:+.2f}], "
            f"n = {stats['n']} seeds; paired t p = {stats['t_test_p']:.3g}, Wilcoxon p = "
            f"{stats['wilcoxon_p']:.3g}, sign p = {stats['sign_test_p']:.3g}; {a_name} better "
            f"in {stats['a_better']}/{stats['n']}) -> "
            + ("significant" if stats["significant"] else "not significant"))


def plot(path: str, title: str, seeds: Sequence[int], a: Sequence[float], b: Sequence[float],
         a_name: str, b_name: str, stats: Dict[str, Any], ylabel: str) -> str:
    """Left: the paired values per seed (a line per seed); right: each seed's difference and
    the mean difference with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    for s, x, y in zip(seeds, a, b):
        ax1.plot([0, 1], [y, x], "-o", color="0.6", lw=1)
        ax1.annotate(f"s{s}", (1.03, x), fontsize=7, va="center")
    ax1.plot([0, 1], [stats["mean_b"], stats["mean_a"]], "-s", color="C3", lw=2, label="mean")
    ax1.set_xticks([0, 1], [b_name, a_name])
    ax1.set_xlim(-0.3, 1.3)
    ax1.set_ylabel(ylabel)
    ax1.legend(fontsize=8, loc="best")
    ax1.set_title("per seed (paired)", fontsize=9)
    d = [100 * x for x in stats["diffs"]]
    ax2.axhline(0, color="k", lw=0.8)
    ax2.scatter(range(len(d)), d, color="C0", zorder=3, label="seed")
    m = 100 * stats["mean_diff"]
    ax2.errorbar([len(d) + 0.5], [m], yerr=[[m - 100 * stats["ci_low"]],
                                         [100 * stats["ci_high"] - m]],
                 fmt="s", color="C3", capsize=5, label="mean, 95% CI")
    ax2.set_xticks(list(range(len(d))) + [len(d) + 0.5],
                   [f"s{s}" for s in seeds] + ["mean"], fontsize=8)
    ax2.set_ylabel(f"{a_name} − {b_name} (pt)")
    ax2.set_title(f"difference: p(t) = {stats['t_test_p']:.3g}", fontsize=9)
    ax2.legend(fontsize=8, loc="best")
    fig.suptitle(textwrap.fill(title, 120), fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_result(name: str, setting: str, seeds: Sequence[int], a_name: str, b_name: str,
                 metrics: Dict[str, tuple], *, per_seed: List[Dict[str, Any]],
                 load_before: str, started: float, extra: Optional[Dict[str, Any]] = None,
                 out_dir: str = RESULTS, fig_dir: str = FIGURES) -> Dict[str, Any]:
    """Computes `paired_stats` for each metric {label: (a values, b values)}, prints one line
    each, writes `out_dir/<name>.json` and one figure per metric in `fig_dir`
    (`<name>.png` for the first, `<name>_<label>.png` for the others). Returns the JSON."""
    out: Dict[str, Any] = {
        "comparison": name, "setting": setting, "seeds": list(seeds), "a": a_name,
        "b": b_name, "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "load_before": load_before, "load_after": load(), "wall_s": time.time() - started,
        "metrics": {}, "per_seed": per_seed, **(extra or {})}
    for i, (label, (a, b)) in enumerate(metrics.items()):
        st = paired_stats(a, b)
        print(describe(f"{name} [{label}]", st, a_name, b_name), flush=True)
        fig = os.path.join(fig_dir, f"{name}.png" if i == 0 else f"{name}_{label}.png")
        plot(fig, f"{name}: {label} ({setting})", seeds, a, b, a_name, b_name, st, label)
        out["metrics"][label] = {"a": list(a), "b": list(b), **st,
                                 "figure": os.path.relpath(fig, ROOT)}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {os.path.relpath(path, ROOT)} ({out['wall_s']:.0f} s; load before: "
          f"{load_before.split('load average:')[-1].strip()})", flush=True)
    return out


def dirs(out: Optional[str]) -> Dict[str, str]:
    """`write_result`'s directories: the defaults, or JSON and figures next to `out` (tests)."""
    if not out:
        return {"out_dir": RESULTS, "fig_dir": FIGURES}
    d = os.path.dirname(os.path.abspath(out))
    return {"out_dir": d, "fig_dir": d}


def experiment(flagfile: str, *overrides: str):
    """The `SearchExperiment` the search command would run for `--flagfile=FILE` plus
    `overrides` (flag strings), built from a fresh flag set (no global flags touched)."""
    from absl import flags

    from eatnas_tf.search import flags as search_flags

    fv = flags.FlagValues()
    search_flags.define_search_flags(fv)
    fv(["bench", f"--flagfile={flagfile}", "--run_dir=unused", *overrides])
    return search_flags.experiment_from_flags("search", fv)


def pipeline_config(*flag_strings: str):
    """The `PipelineConfig` of `python -m eatnas_tf.run` for these flags (fresh flag set)."""
    from absl import flags

    from eatnas_tf.search import flags as search_flags

    fv = flags.FlagValues()
    search_flags.define_pipeline_flags(fv)
    fv(["bench", "--run_dir=unused", *flag_strings])
    return search_flags.pipeline_config_from_flags(fv)


def main():
    """Prints every stored result's line and redraws its figures (no training)."""
    import glob

    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        d = json.load(open(path))
        for label, m in d["metrics"].items():
            print(describe(f"{d['comparison']} [{label}]", m, d["a"], d["b"]))
            plot(os.path.join(ROOT, m["figure"]), f"{d['comparison']}: {label} ({d['setting']})",
                 d["seeds"], m["a"], m["b"], d["a"], d["b"], m, label)


if __name__ == "__main__":
    main()
