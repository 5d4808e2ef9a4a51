"""The one small interface every search strategy implements (EAT evolution, random,
EcoNAS, EPNAS), and the registry the search command picks from.

A strategy only decides *what* to evaluate next; the runner (`search.runner`) trains,
scores, stores and replays. The contract that makes runs resumable and reproducible:

  * a strategy's decisions depend only on its seeded `random.Random` and on the records
    passed to `observe()` (`CandidateRecord`s, exactly as stored in `candidates.jsonl`);
  * the runner calls `propose_batch(k)` then `observe()` once per proposal, in order
    (k = 1: strictly alternately), so replaying the stored records rebuilds the same
    state and the same next proposal after a kill.

    strategy = make_strategy("eat", space, config, rng=random.Random("0:stage1"))
    while not strategy.finished():
        for proposal in strategy.propose_batch(1):
            strategy.observe(runner_evaluates(proposal))
"""

from __future__ import annotations

import abc
import dataclasses
import random
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.record import CandidateRecord


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What to evaluate next.

    Attributes:
      arch: the candidate architecture (already valid in the space).
      parent: id of an evaluated candidate of this run whose stored weights the child
        inherits (paper §3.4); None for none.
      parent_weights: path of a weights file to inherit from when `parent` is None (the
        basic model's weights at the start of an elastic transfer).
      parent_arch: the architecture `parent_weights` (or `inherited_weights`) belongs to.
      inherited_weights: `{layer name: arrays}` the strategy assembled for this child
        (EPNAS' sharing dictionary); the runner stores them for the evaluation.
      origin: "random", "mutation", "offspring" or "seed" (or a strategy's own word).
      epochs: training epochs of this evaluation (None: the run's train config).
      continue_from: id of a candidate of the same architecture whose checkpoint this
        evaluation continues (EcoNAS promotion: E → 2E epochs) instead of starting fresh.
      train_overrides: `TrainConfig` fields to change for this evaluation (EPNAS' short,
        high-LR prediction runs).
      info: strategy-specific notes stored with the record (e.g. the removed candidate).
    """

    arch: ArchSpec
    parent: Optional[int] = None
    parent_weights: Optional[str] = None
    parent_arch: Optional[ArchSpec] = None
    inherited_weights: Optional[Mapping[str, Any]] = None
    origin: str = "random"
    epochs: Optional[int] = None
    continue_from: Optional[int] = None
    train_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a strategy may use of the run directory (it writes nothing there itself).

    Attributes:
      weights_path: candidate id -> its stored weights file (a duplicate's source's).
      cache_dir: a directory for measurement caches of the strategy (EPNAS' latencies).
      read_file: reads back a file of `state_files()` by name (JSON).
    """

    weights_path: Callable[[int], str]
    cache_dir: Optional[str] = None
    read_file: Optional[Callable[[str], Any]] = None


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Settings shared by the strategies (each reads what it needs).

    Attributes:
      population: population size P (paper: 64).
      sample: tournament size S (paper: 16).
      max_candidates: hard cap on evaluated candidates in this stage (initial population
        included).
      patience: evolution steps without a quality improvement before Alg. 1 stops
        (0: run to `max_candidates`).
      min_delta: relative quality improvement that counts as one.
      alpha, beta: Eq. 1/2 exponents of the candidate score (paper: -0.07).
      quality_alpha, quality_beta: Eq. 3's exponents (population quality); None: alpha,
        beta (the paper sets both pairs to -0.07 but writes them as separate uses of ω).
      target_std: Eq. 3's std target.
      topk: models retrained at the end (paper: 8).
      seed_archs: text forms that seed the initial population through the offspring
        generator (elastic transfer); empty: random initial population.
      seed_weights: weights file of the first seed arch, inherited by its offspring.
      inherit: inherit parent weights (paper §3.4); False trains every child from scratch.
      latency: the latency table candidates' `latency_ms` is predicted with
        (`latency.config.LatencyConfig`, `--latency_table`; None: no prediction). Eq. 1's
        sub-objective with `cost_metric="latency"`, EPNAS' `latency` constraint's numbers.
    """

    population: int = 64
    sample: int = 16
    max_candidates: int = 1400
    patience: int = 0
    min_delta: float = 1e-3
    alpha: float = -0.07
    beta: float = -0.07
    target_std: float = 0.01
    topk: int = 8
    seed_archs: Sequence[str] = ()
    seed_weights: Optional[str] = None
    inherit: bool = True
    quality_alpha: Optional[float] = None
    quality_beta: Optional[float] = None
    latency: Optional[Any] = None

    @property
    def quality_exponents(self) -> Tuple[float, float]:
        """(alpha, beta) of Eq. 3: `quality_alpha/beta`, defaulting to `alpha/beta`."""
        return (self.alpha if self.quality_alpha is None else self.quality_alpha,
                self.beta if self.quality_beta is None else self.quality_beta)

    def __post_init__(self):
        object.__setattr__(self, "seed_archs", tuple(self.seed_archs))
        checks = {"population": self.population >= 1, "sample": 1 <= self.sample,
                  "max_candidates": self.max_candidates >= 1, "patience": self.patience >= 0,
                  "min_delta": self.min_delta >= 0, "target_std": self.target_std > 0,
                  "topk": self.topk >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}: received {getattr(self, name)!r}; allowed values: "
                                 + {"min_delta": ">= 0", "patience": ">= 0",
                                    "target_std": "> 0"}.get(name, ">= 1"))
        if self.sample > self.population:
            raise ValueError(f"sample: received {self.sample}; allowed values: <= population "
                             f"({self.population})")


class Strategy(abc.ABC):
    """Base class: `propose_batch` → runner evaluates → `observe`, until `finished()`.

    The whole contract with the runner (`search.runner.run_stage`):
      * `bind(context)` once, before the first proposal: what it may read of the run;
      * `propose_batch(k)` → up to k `Proposal`s, `observe(record)` for each in order
        (k = 1 is the sequential loop; replay of stored records uses the same calls);
      * `adapt_request(request, proposal)` → the `EvalRequest` actually trained;
      * `live_ids()` → candidates whose weights / checkpoints must be kept;
      * `state_dict()` (in `state.json`) and `state_files()` (written by the runner under
        `DIR/<name>/`); `summary()`, `history()`, `topk()` for the report.
    Class attributes say what the runner must keep: `inherits_weights` (children inherit
    stored weights, so trained weights are saved), `keeps_checkpoints` (per-epoch
    checkpoints for later continuation), `batch_safe` (k proposals in a row are valid).
    """

    name: ClassVar[str] = ""
    #: `propose()` depends only on the RNG and the observed records, never on the previous
    #: proposal having been observed: k calls in a row are a valid batch (`propose_batch`).
    batch_safe: ClassVar[bool] = False
    #: children inherit weights of evaluated candidates: the runner keeps trained weights.
    inherits_weights: ClassVar[bool] = True
    #: a later proposal may continue a candidate's training (`Proposal.continue_from`).
    keeps_checkpoints: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, config: SearchConfig, rng: random.Random,
                 options: Any = None):
        self.space = space
        self.config = config
        self.rng = rng
        self.options = options
        self.context: Optional[RunContext] = None
        self.records: List[CandidateRecord] = []  # every observed record, in order

    def bind(self, context: RunContext) -> None:
        """Called by the runner before the first proposal."""
        self.context = context

    @abc.abstractmethod
    def propose(self) -> Optional[Proposal]:
        """The next candidate, or None when the strategy has nothing more to evaluate."""

    def propose_batch(self, k: int) -> List[Proposal]:
        """Up to `k` proposals made before any of them is observed (`--parallel=k`); the
        runner evaluates them together and observes their records in this order.

        Default: k × `propose()` for `batch_safe` strategies, else a batch of one (the
        strategy runs sequentially whatever k is). Never more than `max_candidates` allows.
        """
        room = self.config.max_candidates - len(self.records)
        return self._propose_up_to(min(k if self.batch_safe else 1, room))

    def _propose_up_to(self, n: int) -> List[Proposal]:
        """Up to `n` proposals in a row, fewer when `propose()` runs dry."""
        out: List[Proposal] = []
        for _ in range(max(0, n)):
            p = self.propose()
            if p is None:
                break
            out.append(p)
        return out

    def adapt_request(self, request, proposal: Proposal):
        """The `EvalRequest` to train for `proposal` (default: as the runner made it)."""
        del proposal
        return request

    def observe(self, record: CandidateRecord) -> None:
        """Takes the stored record of the next proposal, in proposal order."""
        self.records.append(record)

    def finished(self) -> bool:
        return len(self.records) >= self.config.max_candidates

    def history(self) -> List[Dict[str, Any]]:
        """Per-step population statistics for the report (may be empty)."""
        return []

    def summary(self) -> Dict[str, Any]:
        """JSON-able state for `state.json` and the report."""
        return {"strategy": self.name, "observed": len(self.records)}

    def final_population(self) -> List[CandidateRecord]:
        """The records the top-k retraining chooses from (default: every ok record)."""
        return [r for r in self.records if r.ok]

    def topk(self, k: Optional[int] = None) -> List[CandidateRecord]:
        """The k best records of `final_population()` by score (distinct architectures)."""
        k = k or self.config.topk
        seen, out = set(), []
        for r in sorted(self.final_population(), key=lambda r: (-r.score, r.id)):
            if r.hash not in seen:
                seen.add(r.hash)
                out.append(r)
        return out[:k]

    def live_ids(self) -> List[int]:
        """Candidate ids whose stored weights may still be inherited from."""
        return [r.id for r in self.records]

    # Strategies with state that is not a function of the observed records (e.g. a policy
    # network trained on them with nondeterministic ops) save and restore it here.
    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        del state

    def state_files(self) -> Dict[str, Any]:
        """JSON files to (re)write under `DIR/<name>/` now (default: none): large state
        kept out of `state.json`, e.g. a policy's weights; read back with
        `context.read_file(name)`."""
        return {}


_REGISTRY: Dict[str, Callable[..., Strategy]] = {}


def register(name: str):
    """Class decorator: makes a strategy available as `--strategy=name`."""

    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def strategy_names() -> List[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def make_strategy(name: str, space: SearchSpace, config: SearchConfig, rng: random.Random,
                  options: Any = None) -> Strategy:
    """A registered strategy; `options` are its own settings (`EcoNASConfig`,
    `EpnasConfig`; None: its defaults)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(
            f"strategy: received {name!r}; allowed values: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](space, config, rng, options=options)


def _load_builtin() -> None:
    # Imported lazily so strategy modules can import this one.
    import importlib

    for module in ("evolution", "random_search", "econas", "epnas"):
        try:
            importlib.import_module(f"eatnas_tf.search.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"eatnas_tf.search.{module}":
                raise
