"""EAT-NAS evolution (paper Algorithm 1): tournament selection that removes the worst.

    P(0) ← P initial models (random, or offspring of the basic model in a transfer)
    while quality Q has not converged:
        S ← sample(P, S);  best, worst ← pick(S)
        child ← mutate(best)            # Algorithm 3, inheriting best's weights
        P ← P − {worst} + {child};  Q ← quality(P)      # Eq. 3
    keep the population of best quality; its top-k go to full retraining

Scores are Eq. 1 (`acc × (cost/target)^w`), computed by the runner. The worst of the
sample is removed, not the oldest (the paper's difference from regularized evolution).
With `--parallel=K` (`propose_batch`) K tournaments run on the same population before
their children are observed in proposal order; a child whose tournament's worst was
already removed by an earlier child of the batch removes the population's current worst.
A failed child is not added and removes nothing; a failed initial model is left out of
the population. Children whose architecture was already evaluated are redrawn (up to
100 times) so no architecture is trained twice.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

from eatnas_tf.arch import codec
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search import objective, offspring
from eatnas_tf.search.strategy import Proposal, SearchConfig, Strategy, register


def _key(r: CandidateRecord):
    """Tournament order: higher score first, earlier id on ties (deterministic)."""
    return (r.score, -r.id)


@register("eat")
class Evolution(Strategy):
    """Algorithm 1 with the offspring generator as mutation."""

    def __init__(self, space, config: SearchConfig, rng: random.Random, options=None):
        super().__init__(space, config, rng, options)
        self.population: List[CandidateRecord] = []
        self.seen = set()
        self._pending: Optional[Dict[str, Any]] = None  # the tournament behind the proposal
        self._batch: List[Dict[str, Any]] = []  # those of a propose_batch, in proposal order
        self._init_queue: Optional[List[Proposal]] = None
        self.monitor = ConvergenceTracker(config)
        self._history: List[Dict[str, Any]] = []
        self.steps = 0

    # -- initial population ---------------------------------------------------------------
    def _initial(self) -> List[Proposal]:
        cfg, space = self.config, self.space
        if cfg.seed_archs:
            basics = [codec.parse_arch(a, **space.arch_defaults()) for a in cfg.seed_archs]
            out = []
            for i in range(cfg.population):
                basic = basics[i % len(basics)]
                # B023: novel() calls the lambda now, in this iteration
                child = offspring.novel(
                    lambda: offspring.transform(basic, space, self.rng), self.seen  # noqa: B023
                )
                self.seen.add(codec.canonical_hash(child))
                inherit = cfg.inherit and i % len(basics) == 0 and cfg.seed_weights
                out.append(Proposal(child, origin="offspring",
                                    parent_weights=cfg.seed_weights if inherit else None,
                                    parent_arch=basic if inherit else None))
            return out
        out = []
        for _ in range(cfg.population):
            arch = offspring.novel(lambda: space.sample(self.rng), self.seen)
            self.seen.add(codec.canonical_hash(arch))
            out.append(Proposal(arch, origin="random"))
        return out

    @property
    def initialising(self) -> bool:
        return len(self.records) < self.config.population

    # -- Alg. 1 ---------------------------------------------------------------------------
    def propose(self) -> Optional[Proposal]:
        if self.finished():
            return None
        if self.initialising:
            if self._init_queue is None:
                self._init_queue = self._initial()
            return self._init_queue[len(self.records)]
        if len(self.population) < 2:
            return None  # nothing to select from (every model failed)
        proposal, self._pending = self._tournament()
        self._batch = []
        return proposal

    def propose_batch(self, k: int) -> List[Proposal]:
        """`--parallel=k`: k tournaments on the current population before any child is
        observed (while initialising: the next k initial models, never past P)."""
        n = min(k, self.config.max_candidates - len(self.records))
        if n <= 0 or self.finished():
            return []
        if self.initialising:
            if self._init_queue is None:
                self._init_queue = self._initial()
            lo = len(self.records)
            return list(self._init_queue[lo:min(lo + n, self.config.population)])
        if len(self.population) < 2:
            return []
        out, self._batch, self._pending = [], [], None
        for _ in range(n):
            proposal, pending = self._tournament()
            out.append(proposal)
            self._batch.append(pending)
        return out

    def _tournament(self):
        s = min(self.config.sample, len(self.population))
        tournament = self.rng.sample(self.population, s)
        best = max(tournament, key=_key)
        worst = min(tournament, key=_key)
        parent = best.spec(self.space)
        child = offspring.novel(lambda: offspring.transform(parent, self.space, self.rng),
                                self.seen)
        self.seen.add(codec.canonical_hash(child))
        pending = {"best": best.id, "worst": worst.id,
                   "sample": sorted(r.id for r in tournament)}
        return Proposal(child, parent=best.id if self.config.inherit else None,
                        origin="mutation", info={"removes": worst.id}), pending

    def observe(self, record: CandidateRecord) -> None:
        super().observe(record)
        self.seen.add(record.hash)
        ok = record.scored
        if self._pending is None and not self._batch:  # initial population
            if ok:
                self.population.append(record)
            if not self.initialising:
                self._after_step(record)
            return
        if self._batch:
            pending = self._batch.pop(0)
        else:
            pending, self._pending = self._pending, None
        self.steps += 1
        if ok:
            ids = {r.id for r in self.population}
            worst = pending["worst"]
            if worst not in ids and self.population:
                # A batch (--parallel): an earlier child of the batch already removed it;
                # remove the current worst of the population instead (P stays constant).
                worst = min(self.population, key=_key).id
            self.population = [r for r in self.population if r.id != worst]
            self.population.append(record)
        self._after_step(record)

    def _after_step(self, record: CandidateRecord) -> None:
        if not self.population:
            return
        q = objective.population_quality([r.val_acc for r in self.population],
                                         self.config.target_std,
                                         *self.config.quality_exponents)
        best = max(self.population, key=_key)
        row = {"step": self.steps, "candidates": len(self.records), "mean_acc": q.mean_acc,
               "std_acc": q.std_acc, "quality": q.quality,
               "best_acc": max(r.val_acc for r in self.population), "best_score": best.score,
               "population": sorted(r.id for r in self.population)}
        self._history.append(row)
        self.monitor.update(self.steps, q.quality, row["population"])

    def finished(self) -> bool:
        if len(self.records) >= self.config.max_candidates:
            return True
        if self.initialising:
            return False
        return self.monitor.converged or len(self.population) < 2

    # -- results --------------------------------------------------------------------------
    def history(self) -> List[Dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "population"} for row in self._history]

    def final_population(self) -> List[CandidateRecord]:
        """The best-quality population (Eq. 3), as the paper retrains."""
        ids = set(self.monitor.best_population or [r.id for r in self.population])
        return [r for r in self.records if r.id in ids]

    def live_ids(self) -> List[int]:
        return [r.id for r in self.population]

    def summary(self) -> Dict[str, Any]:
        return {"strategy": self.name, "observed": len(self.records), "steps": self.steps,
                "population": [r.id for r in self.population],
                "best_quality": self.monitor.best, "best_quality_step": self.monitor.best_step,
                "best_population": self.monitor.best_population,
                "converged": self.monitor.converged,
                "converged_at": len(self.records) if self.monitor.converged else None}


class ConvergenceTracker(objective.ConvergenceMonitor):
    """The convergence monitor plus the population that had the best quality."""

    def __init__(self, config: SearchConfig):
        super().__init__(config.patience, config.min_delta)
        self.best_population: Optional[List[int]] = None

    def update(self, step: int, quality: float, population=None) -> bool:  # type: ignore[override]
        new_best = super().update(step, quality)
        if new_best:
            self.best_population = list(population or [])
        return new_best
