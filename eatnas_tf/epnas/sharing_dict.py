"""EPNAS' global parameter-sharing dictionary (paper §3.4).

"We use a global dictionary that is shared by all models within a batch of searched
models. The parameters are stored as key-value pairs, where the keys are the combination
of the layer number, operation type, and the values are corresponding parameters. At the
end of each step, if there is a clash between keys, the variables for the model with the
highest accuracy is stored. For operations where the layer and operation types match, but
the dimensions do not (e.g., after scaling a layer), the parameters with the closest
dimensions are chosen and the variables are spliced or padded accordingly."

Here:
  key        (layer position, op type): `("b3l2", "mb6")` for layer 2 of block 3 (the
             positions of `model.naming`), `("stem", "conv")`, `("head", "conv")`.
  value      a reference to a trained candidate's weights for every Keras layer of that
             position (expand / dw / project / shortcut convs and their BN; stem conv+BN;
             head conv+BN+logits), with the *signature* of their dimensions
             `(kernel, c_in, hidden, c_out, shortcut)`.
  clash      one entry per (key, signature): the more accurate candidate replaces the
             other (ties: the earlier one stays). Entries of a key with other dimensions
             are kept side by side, at most `max_per_key` of them (the most accurate), so
             "the parameters with the closest dimensions" can be chosen.
  lookup     the entry of the same key whose signature is closest (L1 over the
             signature's numbers; ties: more accurate, then earlier candidate).
  splice/pad kernels of another size are centre-cropped (larger) or zero-padded in the
             spatial dimensions (smaller: a zero border keeps the smaller kernel's function
             exactly); channel dimensions are sliced to the child's where the entry is
             larger; where the child is larger the rest keeps the child's own random
             initialisation (the copy goes through `model.sharing.inherit`, which copies
             the overlapping slice). Zero-padding channels instead would give every new
             filter the same (zero) weights and gradients, which never breaks symmetry.

The dictionary stores candidate ids, not arrays: it is a pure function of the observed
records (architecture, accuracy, order), so a resumed search rebuilds it by replay. A
child's inherited weights are assembled from the donors' weight files
(`materialize`) into one file the evaluation inherits from.

Compared with EAT-NAS' layer-wise inheritance (`model.sharing`, docs/design.md §3): EAT copies
from *one* parent, shares a layer only when op and kernel size both match, and never
adapts a kernel's spatial size; the EPNAS dictionary draws each layer position from the
most accurate model seen so far with that op, across all branches of the batch (a layer
inserted at position l can inherit from any earlier model that had a layer l), and adapts
kernel sizes by cropping / padding. Both slice channels the same way.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.model import naming as N

Key = Tuple[str, str]
Signature = Tuple[int, ...]
Weights = Dict[str, List[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Group:
    """The Keras layers at one dictionary key of an architecture."""

    key: Key
    signature: Signature
    layers: Tuple[str, ...]  # Keras layer names (identical in every model at this position)


@dataclasses.dataclass(frozen=True)
class Entry:
    cid: int
    acc: float
    signature: Signature


def layer_groups(arch: ArchSpec, macro: MacroSpec) -> List[Group]:
    """Every dictionary key of `arch` with its dimensions and Keras layer names."""
    out = [Group(("stem", "conv"), (3, macro.in_channels, 0, arch.stem, 0),
                 (N.STEM_CONV, N.STEM_BN))]
    cin = arch.stem
    for bi, (b, cout, stride) in enumerate(zip(arch.blocks, arch.block_channels(),
                                               macro.block_strides), start=1):
        for li in range(1, b.depth + 1):
            s = stride if li == 1 else 1
            c_in = cin if li == 1 else cout
            hid = c_in if b.op == "sep" else c_in * b.expansion
            names = []
            if b.op != "sep":
                names += [N.layer_name(bi, li, N.EXPAND), N.layer_name(bi, li, N.EXPAND, "bn")]
            names += [N.layer_name(bi, li, N.DW), N.layer_name(bi, li, N.DW, "bn"),
                      N.layer_name(bi, li, N.PROJECT), N.layer_name(bi, li, N.PROJECT, "bn")]
            proj = b.skip and not (s == 1 and c_in == cout) and arch.shortcut == "projection"
            if proj:
                names += [N.layer_name(bi, li, N.SHORTCUT), N.layer_name(bi, li, N.SHORTCUT, "bn")]
            out.append(Group((f"b{bi}l{li}", b.op), (b.kernel, c_in, hid, cout, int(proj)),
                             tuple(names)))
        cin = cout
    out.append(Group(("head", "conv"), (1, cin, 0, arch.head, macro.num_classes),
                     (N.HEAD_CONV, N.HEAD_BN, N.LOGITS)))
    return out


def _distance(a: Signature, b: Signature) -> int:
    return sum(abs(x - y) for x, y in zip(a, b))


def fit(src: np.ndarray, target_shape: Tuple[int, ...]) -> Optional[np.ndarray]:
    """`src` spliced towards `target_shape`: spatial dims of a 4-D kernel centre-cropped
    or zero-padded to the target's, every other dim sliced to at most the target's (the
    caller's initialisation fills what is left). None when the ranks differ."""
    src = np.asarray(src)
    if src.ndim != len(target_shape):
        return None
    out = src
    if src.ndim == 4:
        for axis in (0, 1):
            have, want = out.shape[axis], target_shape[axis]
            if have > want:
                lo = (have - want) // 2
                out = np.take(out, range(lo, lo + want), axis=axis)
            elif have < want:
                pad = [(0, 0)] * 4
                lo = (want - have) // 2
                pad[axis] = (lo, want - have - lo)
                out = np.pad(out, pad)
        start = 2
    else:
        start = 0
    sl = tuple(slice(None) if i < start else slice(0, min(out.shape[i], target_shape[i]))
               for i in range(out.ndim))
    return np.array(out[sl], copy=True)


class SharingDict:
    """The dictionary: `add(records of a finished step)`, `materialize(child)`."""

    def __init__(self, macro: MacroSpec, max_per_key: int = 4):
        if max_per_key < 1:
            raise ValueError(f"max_per_key: received {max_per_key}; allowed values: >= 1")
        self.macro = macro
        self.max_per_key = max_per_key
        self.entries: Dict[Key, Dict[Signature, Entry]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def cids(self) -> List[int]:
        """Candidates whose weights the dictionary refers to (their files must be kept)."""
        return sorted({e.cid for v in self.entries.values() for e in v.values()})

    # -- the encoding's keys and shapes (a subclass for another space overrides these) ----
    def groups(self, arch) -> List[Group]:
        return layer_groups(arch, self.macro)

    def shapes(self, arch) -> Dict[str, List[Tuple[int, ...]]]:
        return tensor_shapes(arch, self.macro)

    def add(self, arch: ArchSpec, cid: int, acc: float) -> int:
        """Offers every layer of a trained candidate; returns how many entries it won."""
        won = 0
        for g in self.groups(arch):
            slot = self.entries.setdefault(g.key, {})
            old = slot.get(g.signature)
            if old is not None and old.acc >= acc:
                continue
            slot[g.signature] = Entry(cid, float(acc), g.signature)
            won += 1
            if len(slot) > self.max_per_key:
                worst = min(slot.values(), key=lambda e: (e.acc, -e.cid))
                del slot[worst.signature]
                won -= worst.cid == cid
        return won

    def lookup(self, key: Key, signature: Signature) -> Optional[Entry]:
        slot = self.entries.get(key)
        if not slot:
            return None
        return min(slot.values(), key=lambda e: (_distance(e.signature, signature), -e.acc, e.cid))

    def materialize(self, arch: ArchSpec, load: Callable[[int], Mapping[str, List[np.ndarray]]],
                    child_shapes: Optional[Mapping[str, List[Tuple[int, ...]]]] = None
                    ) -> Tuple[Weights, Dict[str, Any]]:
        """The child's inherited weights `{layer name: arrays}` and a summary.

        Args:
          load: candidate id → its weights (`model.weights_io.load` of its file).
          child_shapes: the child's tensor shapes by layer name (default: computed from the
            encoding, `tensor_shapes`).
        """
        shapes = child_shapes or self.shapes(arch)
        out: Weights = {}
        donors, exact, adapted, groups = set(), 0, 0, 0
        for g in self.groups(arch):
            e = self.lookup(g.key, g.signature)
            if e is None:
                continue
            src = load(e.cid)
            got = False
            for name in g.layers:
                if name not in src or name not in shapes:
                    continue
                fitted = [fit(t, s) for t, s in zip(src[name], shapes[name])]
                if any(f is None for f in fitted) or len(fitted) != len(shapes[name]):
                    continue
                out[name] = fitted
                got = True
            if got:
                groups += 1
                donors.add(e.cid)
                if e.signature == g.signature:
                    exact += 1
                else:
                    adapted += 1
        return out, {"groups": groups, "exact": exact, "adapted": adapted,
                     "donors": sorted(donors)}

    def state(self) -> Dict[str, Any]:
        return {"entries": len(self), "keys": len(self.entries), "donors": self.cids()}


def tensor_shapes(arch: ArchSpec, macro: MacroSpec) -> Dict[str, List[Tuple[int, ...]]]:
    """The shape of every weight tensor of the built model, by Keras layer name (the
    builder's layers: convs without bias, BN with 4 vectors, dense with bias)."""
    bn = lambda c: [(c,)] * 4  # noqa: E731
    out = {N.STEM_CONV: [(3, 3, macro.in_channels, arch.stem)], N.STEM_BN: bn(arch.stem)}
    for g in layer_groups(arch, macro):
        if not g.key[0].startswith("b"):
            continue
        k, c_in, hid, cout, _ = g.signature
        bi, li = (int(v) for v in g.key[0][1:].split("l"))
        # B023: n is called in this iteration only
        n = lambda part, suffix="": N.layer_name(bi, li, part, suffix)  # noqa: E731, B023
        if g.key[1] != "sep":
            out[n(N.EXPAND)] = [(1, 1, c_in, hid)]
            out[n(N.EXPAND, "bn")] = bn(hid)
        out[n(N.DW)] = [(k, k, hid, 1)]
        out[n(N.DW, "bn")] = bn(hid)
        out[n(N.PROJECT)] = [(1, 1, hid, cout)]
        out[n(N.PROJECT, "bn")] = bn(cout)
        out[n(N.SHORTCUT)] = [(1, 1, c_in, cout)]
        out[n(N.SHORTCUT, "bn")] = bn(cout)
    last = arch.block_channels()[-1]
    out[N.HEAD_CONV] = [(1, 1, last, arch.head)]
    out[N.HEAD_BN] = bn(arch.head)
    out[N.LOGITS] = [(arch.head, macro.num_classes), (macro.num_classes,)]
    return out


class WeightsCache:
    """A few candidates' weight files kept loaded (LRU)."""

    def __init__(self, path_of: Callable[[int], str], size: int = 16):
        self.path_of = path_of
        self.size = size
        self._cache: "OrderedDict[int, Weights]" = OrderedDict()

    def __call__(self, cid: int) -> Weights:
        from eatnas_tf.model import weights_io

        if cid in self._cache:
            self._cache.move_to_end(cid)
            return self._cache[cid]
        w = weights_io.load(self.path_of(cid))
        self._cache[cid] = w
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return w
