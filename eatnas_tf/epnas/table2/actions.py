"""EPNAS' scale / insert / remove actions on a Table 2 layer list (paper §3.2, §3.3).

scale   "in layer-by-layer search, we may partition the network into F parts, and for part
        f, the output a_s,f can scale a group of filters simultaneously": the L layers are
        cut into F = `SCALE_PARTS` contiguous parts; per part one of
            keep | width- | width+ | channels- | channels+
        moves every layer of the part that has the field to the next smaller / larger
        value the space allows (filter width for conv / sepconv, pooling width for pools;
        channels for conv / sepconv); a layer already at the end stays. An option that
        changes no layer is masked.
insert  the insert LSTM "selects to do insert, remove, or keep a certain layer ... at
        certain place l", with "P(a_i(p) = l) ~ D_L, ... a discrete distribution with
        L + 5 values" (the "check table"). Here the place head is masked to the L + 5
        values 0 … L + 4 of D_L; value v inserts after node min(v, L): 0 … L − 1 inside
        the network, and the five values L … L + 4 append at the end. The new layer reads
        the node before it ("Src1 determines the place to insert a given layer") and the
        layer after it, when that one read the same node, now reads the new layer (the
        chain of Fig. 3); nothing else changes. Then its op, its filter / pooling width,
        channels and activation (conv / sepconv), and Src2 (-1 or any node up to its
        input; add needs one).
remove  deletes layer l (place over 0 … L − 1): whatever read it reads its Src1 instead
        (the exact inverse of an insert there).

Validity: every decision is masked to values that keep the encoding in the space (the
layer range [1, max_layers], the space's values), so a sampled action never dead-ends.
The paper's `keep` is always allowed.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from eatnas_tf.epnas.table2.space import (
    ACTIVATIONS,
    CHANNELS,
    CONV_OPS,
    KERNELS,
    OPS,
    POOL_OPS,
    POOL_WIDTHS,
    Layer,
    LayerArch,
    Table2Space,
)

SCALE_ACTIONS = ("keep", "width-", "width+", "channels-", "channels+")
INSERT_KINDS = ("keep", "insert", "remove")
SCALE_PARTS = 4           # F: the paper gives no number for layer-by-layer search
PLACE_EXTRA = 5           # D_L has L + 5 values
#: The insert LSTM's decisions, in the order it takes them (every one is a step of the
#: LSTM; one that does not apply is fed as "absent" and adds nothing to log π).
INSERT_SLOTS = ("kind", "place", "op", "kernel", "pool", "channels", "act", "src2")
#: Values of each insert decision (src2: index 0 is -1 "no skip", index j is node j − 1).
SLOT_VALUES = {"kind": INSERT_KINDS, "op": OPS, "kernel": KERNELS, "pool": POOL_WIDTHS,
               "channels": CHANNELS, "act": ACTIVATIONS}


@dataclasses.dataclass(frozen=True)
class Table2Action:
    """One policy output: a scale option per part, then the insert decisions (indices
    into `SLOT_VALUES`, the place value v of D_L, src2's head index; -1: not decided)."""

    scale: Tuple[int, ...]
    kind: int = 0
    place: int = -1
    op: int = -1
    kernel: int = -1
    pool: int = -1
    channels: int = -1
    act: int = -1
    src2: int = -1

    def describe(self) -> str:
        sc = ",".join(f"p{i + 1}{SCALE_ACTIONS[a]}" for i, a in enumerate(self.scale) if a)
        ins = INSERT_KINDS[self.kind]
        if self.kind == 1:
            op = OPS[self.op]
            fields = []
            if self.kernel >= 0:
                fields.append(f"k{KERNELS[self.kernel]}")
            if self.pool >= 0:
                fields.append(f"k{POOL_WIDTHS[self.pool]}")
            if self.channels >= 0:
                fields += [f"c{CHANNELS[self.channels]}", ACTIVATIONS[self.act]]
            if self.src2 > 0:
                fields.append(f"skip{self.src2 - 1}")
            ins += f"@{self.place}:{'_'.join([op] + fields)}"
        elif self.kind == 2:
            ins += f"@{self.place}"
        return f"scale[{sc or 'keep'}] {ins}"

    def as_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


def _step(values: Sequence, allowed: Sequence, current, step: int):
    """The next allowed value after `current` in `values`' order (None at the end)."""
    vals = [v for v in values if v in allowed]
    if current not in vals:
        return None
    i = vals.index(current) + step
    return vals[i] if 0 <= i < len(vals) else None


# -- insert / remove as pure functions ------------------------------------------------------
def insert_layer(arch: LayerArch, pos: int, layer: Layer) -> LayerArch:
    """`layer` inserted after node `pos` (0 ≤ pos ≤ L) as layer pos + 1; its src1 must be
    `pos`. Later layers are renumbered; the next layer, if it read node `pos`, reads the
    new one."""
    n = arch.num_layers
    if not 0 <= pos <= n:
        raise ValueError(f"insert place: received {pos}; allowed values: 0 to {n}")
    if layer.src1 != pos or layer.src2 > pos:
        raise ValueError(f"inserted layer: src1 {layer.src1}, src2 {layer.src2}; allowed "
                         f"values: src1 = {pos}, src2 <= {pos}")
    new = pos + 1

    def shift(node: int) -> int:
        return node + 1 if node > pos else node

    out = list(arch.layers[:pos]) + [layer]
    for j, old in enumerate(arch.layers[pos:], start=pos + 1):
        src1, src2 = shift(old.src1), shift(old.src2) if old.src2 >= 0 else -1
        if j == pos + 1 and old.src1 == pos:
            src1 = new
        out.append(dataclasses.replace(old, src1=src1, src2=src2))
    return LayerArch(tuple(out))


def remove_layer(arch: LayerArch, number: int) -> LayerArch:
    """Layer `number` (1-based) removed; what read it reads its src1; later layers
    renumbered."""
    n = arch.num_layers
    if not 1 <= number <= n or n == 1:
        raise ValueError(f"remove: layer {number} of {n}; allowed values: 1 to {n} with L >= 2")
    bypass = arch.layers[number - 1].src1

    def remap(node: int) -> int:
        if node == number:
            return bypass
        return node - 1 if node > number else node

    out = list(arch.layers[:number - 1])
    for old in arch.layers[number:]:
        out.append(dataclasses.replace(old, src1=remap(old.src1),
                                       src2=remap(old.src2) if old.src2 >= 0 else -1))
    return LayerArch(tuple(out))


class Table2ActionSpace:
    """Masks, tokens and application of EPNAS actions on one `Table2Space`."""

    mode = "layer"

    def __init__(self, space: Table2Space):
        self.space = space
        self.max_layers = space.max_layers
        self.num_parts = SCALE_PARTS
        self.max_places = space.max_layers + PLACE_EXTRA
        self.slot_sizes = {"kind": len(INSERT_KINDS), "place": self.max_places,
                           "op": len(OPS), "kernel": len(KERNELS), "pool": len(POOL_WIDTHS),
                           "channels": len(CHANNELS), "act": len(ACTIVATIONS),
                           "src2": space.max_layers + 1}
        # token vocabulary: one id per value of each field, fields summed
        m = space.max_layers
        widths = (None,) + tuple(sorted(set(KERNELS + POOL_WIDTHS)))
        self._fields = (("op", OPS), ("kernel", widths), ("channels", (None,) + CHANNELS),
                        ("act", (None,) + ACTIVATIONS),
                        ("src1_back", tuple(range(1, m + 1))),
                        ("src2_back", (None,) + tuple(range(1, m + 1))),
                        ("position", tuple(range(m))))
        self._offsets = {}
        o = 0
        for name, values in self._fields:
            self._offsets[name] = o
            o += len(values)
        self.token_vocab = o
        self.token_fields = len(self._fields)

    def valid(self, arch: LayerArch) -> bool:
        return self.space.contains(arch)

    # -- scale ----------------------------------------------------------------------------
    def parts(self, arch: LayerArch) -> List[range]:
        """F contiguous parts of the layer indices (0-based); empty when L < F."""
        n, f = arch.num_layers, self.num_parts
        return [range(p * n // f, (p + 1) * n // f) for p in range(f)]

    def _scaled(self, layer: Layer, option: int) -> Layer:
        name = SCALE_ACTIONS[option]
        step = -1 if name.endswith("-") else 1
        sp = self.space
        if name.startswith("width"):
            if layer.op in CONV_OPS:
                v = _step(KERNELS, sp.kernels, layer.kernel, step)
            elif layer.op in POOL_OPS:
                v = _step(POOL_WIDTHS, sp.pool_widths, layer.kernel, step)
            else:
                v = None
            return dataclasses.replace(layer, kernel=v) if v is not None else layer
        if layer.op in CONV_OPS:
            v = _step(CHANNELS, sp.channels, layer.channels, step)
            return dataclasses.replace(layer, channels=v) if v is not None else layer
        return layer

    def apply_scale(self, arch: LayerArch, part: int, option: int) -> Optional[LayerArch]:
        """`arch` with part `part` scaled; None when the option changes nothing (keep
        returns `arch`)."""
        if option == 0:
            return arch
        layers = list(arch.layers)
        changed = False
        for i in self.parts(arch)[part]:
            new = self._scaled(layers[i], option)
            changed |= new != layers[i]
            layers[i] = new
        return LayerArch(tuple(layers)) if changed else None

    def scale_mask(self, arch: LayerArch, part: int) -> List[bool]:
        return [o == 0 or self.apply_scale(arch, part, o) is not None
                for o in range(len(SCALE_ACTIONS))]

    # -- insert decisions -----------------------------------------------------------------
    def position(self, arch: LayerArch, place: int) -> int:
        """The node an insert at D_L value `place` goes after: min(v, L)."""
        return min(place, arch.num_layers)

    def kind_mask(self, arch: LayerArch) -> List[bool]:
        return [True, arch.num_layers < self.max_layers, arch.num_layers > 1]

    def place_mask(self, arch: LayerArch, kind: int) -> List[bool]:
        n = arch.num_layers + PLACE_EXTRA if kind == 1 else arch.num_layers
        return [v < n for v in range(self.max_places)]

    def op_mask(self) -> List[bool]:
        return [op in self.space.ops for op in OPS]

    def value_mask(self, slot: str) -> List[bool]:
        allowed = {"kernel": self.space.kernels, "pool": self.space.pool_widths,
                   "channels": self.space.channels, "act": self.space.activations}[slot]
        return [v in allowed for v in SLOT_VALUES[slot]]

    def src2_mask(self, pos: int, op: str) -> List[bool]:
        """Head index 0 = -1 (no skip; not for add), j = node j − 1 ≤ pos."""
        return [(j == 0 and op != "add") or 1 <= j <= pos + 1
                for j in range(self.slot_sizes["src2"])]

    def slots_for(self, kind: int, op: Optional[int]) -> Tuple[str, ...]:
        """The insert decisions that apply after `kind` (and, for insert, `op`)."""
        if kind == 0:
            return ("kind",)
        if kind == 2:
            return ("kind", "place")
        if op is None:
            return ("kind", "place", "op")
        name = OPS[op]
        extra = (("kernel", "channels", "act") if name in CONV_OPS
                 else ("pool",) if name in POOL_OPS else ())
        return ("kind", "place", "op") + extra + ("src2",)

    def mask(self, slot: str, arch: LayerArch, chosen: Dict[str, int]) -> List[bool]:
        """The mask of insert decision `slot` given the decisions `chosen` before it."""
        if slot == "kind":
            return self.kind_mask(arch)
        if slot == "place":
            return self.place_mask(arch, chosen["kind"])
        if slot == "op":
            return self.op_mask()
        if slot == "src2":
            return self.src2_mask(self.position(arch, chosen["place"]), OPS[chosen["op"]])
        return self.value_mask(slot)

    def new_layer(self, arch: LayerArch, action: Table2Action) -> Layer:
        pos = self.position(arch, action.place)
        op = OPS[action.op]
        src2 = action.src2 - 1
        if op in CONV_OPS:
            return Layer(op, pos, src2, KERNELS[action.kernel], CHANNELS[action.channels],
                         ACTIVATIONS[action.act])
        if op in POOL_OPS:
            return Layer(op, pos, src2, POOL_WIDTHS[action.pool])
        return Layer(op, pos, src2)

    def apply_insert(self, arch: LayerArch, action: Table2Action) -> LayerArch:
        if action.kind == 0:
            return arch
        if action.kind == 2:
            return remove_layer(arch, action.place + 1)
        return insert_layer(arch, self.position(arch, action.place),
                            self.new_layer(arch, action))

    # -- whole action ---------------------------------------------------------------------
    def apply(self, arch: LayerArch, action: Table2Action) -> LayerArch:
        """Scale part by part, then insert / remove; ValueError if `action` is not valid
        for `arch` (the policy samples only valid ones)."""
        a = arch
        for part, option in enumerate(action.scale):
            if not self.scale_mask(a, part)[option]:
                raise ValueError(f"epnas action {action.describe()}: scale of part {part + 1} "
                                 "changes nothing")
            a = self.apply_scale(a, part, option)
        chosen = {k: getattr(action, k) for k in INSERT_SLOTS}
        for slot in self.slots_for(action.kind, action.op if action.kind == 1 else None):
            v = chosen[slot]
            m = self.mask(slot, a, chosen)
            if not (0 <= v < len(m) and m[v]):
                raise ValueError(f"epnas action {action.describe()}: {slot} {v} not allowed")
        out = self.apply_insert(a, action)
        self.space.validate(out)
        return out

    # -- policy input ---------------------------------------------------------------------
    def tokens(self, arch: LayerArch) -> List[Tuple[int, ...]]:
        """One token per layer: one id per field (op, width, channels, activation, how
        far back Src1 and Src2 reach, position)."""
        out = []
        m = self.max_layers
        for i, layer in enumerate(arch.layers, start=1):
            vals = {"op": layer.op, "kernel": layer.kernel, "channels": layer.channels,
                    "act": layer.act, "src1_back": min(i - layer.src1, m),
                    "src2_back": min(i - layer.src2, m) if layer.src2 >= 0 else None,
                    "position": min(i - 1, m - 1)}
            out.append(tuple(self._offsets[name] + values.index(vals[name])
                             for name, values in self._fields))
        return out
