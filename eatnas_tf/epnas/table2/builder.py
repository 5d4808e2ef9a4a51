"""The Keras functional model of a Table 2 layer list (see `space` for the choices).

Layer names are deterministic and keyed by layer number and op, as the paper's sharing
dictionary is ("the keys are the combination of the layer number, operation type"):

    t2_l03_conv, t2_l03_bn, t2_l03_relu       layer 3, conv2d (crelu: _neg, _relu, _crelu)
    t2_l04_sepconv, t2_l04_bn, t2_l04_swish   layer 4, dep-sep-conv2d
    t2_l05_maxpool, t2_l06_avgpool, t2_l07_add
    t2_l05_adapt_main, t2_l05_adapt_main_bn   the 1×1 conv + BN adapters of a merge
    t2_l05_adapt_skip, t2_l05_adapt_skip_bn
    t2_l05_merge                              the skip's add
    t2_gap, t2_dropout, logits                the head

Inserting a layer renumbers the layers after it, as the paper's keys do; weights then
reach the child through the dictionary by (layer number, op), not from one parent.
Only live layers are built (`LayerArch.live`), so `model.count_params()` equals
`cost.count(...).params`.
"""

from __future__ import annotations

from typing import Optional

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.epnas.table2.space import CONV_OPS, POOL_OPS, POOL_STRIDE, LayerArch
from eatnas_tf.model import naming as N
from eatnas_tf.model.builder import batch_norm_layer

PREFIX = "t2"
HEAD_POOL, HEAD_DROPOUT = f"{PREFIX}_gap", f"{PREFIX}_dropout"


def layer_name(i: int, part: str, suffix: str = "") -> str:
    """`t2_l03_conv`, `t2_l03_bn`, `t2_l03_adapt_skip_bn`: layer number i, 1-based."""
    name = f"{PREFIX}_l{i:02d}_{part}"
    return f"{name}_{suffix}" if suffix else name


def parse_layer_name(name: str):
    """(layer number, rest) of a Table 2 layer name, else None (the head)."""
    if not name.startswith(f"{PREFIX}_l"):
        return None
    head, _, rest = name[len(PREFIX) + 2:].partition("_")
    return (int(head), rest) if head.isdigit() else None


def build_model(arch: LayerArch, macro: MacroSpec, *, keras_module=None, aux_head: bool = False,
                bn_momentum: float = 0.9, bn_epsilon: float = 1e-3, dropout: float = 0.0,
                image_size: Optional[int] = None, name: str = "epnas_table2",
                kernel_init: str = "glorot_uniform", fused_bn: bool = True):
    """Builds `arch` (the arguments of `model.builder.build_model`; no auxiliary head)."""
    if aux_head:
        raise ValueError("aux_head: received True; allowed values: False (a Table 2 network "
                         "has no auxiliary tower)")
    if kernel_init not in ("glorot_uniform", "normal"):
        raise ValueError(f"kernel_init: received {kernel_init!r}; allowed values: "
                         "glorot_uniform, normal")
    BatchNorm = batch_norm_layer(keras_module, fused_bn)
    if keras_module is None:
        import keras as keras_module
    L = keras_module.layers
    size = image_size or macro.image_size

    def init():
        if kernel_init == "normal":
            return keras_module.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
        return "glorot_uniform"

    def bn(x, nm):
        return BatchNorm(momentum=bn_momentum, epsilon=bn_epsilon, name=nm)(x)

    def activation(x, act, i):
        if act == "relu":
            return L.ReLU(name=layer_name(i, "relu"))(x)
        if act == "crelu":  # concat(relu(x), relu(-x)), no Lambda (serialisable, tf_keras)
            neg = L.Rescaling(-1.0, name=layer_name(i, "neg"))(x)
            return L.Concatenate(name=layer_name(i, "crelu"))(
                [L.ReLU(name=layer_name(i, "relu"))(x),
                 L.ReLU(name=layer_name(i, "relu", "neg"))(neg)])
        return L.Activation(act, name=layer_name(i, act))(x)

    def adapter(x, src_level, target, i, which):
        stride = POOL_STRIDE ** (target.level - src_level)
        x = L.Conv2D(target.channels, 1, strides=stride, padding="same", use_bias=False,
                     kernel_initializer=init(), name=layer_name(i, f"adapt_{which}"))(x)
        return bn(x, layer_name(i, f"adapt_{which}", "bn"))

    inputs = keras_module.Input(shape=(size, size, macro.in_channels), name="image")
    nodes = {0: inputs}
    live = arch.live()
    shapes = arch.shapes(macro.in_channels)
    for i, layer in enumerate(arch.layers, start=1):
        if i not in live:
            continue
        s = shapes[i]
        x = nodes[layer.src1]
        if layer.op == "conv":
            x = L.Conv2D(layer.filters, layer.kernel, padding="same", use_bias=False,
                         kernel_initializer=init(), name=layer_name(i, "conv"))(x)
        elif layer.op == "sepconv":
            x = L.SeparableConv2D(layer.filters, layer.kernel, padding="same", use_bias=False,
                                  depthwise_initializer=init(), pointwise_initializer=init(),
                                  name=layer_name(i, "sepconv"))(x)
        elif layer.op == "maxpool":
            x = L.MaxPooling2D(layer.kernel, strides=POOL_STRIDE, padding="same",
                               name=layer_name(i, "maxpool"))(x)
        elif layer.op == "avgpool":
            x = L.AveragePooling2D(layer.kernel, strides=POOL_STRIDE, padding="same",
                                   name=layer_name(i, "avgpool"))(x)
        if layer.op in CONV_OPS:
            x = activation(bn(x, layer_name(i, "bn")), layer.act, i)
        if s.skip_in is not None:
            skip = nodes[layer.src2]
            if s.adapt_main:
                x = adapter(x, s.op_out.level, s.out, i, "main")
            if s.adapt_skip:
                skip = adapter(skip, s.skip_in.level, s.out, i, "skip")
            x = L.Add(name=layer_name(i, "add" if layer.op == "add" else "merge"))([x, skip])
        elif layer.op not in CONV_OPS and layer.op not in POOL_OPS:
            raise AssertionError("add without src2")  # LayerArch refuses it
        nodes[i] = x
    x = L.GlobalAveragePooling2D(name=HEAD_POOL)(nodes[arch.num_layers])
    if dropout:
        x = L.Dropout(dropout, name=HEAD_DROPOUT)(x)
    logits = L.Dense(macro.num_classes, name=N.LOGITS)(x)
    return keras_module.Model(inputs, logits, name=name)
