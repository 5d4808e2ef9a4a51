"""Measured TFLite latency of an architecture for EPNAS' `latency` constraint.

The model is built with random weights (latency does not depend on their values),
converted to an fp32 `.tflite` from a batch-1 concrete function and timed under LiteRT
with `eatnas_tf.measure.latency.measure` (median of `runs` single-image invocations after 5
warm-ups, `threads` CPU threads, XNNPACK). This costs a few seconds per architecture.

Timings are noisy, and a resumed search must see the same numbers as the first run
(the policy is rebuilt by replay), so every measurement is cached by the architecture's
canonical hash in a JSON file of the run directory and never measured twice. Numbers are
those of *this* machine (x86 CPU), not a phone.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Optional

from eatnas_tf.arch import codec
from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec


def measure_arch(arch: ArchSpec, macro: MacroSpec, threads: int = 1, runs: int = 20) -> float:
    """Median latency in milliseconds of `arch`'s fp32 TFLite model (batch 1)."""
    import keras
    import tensorflow as tf

    from eatnas_tf.measure import latency as latency_lib
    from eatnas_tf.model.builder import build_model

    model = build_model(arch, macro)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[
        tf.TensorSpec([1, macro.image_size, macro.image_size, macro.in_channels], tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    blob = conv.convert()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.tflite")
        with open(path, "wb") as f:
            f.write(blob)
        ms = latency_lib.measure(path, num_threads=threads, warmup=5, runs=runs)["median_ms"]
    keras.backend.clear_session()
    return float(ms)


class LatencyCache:
    """Arch hash → median ms, persisted to `path` (None: in memory only)."""

    def __init__(self, macro: MacroSpec, path: Optional[str] = None, threads: int = 1,
                 runs: int = 20, measure=measure_arch):
        self.macro = macro
        self.path = path
        self.threads = threads
        self.runs = runs
        self._measure = measure
        self.values: Dict[str, float] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.values = {k: float(v) for k, v in json.load(f).items()}

    def __call__(self, arch: ArchSpec) -> float:
        h = codec.canonical_hash(arch)
        if h not in self.values:
            self.values[h] = self._measure(arch, self.macro, self.threads, self.runs)
            self._save()
        return self.values[h]

    def _save(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.values, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
