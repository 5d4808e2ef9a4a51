"""Random search: the baseline every NAS method must beat at equal candidate-epochs.

Draws distinct architectures uniformly from the space (seeded), trains each from scratch,
and reports the top-k by the same Eq. 1 score as the evolution. With `seed_archs`
(a transfer stage) it draws offspring of the basic model instead, which is the
"transfer without evolution" ablation.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from eatnas_tf.arch import codec
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search import objective, offspring
from eatnas_tf.search.strategy import Proposal, Strategy, register


@register("random")
class RandomSearch(Strategy):

    inherits_weights = False  # every candidate trains from scratch

    def __init__(self, space, config, rng, options=None):
        super().__init__(space, config, rng, options)
        self.seen = set()
        self._basics = [codec.parse_arch(a, **space.arch_defaults()) for a in config.seed_archs]
        self._history: List[Dict[str, Any]] = []

    def propose(self) -> Optional[Proposal]:
        if self.finished():
            return None
        return self._draw(len(self.records))

    def propose_batch(self, k: int) -> List[Proposal]:
        # Draws do not depend on results: a batch is the next k draws (same as k=1).
        n = max(0, min(k, self.config.max_candidates - len(self.records)))
        return [self._draw(len(self.records) + j) for j in range(n)]

    def _draw(self, index: int) -> Proposal:
        if self._basics:
            basic = self._basics[index % len(self._basics)]
            draw = lambda: offspring.transform(basic, self.space, self.rng)  # noqa: E731
            origin = "offspring"
        else:
            draw = lambda: self.space.sample(self.rng)  # noqa: E731
            origin = "random"
        arch = offspring.novel(draw, self.seen)
        self.seen.add(codec.canonical_hash(arch))
        return Proposal(arch, origin=origin)

    def observe(self, record: CandidateRecord) -> None:
        super().observe(record)
        self.seen.add(record.hash)
        accs = [r.val_acc for r in self.records if r.ok]
        if accs:
            q = objective.population_quality(accs, self.config.target_std,
                                             *self.config.quality_exponents)
            self._history.append({"step": len(self.records), "candidates": len(self.records),
                                  "mean_acc": q.mean_acc, "std_acc": q.std_acc,
                                  "quality": q.quality, "best_acc": max(accs)})

    def history(self) -> List[Dict[str, Any]]:
        return list(self._history)

    def live_ids(self) -> List[int]:
        return []  # nothing inherits from a random candidate
