"""The experiment a search command runs, as one frozen config built once in the binary.

    flags ──(search.flags.experiment_from_flags, in the binary)──> SearchExperiment
        .stage     Stage: strategy, space, data, train, search settings, strategy options
        .retrain   RetrainConfig of the top-k (None: no retraining)
        .parallel  K proposals per step (changes the candidates, so part of the experiment)
    RuntimeOptions: how it runs (executor, verbosity, --stop_after); never changes a result

`SearchExperiment.to_dict()` is what `DIR/config.json` stores; a resumed run compares it
field by field (`RunDir.check_config`), so a setting added to any of these dataclasses is
covered the day it is added. Library code receives these objects and never reads flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.search.strategy import SearchConfig
from eatnas_tf.train.config import LR_SCHEDULES, TrainConfig


def _as_dict(obj) -> Any:
    if obj is None:
        return None
    describe = getattr(obj, "describe", None)
    return describe() if callable(describe) else dataclasses.asdict(obj)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One search stage.

    Attributes:
      name: stage name stored with every record ("search", "stage1", "stage2").
      strategy: registered strategy name ("eat", "random", "econas", "epnas").
      space: the search space.
      data, train: candidate data and training settings.
      config: settings every strategy shares (population, sample, seeds, inherit...).
      seed: run seed; the strategy's RNG is `Random(f"{seed}:{name}")` and candidate i
        trains with seed `seed * 1_000_003 + i`.
      cost_metric, target: Eq. 1's sub-objective (None: the space's). "latency" (predicted
        ms) needs `config.latency` (a latency table) and an explicit target in ms.
      options: the strategy's own settings (`EcoNASConfig`, `EpnasConfig`; None: its
        defaults), passed to `make_strategy`.
    """

    name: str
    strategy: str
    space: SearchSpace
    data: DataConfig
    train: TrainConfig
    config: SearchConfig
    seed: int = 0
    cost_metric: Optional[str] = None
    target: Optional[float] = None
    options: Any = None

    def __post_init__(self):
        if self.metric == "latency":
            if self.config.latency is None:
                raise ValueError("cost_metric: received latency without a latency table; "
                                 "allowed: --latency_table=FILE with it")
            if self.target is None and self.space.cost_metric != "latency":
                raise ValueError("target_latency_ms: missing with cost_metric latency; allowed "
                                 "values: a latency in ms > 0")

    @property
    def metric(self) -> str:
        return self.cost_metric or self.space.cost_metric

    @property
    def target_value(self) -> float:
        return float(self.target or self.space.target)

    def describe(self) -> Dict[str, Any]:
        """Every setting of the stage as plain JSON values."""
        return {"name": self.name, "strategy": self.strategy,
                "space": dataclasses.asdict(self.space),
                "data": dataclasses.asdict(self.data), "train": self.train.as_dict(),
                "search": dataclasses.asdict(self.config), "seed": self.seed,
                "cost_metric": self.metric, "target": self.target_value,
                "options": _as_dict(self.options)}


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """The top-k retraining after a stage (paper: the best-quality population's top 8).

    Attributes:
      epochs: retraining epochs (>= 1).
      learning_rate: peak LR (None: the candidates' LR).
      lr_schedule: one of `LR_SCHEDULES`.
      val_fraction: validation share held out to pick the winner (0: pick by test).
      max_train_examples: cap on retraining examples (None: all).
    """

    epochs: int
    learning_rate: Optional[float] = None
    lr_schedule: str = "cosine"
    val_fraction: float = 0.1
    max_train_examples: Optional[int] = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"retrain_epochs: received {self.epochs}; allowed values: >= 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"retrain_lr_schedule: received {self.lr_schedule!r}; allowed "
                             f"values: {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"retrain_val_fraction: received {self.val_fraction}; allowed "
                             "values: [0, 1)")

    def configs(self, stage: Stage):
        """(data, train) configs of the retraining of `stage`'s models."""
        data = dataclasses.replace(stage.data, split="final", val_fraction=self.val_fraction,
                                   max_train_examples=self.max_train_examples)
        train = stage.train.replace(epochs=self.epochs, lr_schedule=self.lr_schedule,
                                    learning_rate=self.learning_rate or stage.train.learning_rate)
        return data, train


@dataclasses.dataclass(frozen=True)
class SearchExperiment:
    """What `python -m eatnas_tf.search` (and `transfer`) runs; see the module docstring."""

    stage: Stage
    retrain: Optional[RetrainConfig] = None
    parallel: int = 1

    def __post_init__(self):
        if self.parallel < 1:
            raise ValueError(f"parallel: received {self.parallel}; allowed values: >= 1")

    def to_dict(self) -> Dict[str, Any]:
        return {"stage": self.stage.describe(), "retrain": _as_dict(self.retrain),
                "parallel": self.parallel}


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """How a search runs, not what it computes (not compared on resume).

    Attributes:
      run_dir: the run directory.
      executor, ray_address, max_worker_retries, worker_max_tasks: see `search.executors`.
      verbose: trainer verbosity per candidate.
      deterministic_ops: TensorFlow op determinism (same seed, same accuracies).
      stop_after: stop after N new candidates (resume later).
      allow_flag_change: resume although the experiment config changed (recorded).
    """

    run_dir: str
    executor: str = "local"
    ray_address: Optional[str] = None
    max_worker_retries: int = 2
    worker_max_tasks: int = 20
    verbose: int = 0
    deterministic_ops: bool = False
    stop_after: Optional[int] = None
    allow_flag_change: bool = False
