"""EPNAS settings (Zhou et al. §4.1 "Training details" as defaults).

`EpnasConfig` is plain data: the search binary builds it from flags (`epnas.flags`) and
passes it to `make_strategy("epnas", ..., options=cfg)`; library callers and tests
construct it directly.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from eatnas_tf.epnas import actions
from eatnas_tf.epnas.constraints import Constraint
from eatnas_tf.epnas.policy import PAPER_LR
from eatnas_tf.epnas.table2 import space as table2_space

#: The spaces EPNAS searches: the EAT-NAS 7-block encoding, or the paper's own Table 2.
SPACES = ("eat_blocks", "table2")

LATENCY_SOURCES = ("predict", "measure")


@dataclasses.dataclass(frozen=True)
class EpnasConfig:
    """Attributes (paper values as defaults, §4.1 "Training details"):
      constraints: the soft constraints of the reward (Eq. 2, 3); empty: r = P.
      mode: "layer" (layer-by-layer search) or "block" (module search).
      branches: N, models transformed in parallel per step (paper: 8).
      steps: T, steps per episode (paper: 10 layer-by-layer, 5 module).
      episodes: episodes to run (paper: 15).
      policy_lr: Adam learning rate of the policy (paper: 0.0006).
      baseline_decay: decay of the moving-average baseline.
      entropy_weight: entropy bonus of the policy loss (not in the paper; 0 = off).
      policy_updates: Adam steps per episode on the episode's samples (1: plain REINFORCE).
      predict: performance prediction (§3.4): large LR, early stop.
      predict_lr: the prediction run's learning rate (paper: 0.5 with batch 1024).
      predict_epochs: early stop after this many epochs (paper: 10).
      share: the parameter-sharing dictionary (also needs the search's `inherit`).
      dict_per_key: dimension variants kept per dictionary key.
      space: "eat_blocks" (the EAT-NAS 7-block space of `--space`, in `mode`) or "table2"
        (the paper's layer-by-layer space, Table 2: `epnas.table2`; layer mode only).
      max_layers, init_layers, channels: the Table 2 space's MAX_LAYERS, the layers of
        the random initial networks, and the channel sizes it may use (a subset of Table
        2's; a CPU smoke narrows them).
      latency: where the `latency` constraint's numbers come from: "predict" (default:
        the latency predictor over the search's `--latency_table`, or over a table of this
        host built on demand in the run directory, `epnas/latency_table.json`) or
        "measure" (each whole fp32 model converted and timed, cached by architecture).
      latency_threads, latency_runs: LiteRT threads (of a run-directory table, or of the
        whole-model timing) and timed runs (whole-model timing).
    """

    constraints: Tuple[Constraint, ...] = ()
    mode: str = "layer"
    branches: int = 8
    steps: int = 10
    episodes: int = 15
    policy_lr: float = PAPER_LR
    baseline_decay: float = 0.95
    entropy_weight: float = 0.0
    policy_updates: int = 1
    predict: bool = True
    predict_lr: float = 0.5
    predict_epochs: int = 10
    share: bool = True
    dict_per_key: int = 4
    space: str = "eat_blocks"
    max_layers: int = table2_space.MAX_LAYERS
    init_layers: int = 8
    channels: Tuple[int, ...] = table2_space.CHANNELS
    latency_threads: int = 1
    latency_runs: int = 20
    latency: str = "predict"

    def __post_init__(self):
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if self.latency not in LATENCY_SOURCES:
            raise ValueError(f"epnas_latency: received {self.latency!r}; allowed values: "
                             f"{', '.join(LATENCY_SOURCES)}")
        if self.mode not in actions.MODES:
            raise ValueError(f"epnas_mode: received {self.mode!r}; allowed values: "
                             f"{', '.join(actions.MODES)}")
        for name in ("branches", "steps", "episodes", "policy_updates", "predict_epochs",
                     "dict_per_key", "latency_threads", "latency_runs"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"epnas_{name}: received {getattr(self, name)}; allowed values: >= 1"
                )
        if not self.policy_lr > 0 or not self.predict_lr > 0:
            raise ValueError("epnas learning rates: allowed values: > 0")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"epnas_baseline_decay: received {self.baseline_decay}; allowed "
                             "values: [0, 1)")
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.space not in SPACES:
            raise ValueError(f"epnas_space: received {self.space!r}; allowed values: "
                             f"{', '.join(SPACES)}")
        if self.space == "table2":
            if self.mode != "layer":
                raise ValueError(f"epnas_mode: received {self.mode!r} with --epnas_space=table2; "
                                 "allowed values: layer (Table 2 is the layer-by-layer space; "
                                 "Table 3's module search is not implemented)")
            try:
                self.table2_space(None)
            except ValueError as e:
                raise ValueError(f"epnas {e}") from None

    def table2_space(self, macro) -> "table2_space.Table2Space":
        """The Table 2 space these settings describe under `macro`."""
        return table2_space.Table2Space(macro, max_layers=self.max_layers,
                                        init_layers=self.init_layers, channels=self.channels)

    @property
    def max_candidates(self) -> int:
        return self.branches * self.steps * self.episodes

    def describe(self) -> dict:
        """Every setting as plain values (constraints with their bounds and penalty p); the
        Table 2 space's settings only when it is searched (a block-space run's stored
        options stay what they were)."""
        d = dataclasses.asdict(self)
        if self.space == "eat_blocks":
            for k in ("space", "max_layers", "init_layers", "channels"):
                d.pop(k)
        return d
