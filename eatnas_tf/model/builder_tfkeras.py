"""The same encoding built with `tf_keras` (Keras 2), for tfmot quantization-aware training.

tfmot's `quantize_model` rejects Keras 3 models (docs/design.md §5); building the same
architecture with `tf_keras` gives identical layer names and weight shapes, so weights
copy layer by layer (`copy_weights`) and the copy quantizes.
"""

from __future__ import annotations

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.model import layer_weights
from eatnas_tf.model.builder import build_model


def build_tf_keras_model(arch: ArchSpec, macro: MacroSpec, **kwargs):
    import tf_keras  # optional heavy import

    return build_model(arch, macro, keras_module=tf_keras, **kwargs)


def copy_weights(src, dst) -> int:
    """Copies every weighted layer of `src` into the layer of the same name in `dst`.

    Returns the number of layers copied. Raises ValueError on a missing layer or a shape
    mismatch: the two models must come from the same encoding.
    """
    return len(layer_weights.assign(dst, layer_weights.get(src), strict=True))
