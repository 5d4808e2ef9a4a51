"""Latency predictor accuracy (issue 16): predicted vs measured whole-model LiteRT latency.

For each space (`fashion_mnist`: 50 random architectures, `cifar10`: 30) and format (fp32,
int8), on this host at `--threads`: the layers the architectures use are measured into a
`LatencyTable` (on demand, as a search would; the full-space table is only counted, its
build time estimated from the per-layer time), the constant is fitted on `--fit_models`
*other* random architectures, then every evaluation architecture is converted whole and
timed (batch 1, median of `--runs`). Reports Spearman rho and median absolute % error of
the offset-only fit and of the fit with a per-layer term.

Each architecture's new layers and its whole model are timed back to back so a change of
machine load hits both alike; timings on a shared machine are noisy all the same.

    .venv/bin/python benchmarks/latency_predictor.py [--fmnist=50] [--cifar=30] [--threads=1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from eatnas_tf.arch import codec  # noqa: E402
from eatnas_tf.arch import space as space_lib
from eatnas_tf.latency import measure as M  # noqa: E402
from eatnas_tf.latency import signature as S
from eatnas_tf.latency.predictor import DEFAULT_FIT, Predictor  # noqa: E402
from eatnas_tf.latency.table import LatencyTable  # noqa: E402
from eatnas_tf.store import atomic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _metrics(pred, meas):
    pred, meas = np.asarray(pred), np.asarray(meas)
    err = np.abs(pred - meas) / meas * 100
    return {"spearman_rho": round(float(stats.spearmanr(pred, meas).statistic), 4),
            "median_abs_pct_error": round(float(np.median(err)), 2),
            "p90_abs_pct_error": round(float(np.percentile(err, 90)), 2)}


def run_one(space_name, n, fmt, a, work):
    space = space_lib.get_space(space_name)
    macro = space.macro
    rng = random.Random(a.seed)
    archs = [space.sample(rng) for _ in range(n)]
    fit_archs = [space.sample(random.Random(a.seed + 1000 + i)) for i in range(a.fit_models)]
    timer = M.HostTimer(a.threads, warmup=10, runs=a.runs)
    table_path = os.path.join(work, f"table_{space_name}_{fmt}_t{a.threads}.json")
    table = (LatencyTable.load(table_path, timer=timer) if os.path.exists(table_path)
             else LatencyTable(fmt, a.threads, timer=timer, path=table_path, runs=a.runs))
    models_path = os.path.join(work, f"models_{space_name}_{fmt}_t{a.threads}"
                               f"{'' if a.statistic == 'median' else '_' + a.statistic}.json")
    model_timer = M.HostTimer(a.threads, warmup=10, runs=a.runs, statistic=a.statistic)
    whole = atomic.read_json(models_path) if os.path.exists(models_path) else {}
    pred = Predictor(table)
    load_start = [round(x, 2) for x in os.getloadavg()]
    # build times so far (a benchmark stopped and rerun resumes its tables and models)
    times_path = os.path.join(work, f"times_{space_name}_{fmt}_t{a.threads}.json")
    spent = (atomic.read_json(times_path) if os.path.exists(times_path)
             else {"layer_s": 0.0, "model_s": 0.0, "layers": 0, "models": 0})
    layer_s = model_s = 0.0
    for arch in fit_archs + archs:
        t0 = time.perf_counter()
        table.measure_all(S.iter_unique(S.arch_layers(arch, macro)))
        layer_s += time.perf_counter() - t0
        key = codec.to_text(arch)
        if key not in whole:
            t0 = time.perf_counter()
            whole[key] = model_timer(M.arch_tflite(arch, macro, fmt), "model")
            model_s += time.perf_counter() - t0
            atomic.write_json(models_path, whole)
            spent["models"] += 1
        table.save()
        atomic.write_json(times_path, dict(spent, layer_s=spent["layer_s"] + layer_s,
                                           model_s=spent["model_s"] + model_s,
                                           layers=spent["layers"] + table.measured))
        print(f"{space_name} {fmt}: {len(table)} layers, {len(whole)} models", flush=True)
    samples = [(x, macro, whole[codec.to_text(x)]) for x in fit_archs]
    out = {}
    for name, method in (("offset", "offset"), ("offset_per_layer", "per_layer"),
                         ("scale_offset", "scale"), ("scale_offset_relative", "scale_relative"),
                         ("power", "power")):
        fit = pred.fit(samples, method=method)
        p = [pred.predict_ms(x, macro) for x in archs]
        m = [whole[codec.to_text(x)] for x in archs]
        out[name] = dict(_metrics(p, m), constant_ms=fit["constant_ms"], scale=fit["scale"],
                         per_layer_ms=fit["per_layer_ms"], exponent=fit["exponent"],
                         fit_residuals_ms=fit["residuals_ms"])
    raw = [pred.layer_sum_ms(x, macro)[0] for x in archs]
    out["sum_only"] = _metrics(raw, [whole[codec.to_text(x)] for x in archs])
    pred.fit(samples, method=DEFAULT_FIT)  # the table keeps the CLI's default fit
    table.save()
    n_layers = len(table)
    total = atomic.read_json(times_path) if os.path.exists(times_path) else spent
    per_layer_build = total["layer_s"] / max(total["layers"], 1)
    full = len(S.space_layers(space))
    out.update({
        "architectures": n, "fit_models": a.fit_models, "threads": a.threads, "runs": a.runs,
        "load_avg_1_5_15_start": load_start,
        "load_avg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
        "whole_model_statistic": a.statistic, "layer_statistic": "median",
        "measured_ms_range": [round(min(whole[codec.to_text(x)] for x in archs), 4),
                              round(max(whole[codec.to_text(x)] for x in archs), 4)],
        "timing_sessions": 2 if os.path.exists(os.path.join(
            work, f"retimed_{space_name}_{fmt}_t{a.threads}.json")) else 1,
        "table_layers_used": n_layers, "table_bytes": os.path.getsize(table_path),
        "layers_measured_this_run": table.measured,
        "layer_build_s_this_run": round(layer_s, 1),
        "layer_build_s_total": round(total["layer_s"], 1),
        "layers_measured_total": total["layers"],
        "s_per_layer": round(per_layer_build, 3) if total["layers"] else None,
        "whole_model_s_this_run": round(model_s, 1),
        "whole_model_s_total": round(total["model_s"], 1),
        "full_space_layers": full,
        "full_space_build_s_estimate": (round(full * per_layer_build) if total["layers"]
                                        else None),
    })
    return out


def retime(space_name, fmt, a, work):
    """A second timing session of every cached layer and whole model of (space, fmt); each
    keeps the lower of its two medians (a session hit by a sustained load burst on this
    shared machine is discarded). Conversion is repeated (the models are not kept)."""
    space = space_lib.get_space(space_name)
    timer = M.HostTimer(a.threads, warmup=10, runs=a.runs)
    table_path = os.path.join(work, f"table_{space_name}_{fmt}_t{a.threads}.json")
    models_path = os.path.join(work, f"models_{space_name}_{fmt}_t{a.threads}.json")
    table = LatencyTable.load(table_path, timer=timer)
    whole = atomic.read_json(models_path)
    done_path = os.path.join(work, f"retimed_{space_name}_{fmt}_t{a.threads}.json")
    done = atomic.read_json(done_path) if os.path.exists(done_path) else {"layers": [],
                                                                          "models": []}
    t0 = time.perf_counter()
    for i, key in enumerate(sorted(table.entries)):
        if key in done["layers"]:
            continue
        sig = S.LayerSig.from_key(key)
        ms = timer(M.layer_tflite(sig, fmt), "layer")
        table.entries[key] = round(min(table.entries[key], ms), 5)
        done["layers"].append(key)
        if i % 20 == 0:
            table.save()
            atomic.write_json(done_path, done)
            print(f"retime {space_name} {fmt}: {len(done['layers'])} layers", flush=True)
    table.save()
    for text in sorted(whole):
        if text in done["models"]:
            continue
        arch = codec.parse_arch(text, **space.arch_defaults())
        whole[text] = min(whole[text], timer(M.arch_tflite(arch, space.macro, fmt), "model"))
        done["models"].append(text)
        atomic.write_json(models_path, whole)
        atomic.write_json(done_path, done)
        print(f"retime {space_name} {fmt}: {len(done['models'])} models", flush=True)
    done["s"] = round(done.get("s", 0) + time.perf_counter() - t0, 1)
    atomic.write_json(done_path, done)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fmnist", type=int, default=50)
    ap.add_argument("--cifar", type=int, default=30)
    ap.add_argument("--formats", default="fp32,int8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--fit_models", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--statistic", default="median", choices=("median", "min"),
                    help="whole-model statistic (layers: median)")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "bench_latency_predictor"))
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "latency_predictor.json"))
    ap.add_argument("--skip", default="", help="space:fmt,... not to run")
    ap.add_argument("--retime", default="", help="space:fmt,...: a second timing session of "
                    "their cached layers and models first (the lower median kept)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    for item in filter(None, a.retime.split(",")):
        retime(*item.split(":"), a, a.work)
    t0 = time.time()
    results = {"command": " ".join(["benchmarks/latency_predictor.py"] + sys.argv[1:]),
               "host": M.host_description(), "litert": M.litert_version(),
               "note": "shared 2-core machine loaded by other agents: timings are noisy",
               "spaces": {}}
    for fmt in a.formats.split(","):  # fp32 of both spaces first: a cut-short run has both
        for space_name, n in (("fashion_mnist", a.fmnist), ("cifar10", a.cifar)):
            if n <= 0 or f"{space_name}:{fmt}" in a.skip.split(","):
                continue
            r = run_one(space_name, n, fmt, a, a.work)
            results["spaces"].setdefault(space_name, {})[fmt] = r
            print(json.dumps({space_name: {fmt: r}}), flush=True)
            results["wall_s"] = round(time.time() - t0, 1)
            atomic.write_json(a.out, results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
