"""The distinct layers an architecture is made of, each with a hashable signature (issue 16).

A *layer* here is what the latency table times as one single-layer TFLite model, cut where
the builder (`eatnas_tf.model.builder`) cuts the network:

  stem        3×3 conv (macro stride) + BN + ReLU6
  layer       one block layer: sep (dw k×k + BN + ReLU + 1×1 project + BN) or mbN
              (1×1 expand + dw k×k + 1×1 project, BN/ReLU6 between), plus its shortcut:
              `none`, `add` (identity add: stride 1 and c_in == c_out) or `proj`
              (1×1 conv (stride) + BN + add, `shortcut="projection"` archs)
  head        1×1 conv + BN + ReLU6
  classifier  global average pool + dense logits

Every field that changes the layer's compute is in its signature (op, kernel, stride,
expansion, input H×W, c_in, c_out, shortcut); fields that do not (the block's skip flag
where no add is built, BN settings, weights) are left out, so identical layers share one
table entry. The walk mirrors `builder.build_model` ("same" padding: a stride-s layer maps
H to ceil(H/s)) and `arch.cost.count`; tests check it against a built model's layers.

    >>> sigs = arch_layers(arch, macro)
    >>> sigs[1].key
    'layer|op=mb3|k=5|s=1|e=3|hw=14x14|cin=16|cout=24|sc=none'
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Set, Tuple

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import MBV2_BASE_CHANNELS, NUM_BLOCKS, ArchSpec, BlockSpec

KINDS = ("stem", "layer", "head", "classifier")
SHORTCUTS = ("none", "add", "proj")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclasses.dataclass(frozen=True)
class LayerSig:
    """One timed layer. `hw` is the *input* height = width; `op`/`kernel`/`expansion`/
    `shortcut` apply to `kind="layer"` (the stem has kernel 3, the head 1)."""

    kind: str
    hw: int
    c_in: int
    c_out: int
    stride: int = 1
    op: str = ""
    kernel: int = 0
    expansion: int = 0
    shortcut: str = "none"

    @property
    def key(self) -> str:
        hw = f"hw={self.hw}x{self.hw}"
        if self.kind == "stem":
            return f"stem|k=3|s={self.stride}|{hw}|cin={self.c_in}|cout={self.c_out}"
        if self.kind == "layer":
            return (f"layer|op={self.op}|k={self.kernel}|s={self.stride}|e={self.expansion}|{hw}"
                    f"|cin={self.c_in}|cout={self.c_out}|sc={self.shortcut}")
        if self.kind == "head":
            return f"head|k=1|s=1|{hw}|cin={self.c_in}|cout={self.c_out}"
        return f"classifier|{hw}|cin={self.c_in}|classes={self.c_out}"

    @property
    def out_hw(self) -> int:
        return 1 if self.kind == "classifier" else _ceil_div(self.hw, self.stride)

    @classmethod
    def from_key(cls, key: str) -> "LayerSig":
        """Inverse of `key` (a table's entries are rebuilt from their keys)."""
        kind, *parts = key.split("|")
        if kind not in KINDS:
            raise ValueError(f"signature: received {key!r}; allowed kinds: {', '.join(KINDS)}")
        f = dict(p.split("=", 1) for p in parts)
        hw = int(f["hw"].split("x")[0])
        c_out = int(f["classes"] if kind == "classifier" else f["cout"])
        sig = cls(kind=kind, hw=hw, c_in=int(f["cin"]), c_out=c_out, stride=int(f.get("s", 1)),
                  op=f.get("op", ""), kernel=int(f.get("k", 0)) if kind == "layer" else 0,
                  expansion=int(f.get("e", 0)), shortcut=f.get("sc", "none"))
        if sig.key != key:
            raise ValueError(f"signature: received {key!r}; not a canonical signature "
                             f"(expected {sig.key!r})")
        return sig


def _shortcut(skip: bool, stride: int, c_in: int, c_out: int, shortcut_mode: str) -> str:
    if not skip:
        return "none"
    if stride == 1 and c_in == c_out:
        return "add"
    return "proj" if shortcut_mode == "projection" else "none"


def block_layer(block: BlockSpec, hw: int, c_in: int, c_out: int, stride: int,
                shortcut_mode: str) -> LayerSig:
    """The signature of one layer of `block` (stride and c_in of *this* layer)."""
    return LayerSig(kind="layer", hw=hw, c_in=c_in, c_out=c_out, stride=stride, op=block.op,
                    kernel=block.kernel, expansion=0 if block.op == "sep" else block.expansion,
                    shortcut=_shortcut(block.skip, stride, c_in, c_out, shortcut_mode))


def arch_layers(arch: ArchSpec, macro: MacroSpec, image_size: int = 0) -> List[LayerSig]:
    """Every layer of `arch` under `macro`, in network order (stem, block layers, head,
    classifier); repeated layers appear once per occurrence."""
    size = image_size or macro.image_size
    out = [LayerSig("stem", size, macro.in_channels, arch.stem, macro.stem_stride)]
    h = _ceil_div(size, macro.stem_stride)
    cin = arch.stem
    for block, cout, stride in zip(arch.blocks, arch.block_channels(), macro.block_strides):
        for li in range(block.depth):
            s = stride if li == 0 else 1
            c_in = cin if li == 0 else cout
            out.append(block_layer(block, h, c_in, cout, s, arch.shortcut))
            h = _ceil_div(h, s)
        cin = cout
    out.append(LayerSig("head", h, cin, arch.head))
    out.append(LayerSig("classifier", h, arch.head, macro.num_classes))
    return out


# -- the layers a space can produce ---------------------------------------------------------

def _block_channels(space, bi: int, prev: int, width: float) -> int:
    if space.channel_mode == "mbv2":
        return int(MBV2_BASE_CHANNELS[bi] * width)
    return int(prev * width)


def reachable_channels(space) -> List[Set[int]]:
    """Output channels block 1..7 can have in `space`, kept only where a full architecture
    through them can still meet `min_channels` and `total_expansion` (forward reachable
    sets pruned backward). Depth/op constraints (`layers`, `max_madds`) are not applied:
    the result is a superset of what valid architectures use."""
    fwd: List[Set[int]] = []
    prev = {space.stem}
    for bi in range(NUM_BLOCKS):
        cur = {_block_channels(space, bi, p, w) for p in prev for w in space.widths}
        cur = {c for c in cur if c >= max(space.min_channels, 1)}
        fwd.append(cur)
        prev = cur
    if space.total_expansion is not None:
        lo, hi = space.total_expansion
        fwd[-1] = {c for c in fwd[-1] if lo <= c / space.stem <= hi}
    for bi in range(NUM_BLOCKS - 2, -1, -1):
        nxt = fwd[bi + 1]
        fwd[bi] = {c for c in fwd[bi]
                   if any(_block_channels(space, bi + 1, c, w) in nxt for w in space.widths)}
    return fwd


def space_layers(space) -> List[LayerSig]:
    """Every distinct layer signature the architectures of `space` can contain (see
    `reachable_channels` for the channel sets), sorted by key."""
    macro = space.macro
    sigs: Dict[str, LayerSig] = {}

    def add(sig: LayerSig) -> None:
        sigs.setdefault(sig.key, sig)

    add(LayerSig("stem", macro.image_size, macro.in_channels, space.stem, macro.stem_stride))
    chans = reachable_channels(space)
    h = _ceil_div(macro.image_size, macro.stem_stride)
    prev = {space.stem}
    max_depth = max(space.depths)
    for bi, stride in enumerate(macro.block_strides):
        h_out = _ceil_div(h, stride)
        for cin in prev:
            for w in space.widths:
                cout = _block_channels(space, bi, cin, w)
                if cout not in chans[bi]:
                    continue
                for op in space.ops:
                    for k in space.kernels:
                        for skip in (False, True):
                            b = BlockSpec(op, k, skip, w, 1)
                            add(block_layer(b, h, cin, cout, stride, space.shortcut))
                            if max_depth > 1:
                                add(block_layer(b, h_out, cout, cout, 1, space.shortcut))
        prev = chans[bi]
        h = h_out
    for c in chans[-1]:
        add(LayerSig("head", h, c, space.head))
    add(LayerSig("classifier", h, space.head, macro.num_classes))
    return [sigs[k] for k in sorted(sigs)]


def counts_by_kind(sigs) -> Dict[str, int]:
    out = {k: 0 for k in KINDS}
    for s in sigs:
        out[s.kind] += 1
    return out


def iter_unique(sigs) -> Iterator[LayerSig]:
    seen: Set[str] = set()
    for s in sigs:
        if s.key not in seen:
            seen.add(s.key)
            yield s


def split_counts(sigs) -> Tuple[int, int]:
    """(layers, distinct layers)."""
    sigs = list(sigs)
    return len(sigs), len({s.key for s in sigs})
