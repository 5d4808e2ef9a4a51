"""LiteRT latency of a TFLite file: batch 1, warm-up runs, then median and p90 of timed runs.

Measured with `ai_edge_litert.interpreter.Interpreter(model_path, num_threads=N)` and its
default delegates (XNNPACK on CPU), which is what an app using LiteRT gets. The input is
random data of the file's input dtype — latency does not depend on pixel values. On the
project's x86 machines fp32 is often *faster* than int8 (docs/design.md §5); phone (ARM)
latency cannot be measured here, so report what is measured.

    >>> measure("model_fp32.tflite", num_threads=1)
    {'threads': 1, 'median_ms': 0.41, 'p90_ms': 0.47, 'mean_ms': 0.42, 'min_ms': 0.39, ...}
"""

from __future__ import annotations

import time
from typing import Dict, Sequence

import numpy as np


def _random_input(detail, rng: np.random.Generator) -> np.ndarray:
    shape = [int(v) for v in detail["shape"]]
    dt = np.dtype(detail["dtype"])
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
    return rng.standard_normal(shape).astype(dt)


def _prepared(path: str, num_threads: int, seed: int):
    """(interpreter allocated at batch 1, input index, input array)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=num_threads)
    inp = it.get_input_details()[0]
    if int(inp["shape"][0]) != 1:
        it.resize_tensor_input(inp["index"], [1] + [int(v) for v in inp["shape"][1:]])
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    return it, inp["index"], _random_input(inp, np.random.default_rng(seed))


def _stats(ms: np.ndarray, num_threads: int, warmup: int) -> Dict[str, float]:
    return {"threads": num_threads, "runs": int(len(ms)), "warmup": warmup,
            "median_ms": round(float(np.median(ms)), 4),
            "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "mean_ms": round(float(ms.mean()), 4), "min_ms": round(float(ms.min()), 4)}


def _check(runs: int, num_threads: int, warmup: int) -> None:
    if runs < 1 or num_threads < 1 or warmup < 0:
        raise ValueError(f"latency: received runs={runs}, num_threads={num_threads}, "
                         f"warmup={warmup}; allowed values: runs >= 1, threads >= 1, warmup >= 0")


def measure(path: str, num_threads: int = 1, warmup: int = 5, runs: int = 30,
            seed: int = 0) -> Dict[str, float]:
    """Times `runs` single-image invocations after `warmup` untimed ones.

    Args:
      path: the .tflite file.
      num_threads: LiteRT CPU threads.
      warmup: untimed runs first (allocation, delegate set-up, caches).
      runs: timed runs; each is `set_tensor` + `invoke`.
      seed: seed of the random input.

    Returns:
      {"threads", "runs", "warmup", "median_ms", "p90_ms", "mean_ms", "min_ms"}.

    Raises:
      ValueError: `runs` < 1 or `num_threads` < 1.
    """
    _check(runs, num_threads, warmup)
    it, index, x = _prepared(path, num_threads, seed)
    for _ in range(warmup):
        it.set_tensor(index, x)
        it.invoke()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        it.set_tensor(index, x)
        it.invoke()
        times[i] = time.perf_counter() - t0
    return _stats(times * 1e3, num_threads, warmup)


def measure_interleaved(paths: Dict[str, str], threads: Sequence[int] = (1, 2),
                        warmup: int = 5, runs: int = 30,
                        seed: int = 0) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Like `measure_threads` for several files, timing them round-robin (file A run 1,
    file B run 1, ..., file A run 2, ...), so a load change on a shared machine hits every
    format alike instead of whichever was being timed; use it to compare formats.

    Returns:
      {name: {str(threads): stats}} with the stats of `measure`.
    """
    out: Dict[str, Dict[str, Dict[str, float]]] = {name: {} for name in paths}
    for n in threads:
        _check(runs, n, warmup)
        prepared = {name: _prepared(p, n, seed) for name, p in paths.items()}
        for it, index, x in prepared.values():
            for _ in range(warmup):
                it.set_tensor(index, x)
                it.invoke()
        times = {name: np.empty(runs) for name in paths}
        for i in range(runs):
            for name, (it, index, x) in prepared.items():
                t0 = time.perf_counter()
                it.set_tensor(index, x)
                it.invoke()
                times[name][i] = time.perf_counter() - t0
        for name in paths:
            out[name][str(n)] = _stats(times[name] * 1e3, n, warmup)
        del prepared
    return out


def measure_threads(path: str, threads: Sequence[int] = (1, 2), warmup: int = 5,
                    runs: int = 30) -> Dict[str, Dict[str, float]]:
    """`measure` for each thread count, keyed by the count as a string (JSON keys)."""
    return {str(n): measure(path, n, warmup, runs) for n in threads}
