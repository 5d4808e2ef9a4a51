"""A wall-clock budget for the whole pipeline (`--time_budget=20m`, also `90s`, `2h`, `1h30m`).

The pipeline's phases get shares of the budget; a phase's deadline is its share of what
is still left when it starts (so time a phase did not use goes to the later ones), the
search stages stop proposing when theirs is spent, and the retraining sizes its epochs
from the per-candidate times the search measured. Time spent is stored in the run
directory after every phase step, so a resumed run continues within what was left.

    budget = Budget.load(run.file("budget.json"), total_s=parse_duration("20m"))
    with budget.phase("stage1_search") as phase:
        ... run_stage(..., deadline=phase.deadline) ...
    budget.eta_s()      # seconds left
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Dict, Iterator, Optional

from eatnas_tf.store import atomic

# Shares of the whole budget (export is outside it: the budget bounds the search).
SHARES = {"stage1_search": 0.25, "stage1_retrain": 0.10, "stage2_search": 0.40,
          "retrain": 0.25}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of `90s`, `20m`, `2h`, `1h30m` or a plain number of seconds.

    Raises:
      ValueError: anything else (one line with the allowed forms).
    """
    t = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", t)
        if not parts or "".join(n + u for n, u in parts) != t:
            raise ValueError(f"time_budget: received {text!r}; allowed values: a duration "
                             "such as 90s, 20m, 2h, 1h30m")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"time_budget: received {text!r}; allowed values: > 0")
    return seconds


class Phase:
    """One phase in progress: its deadline (`time.monotonic()` clock) and share."""

    def __init__(self, budget: "Budget", name: str, seconds: float):
        self.budget, self.name, self.seconds = budget, name, seconds
        self.start = time.monotonic()
        self.deadline = self.start + seconds

    def left_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class Budget:
    """Time spent per phase (persisted) against a total; see the module docstring.

    Attributes:
      total_s: the budget in seconds (None: no budget; deadlines are then None).
      spent: seconds spent so far in each phase, across resumed processes.
    """

    def __init__(self, path: Optional[str], total_s: Optional[float],
                 spent: Optional[Dict[str, float]] = None):
        self.path = path
        self.total_s = total_s
        self.spent: Dict[str, float] = dict(spent or {})

    @classmethod
    def load(cls, path: Optional[str], total_s: Optional[float]) -> "Budget":
        spent = {}
        if path and os.path.exists(path):
            spent = atomic.read_json(path).get("spent", {})
        return cls(path, total_s, spent)

    def save(self) -> None:
        if self.path:
            atomic.write_json(self.path, {"total_s": self.total_s, "spent": self.spent})

    def spent_s(self) -> float:
        return sum(self.spent.values())

    def left_s(self) -> Optional[float]:
        return None if self.total_s is None else max(0.0, self.total_s - self.spent_s())

    def share_s(self, name: str) -> Optional[float]:
        """The phase's share of what is left: its weight among the phases not done yet."""
        if self.total_s is None:
            return None
        todo = [p for p in SHARES if p == name or self.spent.get(p) is None]
        weight = sum(SHARES[p] for p in todo) or 1.0
        return self.left_s() * SHARES.get(name, 0.0) / weight

    def add(self, name: str, seconds: float) -> None:
        self.spent[name] = self.spent.get(name, 0.0) + seconds
        self.save()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Optional[Phase]]:
        """Times the block as phase `name`; yields its `Phase` (None without a budget)."""
        share = self.share_s(name)
        phase = Phase(self, name, share) if share is not None else None
        t0 = time.monotonic()
        try:
            yield phase
        finally:
            self.add(name, time.monotonic() - t0)

    def eta_text(self) -> str:
        left = self.left_s()
        return "" if left is None else f"budget left {_fmt(left)}"


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
