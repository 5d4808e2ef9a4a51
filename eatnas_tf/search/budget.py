"""A wall-clock budget for the whole pipeline (`--time_budget=20m`, also `90s`, `2h`, `1h30m`).

The pipeline's phases get shares of the budget; a phase's deadline is its share of what
is still left when it starts (so time a phase did not use goes to the later ones), the
search stages stop proposing when theirs is spent, and the retraining sizes its epochs
from the per-candidate times the search measured. The time spent is written to the run
directory every `TICK_S` seconds while a phase runs (not only when it ends), with each
phase's share and the sizes decided from it (`plan`), so a process killed with SIGKILL
loses at most `TICK_S` of accounting and a resumed run continues within what was left:
a phase that had started gets its share minus what it already spent, the others share
what remains.

    budget = Budget.load(run.file("budget.json"), total_s=parse_duration("20m"))
    with budget.phase("stage1_search") as phase:
        ... run_stage(..., deadline=phase.deadline) ...
    budget.left_s()     # seconds left
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from typing import Any, Callable, Dict, Iterator, Optional

from eatnas_tf.store import atomic

# Shares of the whole budget (export is outside it: the budget bounds the search).
SHARES = {"stage1_search": 0.25, "stage1_retrain": 0.10, "stage2_search": 0.40,
          "retrain": 0.25}

TICK_S = 2.0  # how often a running phase's time is written to the budget file

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
      alloc: the share each phase was given when it first started.
      done: phases that ran to their end.
      plans: sizes decided from a share (`plan`), kept for a resumed run.
    """

    def __init__(self, path: Optional[str], total_s: Optional[float],
                 spent: Optional[Dict[str, float]] = None,
                 alloc: Optional[Dict[str, float]] = None, done=(),
                 plans: Optional[Dict[str, Any]] = None, tick_s: float = TICK_S):
        self.path = path
        self.total_s = total_s
        self.spent: Dict[str, float] = dict(spent or {})
        self.alloc: Dict[str, float] = dict(alloc or {})
        self.done = set(done)
        self.plans: Dict[str, Any] = dict(plans or {})
        self.tick_s = tick_s
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Optional[str], total_s: Optional[float],
             tick_s: float = TICK_S) -> "Budget":
        d: Dict[str, Any] = {}
        if path and os.path.exists(path):
            d = atomic.read_json(path)
        return cls(path, total_s, d.get("spent", {}), d.get("alloc", {}), d.get("done", ()),
                   d.get("plans", {}), tick_s=tick_s)

    def save(self) -> None:
        if self.path:
            with self._lock:
                atomic.write_json(self.path, {"total_s": self.total_s, "spent": self.spent,
                                              "alloc": self.alloc, "done": sorted(self.done),
                                              "plans": self.plans})

    def spent_s(self) -> float:
        return sum(self.spent.values())

    def left_s(self) -> Optional[float]:
        return None if self.total_s is None else max(0.0, self.total_s - self.spent_s())

    def finished(self) -> bool:
        """Every budgeted phase ran to its end."""
        return all(p in self.done for p in SHARES)

    def share_s(self, name: str) -> Optional[float]:
        """The phase's share: for a phase that started before (a resumed run), what it was
        given minus what it spent; else its weight among the phases not started yet of
        what is left."""
        if self.total_s is None:
            return None
        left = self.left_s()
        if name in self.alloc:
            return max(0.0, min(left, self.alloc[name] - self.spent.get(name, 0.0)))
        todo = [p for p in SHARES
                if p == name or (p not in self.alloc and self.spent.get(p) is None)]
        weight = sum(SHARES[p] for p in todo) or 1.0
        return left * SHARES.get(name, 0.0) / weight

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.spent[name] = self.spent.get(name, 0.0) + seconds
        self.save()

    def plan(self, key: str, decide: Callable[[], Any]) -> Any:
        """`decide()`, stored under `key` the first time, the stored value after that (a
        resumed retraining keeps the epochs, and so the LR schedule, it was started with)."""
        if key not in self.plans:
            self.plans[key] = decide()
            self.save()
        return self.plans[key]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Optional[Phase]]:
        """Times the block as phase `name` (written every `tick_s` and at its end); yields
        its `Phase` (None without a budget)."""
        share = self.share_s(name)
        if share is not None and name not in self.alloc:
            self.alloc[name] = share
        phase = Phase(self, name, share) if share is not None else None
        base = self.spent.get(name, 0.0)
        t0 = time.monotonic()
        stop = threading.Event()

        def tick():
            while not stop.wait(self.tick_s):
                with self._lock:
                    self.spent[name] = base + time.monotonic() - t0
                self.save()

        with self._lock:
            self.spent[name] = base
        self.save()
        ticker = threading.Thread(target=tick, name=f"budget-{name}", daemon=True)
        ticker.start()
        ok = False
        try:
            yield phase
            ok = True
        finally:
            stop.set()
            ticker.join()
            with self._lock:
                self.spent[name] = base + time.monotonic() - t0
                if ok:
                    self.done.add(name)
            self.save()

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
