"""Architecture specs of the EAT-NAS search space (paper §3.2, docs/design.md §2).

An architecture is a stem, seven blocks and a head. A block is the tuple
`(op, kernel, skip, width, depth)`. Specs are frozen dataclasses validated on
construction; derive a child only with `dataclasses.replace` (or `ArchSpec.with_block`).

    >>> b = BlockSpec("mb6", 3, True, 1.0, 2)
    >>> arch = ArchSpec(blocks=(b,) * 7, channel_mode="mbv2")
    >>> arch.block_channels()[:2]
    (16, 24)
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

OPS = ("sep", "mb3", "mb6")
KERNELS = (3, 5, 7)
WIDTHS = (0.5, 1.0, 1.5, 2.0)
DEPTHS = (1, 2, 3, 4)
CHANNEL_MODES = ("relative", "mbv2")
SHORTCUTS = ("identity", "projection")
NUM_BLOCKS = 7
MBV2_BASE_CHANNELS = (16, 24, 32, 64, 96, 160, 320)
EXPANSION = {"sep": 1, "mb3": 3, "mb6": 6}


class InvalidArchitectureError(ValueError):
    """An encoding names a value outside the search space's grammar.

    The message names the bad field, the value received and the allowed values, so the
    command-line tools can print it as the one line a user sees.
    """


def _allowed(values) -> str:
    return ", ".join(str(v) for v in values)


def _check(field: str, value, allowed, where: str = "") -> None:
    # bool is an int subclass: `True in (1, 2)` would otherwise pass for kernel/depth.
    ok = value in allowed and not (isinstance(value, bool) and bool not in map(type, allowed))
    if not ok:
        raise InvalidArchitectureError(
            f"{where}{field}: received {value!r}; allowed values: {_allowed(allowed)}")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block: `depth` layers of `op` with a `kernel`×`kernel` depthwise conv.

    Attributes:
      op: "sep" (separable conv), "mb3" / "mb6" (MBConv with expansion 3 / 6).
      kernel: depthwise kernel size, 3, 5 or 7.
      skip: identity shortcut in every layer of the block where shapes match.
      width: width factor (0.5, 1.0, 1.5, 2.0); its meaning depends on the channel mode.
      depth: number of layers, 1 to 4.
    """

    op: str
    kernel: int
    skip: bool
    width: float
    depth: int

    def __post_init__(self):
        _check("op", self.op, OPS)
        _check("kernel", self.kernel, KERNELS)
        if not isinstance(self.skip, bool):
            raise InvalidArchitectureError(
                f"skip: received {self.skip!r}; allowed values: true, false")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)):
            raise InvalidArchitectureError(
                f"width: received {self.width!r}; allowed values: {_allowed(WIDTHS)}")
        _check("width", float(self.width), WIDTHS)
        object.__setattr__(self, "width", float(self.width))
        _check("depth", self.depth, DEPTHS)

    @property
    def expansion(self) -> int:
        return EXPANSION[self.op]


#: The block fields, in encoding order (the one source of their names).
BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(BlockSpec))


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem channels, 7 blocks, head channels, channel and shortcut modes.

    Attributes:
      blocks: exactly seven `BlockSpec`s.
      stem: output channels of the 3×3 stem conv (32 in the paper).
      head: channels of the 1×1 conv before global pooling (1280 in MobileNetV2).
      channel_mode: "relative" (block i = int(block i-1 × width)) or "mbv2"
        (block i = int(MBV2_BASE_CHANNELS[i] × width)).
      shortcut: "identity" (MobileNetV2: shortcut only where shapes match) or
        "projection" (1×1 conv + BN where they do not, as the official EAT-NAS code).
    """

    blocks: Tuple[BlockSpec, ...]
    stem: int = 32
    head: int = 1280
    channel_mode: str = "relative"
    shortcut: str = "identity"

    def __post_init__(self):
        blocks = tuple(self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if len(blocks) != NUM_BLOCKS:
            raise InvalidArchitectureError(
                f"blocks: received {len(blocks)} blocks; allowed values: exactly {NUM_BLOCKS}")
        for i, b in enumerate(blocks):
            if not isinstance(b, BlockSpec):
                raise InvalidArchitectureError(
                    f"blocks[{i}]: received {type(b).__name__}; allowed values: BlockSpec")
        for field in ("stem", "head"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArchitectureError(
                    f"{field}: received {v!r}; allowed values: a positive integer")
        _check("channel_mode", self.channel_mode, CHANNEL_MODES)
        _check("shortcut", self.shortcut, SHORTCUTS)
        chans = self.block_channels()
        for i, c in enumerate(chans):
            if c < 1:
                raise InvalidArchitectureError(
                    f"blocks[{i}].width: gives {c} channels; allowed values: widths that keep "
                    "every block at 1 channel or more")

    # -- derived quantities -------------------------------------------------------------
    def block_channels(self) -> Tuple[int, ...]:
        """Output channels of each block (`int` truncates, as the official code does)."""
        out = []
        prev = self.stem
        for i, b in enumerate(self.blocks):
            if self.channel_mode == "mbv2":
                c = int(MBV2_BASE_CHANNELS[i] * b.width)
            else:
                c = int(prev * b.width)
            out.append(c)
            prev = c
        return tuple(out)

    @property
    def num_layers(self) -> int:
        """Layers in the seven blocks (the paper's "number of layers")."""
        return sum(b.depth for b in self.blocks)

    @property
    def total_expansion(self) -> float:
        """Channels of the last block / stem channels (paper §4.1)."""
        return self.block_channels()[-1] / self.stem

    def with_block(self, index: int, block: BlockSpec) -> "ArchSpec":
        blocks = list(self.blocks)
        blocks[index] = block
        return dataclasses.replace(self, blocks=tuple(blocks))
