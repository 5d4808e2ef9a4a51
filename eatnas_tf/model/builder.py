"""Keras functional models built from an encoding (docs/design.md §2 "Layers").

One function builds every model of the search space, with Keras 3 by default or with
`tf_keras` (pass `keras_module=tf_keras`, see `builder_tfkeras`) for quantization-aware
training: both give identical layer names and weight shapes, so weights copy one to one.

Layers (MobileNetV2 / MnasNet conventions, "same" padding, no conv biases):
  stem:  3×3 conv (stride from the macro) → BN → ReLU6
  sep:   depthwise k×k (stride) → BN → ReLU → pointwise 1×1 → BN (linear)
  mbN:   1×1 expand ×N → BN → ReLU6 → depthwise k×k (stride) → BN → ReLU6 → 1×1 project → BN
  skip:  identity add where input and output shapes match; with shortcut="projection" a
         1×1 conv (stride) + BN where they do not (official EAT-NAS code)
  head:  1×1 conv → BN → ReLU6 → global average pool → [dropout] → dense logits
  aux:   optional auxiliary tower on block 5's output for retraining (paper §4.1, 0.4)

The model maps float images (already normalised) to logits; export wraps preprocessing.
"""

from __future__ import annotations

from typing import Optional

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.model import naming as N

AUX_AFTER_BLOCK = 5
# Kernel initialisers of the convolutions (`build_model(kernel_init=...)`). EAT-NAS §3.4:
# the part of an inherited kernel that is not shared is drawn from "Γ ... a random weight
# initializer using a normal distribution"; "normal" is the official code's (MnasNet-style)
# N(0, 2 / fan_out) with fan_out = kh × kw × out. The default stays Keras' Glorot-uniform:
# every stored run, golden record and measured number of this project was made with it.
KERNEL_INITS = ("glorot_uniform", "normal")


def batch_norm_layer(keras_module=None, fused_bn: bool = True):
    """The batch-norm layer class of a model built with `keras_module` (None: Keras 3):
    `FusedBatchNormalization` for Keras 3 with `fused_bn`, else the module's own."""
    if keras_module is None or keras_module.__name__ == "keras":
        if fused_bn:
            from eatnas_tf.model.fused_bn import FusedBatchNormalization
            return FusedBatchNormalization
        import keras
        return keras.layers.BatchNormalization
    return keras_module.layers.BatchNormalization


def build_model(arch: ArchSpec, macro: MacroSpec, *, keras_module=None, aux_head: bool = False,
                bn_momentum: float = 0.9, bn_epsilon: float = 1e-3, dropout: float = 0.0,
                image_size: Optional[int] = None, name: str = "eatnet",
                kernel_init: str = "glorot_uniform", fused_bn: bool = True):
    """Builds the functional model of `arch`.

    Args:
      arch: the encoding.
      macro: input size/channels, classes and strides.
      keras_module: `keras` (default) or `tf_keras`.
      aux_head: add the auxiliary tower after block 5; the model then has two outputs
        `[logits, aux_logits]`.
      bn_momentum: 0.9 (official EAT-NAS) so a 1-epoch candidate has usable BN statistics;
        Keras' default 0.99 leaves it at chance (docs/design.md §5).
      bn_epsilon: BN epsilon (1e-3 as Keras MobileNetV2).
      dropout: dropout rate before the logits (0 = no layer).
      image_size: overrides `macro.image_size` (None keeps it; EcoNAS resolution proxies).
      kernel_init: one of `KERNEL_INITS`, the initialiser of every conv kernel (the fresh
        part of an inherited one included); "normal" is the paper's Γ.
      fused_bn: Keras 3 models: batch norms on TensorFlow's fused kernel
        (`model.fused_bn.FusedBatchNormalization`: the same function and weights, ~1.4×
        faster training on CPU); False: Keras' own `BatchNormalization` (bit-exact with
        runs made before it). `tf_keras` models always use tf_keras' (fused) layer.

    Returns:
      An uncompiled functional model named `name`.
    """
    if not isinstance(arch, ArchSpec):  # another encoding (EPNAS Table 2 layer lists)
        return arch.build(macro, keras_module=keras_module, aux_head=aux_head,
                          bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, dropout=dropout,
                          image_size=image_size, kernel_init=kernel_init, fused_bn=fused_bn)
    BatchNorm = batch_norm_layer(keras_module, fused_bn)
    if keras_module is None:
        import keras as keras_module  # keep `tf_keras` users free of Keras 3
    L = keras_module.layers
    size = image_size or macro.image_size
    if kernel_init not in KERNEL_INITS:
        raise ValueError(f"kernel_init: received {kernel_init!r}; allowed values: "
                         f"{', '.join(KERNEL_INITS)}")

    def init():  # a fresh initialiser per layer (a reused unseeded one may repeat values)
        if kernel_init == "normal":
            return keras_module.initializers.VarianceScaling(2.0, "fan_out",
                                                             "untruncated_normal")
        return "glorot_uniform"

    def bn(x, name):
        return BatchNorm(momentum=bn_momentum, epsilon=bn_epsilon, name=name)(x)

    def conv1x1(x, filters, name, strides=1):
        return L.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False, name=name,
                        kernel_initializer=init())(x)

    def dwconv(x, kernel, strides, name):
        return L.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                                 depthwise_initializer=init(),
                                 name=name)(x)

    def relu6(x, name):
        return L.ReLU(max_value=6.0, name=name)(x)

    inputs = keras_module.Input(shape=(size, size, macro.in_channels), name="image")
    x = L.Conv2D(arch.stem, 3, strides=macro.stem_stride, padding="same", use_bias=False,
                 kernel_initializer=init(),
                 name=N.STEM_CONV)(inputs)
    x = relu6(bn(x, N.STEM_BN), N.STEM_ACT)

    cin = arch.stem
    aux_input = None
    for bi, (block, cout, stride) in enumerate(
            zip(arch.blocks, arch.block_channels(), macro.block_strides), start=1):
        for li in range(1, block.depth + 1):
            s = stride if li == 1 else 1
            c_in = cin if li == 1 else cout

            def n(part, suffix=""):  # B023: called in this iteration only
                return N.layer_name(bi, li, part, suffix)  # noqa: B023

            inp = x
            if block.op == "sep":
                x = dwconv(x, block.kernel, s, n(N.DW))
                x = L.ReLU(name=n(N.DW, "relu"))(bn(x, n(N.DW, "bn")))
            else:
                x = conv1x1(x, c_in * block.expansion, n(N.EXPAND))
                x = relu6(bn(x, n(N.EXPAND, "bn")), n(N.EXPAND, "relu"))
                x = dwconv(x, block.kernel, s, n(N.DW))
                x = relu6(bn(x, n(N.DW, "bn")), n(N.DW, "relu"))
            x = bn(conv1x1(x, cout, n(N.PROJECT)), n(N.PROJECT, "bn"))
            if block.skip:
                if s == 1 and c_in == cout:
                    x = L.Add(name=n(N.ADD))([inp, x])
                elif arch.shortcut == "projection":
                    sc = bn(conv1x1(inp, cout, n(N.SHORTCUT), strides=s), n(N.SHORTCUT, "bn"))
                    x = L.Add(name=n(N.ADD))([sc, x])
        cin = cout
        if bi == AUX_AFTER_BLOCK:
            aux_input = x

    x = relu6(bn(conv1x1(x, arch.head, N.HEAD_CONV), N.HEAD_BN), N.HEAD_ACT)
    x = L.GlobalAveragePooling2D(name=N.HEAD_POOL)(x)
    if dropout:
        x = L.Dropout(dropout, name=N.HEAD_DROPOUT)(x)
    logits = L.Dense(macro.num_classes, name=N.LOGITS)(x)
    if not aux_head:
        return keras_module.Model(inputs, logits, name=name)
    aux = _aux_tower(L, aux_input, macro.num_classes, bn)
    return keras_module.Model(inputs, [logits, aux], name=name)


def _aux_tower(L, x, num_classes, bn):
    """NASNet/DARTS-style auxiliary classifier (paper §4.1: weight 0.4 in the loss)."""
    p = N.AUX_PREFIX
    x = L.ReLU(name=f"{p}_relu0")(x)
    x = L.AveragePooling2D(5, strides=3, padding="same", name=f"{p}_pool")(x)
    x = L.Conv2D(128, 1, use_bias=False, name=f"{p}_conv1")(x)
    x = L.ReLU(name=f"{p}_relu1")(bn(x, f"{p}_bn1"))
    x = L.Conv2D(768, 2, padding="same", use_bias=False, name=f"{p}_conv2")(x)
    x = L.ReLU(name=f"{p}_relu2")(bn(x, f"{p}_bn2"))
    x = L.GlobalAveragePooling2D(name=f"{p}_gap")(x)
    return L.Dense(num_classes, name=N.AUX_LOGITS)(x)
