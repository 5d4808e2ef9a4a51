"""EPNAS soft resource constraints (paper §3.1, Eq. 2 and 3).

A hard constraint `C_lower <= U <= C_upper` gives no feedback once it is violated; EPNAS
relaxes it into a soft violation factor

    V(U) = p ** max(0, U / C_upper - 1, C_lower / U - 1)          (Eq. 2, p = 0.9)

which is 1 inside the window and decays with the relative violation outside it, and
rewards a candidate with

    r = P × Π_i V(U_i)                                               (Eq. 3)

where P is its (predicted) accuracy. A constraint is written on the command line as
`metric:lower:upper` with either bound optional:

    --constraint=madds:100e6:300e6     100M <= Mult-Adds <= 300M
    --constraint=params::4e6           model size <= 4M parameters
    --constraint=intensity:80:         compute intensity >= 80 FLOPs/byte
    --constraint=latency::2.5          TFLite latency <= 2.5 ms (predicted by default)

Metrics (`METRICS`):
  params     parameters Keras counts (`arch.cost`).
  madds      multiply-adds of convolutions and dense layers (`arch.cost`; the paper's
             "compute complexity" is in FLOPs = 2 × MAdds, so halve a FLOPs bound).
  intensity  compute intensity in FLOPs per byte moved, 2 × MAdds / bytes_moved, with
             `arch.cost`'s bytes model: fp32 (4 bytes) × (every weight read once + every
             activation tensor read and written once per layer: the input of each conv,
             the expanded hidden tensor written and read, the output written; BN and
             ReLU are fused into the conv, the shortcut add reads nothing extra, the
             projection shortcut writes its output). No caches, no batch: one image.
  latency    single-image latency in milliseconds under LiteRT: by default predicted from
             a per-layer latency table (`eatnas_tf.latency`: the search's `--latency_table`,
             or an fp32 table of this host grown on demand in the run directory); with
             `--epnas_latency=measure` the median of the whole fp32 model, measured once per
             architecture and cached in the run directory (`latency.py`). Either way a
             resumed search sees the same numbers.

    >>> c = parse_constraint("madds:100e6:300e6")
    >>> round(violation(600e6, c.lower, c.upper), 3)   # 2x over the bound: 0.9^1
    0.9
    >>> reward(0.8, {"madds": 150e6}, [c])
    0.8
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

METRICS = ("params", "madds", "intensity", "latency")
PAPER_P = 0.9  # "we simply use p_i = 0.9 for all architecture search experiments"


@dataclasses.dataclass(frozen=True)
class Constraint:
    """`lower <= U(metric) <= upper`; a None bound is absent. `p` is Eq. 2's base penalty."""

    metric: str
    lower: Optional[float] = None
    upper: Optional[float] = None
    p: float = PAPER_P

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"constraint metric: received {self.metric!r}; allowed values: "
                             f"{', '.join(METRICS)}")
        if self.lower is None and self.upper is None:
            raise ValueError(f"constraint {self.metric}: received no bound; allowed values: "
                             "metric:lower:upper with at least one bound")
        for name in ("lower", "upper"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"constraint {self.metric} {name}: received {v!r}; allowed "
                                 "values: a finite number > 0")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"constraint {self.metric}: received lower {self.lower:g} > upper "
                             f"{self.upper:g}; allowed values: lower <= upper")
        if not 0.0 < self.p <= 1.0:
            raise ValueError(f"constraint penalty p: received {self.p!r}; allowed values: (0, 1]")

    def factor(self, value: float) -> float:
        """Eq. 2 for this constraint."""
        return violation(value, self.lower, self.upper, self.p)

    def satisfied(self, value: float) -> bool:
        return ((self.lower is None or value >= self.lower)
                and (self.upper is None or value <= self.upper))

    def __str__(self) -> str:
        f = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
        return f"{self.metric}:{f(self.lower)}:{f(self.upper)}"


def violation(u: float, lower: Optional[float] = None, upper: Optional[float] = None,
              p: float = PAPER_P) -> float:
    """Eq. 2: `p ** max(0, u / upper - 1, lower / u - 1)` (missing bounds contribute 0).

    A usage of 0 (or less) under a lower bound is an infinite violation: factor 0.
    """
    expo = 0.0
    if upper is not None:
        expo = max(expo, u / upper - 1.0)
    if lower is not None:
        if u <= 0:
            return 0.0
        expo = max(expo, lower / u - 1.0)
    return float(p ** expo)


def _bound(text: str, spec: str) -> Optional[float]:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"constraint {spec!r}: bound {text!r} is not a number; allowed "
                         "values: metric:lower:upper, e.g. madds:100e6:300e6") from None


def parse_constraint(spec: str, p: float = PAPER_P) -> Constraint:
    """`metric:lower:upper` (either bound may be empty; `metric:upper` is refused as
    ambiguous) → `Constraint`. Raises ValueError with one line on bad input."""
    parts = spec.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"constraint: received {spec!r}; allowed values: metric:lower:upper "
                         f"with metric in {', '.join(METRICS)} and either bound empty, "
                         "e.g. madds:100e6:300e6 or params::4e6")
    metric = parts[0].strip().lower()
    return Constraint(metric, _bound(parts[1], spec), _bound(parts[2], spec), p)


def parse_constraints(specs: Iterable[str], p: float = PAPER_P) -> List[Constraint]:
    """Every `--constraint` value (a repeated flag, or comma-separated items); one
    constraint per metric."""
    out: List[Constraint] = []
    for spec in specs:
        for item in str(spec).split(","):
            if item.strip():
                out.append(parse_constraint(item, p))
    metrics = [c.metric for c in out]
    dup = sorted({m for m in metrics if metrics.count(m) > 1})
    if dup:
        raise ValueError(f"constraint: metric {dup[0]} given twice; allowed values: one "
                         "constraint per metric")
    return out


def factors(usage: Mapping[str, float], constraints: Sequence[Constraint]) -> Dict[str, float]:
    """`{metric: V(U)}` for each constraint; a missing usage raises KeyError."""
    return {c.metric: c.factor(float(usage[c.metric])) for c in constraints}


def reward(performance: Optional[float], usage: Mapping[str, float],
           constraints: Sequence[Constraint]) -> float:
    """Eq. 3: `P × Π V(U_i)`; a failed candidate (P None) gets 0."""
    if performance is None:
        return 0.0
    r = float(performance)
    for v in factors(usage, constraints).values():
        r *= v
    return r


def all_satisfied(usage: Mapping[str, float], constraints: Sequence[Constraint]) -> bool:
    """The hard constraint of Eq. 1: every usage inside its window."""
    return all(c.satisfied(float(usage[c.metric])) for c in constraints)
