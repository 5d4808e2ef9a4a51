"""The basic model's channels carried into the large task's space (EAT-NAS §3.5, §4.2).

Elastic transfer seeds the large task's population with offspring of the basic model.
An encoding's widths mean different channels in the two channel modes (`arch/spec.py`):
"relative" reads width as N_out / N_in (the paper, §3.4), "mbv2" as MobileNetV2's base
channels of the block × width (the official code's ImageNet space). Reading a CIFAR-10
basic model (relative) as-is in an mbv2 space gives another network, so the transfer maps
it explicitly: `map_channels` returns the target-space encoding whose per-block output
channels are the basic model's (or the nearest the target space allows) and says per
block what changed.

    >>> from eatnas_tf.arch import codec, space
    >>> cifar = space.get_space("cifar10")
    >>> basic = codec.parse_arch("mb6_k3_w2.0_d2,mb3_k5_w1.0_d3,mb6_k3_w1.5_d3,"
    ...                          "mb6_k5_w1.0_d3,mb6_k3_w1.5_d2,mb6_k5_w1.0_d2,sep_k3_w1.0_d1",
    ...                          **cifar.arch_defaults())
    >>> m = map_channels(basic, space.get_space("imagenet", "relative"))
    >>> m.exact, m.arch.block_channels() == basic.block_channels()
    (True, True)
    >>> m = map_channels(basic, space.get_space("imagenet"))  # mbv2 bases
    >>> [r.channels for r in m.rows]
    [32, 48, 64, 96, 144, 160, 160]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Tuple

from eatnas_tf.arch import codec
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.arch.spec import MBV2_BASE_CHANNELS, ArchSpec, BlockSpec


@dataclasses.dataclass(frozen=True)
class BlockMap:
    """One block of the mapping (block 1..7): the basic model's output channels and width,
    and the target encoding's."""

    block: int
    basic_channels: int
    channels: int
    basic_width: float
    width: float

    @property
    def changed(self) -> bool:
        return self.channels != self.basic_channels


@dataclasses.dataclass(frozen=True)
class ChannelMapping:
    """The target encoding of the basic model and how its channels were carried.

    Attributes:
      basic: the basic model in its own space's encoding.
      arch: the same blocks (op, kernel, skip, depth) in the target space's encoding, the
        widths chosen so the per-block channels match `basic`'s where the target allows.
      space, channel_mode: the target space's name and channel mode.
      rows: one `BlockMap` per block.
      violations: the target space's constraints `arch` breaks (its offspring, not it, are
        trained: Alg. 3 redraws them inside the space).
    """

    basic: ArchSpec
    arch: ArchSpec
    space: str
    channel_mode: str
    rows: Tuple[BlockMap, ...]
    violations: Tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        """Every block keeps the basic model's output channels."""
        return not any(r.changed for r in self.rows)

    @property
    def changed(self) -> Tuple[BlockMap, ...]:
        return tuple(r for r in self.rows if r.changed)

    def lines(self) -> List[str]:
        """The report lines (stdout of the transfer): the mapping, then each change."""
        b, a = self.basic, self.arch
        basic_ch = [r.basic_channels for r in self.rows]
        head = (f"transfer: basic model ({b.channel_mode}, stem {b.stem}) -> space "
                f"{self.space} ({self.channel_mode}, stem {a.stem}): ")
        if self.exact:
            how = ("widths carried over" if all(r.width == r.basic_width for r in self.rows)
                   else "widths re-chosen")
            out = [head + f"per-block channels kept {basic_ch} ({how})"]
        else:
            out = [head + f"per-block channels {basic_ch} -> {[r.channels for r in self.rows]} "
                   f"({len(self.changed)} of {len(self.rows)} blocks changed: nearest "
                   "allowed width)"]
        for r in self.rows:
            if r.changed or r.width != r.basic_width:
                what = (f"{r.basic_channels} -> {r.channels} channels" if r.changed
                        else f"{r.channels} channels kept")
                out.append(f"transfer:   block {r.block}: {what} (w{r.basic_width:.1f} -> "
                           f"w{r.width:.1f})")
        if (b.stem, b.head) != (a.stem, a.head):
            out.append(f"transfer:   stem/head {b.stem}/{b.head} -> {a.stem}/{a.head} (the "
                       "target space's)")
        if self.violations:
            out.append(f"transfer:   the mapped basic model lies outside space {self.space} "
                       f"({'; '.join(self.violations)}); its offspring are drawn inside")
        return out

    def as_dict(self) -> Dict[str, Any]:
        """Plain values for report.json."""
        return {"arch": codec.to_text(self.arch), "space": self.space,
                "channel_mode": self.channel_mode, "basic_channel_mode": self.basic.channel_mode,
                "exact": self.exact,
                "basic_channels": [r.basic_channels for r in self.rows],
                "channels": [r.channels for r in self.rows],
                "changed": [dataclasses.asdict(r) for r in self.changed],
                "violations": list(self.violations)}


def _channels(mode: str, block: int, prev: int, width: float) -> int:
    return int(MBV2_BASE_CHANNELS[block] * width) if mode == "mbv2" else int(prev * width)


def _nearest(widths, want: int, mode: str, block: int, prev: int, own: float) -> float:
    """The width whose channels are nearest `want` (ties: the basic model's own width, then
    the nearer ratio, then the smaller width); widths giving no channel are skipped."""
    ok = [w for w in widths if _channels(mode, block, prev, w) >= 1]

    def key(w):
        c = _channels(mode, block, prev, w)
        return (abs(c - want), w != own, abs(math.log(c / want)), w)

    return min(ok, key=key)


def map_channels(basic: ArchSpec, space: SearchSpace) -> ChannelMapping:
    """The encoding of `basic` in `space` that keeps its per-block output channels.

    Op, kernel, skip and depth carry over. Widths: when both are relative and the basic
    widths are allowed, they carry over (equal stems give equal channels, the paper's
    case: 32 on CIFAR-10 and ImageNet); otherwise each block takes the allowed width whose
    channels are nearest the basic model's, block by block (in relative mode on the
    channels chosen so far), and the changed blocks are listed in the result.
    """
    mode = space.channel_mode
    want = basic.block_channels()
    carry = (mode == "relative" and basic.channel_mode == "relative"
             and all(b.width in space.widths for b in basic.blocks))
    blocks: List[BlockSpec] = []
    prev = space.stem
    for i, b in enumerate(basic.blocks):
        w = b.width if carry else _nearest(space.widths, want[i], mode, i, prev, b.width)
        blocks.append(dataclasses.replace(b, width=w))
        prev = _channels(mode, i, prev, w)
    arch = space.make(blocks)
    got = arch.block_channels()
    rows = tuple(BlockMap(i + 1, want[i], got[i], basic.blocks[i].width, blocks[i].width)
                 for i in range(len(blocks)))
    return ChannelMapping(basic=basic, arch=arch, space=space.name, channel_mode=mode,
                          rows=rows, violations=tuple(space.violations(arch)))
