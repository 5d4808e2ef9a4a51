"""EAT-NAS objectives: the candidate score (Eq. 1/2) and the population quality (Eq. 3).

Both follow MnasNet's soft multi-objective form `main × (sub / target)^w`. With the
paper's `alpha = beta = -0.07` a candidate twice as large as the target loses ~5% of its
accuracy-score, and a population whose accuracies spread twice as wide loses ~5% of its
quality. `target_std` only scales Q by a constant when alpha == beta, so it does not
change which population is best; it is kept as the paper writes it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

ALPHA = -0.07
BETA = -0.07
STD_FLOOR = 1e-6  # a population of identical accuracies would otherwise score +inf


def _omega(sub: float, target: float, alpha: float, beta: float) -> float:
    """Eq. 2: alpha when the sub-objective is below the target, beta otherwise."""
    return alpha if sub < target else beta


def score(acc: float, cost: float, target: float, alpha: float = ALPHA,
          beta: float = BETA) -> float:
    """Eq. 1: `acc × (cost / target)^w` (cost: params, MAdds or latency, as the space says)."""
    if target <= 0 or cost <= 0:
        raise ValueError(f"cost and target must be > 0; received cost={cost}, target={target}")
    return float(acc) * (float(cost) / float(target)) ** _omega(cost, target, alpha, beta)


@dataclasses.dataclass(frozen=True)
class Quality:
    mean_acc: float
    std_acc: float
    quality: float


def population_quality(accs: Sequence[float], target_std: float = 0.01, alpha: float = ALPHA,
                       beta: float = BETA) -> Quality:
    """Eq. 3: `mean_acc × (std / target_std)^w` over the population's accuracies.

    std is the population standard deviation (ddof=0); it is floored at `STD_FLOOR`.
    """
    if not accs:
        raise ValueError("population_quality needs at least one accuracy")
    n = len(accs)
    mean = sum(accs) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / n)
    s = max(std, STD_FLOOR)
    q = mean * (s / target_std) ** _omega(s, target_std, alpha, beta)
    return Quality(mean_acc=mean, std_acc=std, quality=q)


class ConvergenceMonitor:
    """Decides when the population quality has converged (Alg. 1, line 7).

    Converged when the best quality seen has not improved by more than `min_delta`
    (relative) for `patience` consecutive evolution steps. `best_step` is the step whose
    population is kept for the top-k retraining.
    """

    def __init__(self, patience: int, min_delta: float = 1e-3):
        self.patience = patience
        self.min_delta = min_delta
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self.stale = 0

    def update(self, step: int, quality: float) -> bool:
        """Records the quality after `step`; True when this population is the new best."""
        significant = self.best is None or quality > self.best * (1 + self.min_delta)
        self.stale = 0 if significant else self.stale + 1
        if self.best is None or quality > self.best:
            self.best, self.best_step = quality, step
            return True
        return False

    @property
    def converged(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience
