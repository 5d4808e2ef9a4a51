"""Mult-Adds read from a converted TFLite graph, to check the analytic cost model.

The search ranks candidates by `eatnas_tf.arch.cost.count(...).madds` (docs/design.md §2:
convolutions and dense layers only, no BN, activation, bias or add). A user shipping the
winner should see that the converted file does the same work. This walks the file's
operators (before any delegate rewrites them) and counts, per image:

  CONV_2D            H_out·W_out·C_out · kh·kw·C_in        (filter [C_out, kh, kw, C_in])
  DEPTHWISE_CONV_2D  H_out·W_out·C_out · kh·kw             (filter [1, kh, kw, C_out])
  FULLY_CONNECTED    rows · units · in                     (weights [units, in]), rows
                                                           per image
  TRANSPOSE_CONV     H_in·W_in·C_in · kh·kw·C_out           (not produced by our builder)

Folded BN, the preprocessing arithmetic, pooling and (de)quantize ops count zero, as in the
convention. The counts are the same for fp32, fp16, int8 and QAT files.
"""

from __future__ import annotations

import collections
from typing import Dict

import numpy as np

COUNTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def _prod(shape) -> int:
    return int(np.prod([int(v) for v in shape])) if len(shape) else 1


def tflite_madds(path: str) -> Dict:
    """MAdds per image of the TFLite file at `path`.

    Returns:
      {"madds": total, "by_op": {op: madds}, "op_counts": {op: n}, "batch": b} where
      `batch` is the batch the graph was allocated with (counts are divided by it).
    """
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(
        model_path=path,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in it.get_tensor_details()}
    batch = max(1, int(it.get_input_details()[0]["shape"][0]))
    by_op: Dict[str, int] = collections.Counter()
    counts: Dict[str, int] = collections.Counter()
    for op in it._get_ops_details():  # noqa: SLF001 - the only public-ish op walk in LiteRT
        name = op["op_name"]
        counts[name] += 1
        if name not in COUNTED_OPS:
            continue
        ins = [i for i in op["inputs"] if i >= 0]
        out = shapes[op["outputs"][0]]
        w = shapes[ins[1]]
        if name == "CONV_2D":
            m = _prod(out) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":
            m = _prod(out) * w[1] * w[2]
        elif name == "FULLY_CONNECTED":
            m = _prod(out[:-1]) * w[0] * w[1]
        else:  # TRANSPOSE_CONV: inputs (output_shape, weights, input)
            m = _prod(shapes[ins[2]]) * w[0] * w[1] * w[2]
        by_op[name] += m
    total = sum(by_op.values())
    return {"madds": total // batch, "by_op": {k: v // batch for k, v in sorted(by_op.items())},
            "op_counts": dict(sorted(counts.items())), "batch": batch}


def agreement(analytic: int, graph: int, tolerance: float = 0.01) -> Dict:
    """{"analytic", "graph", "rel_diff", "agree"}: agree when |graph − analytic| ≤
    tolerance·analytic (docs/design.md §2 asks 1% against TensorFlow's profiler)."""
    rel = abs(graph - analytic) / max(analytic, 1)
    return {"analytic": int(analytic), "graph": int(graph), "rel_diff": round(rel, 6),
            "agree": bool(rel <= tolerance)}
