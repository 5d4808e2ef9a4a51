"""Mult-Adds of a built Keras model from TensorFlow's own profiler, to check the cost model.

The profiler counts FLOPs per graph node; Mult-Adds (docs/design.md §2) are FLOPs / 2 of the
Conv2D, DepthwiseConv2dNative and MatMul nodes (no BN, activation, bias or add).
"""

from __future__ import annotations

from typing import Dict

MADD_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def profiler_flops_by_op(model, batch: int = 1) -> Dict[str, int]:
    """FLOPs per op type of `model`'s inference graph (frozen, batch `batch`)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = [batch] + list(model.inputs[0].shape[1:])
    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(
        fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)))
    graph = frozen.graph
    types = {op.name: op.type for op in graph.get_operations()}
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    opts = builder(builder.float_operation()).with_node_names(show_name_regexes=[".*"]).build()
    opts["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=opts)
    out: Dict[str, int] = {}
    stack = list(root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        t = types.get(node.name)
        if t is not None and node.float_ops:
            out[t] = out.get(t, 0) + int(node.float_ops)
    return out


def profiler_madds(model) -> int:
    """Mult-Adds of convolutions and dense layers, per image, as the profiler counts them."""
    flops = profiler_flops_by_op(model)
    return sum(flops.get(t, 0) for t in MADD_OPS) // 2
