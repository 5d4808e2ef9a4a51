"""EPNAS' scale / insert / remove actions on our 7-block encoding (paper §3.2, §3.3).

The paper's policy changes an existing network progressively: a *scale* action per part
("changes the filter width or the number of filters"; "we may partition the network into
F parts, and for part f, the output a_s,f can scale a group of filters simultaneously"),
then one *insert* action that "selects to do insert, remove, or keep a certain layer,
using a conv operation from the insert lookup table, at certain place l after the
network is scaled", with "Src2" choosing a skip connection (-1 for none).

Mapping onto `arch.spec` (7 blocks of `(op, kernel, skip, width, depth)`):

  scale, one decision per part f = block f (F = 7), from `SCALE_ACTIONS`:
      keep | width- | width+ | kernel- | kernel+
      (the next smaller / larger width factor or kernel size the space allows)
  insert, up to four decisions:
      kind  keep | insert | remove
      place where: a block (module/"block" mode) or a layer of the flattened layer list
            ("layer" mode, layer-by-layer search); insert adds a layer after it, remove
            deletes it, i.e. depth ± 1 of that block
      op    the inserted layer's op from the space's ops (insert only)
      skip  the inserted layer's skip connection, no / yes ("Src2" = -1 or the input)
            (insert only)

Our encoding gives every layer of a block the block's op, kernel and skip, so a layer
inserted with another op or skip than its block's converts the whole block (the
"module" reading of the paper's block variant); the layer mode differs from the block
mode in what the policy sees (one token per layer) and where it can insert or remove
(per layer: blocks with more layers are more likely places), not in what a block can hold.

Validity: every decision is masked so that the architecture after it is still in the
space (grammar values, layer range, total expansion, minimum channels). The scale
decisions are applied one part after the other and each option is checked on the
architecture scaled so far; `keep` is always allowed, so the sequence never dead-ends
and the final architecture is valid by construction. This is the paper's "check table":
the place distribution covers only places that exist in the current network.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from eatnas_tf.arch import spec as spec_lib
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.arch.spec import ArchSpec, BlockSpec, InvalidArchitectureError

SCALE_ACTIONS = ("keep", "width-", "width+", "kernel-", "kernel+")
INSERT_KINDS = ("keep", "insert", "remove")
SKIPS = (False, True)
MODES = ("block", "layer")
NUM_PARTS = spec_lib.NUM_BLOCKS

# Token vocabulary of the layer embedding: one id per value of each field, fields summed.
_FIELDS = (("op", spec_lib.OPS), ("kernel", spec_lib.KERNELS), ("skip", SKIPS),
           ("width", spec_lib.WIDTHS), ("depth", (None,) + spec_lib.DEPTHS),
           ("block", tuple(range(spec_lib.NUM_BLOCKS))),
           ("layer", (None,) + tuple(range(max(spec_lib.DEPTHS)))))
_OFFSETS = {}
_o = 0
for _name, _values in _FIELDS:
    _OFFSETS[_name] = _o
    _o += len(_values)
TOKEN_VOCAB = _o
TOKEN_FIELDS = len(_FIELDS)


@dataclasses.dataclass(frozen=True)
class Action:
    """One policy output: a scale choice per part and an insert action.

    `place`, `op`, `skip` are -1 when not decided (kind keep: none of them; remove: op
    and skip). `op` indexes `spec.OPS`, `skip` indexes `SKIPS`.
    """

    scale: Tuple[int, ...]
    kind: int
    place: int = -1
    op: int = -1
    skip: int = -1

    def describe(self) -> str:
        sc = ",".join(f"b{i + 1}{SCALE_ACTIONS[a]}" for i, a in enumerate(self.scale) if a)
        ins = INSERT_KINDS[self.kind]
        if self.kind == 1:
            ins += f"@{self.place}:{spec_lib.OPS[self.op]}{'+skip' if SKIPS[self.skip] else ''}"
        elif self.kind == 2:
            ins += f"@{self.place}"
        return f"scale[{sc or 'keep'}] {ins}"

    def as_dict(self):
        return {"scale": list(self.scale), "kind": self.kind, "place": self.place,
                "op": self.op, "skip": self.skip}


def _next(values: Sequence, current, step: int):
    vals = sorted(values)
    if current not in vals:
        return None
    i = vals.index(current) + step
    return vals[i] if 0 <= i < len(vals) else None


class ActionSpace:
    """Masks, tokens and application of EPNAS actions for one search space and mode."""

    def __init__(self, space: SearchSpace, mode: str = "block"):
        if mode not in MODES:
            raise ValueError(f"epnas mode: received {mode!r}; allowed values: {', '.join(MODES)}")
        self.space = space
        self.mode = mode
        max_layers = NUM_PARTS * max(space.depths)
        if space.layers is not None:
            max_layers = min(max_layers, space.layers[1])
        self.max_places = NUM_PARTS if mode == "block" else max_layers

    # -- validity -------------------------------------------------------------------------
    def _make(self, blocks) -> Optional[ArchSpec]:
        try:
            arch = self.space.make(blocks)
        except InvalidArchitectureError:
            return None
        return arch if self.space.contains(arch) else None

    def valid(self, arch: ArchSpec) -> bool:
        return self.space.contains(arch)

    # -- scale ----------------------------------------------------------------------------
    def scaled_block(self, block: BlockSpec, option: int) -> Optional[BlockSpec]:
        name = SCALE_ACTIONS[option]
        if name == "keep":
            return block
        field = "width" if name.startswith("width") else "kernel"
        allowed = self.space.widths if field == "width" else self.space.kernels
        value = _next(allowed, getattr(block, field), -1 if name.endswith("-") else 1)
        if value is None:
            return None
        return dataclasses.replace(block, **{field: value})

    def apply_scale(self, arch: ArchSpec, part: int, option: int) -> Optional[ArchSpec]:
        b = self.scaled_block(arch.blocks[part], option)
        if b is None:
            return None
        if b == arch.blocks[part]:
            return arch
        return self._make(arch.blocks[:part] + (b,) + arch.blocks[part + 1:])

    def scale_mask(self, arch: ArchSpec, part: int) -> List[bool]:
        return [o == 0 or self.apply_scale(arch, part, o) is not None
                for o in range(len(SCALE_ACTIONS))]

    # -- insert / remove ------------------------------------------------------------------
    def layer_blocks(self, arch: ArchSpec) -> List[int]:
        """The block of each layer in the flattened layer list."""
        return [bi for bi, b in enumerate(arch.blocks) for _ in range(b.depth)]

    def block_of(self, arch: ArchSpec, place: int) -> Optional[int]:
        if self.mode == "block":
            return place if 0 <= place < NUM_PARTS else None
        lb = self.layer_blocks(arch)
        return lb[place] if 0 <= place < len(lb) else None

    def apply_insert(self, arch: ArchSpec, kind: int, place: int = -1, op: int = -1,
                     skip: int = -1) -> Optional[ArchSpec]:
        """The architecture after the insert action, or None if it leaves the space."""
        if kind == 0:
            return arch
        bi = self.block_of(arch, place)
        if bi is None:
            return None
        b = arch.blocks[bi]
        if kind == 2:
            nb = (
                dataclasses.replace(b, depth=b.depth - 1)
                if b.depth - 1 in self.space.depths
                else None
            )
        else:
            if op < 0 or skip < 0 or spec_lib.OPS[op] not in self.space.ops:
                return None
            if b.depth + 1 not in self.space.depths:
                return None
            nb = dataclasses.replace(b, depth=b.depth + 1, op=spec_lib.OPS[op], skip=SKIPS[skip])
        if nb is None:
            return None
        return self._make(arch.blocks[:bi] + (nb,) + arch.blocks[bi + 1:])

    def num_places(self, arch: ArchSpec) -> int:
        return NUM_PARTS if self.mode == "block" else arch.num_layers

    def skip_mask(self, arch, kind, place, op) -> List[bool]:
        return [self.apply_insert(arch, kind, place, op, s) is not None for s in range(len(SKIPS))]

    def op_mask(self, arch, kind, place) -> List[bool]:
        return [any(self.skip_mask(arch, kind, place, o)) for o in range(len(spec_lib.OPS))]

    def place_mask(self, arch, kind) -> List[bool]:
        n = self.num_places(arch)
        out = []
        for p in range(self.max_places):
            if p >= n:
                out.append(False)
            elif kind == 2:
                out.append(self.apply_insert(arch, 2, p) is not None)
            else:
                out.append(any(self.op_mask(arch, kind, p)))
        return out

    def kind_mask(self, arch) -> List[bool]:
        return [True, any(self.place_mask(arch, 1)), any(self.place_mask(arch, 2))]

    # -- whole action ---------------------------------------------------------------------
    def apply(self, arch: ArchSpec, action: Action) -> ArchSpec:
        """Scale part by part, then insert; raises ValueError if the action is not valid
        for `arch` (the policy only samples valid ones)."""
        a = arch
        for part, option in enumerate(action.scale):
            a2 = self.apply_scale(a, part, option)
            if a2 is None:
                raise ValueError(f"epnas action {action.describe()}: scale of block {part + 1} "
                                 "leaves the space")
            a = a2
        a2 = self.apply_insert(a, action.kind, action.place, action.op, action.skip)
        if a2 is None:
            raise ValueError(f"epnas action {action.describe()}: insert leaves the space")
        return a2

    # -- policy input ---------------------------------------------------------------------
    def tokens(self, arch: ArchSpec) -> List[Tuple[int, ...]]:
        """One token per block (block mode) or per layer (layer mode); a token is one id
        per field of `_FIELDS` into a vocabulary of `TOKEN_VOCAB` ids."""
        out = []
        for bi, b in enumerate(arch.blocks):
            layers = [None] if self.mode == "block" else list(range(b.depth))
            for li in layers:
                vals = {"op": b.op, "kernel": b.kernel, "skip": b.skip, "width": b.width,
                        "depth": b.depth if li is None else None, "block": bi, "layer": li}
                out.append(tuple(_OFFSETS[name] + values.index(vals[name])
                                 for name, values in _FIELDS))
        return out
