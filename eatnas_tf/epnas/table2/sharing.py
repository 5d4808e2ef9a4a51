"""EPNAS' parameter dictionary on Table 2 networks: keys (layer number, op type).

"The parameters are stored as key-value pairs, where the keys are the combination of the
layer number, operation type" (§3.4) — here literally: layer 3 of a network, a conv, is
key `("l3", "conv")`, whatever the network. Its value is the trained candidate's weights
of every Keras layer at that position (the conv / sepconv and its BN, the merge's
adapters), with the signature `(kernel, c_in, filters, skip c_in)` of their dimensions;
the head is `("head", "dense")`. Clashes, closest-dimension lookup and the splice / pad
of kernels are `epnas.sharing_dict.SharingDict`'s (the most accurate candidate wins a
key; kernels of another size are centre-cropped or zero-padded; channels sliced).

Pools and adds have no weights of their own; their adapters, when they have some, are
kept under the pool's / add's key.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from eatnas_tf.epnas.sharing_dict import Group, SharingDict
from eatnas_tf.epnas.table2.builder import layer_name
from eatnas_tf.epnas.table2.space import CONV_OPS, LayerArch
from eatnas_tf.model import naming as N


def layer_groups(arch: LayerArch, in_channels: int, num_classes: int) -> List[Group]:
    """Every dictionary key of `arch`'s live layers with its dimensions and layer names."""
    out = []
    live = arch.live()
    shapes = arch.shapes(in_channels)
    for i, layer in enumerate(arch.layers, start=1):
        if i not in live:
            continue
        s = shapes[i]
        names = []
        if layer.op in CONV_OPS:
            names += [layer_name(i, layer.op), layer_name(i, "bn")]
        if s.adapt_main:
            names += [layer_name(i, "adapt_main"), layer_name(i, "adapt_main", "bn")]
        if s.adapt_skip:
            names += [layer_name(i, "adapt_skip"), layer_name(i, "adapt_skip", "bn")]
        if not names:
            continue
        skip_c = s.skip_in.channels if s.adapt_skip else 0
        out.append(Group((f"l{i}", layer.op),
                         (layer.kernel or 0, s.main_in.channels, layer.filters or 0, skip_c),
                         tuple(names)))
    last = shapes[arch.num_layers].out.channels
    out.append(Group(("head", "dense"), (last, num_classes), (N.LOGITS,)))
    return out


def tensor_shapes(arch: LayerArch, in_channels: int,
                  num_classes: int) -> Dict[str, List[Tuple[int, ...]]]:
    """The shape of every weight tensor of the built model, by Keras layer name."""
    bn = lambda c: [(c,)] * 4  # noqa: E731
    out: Dict[str, List[Tuple[int, ...]]] = {}
    live = arch.live()
    shapes = arch.shapes(in_channels)
    for i, layer in enumerate(arch.layers, start=1):
        if i not in live:
            continue
        s = shapes[i]
        cin, f, k = s.main_in.channels, layer.filters, layer.kernel
        if layer.op == "conv":
            out[layer_name(i, "conv")] = [(k, k, cin, f)]
        elif layer.op == "sepconv":
            out[layer_name(i, "sepconv")] = [(k, k, cin, 1), (1, 1, cin, f)]
        if layer.op in CONV_OPS:
            out[layer_name(i, "bn")] = bn(f)
        c = s.out.channels
        if s.adapt_main:
            out[layer_name(i, "adapt_main")] = [(1, 1, s.op_out.channels, c)]
            out[layer_name(i, "adapt_main", "bn")] = bn(c)
        if s.adapt_skip:
            out[layer_name(i, "adapt_skip")] = [(1, 1, s.skip_in.channels, c)]
            out[layer_name(i, "adapt_skip", "bn")] = bn(c)
    last = shapes[arch.num_layers].out.channels
    out[N.LOGITS] = [(last, num_classes), (num_classes,)]
    return out


class Table2SharingDict(SharingDict):
    """`SharingDict` with the keys and shapes of Table 2 networks."""

    def groups(self, arch: LayerArch) -> List[Group]:
        return layer_groups(arch, self.macro.in_channels, self.macro.num_classes)

    def shapes(self, arch: LayerArch) -> Dict[str, List[Tuple[int, ...]]]:
        return tensor_shapes(arch, self.macro.in_channels, self.macro.num_classes)
