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
    the trainer's `resumed_from_epoch` is E. Use a constant learning rate (as the flagfiles
    do): the trainer's schedules are set by `epochs`, so a cosine schedule would differ
    between "E then E more" and a straight 2E run.
  * the proxy's c, r, s (`--econas_proxy`, e.g. c4r4s0) are applied to each request by
    `adapt_request` (reduced stem/head in the request's JSON arch, reduced image size and
    training samples in its data config); the record keeps the full architecture in text
    form, while its params / MAdds are those of the model actually trained.
  * ranking uses the runner's Eq. 1 score; with `--alpha=0 --beta=0` (the flagfiles) that
    is the validation accuracy, as in the paper.

Choices the paper leaves open (all flags):
  * selection (`--econas_level_weights`, default 1,2,3): a live model's weight is its
    level's weight (P_E, P_2E, P_3E: small, middle, high probability, §4.2) times a linear
    rank weight within its level (best 2n/(n+1), worst 2/(n+1), mean 1), so each level's
    share is weight × size.
  * mutation (`--econas_mutation`): "one" changes one field of one block to another value
    (AmoebaNet's rules without the identity mutation, §4.2); "transform" is EAT-NAS'
    Alg. 3 (every block changes one field). Children are redrawn until they are new,
    valid in the space and reducible by the proxy.
  * dead models: a failed evaluation (broken, out of memory, diverged loss) never joins a
    population, and a promotion that fails removes the model. With `--econas_lifespan=L`
    models older than L cycles are removed too (regularized evolution's aging, the paper's
    reference [23] for "dead"); 0 keeps them.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

from eatnas_tf.arch import codec
from eatnas_tf.arch.spec import ArchSpec, InvalidArchitectureError
from eatnas_tf.econas import proxy as proxy_lib
from eatnas_tf.search import objective, offspring
from eatnas_tf.search.strategy import Proposal, SearchConfig, Strategy, register

MUTATIONS = ("one", "transform")


@dataclasses.dataclass(frozen=True)
class EcoNASConfig:
    """Attributes (paper §5 / A5.1 defaults):
      epochs: E, epochs of the first proxy (20).
      mutations: N_0, children per cycle (16).
      promote1: N_1, models of P_E continued to 2E per cycle (8).
      promote2: N_2, models of P_2E continued to 3E per cycle (4).
      cycles: C (100).
      proxy: the c, r, s of every training, an EcoNAS name without e ("c4r4s0").
      level_weights: selection weights of P_E, P_2E, P_3E.
      mutation: "one" or "transform".
      lifespan: remove models older than this many cycles (0: never).
    The initial population N_init (50) is `SearchConfig.population`; `max_candidates`
    still caps the evaluations and `topk` the retrained models (paper: 5).
    """

    epochs: int = 20
    mutations: int = 16
    promote1: int = 8
    promote2: int = 4
    cycles: int = 100
    proxy: str = "c4r4s0"
    level_weights: Tuple[float, float, float] = (1.0, 2.0, 3.0)
    mutation: str = "one"
    lifespan: int = 0

    def __post_init__(self):
        object.__setattr__(self, "level_weights", tuple(float(w) for w in self.level_weights))
        p = proxy_lib.Proxy.parse(self.proxy)
        if p.e is not None:
            raise ValueError(f"econas_proxy: received {self.proxy!r}; allowed values: a name "
                             "without e (the epochs are E, 2E, 3E), e.g. c4r4s0")
        object.__setattr__(self, "proxy", p.name)
        checks = {"epochs": self.epochs >= 1, "mutations": self.mutations >= 1,
                  "promote1": self.promote1 >= 0, "promote2": self.promote2 >= 0,
                  "cycles": self.cycles >= 0, "lifespan": self.lifespan >= 0,
                  "level_weights": len(self.level_weights) == 3
                  and all(w >= 0 for w in self.level_weights) and sum(self.level_weights) > 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"econas_{name}: received {getattr(self, name)!r}; allowed "
                                 "values: " + {"promote1": ">= 0", "promote2": ">= 0",
                                               "cycles": ">= 0", "lifespan": ">= 0",
                                               "level_weights": "3 weights >= 0, not all 0"
                                               }.get(name, ">= 1"))
        if self.mutation not in MUTATIONS:
            raise ValueError(f"econas_mutation: received {self.mutation!r}; allowed values: "
                             f"{', '.join(MUTATIONS)}")


# -- flags --------------------------------------------------------------------------------
# The runner builds strategies as `make_strategy(name, space, config, rng)`, so EcoNAS'
# own settings come from `configure()` (tests, library callers) or, in the search command,
# from these flags, defined when the strategy registry imports this module (which the
# search flags do to list `--strategy` values).
_configured: Optional[EcoNASConfig] = None


def configure(cfg: Optional[EcoNASConfig]) -> None:
    """Sets the EcoNAS settings every following `make_strategy("econas", ...)` uses
    (None: back to the flags / defaults)."""
    global _configured
    _configured = cfg


def define_flags(fv=None) -> None:
    from absl import flags  # noqa: PLC0415

    fv = fv if fv is not None else flags.FLAGS
    if "econas_epochs" in fv:
        return
    d = EcoNASConfig()
    flags.DEFINE_integer("econas_epochs", d.epochs, "EcoNAS E: epochs of a new model; "
                         "promotions continue to 2E and 3E (paper: 20).", flag_values=fv)
    flags.DEFINE_integer("econas_mutations", d.mutations, "EcoNAS N_0: children per cycle "
                         "(paper: 16).", flag_values=fv)
    flags.DEFINE_integer("econas_promote1", d.promote1, "EcoNAS N_1: top of P_E continued to "
                         "2E per cycle (paper: 8).", flag_values=fv)
    flags.DEFINE_integer("econas_promote2", d.promote2, "EcoNAS N_2: top of P_2E continued "
                         "to 3E per cycle (paper: 4).", flag_values=fv)
    flags.DEFINE_integer("econas_cycles", d.cycles, "EcoNAS C: evolution cycles (paper: 100).",
                         flag_values=fv)
    flags.DEFINE_string("econas_proxy", d.proxy, "EcoNAS reduced setting of every training, "
                        "a name without e (paper: c4r4s0; c0r0s0: none).", flag_values=fv)
    flags.DEFINE_list("econas_level_weights", [str(w) for w in d.level_weights],
                      "Selection weights of P_E, P_2E, P_3E.", flag_values=fv)
    flags.DEFINE_enum("econas_mutation", d.mutation, list(MUTATIONS), "one: one field of one "
                      "block (AmoebaNet-style); transform: EAT-NAS Alg. 3.", flag_values=fv)
    flags.DEFINE_integer("econas_lifespan", d.lifespan, "Remove models older than N cycles "
                         "(0: only failed ones die).", flag_values=fv)

    def proxy_ok(v):
        try:
            return proxy_lib.Proxy.parse(v).e is None
        except ValueError:
            return False

    def weights_ok(v):
        try:
            return len(v) == 3 and all(float(w) >= 0 for w in v) and sum(map(float, v)) > 0
        except ValueError:
            return False

    flags.register_validator("econas_proxy", proxy_ok, "allowed values: an EcoNAS name "
                             "without e, c0..4 r0..4 s0..3, e.g. c4r4s0", flag_values=fv)
    flags.register_validator("econas_level_weights", weights_ok, "allowed values: 3 numbers "
                             ">= 0, not all 0", flag_values=fv)


def config_from_flags(fv=None) -> Optional[EcoNASConfig]:
    """The settings the parsed flags describe, or None when they are not parsed."""
    from absl import flags  # noqa: PLC0415

    fv = fv if fv is not None else flags.FLAGS
    if "econas_epochs" not in fv or not fv.is_parsed():
        return None
    try:
        weights = tuple(float(w) for w in fv.econas_level_weights)
    except ValueError:
        raise ValueError(f"econas_level_weights: received {fv.econas_level_weights}; allowed "
                         "values: 3 numbers >= 0") from None
    return EcoNASConfig(epochs=fv.econas_epochs, mutations=fv.econas_mutations,
                        promote1=fv.econas_promote1, promote2=fv.econas_promote2,
                        cycles=fv.econas_cycles, proxy=fv.econas_proxy,
                        level_weights=weights, mutation=fv.econas_mutation,
                        lifespan=fv.econas_lifespan)


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
                 econas: Optional[EcoNASConfig] = None):
        super().__init__(space, config, rng)
        self.eco = econas or _configured or config_from_flags() or EcoNASConfig()
        self.proxy = proxy_lib.Proxy.parse(self.eco.proxy)
        self.levels: List[List[Dict[str, Any]]] = [[], [], []]  # P_E, P_2E, P_3E
        self.born: Dict[str, int] = {}  # arch hash → cycle it joined P_E
        self.dead: List[int] = []
        self.seen = set()
        self.cycle = 0  # 0: the initial population
        self.phase = "init"  # init → mutate → promote1 → promote2 → (next cycle) mutate ...
        self._queue: List[Dict[str, Any]] = []  # promotions of the running phase
        self._done_in_phase = 0
        self._pending: Optional[Dict[str, Any]] = None
        self._history: List[Dict[str, Any]] = []

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

    def _rank(self, members: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return sorted(members, key=lambda r: (-r["score"], r["id"]))

    def _select_parent(self) -> Dict[str, Any]:
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

    def _live(self) -> List[Dict[str, Any]]:
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

    def _start(self, phase: str, queue: Sequence[Dict[str, Any]] = ()) -> None:
        self.phase = phase
        self._queue = list(queue)
        self._done_in_phase = 0

    def _end_cycle(self) -> None:
        """Line 26: remove the dead (aged out, with a lifespan); log the cycle."""
        if self.eco.lifespan:
            for i, level in enumerate(self.levels):
                keep = []
                for r in level:
                    if self.cycle - self.born.get(r["hash"], 0) >= self.eco.lifespan:
                        self.dead.append(r["id"])
                    else:
                        keep.append(r)
                self.levels[i] = keep
        self._log_cycle()

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
            parent = codec.parse_arch(parent_rec["arch"], **self.space.arch_defaults())
            child = self._draw(lambda: self._mutate(parent))
            self._pending = {"kind": "new", "parent": parent_rec["id"]}
            return Proposal(child, parent=parent_rec["id"] if self.config.inherit else None,
                            origin="mutation", epochs=E,
                            info={**info, "level": 1, "selected": parent_rec["id"],
                                  "proxy": f"{self.proxy.name}e{E}"})
        if self.phase in ("promote1", "promote2"):
            src = self._queue[0]
            level = 2 if self.phase == "promote1" else 3
            arch = codec.parse_arch(src["arch"], **self.space.arch_defaults())
            self._pending = {"kind": "promote", "src": src["id"], "level": level}
            return Proposal(arch, origin=f"promote{level}", epochs=level * E,
                            continue_from=src["id"],
                            info={**info, "level": level, "from_epochs": (level - 1) * E,
                                  "proxy": f"{self.proxy.name}e{level * E}"})
        return None

    def observe(self, record: Dict[str, Any]) -> None:
        super().observe(record)
        self.seen.add(record["hash"])
        pending, self._pending = self._pending, None
        ok = (record.get("status") == "ok" and record.get("score") is not None
              and record.get("duplicate_of") is None)
        if pending is None or pending["kind"] == "new":
            self._done_in_phase += 1
            if ok:
                self.levels[0].append(record)
                self.born.setdefault(record["hash"], self.cycle)
            elif record.get("duplicate_of") is None:
                self.dead.append(record["id"])
            return
        # A promotion: the model leaves its level; it joins the next one unless it died.
        self._queue = [r for r in self._queue if r["id"] != pending["src"]]
        src_level = pending["level"] - 2
        self.levels[src_level] = [r for r in self.levels[src_level] if r["id"] != pending["src"]]
        if ok:
            self.levels[pending["level"] - 1].append(record)
        else:
            self.dead.append(record["id"])

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
        accs = [r["val_acc"] for r in live]
        q = objective.population_quality(accs, self.config.target_std, self.config.alpha,
                                         self.config.beta)
        row = {"step": self.cycle, "cycle": self.cycle, "candidates": len(self.records),
               "mean_acc": q.mean_acc, "std_acc": q.std_acc, "quality": q.quality,
               "best_acc": max(accs), "dead": len(self.dead)}
        for i, level in enumerate(self.levels):
            k = (i + 1) * self.eco.epochs
            row[f"size_P{k}"] = len(level)
            row[f"mean_acc_P{k}"] = (sum(r["val_acc"] for r in level) / len(level)
                                     if level else None)
        self._history.append(row)

    def history(self) -> List[Dict[str, Any]]:
        return list(self._history)

    def final_population(self) -> List[Dict[str, Any]]:
        """P_3E (the paper retrains the top of P_60); P_2E, then P_E while it is empty."""
        for level in reversed(self.levels):
            if level:
                return list(level)
        return []

    def live_ids(self) -> List[int]:
        # Models whose checkpoint a promotion may still continue (P_E, P_2E), and every
        # live model's weights when children inherit.
        ids = [r["id"] for r in self.levels[0] + self.levels[1]]
        if self.config.inherit:
            ids += [r["id"] for r in self.levels[2]]
        return ids

    def summary(self) -> Dict[str, Any]:
        E = self.eco.epochs
        return {"strategy": self.name, "observed": len(self.records), "cycle": self.cycle,
                "phase": self.phase, "econas": dataclasses.asdict(self.eco),
                **{f"P{(i + 1) * E}": [r["id"] for r in level]
                   for i, level in enumerate(self.levels)},
                "dead": list(self.dead),
                "candidate_epochs": sum((r.get("epochs") or 0) - (r.get("resumed_from_epoch") or 0)
                                        for r in self.records
                                        if r.get("duplicate_of") is None),
                "best_quality": None, "converged_at": None}

    # -- what the runner trains -----------------------------------------------------------
    def adapt_request(self, req, proposal: Proposal):
        """The request with the proxy's c (arch channels), r and s (data) applied; its
        epochs are the proposal's (E, 2E, 3E)."""
        if self.proxy.c == 0 and self.proxy.r == 0 and self.proxy.s == 0:
            return req
        arch = proxy_lib.reduce_arch(self.proxy, proposal.arch)
        data = proxy_lib.reduce_data(self.proxy, req.data)
        return dataclasses.replace(req, arch=codec.to_json(arch), data=data)


define_flags()
