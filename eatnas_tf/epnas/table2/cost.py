"""Analytic params, Mult-Adds and bytes moved of a Table 2 layer list.

The project's convention (docs/design.md §2): `params` = every weight Keras counts
(equal to `model.count_params()` of `builder.build_model`), `madds` = multiply-adds of
convolutions and dense layers only (no BN, activation, pooling or add). Only live layers
count (dead ones are not built). Per layer, with H the output size of its op:

    conv      k²·c_in·f + 4f                MAdds H²·k²·c_in·f        (f: filters)
    sepconv   k²·c_in + c_in·f + 4f          MAdds H²·(k²·c_in + c_in·f)
    adapter   c_in·C + 4C                    MAdds H_out²·c_in·C       (1×1 conv + BN)
    head      C·classes + classes            MAdds C·classes           (GAP + dense)

`bytes_moved` (fp32, one image; EPNAS' compute intensity = 2 × MAdds / bytes): every
weight read once, every layer's inputs read and its output written once.

    >>> from eatnas_tf.arch.cost import MacroSpec
    >>> from eatnas_tf.epnas.table2.space import Layer, LayerArch
    >>> a = LayerArch((Layer("conv", 0, kernel=3, channels=16, act="relu"),))
    >>> c = count(a, MacroSpec(32, 3, 10))
    >>> c.params, c.madds      # 3·3·3·16 + 4·16, + 16·10 + 10;  32²·3·3·3·16 + 16·10
    (666, 442528)
"""

from __future__ import annotations

from typing import Dict, List

from eatnas_tf.arch.cost import Cost, MacroSpec
from eatnas_tf.epnas.table2.space import CONV_OPS, LayerArch, size_at

_BN = 4  # gamma, beta, moving mean, moving variance


def count(arch: LayerArch, macro: MacroSpec) -> Cost:
    """Params, MAdds and bytes moved of `arch`'s live layers under `macro`."""
    live = arch.live()
    shapes = arch.shapes(macro.in_channels)
    size = lambda level: size_at(macro.image_size, level)  # noqa: E731
    params = madds = weights = acts = 0
    per_layer: List[Dict[str, int]] = []
    for i, layer in enumerate(arch.layers, start=1):
        if i not in live:
            continue
        s = shapes[i]
        h_in, h_op, h_out = size(s.main_in.level), size(s.op_out.level), size(s.out.level)
        cin = s.main_in.channels
        lp = lm = lw = 0
        la = h_in * h_in * cin
        if layer.op in CONV_OPS:
            k2, f = layer.kernel ** 2, layer.filters
            if layer.op == "conv":
                lw = k2 * cin * f
                lm = h_op * h_op * k2 * cin * f
            else:
                lw = k2 * cin + cin * f
                lm = h_op * h_op * (k2 * cin + cin * f)
            lp = lw + _BN * f
        la += h_op * h_op * s.op_out.channels
        c_out = s.out.channels
        for adapt, src in ((s.adapt_main, s.op_out), (s.adapt_skip, s.skip_in)):
            if src is None:
                continue
            h_src = size(src.level)
            if adapt:
                w = src.channels * c_out
                lw += w
                lp += w + _BN * c_out
                lm += h_out * h_out * w
                la += h_src * h_src * src.channels + h_out * h_out * c_out
            else:
                la += h_src * h_src * src.channels
        if s.skip_in is not None:
            la += h_out * h_out * c_out  # the sum written
        params, madds, weights, acts = params + lp, madds + lm, weights + lw, acts + la
        per_layer.append({"layer": i, "op": layer.op, "params": lp, "madds": lm,
                          "channels": c_out, "size": h_out})
    last = shapes[arch.num_layers].out
    h = size(last.level)
    hw = last.channels * macro.num_classes
    params += hw + macro.num_classes
    madds += hw
    weights += hw
    acts += h * h * last.channels + last.channels + macro.num_classes
    per_layer.append({"layer": arch.num_layers + 1, "op": "head",
                      "params": hw + macro.num_classes, "madds": hw,
                      "channels": macro.num_classes, "size": 1})
    return Cost(params=params, madds=madds, layers=len(live), final_size=h,
                blocks=tuple(per_layer), bytes_moved=4 * (weights + acts))
