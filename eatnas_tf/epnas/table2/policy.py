"""The EPNAS controller with the Table 2 space's action heads (paper §3.2, Fig. 2).

The same network as `epnas.policy.Policy` (layer embedding → LSTM(32) → network
embedding; scale LSTM(128) and insert LSTM(128); uniform [-0.1, 0.1] initialisation; Adam
0.0006; REINFORCE with a moving-average baseline), with this space's heads:

    scale   one step per part f (F = `actions.SCALE_PARTS`): keep | width± | channels±
    insert  kind (keep / insert / remove), place (D_L: L + 5 values for an insert, L for a
            remove), op, filter width, pooling width, channels, activation, Src2

The insert LSTM always takes the eight steps of `actions.INSERT_SLOTS` in order, in
sampling and in the batched update alike; a step whose decision does not apply (e.g. the
pooling width of a conv) is fed with the "absent" choice id 0 and adds nothing to log π.
So the recurrent state of a decision is the same in both passes and the update's
log-probabilities equal the sampled ones.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Dict, List, Sequence, Tuple

import numpy as np

from eatnas_tf.epnas.policy import Policy, _draw, _masked_probs, _masked_terms
from eatnas_tf.epnas.table2 import actions as A
from eatnas_tf.epnas.table2.space import LayerArch


@dataclasses.dataclass
class Table2Decision:
    """What the update needs to recompute log π(a | X): the input tokens, every choice
    (-1: not decided) and the mask of every decided slot."""

    tokens: List[Tuple[int, ...]]
    action: A.Table2Action
    scale_masks: List[List[bool]]
    masks: Dict[str, List[bool]]
    logp: float = 0.0


class Table2Policy(Policy):
    """`sample(arch, rng)` → (action, decision, child); `update(decisions, advantages, N)`."""

    def __init__(self, aspace: A.Table2ActionSpace, seed: int = 0, **kwargs):
        self.token_fields = aspace.token_fields
        super().__init__(aspace, seed=seed, **kwargs)

    # -- the heads of this space ----------------------------------------------------------
    def _choice_sizes(self) -> Dict[str, int]:
        return {"scale": len(A.SCALE_ACTIONS), **self.aspace.slot_sizes}

    def _token_vocab(self) -> int:
        return self.aspace.token_vocab

    def _num_slots(self) -> int:
        return self.aspace.num_parts + len(A.INSERT_SLOTS)

    def _prev_id(self, slot: str, choice: int) -> int:
        return 0 if choice < 0 else self._choice_off[slot] + choice

    # -- sampling -------------------------------------------------------------------------
    def sample(self, arch: LayerArch, rng: random.Random,
               greedy: bool = False) -> Tuple[A.Table2Action, Table2Decision, LayerArch]:
        asp = self.aspace
        tokens = asp.tokens(arch)
        h = self._net_embedding([tokens])
        logp = 0.0

        def pick(logits, mask):
            nonlocal logp
            p = _masked_probs(np.asarray(logits)[0], mask)
            i = int(np.argmax(p)) if greedy else _draw(p, rng)
            logp += math.log(p[i])
            return i

        cur, scale, scale_masks = self._sample_scale(h, arch, pick, asp.num_parts)
        state, prev = self._zero_state(1), 0
        chosen = {s: -1 for s in A.INSERT_SLOTS}
        masks: Dict[str, List[bool]] = {}
        for k, slot in enumerate(A.INSERT_SLOTS):
            out, state = self._step(self.insert_cell, h, [prev], asp.num_parts + k, state)
            kind = chosen["kind"]
            op = chosen["op"] if chosen["op"] >= 0 else None
            if slot in (asp.slots_for(kind, op) if kind >= 0 else ("kind",)):
                mask = asp.mask(slot, cur, chosen)
                chosen[slot] = pick(self.heads[slot](out), mask)
                masks[slot] = mask
            prev = self._prev_id(slot, chosen[slot])
        action = A.Table2Action(tuple(scale), **chosen)
        child = asp.apply_insert(cur, action)
        return action, Table2Decision(tokens, action, scale_masks, masks, logp), child

    # -- batched log-probabilities (teacher forcing) --------------------------------------
    def _forward(self, decisions: Sequence[Table2Decision], training: bool = True):
        import tensorflow as tf

        asp = self.aspace
        B = len(decisions)
        h = self._net_embedding([d.tokens for d in decisions])
        logps, ents = [], []

        def term(logits, masks, choices, present):
            logp, ent = _masked_terms(logits, masks, choices, present)
            logps.append(logp)
            ents.append(ent)

        self._forward_scale(h, decisions, asp.num_parts, term)
        state, prev = self._zero_state(B), [0] * B
        for k, slot in enumerate(A.INSERT_SLOTS):
            out, state = self._step(self.insert_cell, h, prev, asp.num_parts + k, state)
            n = self.choice_sizes[slot]
            choices = [getattr(d.action, slot) for d in decisions]
            term(self.heads[slot](out), [d.masks.get(slot) or [True] * n for d in decisions],
                 choices, [1 if slot in d.masks else 0 for d in decisions])
            prev = [self._prev_id(slot, c) for c in choices]
        return tf.add_n(logps), tf.add_n(ents)

    def _dummy_decision(self) -> Table2Decision:
        return Table2Decision(tokens=[(0,) * self.token_fields],
                              action=A.Table2Action((0,) * self.aspace.num_parts),
                              scale_masks=[[True] * len(A.SCALE_ACTIONS)] * self.aspace.num_parts,
                              masks={"kind": [True] * len(A.INSERT_KINDS)})

