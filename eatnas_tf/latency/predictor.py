"""Latency predictor: a model's latency = sum of its layers' table entries + a fitted constant.

    table = LatencyTable.load("latency_fp32.json")
    p = Predictor(table)
    p.predict_ms(arch, macro)          # unseen layers are measured on the host and added

The constant is fitted once per table from a few whole models (`fit`), by least squares
on the offset alone (`constant_ms` = mean of measured − summed), which absorbs what the
layer models do not share with the whole model (one interpreter invoke and input copy
instead of one per layer). `fit(..., scale=True)` also fits a factor on the sum (least
squares on [sum, 1]): layer medians and a whole model's timing need not share a scale
(cache reuse across layers, preemption on a loaded host). `fit(..., per_layer=True)` also
fits a per-layer term (`per_layer_ms`, least squares on [1, layers]): each single-layer
model carries its own invoke overhead, which a whole model pays once. `relative=True`
weights the scale + offset fit by 1 / measured (least *relative* squares: a small model's
error counts as much as a large one's). `power=True` fits `scale × sum ^ exponent` (least
squares on log measured vs [log sum, 1]): alone, a layer keeps its weights and
activations in cache across runs, inside a whole model the other layers evict them, so
large (memory-bound) models run slower than their layers' sum and small ones faster (one
invoke overhead instead of one per layer) — a straight line through both ends misses
the middle. The fit, the models and their residuals are stored in `table.fit`.

    FIT_METHODS = offset | per_layer | scale | scale_relative | power
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from eatnas_tf.arch import codec
from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.latency import measure as measure_lib
from eatnas_tf.latency.signature import LayerSig, arch_layers
from eatnas_tf.latency.table import LatencyTable

FIT_METHODS = ("offset", "per_layer", "scale", "scale_relative", "power")
DEFAULT_FIT = "power"  # the latency_table CLI's (benchmarks/results/latency_predictor.json)


class Predictor:
    """Predicted batch-1 latency (ms) of architectures from a `LatencyTable`."""

    def __init__(self, table: LatencyTable, measure_missing: bool = True):
        self.table = table
        self.measure_missing = measure_missing

    @property
    def constant_ms(self) -> float:
        return float((self.table.fit or {}).get("constant_ms", 0.0))

    @property
    def scale(self) -> float:
        return float((self.table.fit or {}).get("scale", 1.0))

    @property
    def per_layer_ms(self) -> float:
        return float((self.table.fit or {}).get("per_layer_ms", 0.0))

    @property
    def exponent(self) -> float:
        return float((self.table.fit or {}).get("exponent", 1.0))

    def layers(self, arch: ArchSpec, macro: MacroSpec) -> List[LayerSig]:
        return arch_layers(arch, macro)

    def layer_sum_ms(self, arch: ArchSpec, macro: MacroSpec) -> Tuple[float, int]:
        """(sum of the entries of `arch`'s layers, number of layers)."""
        sigs = self.layers(arch, macro)
        return (float(sum(self.table.lookup(s, self.measure_missing) for s in sigs)), len(sigs))

    def predict_ms(self, arch: ArchSpec, macro: MacroSpec) -> float:
        """Sum of the layers' entries + fitted constant (+ per-layer term if fitted; scaled,
        or raised to the fitted exponent, when fitted so)."""
        total, n = self.layer_sum_ms(arch, macro)
        return self._apply(total, n)

    def _apply(self, total: float, n) -> float:
        base = total ** self.exponent if self.exponent != 1.0 else total
        return self.scale * base + self.constant_ms + self.per_layer_ms * n

    __call__ = predict_ms

    def fit(self, samples: Sequence[Tuple[ArchSpec, MacroSpec, float]],
            per_layer: bool = False, scale: bool = False, relative: bool = False,
            power: bool = False, method: Optional[str] = None) -> Dict:
        """Fits the constant from `(arch, macro, measured_ms)` whole-model samples and
        stores it (with the residuals) in `table.fit`; returns the fit. `method` (one of
        `FIT_METHODS`) overrides the flags."""
        if method is not None:
            if method not in FIT_METHODS:
                raise ValueError(f"fit: received {method!r}; allowed values: "
                                 f"{', '.join(FIT_METHODS)}")
            per_layer, scale = method == "per_layer", method in ("scale", "scale_relative")
            relative, power = method == "scale_relative", method == "power"
        if not samples:
            raise ValueError("fit_models: received 0 models; allowed values: >= 1")
        sums, counts, measured = [], [], []
        for arch, macro, ms in samples:
            s, n = self.layer_sum_ms(arch, macro)
            sums.append(s)
            counts.append(n)
            measured.append(float(ms))
        sums_a, counts_a, y = np.array(sums), np.array(counts, float), np.array(measured)
        k, e = 1.0, 1.0
        if power and len(samples) >= 2 and np.ptp(sums_a) > 0 and sums_a.min() > 0:
            a = np.stack([np.log(sums_a), np.ones_like(sums_a)], axis=1)
            (e, logk), *_ = np.linalg.lstsq(a, np.log(y), rcond=None)
            k, c, o = float(np.exp(logk)), 0.0, 0.0
        elif scale and len(samples) >= 2 and np.ptp(sums_a) > 0:
            a = np.stack([sums_a, np.ones_like(sums_a)], axis=1)
            w = 1.0 / y if relative else np.ones_like(y)
            (k, c), *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
            o = 0.0
        elif per_layer and len(samples) >= 3 and np.ptp(counts_a) > 0:
            a = np.stack([np.ones_like(counts_a), counts_a], axis=1)
            (c, o), *_ = np.linalg.lstsq(a, y - sums_a, rcond=None)
        else:
            c, o = float(np.mean(y - sums_a)), 0.0
        pred = k * sums_a ** e + c + o * counts_a
        resid = y - pred
        self.table.fit = {
            "constant_ms": round(float(c), 5), "per_layer_ms": round(float(o), 5),
            "scale": round(float(k), 6), "exponent": round(float(e), 6),
            "method": ("least squares on log measured vs [log sum, 1]" if e != 1.0 else
                       "least relative squares on [sum, 1]" if k != 1.0 and relative else
                       "least squares on [sum, 1]" if k != 1.0 else
                       "least squares on [1, layers]" if o else "least squares on the offset"),
            "n_models": len(samples),
            "models": [{"arch": codec.to_text(a), "image_size": m.image_size,
                        "measured_ms": round(float(ms), 5), "layer_sum_ms": round(float(s), 5),
                        "layers": int(n)}
                       for (a, m, ms), s, n in zip(samples, sums, counts)],
            "residuals_ms": [round(float(r), 5) for r in resid],
            "median_abs_pct_error": round(float(np.median(np.abs(resid) / y) * 100), 3),
        }
        return self.table.fit


def measure_models(archs: Iterable[ArchSpec], macro: MacroSpec, fmt: str, timer: Callable,
                   seed: int = 0) -> List[Tuple[ArchSpec, MacroSpec, float]]:
    """Whole-model latencies `(arch, macro, ms)` measured with `timer` in `fmt`."""
    out = []
    for arch in archs:
        blob = measure_lib.arch_tflite(arch, macro, fmt, seed=seed)
        out.append((arch, macro, float(timer(blob, f"model_{codec.canonical_hash(arch)[:12]}"))))
    return out


def load_predictor(path: str, timer: Optional[Callable] = None) -> Predictor:
    """A predictor over the table file at `path` (on-demand entries measured on the host)."""
    return Predictor(LatencyTable.load(path, timer=timer))
