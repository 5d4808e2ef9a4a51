"""Drops the entries a traced train step leaves in TensorFlow's global gradient registry.

In graph mode (a `tf.function` train step, which is how Keras' `fit` runs) every
`tf.custom_gradient` call registers a "CustomGradient-<uid>" gradient function in
TensorFlow's process-wide `ops._gradient_registry`, which is never cleared — not even by
`keras.backend.clear_session()`. The registered function's closure holds the traced
`FuncGraph`, so every trained model leaks its whole train-step graph: ~11 MB per candidate,
605 MB over a 50-candidate search (benchmarks/trainer_memory.py). A search trains hundreds
of models in one process, so the trainer takes a snapshot before it builds a model and drops
what was added once the model and its graphs are gone:

    keep = gradient_registry.custom_gradients()
    try:
        ...build, compile, fit...
    finally:
        del model; keras.backend.clear_session()
        gradient_registry.drop_custom_gradients(keep=keep)

This touches a private TensorFlow structure; when it is not there (another TF version),
both functions do nothing.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

PREFIX = "CustomGradient-"


def _registry() -> Optional[Dict[str, Any]]:
    from tensorflow.python.framework import ops as tf_ops

    return getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)


def custom_gradients() -> frozenset:
    """Names of the `tf.custom_gradient` entries now in TensorFlow's gradient registry."""
    reg = _registry()
    return frozenset(k for k in reg or () if k.startswith(PREFIX))


def drop_custom_gradients(keep: frozenset) -> None:
    """Removes the `tf.custom_gradient` entries not in `keep` from TensorFlow's registry.

    Call only once the graphs that registered them are gone (after `clear_session`): a
    graph still in use would lose the gradient of its custom ops.
    """
    reg = _registry()
    for name in custom_gradients() - keep:
        del reg[name]
