"""Search spaces (docs/design.md §2, paper §4.1-4.2): what may vary, constraints, sampling.

A `SearchSpace` fixes the macro layout (input, strides), the stem/head/channel mode, the
allowed block values and the scale constraints, and names the resource target used by
Eq. 1. Candidates outside the space are rejected before anything is built, with the name
of the constraint they broke.

    >>> space = get_space("cifar10")
    >>> arch = space.sample(random.Random(0))
    >>> space.violations(arch)
    []
"""

from __future__ import annotations

import dataclasses
import random
from typing import Dict, List, Optional, Tuple

from eatnas_tf.arch import cost as cost_lib
from eatnas_tf.arch.spec import (
    CHANNEL_MODES,
    DEPTHS,
    KERNELS,
    NUM_BLOCKS,
    OPS,
    WIDTHS,
    ArchSpec,
    BlockSpec,
    InvalidArchitectureError,
)

COST_METRICS = ("params", "madds", "latency")  # latency: predicted ms (eatnas_tf.latency)


class ConstraintViolation(InvalidArchitectureError):
    """A well-formed architecture that breaks one of the space's constraints."""


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Attributes:
      name: registry key.
      macro: input size, classes, strides (`cost.MacroSpec`).
      stem, head, channel_mode, shortcut: fixed parts of every `ArchSpec` in the space.
      ops, kernels, widths, depths: allowed block values (subsets of the grammar).
      layers: inclusive range of total layers, or None.
      total_expansion: inclusive range of last-block channels / stem channels, or None.
      cost_metric: "params", "madds" or "latency" (predicted ms from a latency table), the
        sub-objective of Eq. 1.
      target: resource target of Eq. 1, in units of `cost_metric`.
      min_channels: smallest channel count any block may have.
      min_final_size: smallest spatial size of the last feature map.
      max_madds: hard cap on Mult-Adds (None: none); keeps a CPU demo's candidates within
        a trainable budget, unlike the soft Eq. 1 target.
    """

    name: str
    macro: cost_lib.MacroSpec
    stem: int = 32
    head: int = 1280
    channel_mode: str = "relative"
    shortcut: str = "identity"
    ops: Tuple[str, ...] = OPS
    kernels: Tuple[int, ...] = KERNELS
    widths: Tuple[float, ...] = WIDTHS
    depths: Tuple[int, ...] = DEPTHS
    layers: Optional[Tuple[int, int]] = None
    total_expansion: Optional[Tuple[float, float]] = None
    cost_metric: str = "params"
    target: float = 3.0e6
    min_channels: int = 1
    min_final_size: int = 1
    max_madds: Optional[float] = None

    def __post_init__(self):
        if self.channel_mode not in CHANNEL_MODES:
            raise InvalidArchitectureError(
                f"channel_mode: received {self.channel_mode!r}; allowed values: "
                f"{', '.join(CHANNEL_MODES)}")
        if self.cost_metric not in COST_METRICS:
            raise ValueError(f"cost_metric: received {self.cost_metric!r}; allowed values: "
                             f"{', '.join(COST_METRICS)}")

    # -- fields ---------------------------------------------------------------------------
    def field_values(self) -> Dict[str, tuple]:
        """Allowed values of the five block fields, in the paper's order."""
        return {"op": self.ops, "kernel": self.kernels, "skip": (False, True),
                "width": self.widths, "depth": self.depths}

    def arch_defaults(self) -> Dict:
        return {"stem": self.stem, "head": self.head, "channel_mode": self.channel_mode,
                "shortcut": self.shortcut}

    def make(self, blocks) -> ArchSpec:
        return ArchSpec(blocks=tuple(blocks), **self.arch_defaults())

    # -- constraints ----------------------------------------------------------------------
    def violations(self, arch: ArchSpec) -> List[str]:
        """Every broken constraint as `name: value vs allowed`; empty when valid."""
        out = []
        for f in ("stem", "head", "channel_mode"):
            if getattr(arch, f) != getattr(self, f):
                out.append(f"{f}: {getattr(arch, f)!r} != space {self.name}'s {getattr(self, f)!r}")
        for i, b in enumerate(arch.blocks):
            for f, allowed in self.field_values().items():
                if getattr(b, f) not in allowed:
                    out.append(f"block {i + 1} {f}: {getattr(b, f)!r} not in {list(allowed)}")
        if self.layers is not None:
            lo, hi = self.layers
            if not lo <= arch.num_layers <= hi:
                out.append(f"layers: {arch.num_layers} outside [{lo}, {hi}]")
        if self.total_expansion is not None:
            lo, hi = self.total_expansion
            te = arch.total_expansion
            if not lo <= te <= hi:
                out.append(f"total_expansion: {te:g} outside [{lo:g}, {hi:g}]")
        chans = arch.block_channels()
        if min(chans) < self.min_channels:
            out.append(f"min_channels: {min(chans)} < {self.min_channels}")
        size = self.macro.image_size
        size = -(-size // self.macro.stem_stride)
        for s in self.macro.block_strides:
            size = -(-size // s)
        if size < self.min_final_size:
            out.append(f"final_size: {size} < {self.min_final_size}")
        if self.max_madds is not None and not out:
            madds = self.cost(arch).madds
            if madds > self.max_madds:
                out.append(f"max_madds: {madds:,} > {self.max_madds:,.0f}")
        return out

    def validate(self, arch: ArchSpec) -> ArchSpec:
        """Returns `arch`; raises `ConstraintViolation` naming the first broken constraint."""
        v = self.violations(arch)
        if v:
            raise ConstraintViolation(f"space {self.name}: {v[0]}")
        return arch

    def contains(self, arch: ArchSpec) -> bool:
        return not self.violations(arch)

    # -- cost -----------------------------------------------------------------------------
    def cost(self, arch: ArchSpec) -> cost_lib.Cost:
        return cost_lib.count(arch, self.macro)

    # -- sampling -------------------------------------------------------------------------
    def random_block(self, rng: random.Random) -> BlockSpec:
        return BlockSpec(rng.choice(self.ops), rng.choice(self.kernels), rng.choice((False, True)),
                         rng.choice(self.widths), rng.choice(self.depths))

    def sample(self, rng: random.Random, max_tries: int = 10000) -> ArchSpec:
        """A uniformly drawn architecture that satisfies every constraint."""
        for _ in range(max_tries):
            try:
                arch = self.make(self.random_block(rng) for _ in range(NUM_BLOCKS))
            except InvalidArchitectureError:
                continue
            if self.contains(arch):
                return arch
        raise ConstraintViolation(f"space {self.name}: no valid architecture in {max_tries} draws")


def _fmnist_space(name, image_size, stem_stride, target) -> SearchSpace:
    return SearchSpace(
        name=name,
        macro=cost_lib.MacroSpec(image_size, 1, 10, stem_stride, (1, 1, 2, 1, 2, 1, 1)),
        stem=16, head=256, channel_mode="relative", layers=(7, 14), total_expansion=(2, 8),
        cost_metric="madds", target=target, min_channels=4, min_final_size=2,
        max_madds=2 * target)


SPACES: Dict[str, SearchSpace] = {
    # Paper §4.1: 32×32, downsample in blocks 3 and 5, total expansion in [4, 10], 3.0M params.
    "cifar10": SearchSpace(
        name="cifar10", macro=cost_lib.MacroSpec(32, 3, 10, 1, (1, 1, 2, 1, 2, 1, 1)),
        stem=32, head=1280, channel_mode="relative", total_expansion=(4, 10),
        cost_metric="params", target=3.0e6),
    # Paper §4.2: 224×224, stride-2 stem, downsample in blocks 2, 3, 4, 6, 16-18 layers,
    # total expansion in [8, 16], 500M MAdds. Default channels as the official code (mbv2
    # bases × width); the paper's width N_out / N_in is `with_channel_mode(.., "relative")`
    # (`--channel_mode=relative`, the paper flagfiles).
    "imagenet": SearchSpace(
        name="imagenet", macro=cost_lib.MacroSpec(224, 3, 1000, 2, (1, 2, 2, 2, 1, 2, 1)),
        stem=32, head=1280, channel_mode="mbv2", layers=(16, 18), total_expansion=(8, 16),
        cost_metric="madds", target=500e6),
    # Offline demo: Fashion-MNIST 28×28 (stride-2 stem, 28→14→7→4) and its low-resolution
    # 14×14 small task (stride-1 stem, same feature-map sizes from block 1 on, so weights
    # and architectures transfer one to one). Targets scaled to the task.
    "fashion_mnist": _fmnist_space("fashion_mnist", 28, 2, 6e6),
    "fashion_mnist_14": _fmnist_space("fashion_mnist_14", 14, 1, 6e6),
    # scikit-learn digits, 8×8 grey: 8→4→2.
    "digits": SearchSpace(
        name="digits", macro=cost_lib.MacroSpec(8, 1, 10, 1, (1, 1, 2, 1, 2, 1, 1)),
        stem=16, head=128, channel_mode="relative", layers=(7, 14), total_expansion=(2, 8),
        cost_metric="madds", target=1.5e6, min_channels=4, min_final_size=2),
}


def with_channel_mode(space: SearchSpace, channel_mode: Optional[str]) -> SearchSpace:
    """`space` with its blocks' channels read in `channel_mode` (None: unchanged).

    "relative": block i has int(block i-1 × width) channels, the paper's width factor
    N_out / N_in (§3.2, §3.4); "mbv2": int(MobileNetV2's base channels of block i × width),
    as the official EAT-NAS code builds the ImageNet space. Everything else (strides,
    constraints, target) stays, so the same encoding text is a different network in each
    mode; the mode is part of the space's config (config.json, resume checks).
    """
    if channel_mode is None or channel_mode == space.channel_mode:
        return space
    if channel_mode not in CHANNEL_MODES:
        raise InvalidArchitectureError(f"channel_mode: received {channel_mode!r}; allowed "
                                       f"values: {', '.join(CHANNEL_MODES)}")
    return dataclasses.replace(space, channel_mode=channel_mode)


def get_space(name: str, channel_mode: Optional[str] = None) -> SearchSpace:
    """The registered space `name`, in `channel_mode` (None: the space's own)."""
    try:
        space = SPACES[name]
    except KeyError:
        raise InvalidArchitectureError(
            f"space: received {name!r}; allowed values: {', '.join(SPACES)}") from None
    return with_channel_mode(space, channel_mode)
