"""Absl flags of EcoNAS' search settings (`--strategy=econas`), turned into a config once.

The search binaries call `define_flags()` at import and `config_from_flags()` in `main()`
(through `search.flags`); nothing else reads these flags.
"""

from __future__ import annotations

from absl import flags

from eatnas_tf.econas import proxy as proxy_lib
from eatnas_tf.econas.config import DEAD_RULES, LR_SPANS, MUTATIONS, EcoNASConfig


def define_flags(fv=flags.FLAGS) -> None:
    """--econas_epochs --econas_mutations --econas_promote1 --econas_promote2
    --econas_cycles --econas_proxy --econas_level_weights --econas_mutation
    --econas_lifespan --econas_dead --econas_lr_span (idempotent)."""
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
                         "(0: only failed ones die); only with --econas_dead=aging.",
                         flag_values=fv)
    flags.DEFINE_enum("econas_dead", d.dead, list(DEAD_RULES), "Alg. 1 line 26: unpromoted "
                      "(paper: the models of P_E and P_2E not promoted this cycle leave the "
                      "pools; P_3E keeps its new arrivals and the best --topk) or aging "
                      "(failed ones, and --econas_lifespan).", flag_values=fv)
    flags.DEFINE_enum("econas_lr_span", d.lr_span, list(LR_SPANS), "With --lr_schedule="
                      "cosine: final (one cosine over 3E, continued across promotions, "
                      "paper A5.1/A5.2) or stage (re-annealed within each E epochs).",
                      flag_values=fv)

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


def config_from_flags(fv=flags.FLAGS) -> EcoNASConfig:
    """The settings the parsed flags describe; ValueError (one line) on bad values."""
    try:
        weights = tuple(float(w) for w in fv.econas_level_weights)
    except ValueError:
        raise ValueError(f"econas_level_weights: received {fv.econas_level_weights}; allowed "
                         "values: 3 numbers >= 0") from None
    return EcoNASConfig(epochs=fv.econas_epochs, mutations=fv.econas_mutations,
                        promote1=fv.econas_promote1, promote2=fv.econas_promote2,
                        cycles=fv.econas_cycles, proxy=fv.econas_proxy,
                        level_weights=weights, mutation=fv.econas_mutation,
                        lifespan=fv.econas_lifespan, dead=fv.econas_dead,
                        lr_span=fv.econas_lr_span)
