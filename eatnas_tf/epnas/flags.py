"""Absl flags of EPNAS' settings (`--strategy=epnas` of the search command).

The search binaries call `define_flags()` at import and `from_flags()` in `main()`
(through `search.flags`); nothing else reads these flags:

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
"""

from __future__ import annotations

from absl import flags

from eatnas_tf.epnas import actions
from eatnas_tf.epnas.config import EpnasConfig
from eatnas_tf.epnas.constraints import PAPER_P, parse_constraints


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
