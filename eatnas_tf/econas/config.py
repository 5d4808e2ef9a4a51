"""EcoNAS search settings (EcoNAS paper §4.2, Algorithm 1; A5.1 defaults).

`EcoNASConfig` is plain data: the search binary builds it from flags
(`econas.flags.config_from_flags`) and passes it to `make_strategy("econas", ...,
options=cfg)`; library callers and tests construct it directly.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from eatnas_tf.econas import proxy as proxy_lib

MUTATIONS = ("one", "transform")
# Line 26 of Alg. 1, "remove dead from P_E, P_2E, P_3E" (see `search.econas`):
#   unpromoted  the paper's reading (§4.2: "no more than half of the networks in the P_20
#               and P_40 set will get chance to be continually trained"): at the end of a
#               cycle every model of P_E and P_2E that was not promoted leaves the sampling
#               pools; P_3E keeps this cycle's arrivals plus the best `topk` of the older
#               ones, so the final top-k of P_3E is the top-k of every model that reached 3E.
#   aging       the earlier behaviour: only failed models die, plus models older than
#               `lifespan` cycles when lifespan > 0 (0: every model stays).
DEAD_RULES = ("unpromoted", "aging")
LR_SPANS = ("final", "stage")


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
      dead: which models line 26 removes, one of `DEAD_RULES` ("unpromoted": the paper,
        set by flags/econas_search.cfg; "aging": failed ones, plus `lifespan`).
      lifespan: with dead="aging", remove models older than this many cycles (0: never).
      lr_span: how a cosine LR runs across promotions: "final" (one cosine over the
        complete reduced setting's 3E epochs, continued by every promotion: A5.1 "the
        complete reduce setting is c4r4s0e60" + A5.2 "finishes a completed cosine cycle
        within the reduced epochs") or "stage" (re-annealed within each E-epoch
        continuation, SGDR with period E). Only used when the train config's
        lr_schedule is "cosine"; other schedules are left as they are.
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
    dead: str = "aging"
    lr_span: str = "final"

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
        if self.dead not in DEAD_RULES:
            raise ValueError(f"econas_dead: received {self.dead!r}; allowed values: "
                             f"{', '.join(DEAD_RULES)}")
        if self.lr_span not in LR_SPANS:
            raise ValueError(f"econas_lr_span: received {self.lr_span!r}; allowed values: "
                             f"{', '.join(LR_SPANS)}")
        if self.mutation not in MUTATIONS:
            raise ValueError(f"econas_mutation: received {self.mutation!r}; allowed values: "
                             f"{', '.join(MUTATIONS)}")
