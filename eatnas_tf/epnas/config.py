"""EPNAS settings and their command-line flags (`--strategy=epnas` of the search command).

The flags are defined on absl's global FLAGS when the strategy module is imported, which
the search command does while defining its own flags (the strategy registry imports every
strategy module), so `python -m eatnas_tf.search --strategy=epnas --constraint=...` works
without the search command knowing about EPNAS:

    --constraint=madds:1e6:2.5e6 --constraint=params::2e5   (repeated, or comma-separated)
    --constraint_penalty=0.9        Eq. 2's p
    --epnas_mode=layer|block        layer-by-layer search or module (block) search
    --epnas_branches=8              N parallel branches per step
    --epnas_steps=10                T steps per episode (paper: 10 layer-by-layer, 5 module)
    --epnas_episodes=15             episodes (the run also stops at --max_candidates)
    --epnas_policy_lr=0.0006        Adam learning rate of the policy
    --epnas_baseline_decay=0.95     moving-average baseline
    --epnas_predict                 performance prediction: --epnas_predict_lr and early
    --epnas_predict_lr=0.5          stop after --epnas_predict_epochs (the batch size is the
    --epnas_predict_epochs=10       data pipeline's --batch_size: the paper's 1024)
    --epnas_share                   the parameter-sharing dictionary (with --inherit)

Programmatic callers pass an `EpnasConfig` to `make_strategy("epnas", ..., options=cfg)`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from absl import flags

from eatnas_tf.epnas import actions
from eatnas_tf.epnas.constraints import PAPER_P, Constraint, parse_constraints
from eatnas_tf.epnas.policy import PAPER_LR


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
      latency_threads, latency_runs: LiteRT timing of the `latency` constraint.
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
    latency_threads: int = 1
    latency_runs: int = 20

    def __post_init__(self):
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if self.mode not in actions.MODES:
            raise ValueError(f"epnas_mode: received {self.mode!r}; allowed values: "
                             f"{', '.join(actions.MODES)}")
        for name in ("branches", "steps", "episodes", "policy_updates", "predict_epochs",
                     "dict_per_key", "latency_threads", "latency_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"epnas_{name}: received {getattr(self, name)}; allowed values: >= 1")
        if not self.policy_lr > 0 or not self.predict_lr > 0:
            raise ValueError("epnas learning rates: allowed values: > 0")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"epnas_baseline_decay: received {self.baseline_decay}; allowed "
                             "values: [0, 1)")

    @property
    def max_candidates(self) -> int:
        return self.branches * self.steps * self.episodes

    def describe(self) -> dict:
        d = dataclasses.asdict(self)
        d["constraints"] = [str(c) for c in self.constraints]
        return d


FLAG_NAMES = ("constraint", "constraint_penalty", "epnas_mode", "epnas_branches", "epnas_steps",
              "epnas_episodes", "epnas_policy_lr", "epnas_baseline_decay", "epnas_entropy",
              "epnas_policy_updates", "epnas_predict", "epnas_predict_lr",
              "epnas_predict_epochs", "epnas_share", "epnas_dict_per_key")


def define_flags(fv=flags.FLAGS) -> None:
    """Defines the EPNAS flags on `fv` (idempotent)."""
    if "epnas_branches" in fv:
        return
    d = EpnasConfig()
    flags.DEFINE_multi_string("constraint", [], "EPNAS soft constraint metric:lower:upper "
                              "(metric: params, madds, intensity, latency; either bound empty), "
                              "repeated or comma-separated, e.g. madds:100e6:300e6.",
                              flag_values=fv)
    flags.DEFINE_float("constraint_penalty", PAPER_P, "EPNAS Eq. 2 base penalty p.", flag_values=fv)
    flags.DEFINE_enum("epnas_mode", d.mode, list(actions.MODES),
                      "EPNAS search pattern: layer-by-layer or module (block).", flag_values=fv)
    flags.DEFINE_integer("epnas_branches", d.branches, "EPNAS parallel branches N.", flag_values=fv)
    flags.DEFINE_integer("epnas_steps", d.steps, "EPNAS steps T per episode.", flag_values=fv)
    flags.DEFINE_integer("epnas_episodes", d.episodes, "EPNAS episodes.", flag_values=fv)
    flags.DEFINE_float("epnas_policy_lr", d.policy_lr, "EPNAS policy Adam learning rate.",
                       flag_values=fv)
    flags.DEFINE_float("epnas_baseline_decay", d.baseline_decay,
                       "EPNAS moving-average baseline decay.", flag_values=fv)
    flags.DEFINE_float("epnas_entropy", d.entropy_weight, "EPNAS entropy bonus (0: off).",
                       flag_values=fv)
    flags.DEFINE_integer("epnas_policy_updates", d.policy_updates,
                         "EPNAS Adam steps per episode.", flag_values=fv)
    flags.DEFINE_bool("epnas_predict", d.predict, "EPNAS performance prediction: large LR and "
                      "early stop.", flag_values=fv)
    flags.DEFINE_float("epnas_predict_lr", d.predict_lr, "EPNAS prediction learning rate.",
                       flag_values=fv)
    flags.DEFINE_integer("epnas_predict_epochs", d.predict_epochs,
                         "EPNAS prediction: early stop after N epochs.", flag_values=fv)
    flags.DEFINE_bool("epnas_share", d.share, "EPNAS parameter-sharing dictionary.",
                      flag_values=fv)
    flags.DEFINE_integer("epnas_dict_per_key", d.dict_per_key,
                         "EPNAS dictionary: dimension variants kept per key.", flag_values=fv)


def from_flags(fv=flags.FLAGS) -> EpnasConfig:
    """The config the flags describe; ValueError (one line) on bad values."""
    return EpnasConfig(
        constraints=tuple(parse_constraints(fv.constraint or [], fv.constraint_penalty)),
        mode=fv.epnas_mode, branches=fv.epnas_branches, steps=fv.epnas_steps,
        episodes=fv.epnas_episodes, policy_lr=fv.epnas_policy_lr,
        baseline_decay=fv.epnas_baseline_decay, entropy_weight=fv.epnas_entropy,
        policy_updates=fv.epnas_policy_updates, predict=fv.epnas_predict,
        predict_lr=fv.epnas_predict_lr, predict_epochs=fv.epnas_predict_epochs,
        share=fv.epnas_share, dict_per_key=fv.epnas_dict_per_key)


def current(fv=flags.FLAGS) -> Optional[EpnasConfig]:
    """`from_flags` when the flags are defined and parsed, else None."""
    if "epnas_branches" not in fv or not fv.is_parsed():
        return None
    return from_flags(fv)
