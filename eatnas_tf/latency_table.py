"""Builds a per-layer latency table of a search space (issue 16; `eatnas_tf.latency`).

    python -m eatnas_tf.latency_table --space=fashion_mnist --out=latency_fp32.json \
        [--format=fp32|fp16|int8] [--threads=1] [--device=host|adb:SERIAL] [--fit_models=5]

Measures, with LiteRT, every distinct layer the space can produce (stem, each op × kernel ×
stride × expansion × input size × channels that occur, shortcut add/projection, head,
pooling + classifier) as a single-layer TFLite model, then fits the predictor's constant on
`--fit_models` random whole architectures of the space. An existing `--out` of the same
format, threads and device is resumed (entries already there are not measured again);
the file is saved every 50 layers. `--device=adb:SERIAL` pushes each model with
`adb -s SERIAL push` and times it with LiteRT's `benchmark_model` (`--benchmark_binary`
on the device). Prints one JSON summary: layer counts, build time, file size and the fit.
"""

import json
import os
import random
import sys
import time

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line

from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.latency import measure as measure_lib  # noqa: E402
from eatnas_tf.latency import signature as sig_lib
from eatnas_tf.latency.predictor import (  # noqa: E402
    DEFAULT_FIT,
    FIT_METHODS,
    Predictor,
    measure_models,
)
from eatnas_tf.latency.table import LatencyTable  # noqa: E402

_SPACE = flags.DEFINE_enum("space", None, list(space_lib.SPACES), "Search space to tabulate.")
_OUT = flags.DEFINE_string("out", None, "Table JSON file (created, or resumed).")
_FORMAT = flags.DEFINE_enum("format", "fp32", list(measure_lib.FORMATS), "TFLite format.")
_THREADS = flags.DEFINE_integer("threads", 1, "LiteRT CPU threads.", lower_bound=1)
_DEVICE = flags.DEFINE_string("device", "host", "host, or adb:SERIAL (an Android device).")
_FIT = flags.DEFINE_integer("fit_models", 5, "Whole random architectures fitting the "
                            "predictor's constant (0: no fit).", lower_bound=0)
_RUNS = flags.DEFINE_integer("runs", 100, "Timed runs per model (median).", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed runs first.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the fit architectures.")
_LIMIT = flags.DEFINE_integer("limit", None, "Measure at most this many new layers this run "
                              "(a partial build; rerun to continue).", lower_bound=0)
_COUNT_ONLY = flags.DEFINE_bool("count_only", False, "Print the layer counts and exit.")
_PER_LAYER = flags.DEFINE_bool("per_layer_fit", False,
                               "Also fit a per-layer term (least squares on [1, layers]).")
_SCALE = flags.DEFINE_bool("scale_fit", False, "Fit a factor on the layer sum and an offset "
                           "(least squares on [sum, 1]) instead of the offset alone.")
_FIT_METHOD = flags.DEFINE_enum(
    "fit", None, list(FIT_METHODS), "How the whole models calibrate the layer sum (default: "
    f"{DEFAULT_FIT}; benchmarks/results/latency_predictor.json compares them): offset, "
    "per_layer (offset + per-layer term), scale (factor + offset), scale_relative (the same, "
    "least relative squares), power (scale x sum ^ exponent).")
_BENCH = flags.DEFINE_string("benchmark_binary", "/data/local/tmp/benchmark_model",
                             "LiteRT benchmark_model on the adb device.")


def _timer():
    device = _DEVICE.value
    if device == "host":
        return measure_lib.HostTimer(_THREADS.value, _WARMUP.value, _RUNS.value)
    if device.startswith("adb:") and device[4:]:
        return measure_lib.AdbTimer(device[4:], _THREADS.value, _WARMUP.value, _RUNS.value,
                                    benchmark_binary=_BENCH.value)
    raise cli.UsageError(f"device: received {device!r}; allowed values: host, adb:SERIAL")


def _open_table(timer) -> LatencyTable:
    path = _OUT.value
    if not os.path.exists(path):
        return LatencyTable(_FORMAT.value, _THREADS.value, timer=timer, path=path,
                            warmup=_WARMUP.value, runs=_RUNS.value)
    try:
        table = LatencyTable.load(path, timer=timer)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    want = {"format": _FORMAT.value, "threads": _THREADS.value, "device": timer.describe()}
    have = {"format": table.fmt, "threads": table.threads, "device": table.device}
    diff = [f"{k} {have[k]!r} != {want[k]!r}" for k in want if have[k] != want[k]]
    if diff:
        raise cli.UsageError(f"out: {path} was built for another setting ({'; '.join(diff)}); "
                             "pass a new --out")
    return table


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    if not _SPACE.value:
        raise cli.UsageError(f"space: missing; allowed values: {', '.join(space_lib.SPACES)}")
    space = space_lib.get_space(_SPACE.value)
    t0 = time.perf_counter()
    sigs = sig_lib.space_layers(space)
    summary = {"space": space.name, "layers": len(sigs), "by_kind": sig_lib.counts_by_kind(sigs),
               "enumerate_s": round(time.perf_counter() - t0, 3)}
    if _COUNT_ONLY.value:
        print(json.dumps(summary))
        return
    if not _OUT.value:
        raise cli.UsageError("out: missing; allowed values: a JSON file path")
    timer = _timer()
    table = _open_table(timer)
    todo = [s for s in sigs if s.key not in table.entries]
    if _LIMIT.value is not None:
        todo = todo[:_LIMIT.value]

    def progress(n, sig):
        if n % 25 == 0 or n == len(todo):
            print(f"{n}/{len(todo)} layers measured ({sig.key})", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        table.measure_all(todo, progress=progress)
        build_s = time.perf_counter() - t0
        complete = all(s.key in table.entries for s in sigs)
        if _FIT.value and complete:
            rng = random.Random(_SEED.value)
            archs = [space.sample(rng) for _ in range(_FIT.value)]
            pred = Predictor(table)
            method = _FIT_METHOD.value or ("scale" if _SCALE.value else "per_layer"
                                           if _PER_LAYER.value else DEFAULT_FIT)
            pred.fit(measure_models(archs, space.macro, table.fmt, timer), method=method)
    except ValueError as e:  # bad device / binary output: one line
        raise cli.UsageError(str(e)) from None
    finally:
        table.save()
    summary.update({"out": table.path, "format": table.fmt, "threads": table.threads,
                    "device": table.device, "entries": len(table), "measured": table.measured,
                    "complete": complete, "build_s": round(build_s, 1),
                    "bytes": os.path.getsize(table.path), "fit": table.fit and {
                        k: table.fit.get(k) for k in ("method", "constant_ms", "scale", "exponent",
                                                      "per_layer_ms", "n_models", "residuals_ms",
                                                      "median_abs_pct_error")}})
    print(json.dumps(summary))


if __name__ == "__main__":
    cli.run(main)
