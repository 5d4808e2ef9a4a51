"""The EPNAS policy network and its REINFORCE update (paper §3.1, §3.2, Fig. 2).

    layer tokens ──Embedding(32)──▶ LSTM(32) ──▶ network embedding h
    h ─▶ scale LSTM (128): one step per part f, softmax over SCALE_ACTIONS (masked)
    h ─▶ insert LSTM (128): kind, then place, op, skip when they apply (masked)

Each LSTM step reads `[h, embedding of the previous choice, embedding of the decision
slot]`, so every decision is conditioned on the ones before it. Weights are drawn
uniformly in [-0.1, 0.1] ("weights initialized uniformly in [-0.1, 0.1]") from the
policy's seed; Adam with learning rate 0.0006 by default (the paper's).

Sampling runs the cells step by step because a decision's validity mask depends on the
architecture after the previous decisions (`actions.ActionSpace`). Choices are drawn
with the caller's `random.Random` against probabilities computed in float64 from the
logits, so the sampled actions are a function of the seeded RNG and the weights.

REINFORCE (paper §3.1):

    g = 1/N Σ_n Σ_t ∇ log π(a_t,n | X_t,n) (Σ_{t'≥t} r_t',n − b_t)

with `b_t` an exponential moving average of the returns at step t of past episodes
(`MovingAverageBaseline`; the first episode initialises it to its own mean).

The update recomputes the log-probabilities with the stored choices and masks (teacher
forcing) in one batch. TensorFlow's CPU kernels for these ops (matmul, sigmoid, tanh,
gather, reductions) are deterministic for a fixed shape and thread count, so replaying
the same records rebuilds the same weights; `state_dict()` also carries the weights
(and Adam's slots) so a search can be checked or continued from them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import math
import random
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from eatnas_tf.arch import spec as spec_lib
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.epnas import actions as A

EMBED_UNITS = 32     # "LSTMs with 32 hidden units for network embedding"
ACTION_UNITS = 128   # "LSTMs with 128 hidden units for scale and insert actions"
PAPER_LR = 0.0006    # "Adam optimizer with a learning rate of 0.0006"
INIT_SCALE = 0.1     # "weights initialized uniformly in [-0.1, 0.1]"

# Decision slots: 7 scale parts, then kind, place, op, skip.
SLOT_KIND, SLOT_PLACE, SLOT_OP, SLOT_SKIP = (
    A.NUM_PARTS,
    A.NUM_PARTS + 1,
    A.NUM_PARTS + 2,
    A.NUM_PARTS + 3,
)
NUM_SLOTS = A.NUM_PARTS + 4
_NEG = -1e9


@dataclasses.dataclass
class Decision:
    """What the update needs to recompute log π(a | X): the input tokens, every choice
    (-1: not decided) and every mask."""

    tokens: List[Tuple[int, ...]]
    action: A.Action
    scale_masks: List[List[bool]]
    kind_mask: List[bool]
    place_mask: Optional[List[bool]] = None
    op_mask: Optional[List[bool]] = None
    skip_mask: Optional[List[bool]] = None
    logp: float = 0.0


class MovingAverageBaseline:
    """b_t: one exponential moving average per step index t of the returns seen there."""

    def __init__(self, decay: float = 0.95):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay: received {decay}; allowed values: [0, 1)")
        self.decay = decay
        self.values: Dict[int, float] = {}

    def get(self, t: int) -> Optional[float]:
        return self.values.get(t)

    def update(self, t: int, mean_return: float) -> None:
        b = self.values.get(t)
        self.values[t] = (
            mean_return if b is None else self.decay * b + (1 - self.decay) * mean_return
        )

    def state(self) -> Dict[str, Any]:
        return {"decay": self.decay, "values": {str(k): v for k, v in self.values.items()}}

    def load(self, state: Dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.values = {int(k): float(v) for k, v in state["values"].items()}


def returns_to_go(rewards: Sequence[float]) -> List[float]:
    """Σ_{t'≥t} r_t' for each t."""
    out, acc = [], 0.0
    for r in reversed(list(rewards)):
        acc += r
        out.append(acc)
    return out[::-1]


def _masked_terms(logits, masks, choices, present):
    """Batched (log π of each chosen entry, entropy of each masked distribution), both
    times `present` (0 where the decision did not take this head)."""
    import tensorflow as tf

    m = np.asarray(masks, dtype=bool)
    z = logits + tf.constant(np.where(m, 0.0, _NEG), dtype=logits.dtype)
    lp = tf.nn.log_softmax(z, axis=-1)
    ch = np.maximum(np.asarray(choices), 0).astype(np.int32)
    chosen = tf.gather(lp, ch, axis=1, batch_dims=1)
    pres = tf.constant(np.asarray(present, np.float32))
    p = tf.exp(lp) * tf.constant(m.astype(np.float32))
    ent = -tf.reduce_sum(p * tf.where(m, lp, tf.zeros_like(lp)), axis=-1)
    return chosen * pres, ent * pres


def _masked_probs(logits: np.ndarray, mask: Sequence[bool]) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    z = np.where(m, z, -np.inf)
    z = z - z[m].max()
    p = np.exp(z)
    return p / p.sum()


def _draw(probs: np.ndarray, rng: random.Random) -> int:
    u = rng.random()
    c = 0.0
    last = 0
    for i, p in enumerate(probs):
        if p <= 0:
            continue
        last = i
        c += p
        if u < c:
            return i
    return last


class Policy:
    """The controller: `sample(arch, rng)` → (action, decision); `update(decisions, adv)`."""

    def __init__(self, aspace: A.ActionSpace, seed: int = 0, learning_rate: float = PAPER_LR,
                 entropy_weight: float = 0.0):
        import keras

        self.keras = keras
        self.aspace = aspace
        self.seed = int(seed)
        self.learning_rate = float(learning_rate)
        self.entropy_weight = float(entropy_weight)
        self.updates = 0
        s = iter(range(self.seed * 101 + 1, self.seed * 101 + 100))

        def U():
            return keras.initializers.RandomUniform(-INIT_SCALE, INIT_SCALE, seed=next(s))

        L = keras.layers
        self.n_ops = len(spec_lib.OPS)
        self.choice_sizes = self._choice_sizes()
        # previous-choice vocabulary: a start id, then each decision's choices
        self._choice_off = {}
        o = 1
        for k, n in self.choice_sizes.items():
            self._choice_off[k] = o
            o += n
        self.token_emb = L.Embedding(self._token_vocab(), EMBED_UNITS, embeddings_initializer=U(),
                                     name="epnas_token_emb")
        self.net_lstm = L.LSTM(EMBED_UNITS, kernel_initializer=U(), recurrent_initializer=U(),
                               name="epnas_net_lstm")
        self.choice_emb = L.Embedding(o, EMBED_UNITS, embeddings_initializer=U(),
                                      name="epnas_choice_emb")
        self.slot_emb = L.Embedding(self._num_slots(), EMBED_UNITS, embeddings_initializer=U(),
                                    name="epnas_slot_emb")
        self.scale_cell = L.LSTMCell(ACTION_UNITS, kernel_initializer=U(),
                                     recurrent_initializer=U(), name="epnas_scale_lstm")
        self.insert_cell = L.LSTMCell(ACTION_UNITS, kernel_initializer=U(),
                                      recurrent_initializer=U(), name="epnas_insert_lstm")
        self.heads = {k: L.Dense(n, kernel_initializer=U(), name=f"epnas_{k}_head")
                      for k, n in self.choice_sizes.items()}
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        # build every layer once with a dummy batch
        d = self._dummy_decision()
        self._forward([d], training=False)
        self.optimizer.build(self.trainable_variables)

    # -- the action space's decisions (a subclass for another space overrides these) -----
    token_fields = A.TOKEN_FIELDS

    def _choice_sizes(self) -> Dict[str, int]:
        """Each head's number of choices, in head order."""
        return {"scale": len(A.SCALE_ACTIONS), "kind": len(A.INSERT_KINDS),
                "place": self.aspace.max_places, "op": len(spec_lib.OPS), "skip": len(A.SKIPS)}

    def _token_vocab(self) -> int:
        return A.TOKEN_VOCAB

    def _num_slots(self) -> int:
        return NUM_SLOTS

    # -- parameters -----------------------------------------------------------------------
    @property
    def layers(self):
        return [self.token_emb, self.net_lstm, self.choice_emb, self.slot_emb, self.scale_cell,
                self.insert_cell] + [self.heads[k] for k in self.choice_sizes]

    @property
    def trainable_variables(self):
        return [v for layer in self.layers for v in layer.trainable_weights]

    def get_weights(self) -> List[np.ndarray]:
        return [np.array(v.numpy()) for v in self.trainable_variables]

    def num_params(self) -> int:
        return int(sum(w.size for w in self.get_weights()))

    # -- network pieces -------------------------------------------------------------------
    def _net_embedding(self, token_batch: List[List[Tuple[int, ...]]]):
        import tensorflow as tf

        n = max(len(t) for t in token_batch)
        ids = np.zeros((len(token_batch), n, self.token_fields), dtype=np.int32)
        mask = np.zeros((len(token_batch), n), dtype=bool)
        for i, toks in enumerate(token_batch):
            ids[i, :len(toks)] = toks
            mask[i, :len(toks)] = True
        e = tf.reduce_sum(self.token_emb(ids), axis=2)  # sum of field embeddings
        return self.net_lstm(e, mask=tf.constant(mask))

    def _step(self, cell, h, prev_ids, slot, state):
        import tensorflow as tf

        b = int(h.shape[0])
        x = tf.concat([h, self.choice_emb(np.asarray(prev_ids, np.int32)),
                       self.slot_emb(np.full((b,), slot, np.int32))], axis=-1)
        out, state = cell(x, state)
        return out, state

    def _zero_state(self, b):
        import tensorflow as tf

        z = tf.zeros((b, ACTION_UNITS))
        return [z, z]

    def _prev(self, kind: str, choice: int) -> int:
        return self._choice_off[kind] + max(choice, 0)

    def _sample_scale(self, h, arch, pick: Callable, num_parts: int):
        """The scale LSTM: one decision per part, each on the architecture scaled so far
        (`pick(logits, mask) -> choice`); returns (scaled arch, choices, masks)."""
        state, prev, cur = self._zero_state(1), 0, arch
        scale, masks = [], []
        for f in range(num_parts):
            out, state = self._step(self.scale_cell, h, [prev], f, state)
            mask = self.aspace.scale_mask(cur, f)
            c = pick(self.heads["scale"](out), mask)
            cur = self.aspace.apply_scale(cur, f, c)
            scale.append(c)
            masks.append(mask)
            prev = self._prev("scale", c)
        return cur, scale, masks

    # -- sampling -------------------------------------------------------------------------
    def sample(self, arch: ArchSpec, rng: random.Random,
               greedy: bool = False) -> Tuple[A.Action, Decision, ArchSpec]:
        """Samples an action for `arch` (masked to valid ones); returns the action, what
        the update needs, and the transformed architecture."""
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

        cur, scale, scale_masks = self._sample_scale(h, arch, pick, A.NUM_PARTS)
        # insert LSTM: kind, then place / op / skip where they apply
        state = self._zero_state(1)
        out, state = self._step(self.insert_cell, h, [0], SLOT_KIND, state)
        kmask = asp.kind_mask(cur)
        kind = pick(self.heads["kind"](out), kmask)
        place = op = skip = -1
        pmask = omask = smask = None
        if kind:
            out, state = self._step(
                self.insert_cell, h, [self._prev("kind", kind)], SLOT_PLACE, state
            )
            pmask = asp.place_mask(cur, kind)
            place = pick(self.heads["place"](out), pmask)
            if kind == 1:
                out, state = self._step(
                    self.insert_cell, h, [self._prev("place", place)], SLOT_OP, state
                )
                omask = asp.op_mask(cur, kind, place)
                op = pick(self.heads["op"](out), omask)
                out, state = self._step(
                    self.insert_cell, h, [self._prev("op", op)], SLOT_SKIP, state
                )
                smask = asp.skip_mask(cur, kind, place, op)
                skip = pick(self.heads["skip"](out), smask)
        action = A.Action(tuple(scale), kind, place, op, skip)
        child = asp.apply_insert(cur, kind, place, op, skip)
        assert child is not None, "masked action left the space"
        return (
            action,
            Decision(tokens, action, scale_masks, kmask, pmask, omask, smask, logp),
            child,
        )

    # -- batched log-probabilities (teacher forcing) --------------------------------------
    def _forward_scale(self, h, decisions, num_parts: int, term: Callable) -> None:
        """The scale LSTM over a batch of decisions, teacher-forced: `term(logits, masks,
        choices, present)` once per part (what `_sample_scale` sampled)."""
        state, prev = self._zero_state(len(decisions)), [0] * len(decisions)
        for f in range(num_parts):
            out, state = self._step(self.scale_cell, h, prev, f, state)
            choices = [d.action.scale[f] for d in decisions]
            term(self.heads["scale"](out), [d.scale_masks[f] for d in decisions], choices,
                 [1] * len(decisions))
            prev = [self._prev("scale", c) for c in choices]

    def _forward(self, decisions: Sequence[Decision], training: bool = True):
        """Per decision: total log π(a|X) and total entropy of the decided distributions."""
        import tensorflow as tf

        B = len(decisions)
        h = self._net_embedding([d.tokens for d in decisions])
        logps, ents = [], []

        def term(logits, masks, choices, present):
            logp, ent = _masked_terms(logits, masks, choices, present)
            logps.append(logp)
            ents.append(ent)

        self._forward_scale(h, decisions, A.NUM_PARTS, term)
        state = self._zero_state(B)
        out, state = self._step(self.insert_cell, h, [0] * B, SLOT_KIND, state)
        kinds = [d.action.kind for d in decisions]
        term(self.heads["kind"](out), [d.kind_mask for d in decisions], kinds, [1] * B)
        full = [True] * self.aspace.max_places
        out, state = self._step(self.insert_cell, h, [self._prev("kind", k) for k in kinds],
                                SLOT_PLACE, state)
        places = [d.action.place for d in decisions]
        term(self.heads["place"](out), [d.place_mask or full for d in decisions], places,
             [1 if k else 0 for k in kinds])
        out, state = self._step(self.insert_cell, h, [self._prev("place", p) for p in places],
                                SLOT_OP, state)
        ops = [d.action.op for d in decisions]
        term(self.heads["op"](out), [d.op_mask or [True] * self.n_ops for d in decisions], ops,
             [1 if k == 1 else 0 for k in kinds])
        out, state = self._step(self.insert_cell, h, [self._prev("op", o) for o in ops],
                                SLOT_SKIP, state)
        term(self.heads["skip"](out), [d.skip_mask or [True, True] for d in decisions],
             [d.action.skip for d in decisions], [1 if k == 1 else 0 for k in kinds])
        return tf.add_n(logps), tf.add_n(ents)

    def log_probs(self, decisions: Sequence[Decision]) -> np.ndarray:
        return np.asarray(self._forward(decisions)[0])

    def update(self, decisions: Sequence[Decision], advantages: Sequence[float],
               num_branches: int) -> Dict[str, float]:
        """One Adam step on `-1/N Σ log π(a|X) × advantage` (− entropy bonus)."""
        import tensorflow as tf

        adv = tf.constant(np.asarray(advantages, np.float32))
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            logp, ent = self._forward(decisions)
            loss = -tf.reduce_sum(logp * adv) / float(num_branches)
            if self.entropy_weight:
                loss -= self.entropy_weight * tf.reduce_mean(ent)
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.updates += 1
        return {"loss": float(loss), "entropy": float(tf.reduce_mean(ent)),
                "grad_norm": float(tf.linalg.global_norm([g for g in grads if g is not None]))}

    def _dummy_decision(self) -> Decision:
        m = self.aspace.max_places
        return Decision(tokens=[(0,) * A.TOKEN_FIELDS], action=A.Action((0,) * A.NUM_PARTS, 0),
                        scale_masks=[[True] * len(A.SCALE_ACTIONS)] * A.NUM_PARTS,
                        kind_mask=[True] * 3, place_mask=[True] * m)

    # -- state ----------------------------------------------------------------------------
    def _all_arrays(self) -> List[np.ndarray]:
        return self.get_weights() + [np.array(v.numpy()) for v in self.optimizer.variables]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for w in self.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        return h.hexdigest()[:16]

    def state_dict(self) -> Dict[str, Any]:
        buf = io.BytesIO()
        np.savez(buf, *self._all_arrays())
        blob = base64.b64encode(zlib.compress(buf.getvalue(), 6)).decode("ascii")
        return {"updates": self.updates, "fingerprint": self.fingerprint(),
                "num_weights": len(self.trainable_variables), "arrays": blob}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        raw = zlib.decompress(base64.b64decode(state["arrays"]))
        with np.load(io.BytesIO(raw)) as z:
            arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
        nw = int(state["num_weights"])
        for v, a in zip(self.trainable_variables, arrays[:nw]):
            v.assign(a)
        for v, a in zip(self.optimizer.variables, arrays[nw:]):
            v.assign(a)
        self.updates = int(state["updates"])
        if self.fingerprint() != state["fingerprint"]:
            raise ValueError("epnas policy state: weights fingerprint mismatch after loading")
