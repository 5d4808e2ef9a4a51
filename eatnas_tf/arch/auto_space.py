"""Search spaces derived from the data (`--space=auto`, the default for a user's dataset).

The paper's spaces (`cifar10`, `imagenet`) fix the input and where the network
downsamples; a user's images come in any size. This module applies one documented rule:

  * input size H, channels and classes come from the data;
  * number of stride-2 layers d = clamp(ceil(log2(H / 4)), 1, 5): 8 px → 1, 14 → 2,
    28–32 → 3, 64 → 4, ≥ 96 → 5 (MobileNetV2's five at 224 px), so the last feature map
    ceil(H / 2^d) is 2–4 for small inputs and 7 at 224 px;
  * the stem takes the first downsampling from 28 px on (MobileNet-like); the blocks
    take the others in the order 3, 5, 2, 4, 6 (the paper's CIFAR-10 blocks first, then
    its ImageNet ones). For Fashion-MNIST (28 px) this is exactly the `fashion_mnist`
    space's layout (stem 2, blocks 3 and 5), and its small task the `fashion_mnist_14`
    one;
  * stem 16 / head 256 channels up to 64 px, 32 / 1280 above (flags override), channel
    mode `relative` (the paper's definition of width);
  * resource target: `--target_madds` or `--target_params`; by default MAdds =
    6e6 × (H / 28)² (the Fashion-MNIST demo's target, scaled with the input area),
    with a hard cap of twice the target, as the demo spaces have;
  * 7–18 layers, total expansion in [2, 8], at least 4 channels per block.

`small_task(space, size)` is the stage-1 space of the elastic transfer (paper: CIFAR-10
→ ImageNet): the same network at a lower resolution with one stride-2 layer fewer at the
front, so every block sees the same feature-map size as in the full task and the basic
model's architecture and weights transfer one to one.

    space = derive_space(image_size=96, channels=3, num_classes=5)
    small = small_task(space, 48)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from eatnas_tf.arch import cost as cost_lib
from eatnas_tf.arch.space import COST_METRICS, SearchSpace

BLOCK_ORDER = (2, 4, 1, 3, 5)  # 0-based blocks that take a stride-2, in this order
DEFAULT_MADDS_28 = 6e6


def downsamplings(image_size: int) -> int:
    """The rule's number of stride-2 layers for an input of `image_size` pixels."""
    return max(1, min(5, int(math.ceil(math.log2(max(image_size, 2) / 4.0) - 1e-9))))


def _strides(image_size: int):
    d = downsamplings(image_size)
    stem = 2 if image_size >= 28 else 1
    blocks = [1] * 7
    for b in BLOCK_ORDER[:d - (stem == 2)]:
        blocks[b] = 2
    return stem, tuple(blocks)


def final_size(image_size: int, stem_stride: int, block_strides) -> int:
    size = -(-image_size // stem_stride)
    for s in block_strides:
        size = -(-size // s)
    return size


def default_target(image_size: int) -> float:
    return DEFAULT_MADDS_28 * (image_size / 28.0) ** 2


def derive_space(*, image_size: int, channels: int, num_classes: int,
                 name: str = "auto", stem: Optional[int] = None, head: Optional[int] = None,
                 channel_mode: str = "relative", cost_metric: str = "madds",
                 target: Optional[float] = None) -> SearchSpace:
    """The space the rule gives for this data (see the module docstring).

    Raises:
      ValueError: a size below 8 px, a bad metric or target (one line).
    """
    if image_size < 8:
        raise ValueError(f"image_size: received {image_size}; allowed values: >= 8")
    if cost_metric not in COST_METRICS:
        raise ValueError(f"cost_metric: received {cost_metric!r}; allowed values: "
                         f"{', '.join(COST_METRICS)}")
    if target is not None and not target > 0:
        raise ValueError(f"target: received {target}; allowed values: > 0")
    large = image_size > 64
    stem_stride, block_strides = _strides(image_size)
    if target is None:
        target = default_target(image_size) if cost_metric == "madds" else 1.0e6
    return SearchSpace(
        name=name,
        macro=cost_lib.MacroSpec(image_size, channels, num_classes, stem_stride, block_strides),
        stem=stem or (32 if large else 16), head=head or (1280 if large else 256),
        channel_mode=channel_mode, layers=(7, 18), total_expansion=(2, 8),
        cost_metric=cost_metric, target=float(target), min_channels=4, min_final_size=2,
        max_madds=2 * float(target) if cost_metric == "madds" else None)


def small_task(space: SearchSpace, image_size: int, name: Optional[str] = None) -> SearchSpace:
    """`space` at `image_size` (about half its size) with its first stride-2 layer made
    stride 1, so blocks see the full task's feature-map sizes (see the module docstring).
    The Mult-Adds target and cap keep their values: the same networks are searched."""
    m = space.macro
    if m.stem_stride == 2:
        stem_stride, blocks = 1, m.block_strides
    else:
        first = next((i for i, s in enumerate(m.block_strides) if s == 2), None)
        if first is None:
            raise ValueError(f"space {space.name}: no stride-2 layer to drop for a small task")
        stem_stride = 1
        blocks = tuple(1 if i == first else s for i, s in enumerate(m.block_strides))
    macro = m.with_(image_size=image_size, stem_stride=stem_stride, block_strides=blocks)
    if final_size(image_size, stem_stride, blocks) != final_size(m.image_size, m.stem_stride,
                                                                  m.block_strides):
        raise ValueError(f"small task: {image_size} px does not reach the full task's feature "
                         f"maps; allowed values: about half of {m.image_size}")
    return dataclasses.replace(space, name=name or f"{space.name}_small", macro=macro)


def small_size(image_size: int) -> int:
    """Stage 1's image size: half the full size, rounded up to an even number (28 → 14)."""
    half = -(-image_size // 2)
    return half + (half % 2) if half > 8 else half
