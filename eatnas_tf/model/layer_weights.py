"""Weights by layer name: how trained weights leave a model and enter another one.

The builder names every layer by its position in the architecture (`model.naming`), so a
model rebuilt from the same encoding — without the auxiliary tower (retraining → export),
with `tf_keras` instead of Keras 3 (quantization-aware training), from a model artifact —
has the same names and shapes, and weights travel as `{layer name: [arrays]}`:

    weights = layer_weights.get(trained)          # numpy copies: the model can be freed
    layer_weights.assign(rebuilt, weights)        # names in both; returns the names set

Only the model's direct layers (`model.layers`) are visited: the builder's models are flat
functional graphs (no nested models or layers with sub-layers), so these are all of them.
Partial inheritance with slicing or padding of mismatched shapes is `model.sharing`'s job.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np

Weights = Dict[str, List[np.ndarray]]


def get(model) -> Weights:
    """`{layer.name: [numpy copy of each weight]}` for every layer of `model` that has
    weights (works for Keras 3 and tf_keras models)."""
    return {layer.name: [np.array(w) for w in layer.get_weights()]
            for layer in model.layers if layer.weights}


def assign(
    model, weights: Mapping[str, Sequence[np.ndarray]], *, strict: bool = False
) -> List[str]:
    """Sets the weights of every layer of `model` whose name is in `weights`
    (`layer.set_weights`, so shapes must match exactly); returns the names set, in layer order.

    Layers without weights are skipped. With `strict=True`, a name in `weights` that is not a
    weighted layer of `model` raises ValueError (the two models must come from the same
    encoding); otherwise such names are ignored.

    Raises:
      ValueError: `strict` and a name is missing in `model`, or a shape mismatch
        (from `set_weights`).
    """
    layers = [layer for layer in model.layers if layer.weights]
    if strict:
        names = {layer.name for layer in layers}
        missing = [n for n in weights if n not in names]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(f"layer {missing[0]!r}{more} missing in the destination model")
    done = []
    for layer in layers:
        if layer.name in weights:
            layer.set_weights(list(weights[layer.name]))
            done.append(layer.name)
    return done
