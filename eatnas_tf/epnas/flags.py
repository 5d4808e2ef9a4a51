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
    --epnas_space=eat_blocks|table2 the EAT-NAS block space (--space) or the paper's
                                    Table 2 layer lists (`epnas.table2`, layer mode)
    --epnas_max_layers=24           Table 2: MAX_LAYERS
    --epnas_init_layers=8           Table 2: layers of the random initial networks
    --epnas_channels=16,32,...      Table 2: channel sizes (a subset of 16..256)
    --epnas_latency=predict|measure the latency constraint's numbers: the predictor over
                                    --latency_table (or a run-dir table), or whole models
"""

from __future__ import annotations

from absl import flags

from eatnas_tf.epnas import actions
from eatnas_tf.epnas import config as epnas_config
from eatnas_tf.epnas.config import LATENCY_SOURCES, EpnasConfig
from eatnas_tf.epnas.constraints import PAPER_P, parse_constraints

# (flag, `EpnasConfig` field, help): one table for defining and for reading the flags; the
# flag's type is its field's.
_FIELDS = (
    ("epnas_branches", "branches", "EPNAS parallel branches N."),
    ("epnas_steps", "steps", "EPNAS steps T per episode."),
    ("epnas_episodes", "episodes", "EPNAS episodes."),
    ("epnas_policy_lr", "policy_lr", "EPNAS policy Adam learning rate."),
    ("epnas_baseline_decay", "baseline_decay", "EPNAS moving-average baseline decay."),
    ("epnas_entropy", "entropy_weight", "EPNAS entropy bonus (0: off)."),
    ("epnas_policy_updates", "policy_updates", "EPNAS Adam steps per episode."),
    ("epnas_predict", "predict", "EPNAS performance prediction: large LR and early stop."),
    ("epnas_predict_lr", "predict_lr", "EPNAS prediction learning rate."),
    ("epnas_predict_epochs", "predict_epochs", "EPNAS prediction: early stop after N epochs."),
    ("epnas_share", "share", "EPNAS parameter-sharing dictionary."),
    ("epnas_dict_per_key", "dict_per_key", "EPNAS dictionary: dimension variants kept per key."),
    ("epnas_max_layers", "max_layers", "EPNAS Table 2 space: MAX_LAYERS."),
    ("epnas_init_layers", "init_layers", "EPNAS Table 2 space: layers of the initial networks."),
)
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}


def define_flags(fv=flags.FLAGS) -> None:
    """Defines the EPNAS flags on `fv` (idempotent)."""
    if "epnas_branches" in fv:
        return
    d = EpnasConfig()
    flags.DEFINE_multi_string("constraint", [], "EPNAS soft constraint metric:lower:upper "
                              "(metric: params, madds, intensity, latency; either bound empty), "
                              "repeated or comma-separated, e.g. madds:100e6:300e6.",
                              flag_values=fv)
    flags.DEFINE_float("constraint_penalty", PAPER_P, "EPNAS Eq. 2 base penalty p.",
                       flag_values=fv)
    flags.DEFINE_enum("epnas_mode", d.mode, list(actions.MODES),
                      "EPNAS search pattern: layer-by-layer or module (block).", flag_values=fv)
    flags.DEFINE_enum("epnas_space", d.space, list(epnas_config.SPACES),
                      "EPNAS search space: the EAT-NAS blocks of --space, or the paper's "
                      "Table 2 layer lists (layer mode).", flag_values=fv)
    flags.DEFINE_list("epnas_channels", [str(c) for c in d.channels],
                      "EPNAS Table 2 space: channel sizes (a subset of "
                      f"{','.join(str(c) for c in d.channels)}).", flag_values=fv)
    flags.DEFINE_enum("epnas_latency", d.latency, list(LATENCY_SOURCES),
                      "EPNAS latency constraint: predicted from the layer table (--latency_table, "
                      "or one built on demand in the run dir) or measured on whole models.",
                      flag_values=fv)
    for name, field, help_text in _FIELDS:
        default = getattr(d, field)
        _DEFINE[type(default)](name, default, help_text, flag_values=fv)


def _channels(values) -> tuple:
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ValueError(f"epnas_channels: received {','.join(values)!r}; allowed values: "
                         "comma-separated integers, e.g. 16,32,64") from None


def from_flags(fv=flags.FLAGS) -> EpnasConfig:
    """The config the flags describe; ValueError (one line) on bad values."""
    return EpnasConfig(
        constraints=tuple(parse_constraints(fv.constraint or [], fv.constraint_penalty)),
        space=fv.epnas_space, channels=_channels(fv.epnas_channels),
        mode=fv.epnas_mode, latency=fv.epnas_latency,
        **{field: fv[name].value for name, field, _ in _FIELDS})
