"""Analytic params and Mult-Adds of an encoding, without building a model (docs/design.md §2).

Convention: `params` = every weight Keras counts (kernels, BN gamma/beta/mean/variance,
dense kernel and bias); `madds` = multiply-adds of convolutions and dense layers only
(no BN, activation, bias or add). MobileNetV2 1.0/224 gives 3,538,984 params and
300,774,272 MAdds. Convolutions use "same" padding, so a stride-s layer maps H to ceil(H/s).

    >>> from eatnas_tf.arch import registry
    >>> c = count(registry.MOBILENET_V2, registry.IMAGENET_MACRO)
    >>> c.params, c.madds
    (3538984, 300774272)
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

from eatnas_tf.arch.spec import NUM_BLOCKS, ArchSpec, InvalidArchitectureError

_BN = 4  # gamma, beta, moving mean, moving variance


@dataclasses.dataclass(frozen=True)
class MacroSpec:
    """What the architecture does not say: input, classes and where it downsamples.

    Attributes:
      image_size: input height = width.
      in_channels: image channels (3 for RGB, 1 for grey).
      num_classes: logits.
      stem_stride: stride of the 3×3 stem conv.
      block_strides: stride of the first layer of each of the 7 blocks.
    """

    image_size: int
    in_channels: int = 3
    num_classes: int = 10
    stem_stride: int = 1
    block_strides: Tuple[int, ...] = (1, 1, 2, 1, 2, 1, 1)

    def __post_init__(self):
        object.__setattr__(self, "block_strides", tuple(self.block_strides))
        if len(self.block_strides) != NUM_BLOCKS or any(
            s not in (1, 2) for s in self.block_strides
        ):
            raise InvalidArchitectureError(
                f"block_strides: received {self.block_strides}; allowed values: 7 strides of 1 or 2"
            )
        if self.stem_stride not in (1, 2):
            raise InvalidArchitectureError(
                f"stem_stride: received {self.stem_stride}; allowed values: 1, 2")
        for f in ("image_size", "in_channels", "num_classes"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArchitectureError(
                    f"{f}: received {v!r}; allowed values: a positive integer"
                )

    def with_(self, **kw) -> "MacroSpec":
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class Cost:
    """Totals plus per-block figures (block 0 is the stem, 8 is the head)."""

    params: int
    madds: int
    layers: int
    final_size: int
    blocks: Tuple[Dict[str, int], ...]
    bytes_moved: int  # fp32 bytes: weights read + activations read and written (EPNAS)

    @property
    def compute_intensity(self) -> float:
        """FLOPs per byte moved (EPNAS): 2 × MAdds / bytes."""
        return 2.0 * self.madds / max(self.bytes_moved, 1)

    def as_dict(self) -> Dict:
        return {"params": self.params, "madds": self.madds, "layers": self.layers,
                "final_size": self.final_size, "bytes_moved": self.bytes_moved,
                "compute_intensity": round(self.compute_intensity, 4),
                "blocks": list(self.blocks)}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def count(arch: ArchSpec, macro: MacroSpec) -> Cost:
    """Params, MAdds and a bytes-moved estimate of `arch` under `macro`."""
    if not isinstance(arch, ArchSpec):  # another encoding (EPNAS Table 2 layer lists)
        return arch.cost(macro)
    h = _ceil_div(macro.image_size, macro.stem_stride)
    cin = macro.in_channels
    stem = arch.stem
    p = 9 * cin * stem + _BN * stem
    m = h * h * 9 * cin * stem
    act = macro.image_size ** 2 * cin + 2 * h * h * stem  # read input, write conv, BN/act
    blocks: List[Dict[str, int]] = [
        {"block": 0, "params": p, "madds": m, "channels": stem, "size": h}
    ]
    params, madds, acts = p, m, act
    wbytes = 9 * cin * stem
    cin = stem
    for bi, (b, cout, stride) in enumerate(
        zip(arch.blocks, arch.block_channels(), macro.block_strides)
    ):
        bp = bm = ba = bw = 0
        k2 = b.kernel * b.kernel
        for li in range(b.depth):
            s = stride if li == 0 else 1
            c_in = cin if li == 0 else cout
            h_out = _ceil_div(h, s)
            if b.op == "sep":
                hid = c_in
                lp = k2 * c_in + _BN * c_in + c_in * cout + _BN * cout
                lm = h_out * h_out * (k2 * c_in + c_in * cout)
                lw = k2 * c_in + c_in * cout
                la = h * h * c_in + h_out * h_out * (c_in + cout)
            else:
                hid = c_in * b.expansion
                lp = c_in * hid + _BN * hid + k2 * hid + _BN * hid + hid * cout + _BN * cout
                lm = h * h * c_in * hid + h_out * h_out * (k2 * hid + hid * cout)
                lw = c_in * hid + k2 * hid + hid * cout
                la = h * h * (c_in + hid) + h_out * h_out * (hid + hid + cout)
            if b.skip and not (s == 1 and c_in == cout) and arch.shortcut == "projection":
                lp += c_in * cout + _BN * cout
                lm += h_out * h_out * c_in * cout
                lw += c_in * cout
                la += h_out * h_out * cout
            bp, bm, ba, bw = bp + lp, bm + lm, ba + la, bw + lw
            h = h_out
        blocks.append({"block": bi + 1, "params": bp, "madds": bm, "channels": cout, "size": h})
        params, madds, acts, wbytes = params + bp, madds + bm, acts + ba, wbytes + bw
        cin = cout
    hp = cin * arch.head + _BN * arch.head + arch.head * macro.num_classes + macro.num_classes
    hm = h * h * cin * arch.head + arch.head * macro.num_classes
    blocks.append(
        {"block": NUM_BLOCKS + 1, "params": hp, "madds": hm, "channels": arch.head, "size": 1}
    )
    params, madds = params + hp, madds + hm
    acts += h * h * (cin + arch.head) + arch.head + macro.num_classes
    wbytes += cin * arch.head + arch.head * macro.num_classes
    return Cost(params=params, madds=madds, layers=arch.num_layers, final_size=h,
                blocks=tuple(blocks), bytes_moved=4 * (wbytes + acts))
