"""The checks of an export, each a function returning values for the report.

  keras_reference   the Keras model's logits and accuracy on the held-out images
  saved_model       the SavedModel against Keras (max |Δlogit| of `serving_images`),
                    `serving_default` on the held-out images as PNG files and the
                    tf.Example signature against `serving_images`, accuracy, size
  tflite_file       one TFLite file in LiteRT (grey images fed as RGB, as an app sends
                    them): accuracy, drop vs Keras (points), max |Δlogit|, input
                    convention, MAdds read from the graph vs analytic
  latency           LiteRT latency of every file, formats timed round-robin
  size_ratios       each file's size over fp32's
  summary           the pass/fail table: parity, image bytes, tf.Example, raw uint8
                    RGB inputs and float32 outputs of every file, MAdds (graph and
                    search claim), int8 ≤ ¼ fp32, QAT drop ≤ 1 pt
  blessing          BLESSED when the SavedModel reaches the threshold and parity holds
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from eatnas_tf.measure import latency as latency_lib
from export import graph_cost
from export import saved_model as sm_lib
from export import tflite as tflite_lib
from export.plan import ExportConfig, ExportData

INT8_SIZE_RATIO_MAX = 0.25
QAT_DROP_MAX_PTS = 1.0
PARITY_CHECKS = ("saved_model_parity", "image_bytes_signature", "tf_example_signature",
                 "fp32_parity")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(logits, -1) == labels).mean()) if len(labels) else float("nan")


def drop_pts(ref: float, acc: float) -> float:
    return round(100.0 * (ref - acc), 4)


def dir_size(path: str, exclude_ext: Sequence[str] = ()) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            if not f.endswith(tuple(exclude_ext)):
                total += os.path.getsize(os.path.join(root, f))
    return total


def keras_reference(model, data: ExportData) -> Dict[str, Any]:
    """{"logits", "accuracy"} of the Keras model on the held-out images."""
    spec = data.spec
    x = sm_lib.preprocess(data.x_test, spec.mean, spec.std, spec.image_size)
    logits = np.asarray(model.predict(x, batch_size=512, verbose=0))
    return {"logits": logits, "accuracy": accuracy(logits, data.y_test)}


def saved_model(path: str, data: ExportData, keras: Dict[str, Any]) -> Dict[str, Any]:
    """The SavedModel at `path` against the Keras reference."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    logits = sm_lib.predict_logits(loaded, data.x_test, signature=sm_lib.SERVING_IMAGES)
    png = sm_lib.encode_png(data.x_test)  # what a client sends serving_default
    bytes_logits = sm_lib.predict_logits(loaded, png, signature=sm_lib.SERVING_DEFAULT)
    n_ex = min(64, len(data.x_test))
    examples = np.array([sm_lib.make_example(im) for im in data.x_test[:n_ex]], dtype=object)
    ex_logits = sm_lib.predict_logits(loaded, examples, signature=sm_lib.SERVING_TF_EXAMPLE)
    acc = accuracy(logits, data.y_test)
    bytes_acc = accuracy(bytes_logits, data.y_test)
    return {
        "signatures": sorted(loaded.signatures.keys()),
        "accuracy": acc, "accuracy_drop_pts": drop_pts(keras["accuracy"], acc),
        "max_abs_logit_diff": float(np.abs(logits - keras["logits"]).max()),
        "image_bytes_format": "png", "image_bytes_accuracy": bytes_acc,
        "image_bytes_max_abs_diff": float(np.abs(bytes_logits - logits).max()),
        "tf_example_max_abs_diff": float(np.abs(ex_logits - logits[:n_ex]).max()),
        "size_bytes": dir_size(path, exclude_ext=(".tflite", ".json", ".md", ".txt")),
    }


def tflite_file(path: str, data: ExportData, keras: Dict[str, Any],
                analytic_madds: int) -> Dict[str, Any]:
    """One TFLite file run in LiteRT on the held-out images."""
    logits = tflite_lib.predict(path, data.x_test, data.spec)
    acc = accuracy(logits, data.y_test)
    g = graph_cost.tflite_madds(path)
    return {
        "file": os.path.basename(path), "size_bytes": os.path.getsize(path),
        "input": tflite_lib.describe_input(path),
        "accuracy": acc, "accuracy_drop_pts": drop_pts(keras["accuracy"], acc),
        "max_abs_logit_diff": float(np.abs(logits - keras["logits"]).max()),
        "graph_madds": g, "madds_check": graph_cost.agreement(analytic_madds, g["madds"]),
    }


def latency(paths: Dict[str, str], config: ExportConfig) -> Dict[str, Dict[str, Any]]:
    """{format: {threads: stats}}; timed round-robin so load on a shared machine hits every
    format alike."""
    if not paths:
        return {}
    return latency_lib.measure_interleaved(paths, config.latency_threads,
                                           config.latency_warmup, config.latency_runs)


def size_ratios(formats: Dict[str, Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """{format: size / fp32 size} (None without an fp32 file)."""
    fp32 = formats.get("fp32", {}).get("size_bytes")
    return {k: (round(f["size_bytes"] / fp32, 4) if fp32 else None) for k, f in formats.items()}


def summary(sm: Dict[str, Any], formats: Dict[str, Dict[str, Any]], config: ExportConfig,
            analytic_madds: int, claim: Optional[Dict[str, Any]]) -> Dict[str, Optional[bool]]:
    """The check table (None: not applicable to this export)."""
    tol = config.parity_tolerance
    return {
        "saved_model_parity": sm["max_abs_logit_diff"] <= tol,
        "image_bytes_signature": (sm["image_bytes_max_abs_diff"] <= tol
                                  if "image_bytes_max_abs_diff" in sm else None),
        "tf_example_signature": sm["tf_example_max_abs_diff"] <= tol,
        "tflite_inputs_raw_rgb": (all(f["input"].get("raw_pixels") for f in formats.values())
                                  if formats else None),
        "tflite_outputs_float32": (all(f["input"].get("output_dtype") == "float32"
                                       for f in formats.values()) if formats else None),
        "fp32_parity": (formats["fp32"]["max_abs_logit_diff"] <= tol
                        if "fp32" in formats else None),
        "madds_agree": (all(f["madds_check"]["agree"] for f in formats.values())
                        if formats else None),
        "madds_match_claim": (int(claim["madds"]) == analytic_madds
                              if claim and claim.get("madds") is not None else None),
        "int8_size_le_quarter": (formats["int8"]["size_ratio_vs_fp32"] <= INT8_SIZE_RATIO_MAX
                                 if "int8" in formats
                                 and formats["int8"].get("size_ratio_vs_fp32") is not None
                                 else None),
        "qat_drop_le_1pt": (formats["qat"]["accuracy_drop_pts"] <= QAT_DROP_MAX_PTS
                            if "qat" in formats else None),
    }


def blessing(sm_accuracy: float, checks: Dict[str, Optional[bool]],
             threshold: float) -> Dict[str, Any]:
    """BLESSED when the SavedModel accuracy reaches `threshold` and no parity check failed."""
    reasons = []
    if sm_accuracy < threshold:
        reasons.append(f"accuracy {sm_accuracy:.4f} < threshold {threshold:.4f}")
    reasons += [f"{k} failed" for k in PARITY_CHECKS if checks.get(k) is False]
    return {"blessed": not reasons, "metric": "accuracy", "value": sm_accuracy,
            "threshold": threshold, "reasons": reasons}
