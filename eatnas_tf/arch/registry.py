"""Named architectures used as references, golden tests and seeds."""

from eatnas_tf.arch import codec
from eatnas_tf.arch.cost import MacroSpec

MOBILENET_V2_TEXT = (
    "sep_k3_w1.0_d1,mb6_k3_w1.0_d2_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d4_skip,"
    "mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d1_skip")

# MobileNetV2 1.0 as docs/design.md §2 gives it: mbv2 channels, stride-2 stem, imagenet strides.
MOBILENET_V2 = codec.from_text(MOBILENET_V2_TEXT, stem=32, head=1280, channel_mode="mbv2")
IMAGENET_MACRO = MacroSpec(224, 3, 1000, 2, (1, 2, 2, 2, 1, 2, 1))

NAMED = {"mobilenet_v2": MOBILENET_V2}
