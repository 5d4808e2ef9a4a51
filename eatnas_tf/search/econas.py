"""EcoNAS: hierarchical proxy evolution (EcoNAS paper §4.2, Algorithm 1), `--strategy=econas`.

    P_E = P_2E = P_3E = {}                      # P_k: models trained for k epochs
    N_init random models, trained 0 → E, into P_E
    for cycle = 1 .. C:
        N_0 times: parent ← sample(P_E ∪ P_2E ∪ P_3E), higher-ranked more likely
                   child ← mutate(parent), trained 0 → E (from scratch), into P_E
        top N_1 of P_E: continue E → 2E from their checkpoints, move to P_2E
        top N_2 of P_2E: continue 2E → 3E from their checkpoints, move to P_3E
        remove dead models from P_E, P_2E, P_3E
    return the top models of P_3E (the paper retrains the top 5)

Paper defaults (flags/econas_search.cfg): N_init 50, N_0 16, N_1 8, N_2 4, C 100, E 20,
with the reduced setting c4r4s0 for every model (so c4r4s0e60 at most).

How it maps onto the runner (`search.runner`):
  * every evaluation is one `Proposal` with explicit `epochs` (E, 2E or 3E); a promotion
    has `continue_from` = the id of the model's latest record, and the runner resumes the
    trainer from that record's kept per-epoch checkpoint (`trainer.train(checkpoint_dir=...,
    keep_checkpoint=True)`), so E → 2E continues the same weights and optimiser state and
    the trainer's `resumed_from_epoch` is E. The LR schedule spans a fixed number of
    epochs whatever the continuation (see "learning rate" below), so "E then E more"
    equals a straight 2E run of the same schedule.
  * the proxy's c, r, s (`--econas_proxy`, e.g. c4r4s0) are applied to each request by
    `adapt_request` (reduced stem/head in the request's `ArchSpec`, reduced image size and
    training samples in its data config); the record keeps the full architecture in text
    form, while its params / MAdds are those of the model actually trained.
  * ranking uses the runner's Eq. 1 score; with `--alpha=0 --beta=0` (the flagfiles) that
    is the validation accuracy, as in the paper.

Choices the paper leaves open (all `EcoNASConfig` fields, flags in `econas.flags`):
  * selection (`--econas_level_weights`, default 1,2,3): a live model's weight is its
    level's weight (P_E, P_2E, P_3E: small, middle, high probability, §4.2) times a linear
    rank weight within its level (best 2n/(n+1), worst 2/(n+1), mean 1), so each level's
    share is weight × size.
  * mutation (`--econas_mutation`): "one" changes one field of one block to another value
    (AmoebaNet's rules without the identity mutation, §4.2); "transform" is EAT-NAS'
    Alg. 3 (every block changes one field). Children are redrawn until they are new,
    valid in the space and reducible by the proxy.
  * dead models (`--econas_dead`, Alg. 1 line 26): a failed evaluation (broken, out of
    memory, diverged loss) never joins a population, and a promotion that fails removes
    the model. "unpromoted" (the paper, set by flags/econas_search.cfg) then removes, at
    the end of every cycle, each model of P_E and P_2E that was not promoted in it: P_E
    and P_2E end a cycle empty, so the promotions see only that cycle's models (16 new
    ones in P_E, 8 in P_2E: §A5.1 "no more than half of the networks in the P_20 and P_40
    set will get chance to be continually trained"). P_3E keeps that cycle's N_2 arrivals
    plus the best `topk` of its older members, so |P_3E| after cycle k is
    N_2 + min(topk, |P_3E| after k-1) and its top-k is the top-k of every model that ever
    reached 3E (the paper retrains "top-5 models from P_60"). Removed models stay in the
    records (the paper's *history*); their checkpoints are dropped. When a removal would
    leave no live model (N_2 = 0, or every promotion failed), the highest non-empty level
    is kept as it is so the next cycle has parents. The initial population (cycle 0) is
    never pruned: cycle 1's N_1 promotions pick from all N_init + N_0 models of P_E.
    "aging" (the earlier default) removes only failed models, plus, with
    `--econas_lifespan=L`, models older than L cycles (regularized evolution's aging, the
    paper's reference [23] for "dead"); L = 0 keeps them.
  * learning rate (`--econas_lr_span`, with `--lr_schedule=cosine`): "final" defines one
    cosine over the complete reduced setting's 3E epochs (A5.1: "the complete reduce
    setting is c4r4s0e60"; A5.2: the cosine "still finishes a completed cosine cycle
    within the reduced epochs"): every training gets `schedule_epochs=3E`, so a model in
    P_E stopped at E has run the first third of it, and a promotion, which resumes the
    optimiser's step counter from the checkpoint, continues the same curve (its first
    step's LR is the schedule's value at step E × steps_per_epoch). "stage" re-anneals
    within each E epochs instead (SGDR, period E, no growth).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Dict, List, Optional, Sequence

from eatnas_tf.arch import codec
from eatnas_tf.arch.spec import ArchSpec, InvalidArchitectureError
from eatnas_tf.econas import proxy as proxy_lib
from eatnas_tf.econas.config import EcoNASConfig
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search import objective, offspring
from eatnas_tf.search.strategy import Proposal, SearchConfig, Strategy, register


def mutate_one(arch: ArchSpec, space, rng: random.Random, max_tries: int = 1000) -> ArchSpec:
    """One field of one block set to another allowed value; the result lies in `space`."""
    values = space.field_values()
    for _ in range(max_tries):
        i = rng.randrange(len(arch.blocks))
        block = arch.blocks[i]
        fields = [f for f in offspring.FIELDS if any(v != getattr(block, f) for v in values[f])]
        if not fields:
            continue
        f = rng.choice(fields)
        new = rng.choice([v for v in values[f] if v != getattr(block, f)])
        try:
            child = space.make(dataclasses.replace(b, **{f: new}) if j == i else b
                               for j, b in enumerate(arch.blocks))
        except InvalidArchitectureError:
            continue
        if space.contains(child):
            return child
    raise InvalidArchitectureError(f"space {space.name}: no valid one-field mutation of "
                                   f"{codec.to_text(arch)} in {max_tries} draws")


@register("econas")
class EcoNAS(Strategy):
    """Algorithm 1 of EcoNAS (see the module docstring)."""

    keeps_checkpoints = True  # the runner keeps per-epoch checkpoints for `continue_from`

    def __init__(self, space, config: SearchConfig, rng: random.Random,
                 options: Optional[EcoNASConfig] = None):
        super().__init__(space, config, rng, options)
        self.eco = options or EcoNASConfig()
        self.proxy = proxy_lib.Proxy.parse(self.eco.proxy)
        self.levels: List[List[CandidateRecord]] = [[], [], []]  # P_E, P_2E, P_3E
        self.born: Dict[str, int] = {}  # arch hash → cycle it joined P_E
        self.dead: List[int] = []
        self.seen = set()
        self.cycle = 0  # 0: the initial population
        self.phase = "init"  # init → mutate → promote1 → promote2 → (next cycle) mutate ...
        self._queue: List[CandidateRecord] = []  # promotions of the running phase
        self._done_in_phase = 0
        self._pending: Optional[Dict[str, Any]] = None
        self._history: List[Dict[str, Any]] = []
        self._arrived3: List[int] = []  # ids that joined P_3E in the running cycle

    # -- helpers --------------------------------------------------------------------------
    def _reducible(self, arch: ArchSpec) -> bool:
        return proxy_lib.reducible(arch, [self.proxy])

    def _draw(self, fn) -> ArchSpec:
        def draw():
            for _ in range(1000):
                a = fn()
                if self._reducible(a):
                    return a
            raise InvalidArchitectureError(f"space {self.space.name}: no architecture "
                                           f"reducible by {self.proxy} in 1000 draws")
        child = offspring.novel(draw, self.seen)
        self.seen.add(codec.canonical_hash(child))
        return child

    def _rank(self, members: Sequence[CandidateRecord]) -> List[CandidateRecord]:
        return sorted(members, key=lambda r: (-r.score, r.id))

    def _select_parent(self) -> CandidateRecord:
        pool, weights = [], []
        for level, members in enumerate(self.levels):
            n = len(members)
            for rank_i, r in enumerate(self._rank(members)):
                pool.append(r)
                weights.append(self.eco.level_weights[level] * 2.0 * (n - rank_i) / (n + 1))
        if sum(weights) <= 0:
            weights = [1.0] * len(pool)
        return self.rng.choices(pool, weights=weights, k=1)[0]

    def _mutate(self, parent: ArchSpec) -> ArchSpec:
        if self.eco.mutation == "transform":
            return offspring.transform(parent, self.space, self.rng)
        return mutate_one(parent, self.space, self.rng)

    def _live(self) -> List[CandidateRecord]:
        return [r for level in self.levels for r in level]

    # -- Alg. 1 ---------------------------------------------------------------------------
    def _advance(self) -> None:
        """Moves to the next phase while the current one has nothing left to propose."""
        cfg, eco = self.config, self.eco
        while True:
            if self.phase == "init":
                if len(self.records) < cfg.population:
                    return
                if not self._next_cycle():
                    return
            elif self.phase == "mutate":
                if self._done_in_phase < eco.mutations:
                    return
                self._start("promote1", self._rank(self.levels[0])[:eco.promote1])
            elif self.phase == "promote1":
                if self._queue:
                    return
                self._start("promote2", self._rank(self.levels[1])[:eco.promote2])
            elif self.phase == "promote2":
                if self._queue:
                    return
                if not self._next_cycle():
                    return
            else:
                return

    def _next_cycle(self) -> bool:
        """Ends the cycle, then starts the next one's mutations (True) or finishes (False)."""
        self._end_cycle()
        if self.cycle >= self.eco.cycles or not self._live():
            self.phase = "done"
            return False
        self.cycle += 1
        self._start("mutate")
        return True

    def _start(self, phase: str, queue: Sequence[CandidateRecord] = ()) -> None:
        self.phase = phase
        self._queue = list(queue)
        self._done_in_phase = 0

    def _end_cycle(self) -> None:
        """Line 26: remove the dead (see `--econas_dead` in the module docstring); log."""
        if self.eco.dead == "unpromoted":
            if self.cycle >= 1:
                self._remove_unpromoted()
        elif self.eco.lifespan:
            for i, level in enumerate(self.levels):
                keep = []
                for r in level:
                    if self.cycle - self.born.get(r.hash, 0) >= self.eco.lifespan:
                        self.dead.append(r.id)
                    else:
                        keep.append(r)
                self.levels[i] = keep
        self._arrived3 = []
        self._log_cycle()

    def _remove_unpromoted(self) -> None:
        arrived = set(self._arrived3)
        new3 = [r for r in self.levels[2] if r.id in arrived]
        elite = self._rank([r for r in self.levels[2] if r.id not in arrived])
        elite = elite[:self.config.topk]
        kept3 = sorted(new3 + elite, key=lambda r: r.id)
        if not kept3:
            # Nothing reached 3E: keep the highest non-empty level so the next cycle
            # still has parents (the module docstring).
            return
        kept_ids = {r.id for r in kept3}
        self.dead.extend(r.id for r in self.levels[0] + self.levels[1] + self.levels[2]
                         if r.id not in kept_ids)
        self.levels = [[], [], kept3]

    def propose(self) -> Optional[Proposal]:
        if self.finished():
            return None
        self._advance()
        E = self.eco.epochs
        info = {"cycle": self.cycle, "proxy": self.proxy.name}
        if self.phase == "init":
            arch = self._draw(lambda: self.space.sample(self.rng))
            self._pending = {"kind": "new"}
            return Proposal(arch, origin="random", epochs=E,
                            info={**info, "level": 1, "proxy": f"{self.proxy.name}e{E}"})
        if self.phase == "mutate":
            if not self._live():
                return None
            parent_rec = self._select_parent()
            parent = parent_rec.spec(self.space)
            child = self._draw(lambda: self._mutate(parent))
            self._pending = {"kind": "new", "parent": parent_rec.id}
            return Proposal(child, parent=parent_rec.id if self.config.inherit else None,
                            origin="mutation", epochs=E,
                            info={**info, "level": 1, "selected": parent_rec.id,
                                  "proxy": f"{self.proxy.name}e{E}"})
        if self.phase in ("promote1", "promote2"):
            src = self._queue[0]
            level = 2 if self.phase == "promote1" else 3
            arch = src.spec(self.space)
            self._pending = {"kind": "promote", "src": src.id, "level": level}
            return Proposal(arch, origin=f"promote{level}", epochs=level * E,
                            continue_from=src.id,
                            info={**info, "level": level, "from_epochs": (level - 1) * E,
                                  "proxy": f"{self.proxy.name}e{level * E}"})
        return None

    def observe(self, record: CandidateRecord) -> None:
        super().observe(record)
        self.seen.add(record.hash)
        pending, self._pending = self._pending, None
        ok = record.scored and record.trained
        if pending is None or pending["kind"] == "new":
            self._done_in_phase += 1
            if ok:
                self.levels[0].append(record)
                self.born.setdefault(record.hash, self.cycle)
            elif record.trained:
                self.dead.append(record.id)
            return
        # A promotion: the model leaves its level; it joins the next one unless it died.
        self._queue = [r for r in self._queue if r.id != pending["src"]]
        src_level = pending["level"] - 2
        self.levels[src_level] = [r for r in self.levels[src_level] if r.id != pending["src"]]
        if ok:
            self.levels[pending["level"] - 1].append(record)
            if pending["level"] == 3:
                self._arrived3.append(record.id)
        else:
            self.dead.append(record.id)

    def finished(self) -> bool:
        if len(self.records) >= self.config.max_candidates:
            return True
        self._advance()
        return self.phase == "done"

    # -- results --------------------------------------------------------------------------
    def _log_cycle(self) -> None:
        live = self._live()
        if not live:
            return
        accs = [r.val_acc for r in live]
        q = objective.population_quality(accs, self.config.target_std,
                                         *self.config.quality_exponents)
        row = {"step": self.cycle, "cycle": self.cycle, "candidates": len(self.records),
               "mean_acc": q.mean_acc, "std_acc": q.std_acc, "quality": q.quality,
               "best_acc": max(accs), "dead": len(self.dead)}
        for i, level in enumerate(self.levels):
            k = (i + 1) * self.eco.epochs
            row[f"size_P{k}"] = len(level)
            row[f"mean_acc_P{k}"] = (sum(r.val_acc for r in level) / len(level)
                                     if level else None)
        self._history.append(row)

    def history(self) -> List[Dict[str, Any]]:
        return list(self._history)

    def final_population(self) -> List[CandidateRecord]:
        """P_3E (the paper retrains the top of P_60); P_2E, then P_E while it is empty."""
        for level in reversed(self.levels):
            if level:
                return list(level)
        return []

    def live_ids(self) -> List[int]:
        # Models whose checkpoint a promotion may still continue (P_E, P_2E), and every
        # live model's weights when children inherit.
        ids = [r.id for r in self.levels[0] + self.levels[1]]
        if self.config.inherit:
            ids += [r.id for r in self.levels[2]]
        return ids

    def summary(self) -> Dict[str, Any]:
        E = self.eco.epochs
        return {"strategy": self.name, "observed": len(self.records), "cycle": self.cycle,
                "phase": self.phase, "econas": dataclasses.asdict(self.eco),
                **{f"P{(i + 1) * E}": [r.id for r in level]
                   for i, level in enumerate(self.levels)},
                "dead": list(self.dead),
                "candidate_epochs": sum(r.candidate_epochs for r in self.records),
                "best_quality": None, "converged_at": None}

    # -- what the runner trains -----------------------------------------------------------
    def adapt_request(self, req, proposal: Proposal):
        """The request with the proxy's c (arch channels), r and s (data) applied, and a
        cosine LR laid over the promotions (`lr_span`); its epochs are the proposal's
        (E, 2E, 3E)."""
        train = self.train_config(req.train)
        if train != req.train:
            req = dataclasses.replace(req, train=train)
        if self.proxy.c == 0 and self.proxy.r == 0 and self.proxy.s == 0:
            return req
        arch = proxy_lib.reduce_arch(self.proxy, proposal.arch)
        data = proxy_lib.reduce_data(self.proxy, req.data)
        return dataclasses.replace(req, arch=arch, data=data)

    def train_config(self, train):
        """`train` (a `TrainConfig` of E, 2E or 3E epochs) with the cosine over the
        promotions: lr_span "final" spans 3E epochs (continued by each promotion), "stage"
        restarts every E epochs. Other schedules are returned unchanged."""
        if train.lr_schedule != "cosine":
            return train
        E = self.eco.epochs
        if self.eco.lr_span == "final":
            return train.replace(schedule_epochs=3 * E)
        return train.replace(lr_schedule="cosine_restarts", restart_epochs=float(E),
                             restart_mult=1.0, schedule_epochs=None)
