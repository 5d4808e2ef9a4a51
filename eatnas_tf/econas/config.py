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
