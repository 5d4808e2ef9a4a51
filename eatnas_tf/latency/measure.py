"""Times one layer signature, or a whole architecture, as a batch-1 TFLite model (issue 16).

`layer_model` builds a signature as a tiny Keras model with exactly the layers
`model.builder` would build for it (same ops, "same" padding, BN folded by the converter);
`to_tflite` converts a model in one of `FORMATS`:

  fp32  float model.
  fp16  fp16 weights, float compute (`Optimize.DEFAULT` + `supported_types=[float16]`).
  int8  full-integer post-training quantization with int8 input and output, calibrated on a
        small random-normal representative set (latency does not depend on values), so a
        layer model has no quantize/dequantize ops that the whole model would not have.

`HostTimer` times a file with LiteRT on this machine (batch 1, warm-up, median of `runs`,
`threads`; XNNPACK); `AdbTimer` pushes it to a phone and runs LiteRT's `benchmark_model`
over `adb shell`. Both return milliseconds.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import tempfile
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.latency.signature import LayerSig

FORMATS = ("fp32", "fp16", "int8")
BN_EPSILON = 1e-3


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format: received {fmt!r}; allowed values: {', '.join(FORMATS)}")
    return fmt


# -- models ---------------------------------------------------------------------------------

def layer_model(sig: LayerSig):
    """A Keras model computing exactly `sig` (input [1, hw, hw, c_in])."""
    import keras

    L = keras.layers

    def bn(x):
        return L.BatchNormalization(epsilon=BN_EPSILON)(x)

    def conv1x1(x, filters, strides=1):
        return L.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False)(x)

    def relu6(x):
        return L.ReLU(max_value=6.0)(x)

    inp = keras.Input(shape=(sig.hw, sig.hw, sig.c_in), batch_size=1)
    if sig.kind == "stem":
        x = relu6(bn(L.Conv2D(sig.c_out, 3, strides=sig.stride, padding="same",
                              use_bias=False)(inp)))
    elif sig.kind == "head":
        x = relu6(bn(conv1x1(inp, sig.c_out)))
    elif sig.kind == "classifier":
        x = L.Dense(sig.c_out)(L.GlobalAveragePooling2D()(inp))
    else:
        x = inp
        if sig.op == "sep":
            x = L.DepthwiseConv2D(sig.kernel, strides=sig.stride, padding="same", use_bias=False)(x)
            x = L.ReLU()(bn(x))
        else:
            x = relu6(bn(conv1x1(x, sig.c_in * sig.expansion)))
            x = L.DepthwiseConv2D(sig.kernel, strides=sig.stride, padding="same", use_bias=False)(x)
            x = relu6(bn(x))
        x = bn(conv1x1(x, sig.c_out))
        if sig.shortcut == "add":
            x = L.Add()([inp, x])
        elif sig.shortcut == "proj":
            x = L.Add()([bn(conv1x1(inp, sig.c_out, strides=sig.stride)), x])
    return keras.Model(inp, x)


def _randomise_bn(model, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics, as a trained model has (int8 ranges depend on them)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([1 + 0.1 * rng.standard_normal(g.shape).astype(g.dtype),
                               0.1 * rng.standard_normal(b.shape).astype(b.dtype),
                               0.1 * rng.standard_normal(m.shape).astype(m.dtype),
                               (1 + 0.1 * rng.random(v.shape)).astype(v.dtype)])


def to_tflite(model, fmt: str, input_shape: Sequence[int], rep_samples: int = 8,
              seed: int = 0) -> bytes:
    """`model` as TFLite bytes in `fmt` with a fixed batch-1 input of `input_shape`."""
    import tensorflow as tf

    check_format(fmt)
    shape = [1] + [int(v) for v in input_shape]
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec(shape, tf.float32)])
    # Frozen graph: weights become constants (the SavedModel path keeps READ_VARIABLE ops,
    # which int8 calibration rejects) and conversion is ~3x faster.
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if fmt == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif fmt == "int8":
        rng = np.random.default_rng(seed)
        rep = [rng.standard_normal(shape).astype(np.float32) for _ in range(rep_samples)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        conv.representative_dataset = lambda: ([r] for r in rep)
    from absl import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # "consider providing the trackable_obj": we froze it
    try:
        return conv.convert()
    finally:
        logging.set_verbosity(verbosity)


def layer_tflite(sig: LayerSig, fmt: str, seed: int = 0) -> bytes:
    import keras

    model = layer_model(sig)
    _randomise_bn(model, np.random.default_rng(seed))
    try:
        return to_tflite(model, fmt, (sig.hw, sig.hw, sig.c_in), seed=seed)
    finally:
        del model
        keras.backend.clear_session()


def arch_tflite(arch: ArchSpec, macro: MacroSpec, fmt: str, seed: int = 0) -> bytes:
    """The whole model of `arch` (random weights, as `model.builder` builds it) in `fmt`."""
    import keras

    from eatnas_tf.model.builder import build_model

    model = build_model(arch, macro)
    _randomise_bn(model, np.random.default_rng(seed))
    try:
        return to_tflite(model, fmt, (macro.image_size, macro.image_size, macro.in_channels),
                         seed=seed)
    finally:
        del model
        keras.backend.clear_session()


# -- timers ---------------------------------------------------------------------------------

def _litert_ms(path: str, threads: int, warmup: int, runs: int, statistic: str = "median") -> float:
    """Median (or min) LiteRT latency of `path` via the shared timing helper."""
    try:
        from eatnas_tf.measure import latency as latency_lib
    except ImportError:  # the helper is being moved there from export/latency.py
        latency_lib = None
    if latency_lib is not None:
        return float(latency_lib.measure(path, num_threads=threads, warmup=warmup,
                                         runs=runs)[f"{statistic}_ms"])
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    dt = np.dtype(d["dtype"])
    x = (rng.integers(-128, 128, size=d["shape"]).astype(dt) if dt.kind in "iu"
         else rng.standard_normal(d["shape"]).astype(dt))
    for _ in range(warmup):
        it.set_tensor(d["index"], x)
        it.invoke()
    ms = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        it.set_tensor(d["index"], x)
        it.invoke()
        ms[i] = (time.perf_counter() - t0) * 1e3
    return float(np.median(ms) if statistic == "median" else ms.min())


def litert_version() -> str:
    try:
        from importlib import metadata

        return "ai-edge-litert " + metadata.version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - not installed: say so in the table
        return "unknown"


def host_description() -> Dict[str, str]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"kind": "host", "platform": f"{platform.system()} {platform.machine()}",
            "cpu": cpu or "unknown", "cores": str(os.cpu_count())}


class HostTimer:
    """Times TFLite bytes with LiteRT on this machine; returns the median in ms (or the
    minimum: on a loaded machine a long invoke is preempted far more often than a short
    one, which inflates whole models' medians but hardly the layers')."""

    def __init__(self, threads: int = 1, warmup: int = 10, runs: int = 100,
                 statistic: str = "median"):
        if statistic not in ("median", "min"):
            raise ValueError(f"statistic: received {statistic!r}; allowed values: median, min")
        self.statistic = statistic
        if threads < 1 or runs < 1 or warmup < 0:
            raise ValueError(f"timer: received threads={threads}, runs={runs}, warmup={warmup}; "
                             "allowed values: threads >= 1, runs >= 1, warmup >= 0")
        self.threads, self.warmup, self.runs = threads, warmup, runs

    def describe(self) -> Dict[str, str]:
        return host_description()

    def __call__(self, blob: bytes, name: str = "model") -> float:
        with tempfile.TemporaryDirectory(prefix="eatnas_lat_") as d:
            path = os.path.join(d, f"{name}.tflite")
            with open(path, "wb") as f:
                f.write(blob)
            return _litert_ms(path, self.threads, self.warmup, self.runs, self.statistic)


_TIMING_RE = re.compile(r"count=\d+.*?avg=([0-9.eE+-]+)")
_MEDIAN_RE = re.compile(r"median=([0-9.eE+-]+)")


def parse_benchmark_model(output: str) -> float:
    """Milliseconds from LiteRT `benchmark_model` output: the median of the last
    `Timings (microseconds): count=... avg=...` line (the steady-state runs) where the
    binary prints percentiles, else its `avg=`.

    Raises:
      ValueError: no timing line in `output`.
    """
    lines = [ln for ln in output.splitlines() if _TIMING_RE.search(ln)]
    if not lines:
        first = next((ln.strip() for ln in output.splitlines() if ln.strip()), "(no output)")
        raise ValueError(f"benchmark_model: no 'count=... avg=' timing line in its output: {first}")
    last = lines[-1]
    m = _MEDIAN_RE.search(last)
    us = float(m.group(1)) if m else float(_TIMING_RE.search(last).group(1))
    return us / 1e3


class AdbTimer:
    """Times TFLite bytes on an Android device: `adb -s SERIAL push` the file to
    `remote_dir`, then `adb -s SERIAL shell BENCHMARK --graph=... --num_threads=N
    --warmup_runs=W --num_runs=R` (LiteRT's `benchmark_model`, pushed there beforehand)."""

    def __init__(self, serial: str, threads: int = 1, warmup: int = 10, runs: int = 100,
                 benchmark_binary: str = "/data/local/tmp/benchmark_model",
                 remote_dir: str = "/data/local/tmp/eatnas_latency", adb: str = "adb",
                 run: Optional[Callable] = None):
        if not serial:
            raise ValueError("device: received 'adb:' with no serial; allowed values: "
                             "host, adb:SERIAL")
        self.serial, self.threads, self.warmup, self.runs = serial, threads, warmup, runs
        self.binary, self.remote_dir, self.adb = benchmark_binary, remote_dir, adb
        self._run = run or self._subprocess
        self._dir_made = False

    @staticmethod
    def _subprocess(cmd) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except FileNotFoundError:
            raise ValueError(f"device: {cmd[0]!r} not found on PATH; install the Android "
                             "platform tools or use --device=host") from None
        if p.returncode != 0:
            msg = (p.stderr or p.stdout).strip().splitlines()
            raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({p.returncode}): "
                               f"{msg[-1] if msg else ''}")
        return p.stdout

    def _adb(self, *args: str) -> str:
        return self._run([self.adb, "-s", self.serial, *args])

    def describe(self) -> Dict[str, str]:
        def prop(name):
            return self._adb("shell", "getprop", name).strip() or "unknown"
        return {"kind": "adb", "serial": self.serial, "platform": prop("ro.board.platform"),
                "cpu": prop("ro.product.cpu.abi"), "model": prop("ro.product.model")}

    def __call__(self, blob: bytes, name: str = "model") -> float:
        if not self._dir_made:
            self._adb("shell", "mkdir", "-p", self.remote_dir)
            self._dir_made = True
        remote = f"{self.remote_dir}/{name}.tflite"
        with tempfile.TemporaryDirectory(prefix="eatnas_lat_") as d:
            path = os.path.join(d, f"{name}.tflite")
            with open(path, "wb") as f:
                f.write(blob)
            self._adb("push", path, remote)
        out = self._adb("shell", self.binary, f"--graph={remote}",
                        f"--num_threads={self.threads}", f"--warmup_runs={self.warmup}",
                        f"--num_runs={self.runs}")
        return parse_benchmark_model(out)


def make_timer(device: str, threads: int = 1, warmup: int = 10, runs: int = 100):
    """`host` → `HostTimer`; `adb:SERIAL` → `AdbTimer`."""
    if device == "host":
        return HostTimer(threads, warmup, runs)
    if device.startswith("adb:"):
        return AdbTimer(device[len("adb:"):], threads, warmup, runs)
    raise ValueError(f"device: received {device!r}; allowed values: host, adb:SERIAL")
