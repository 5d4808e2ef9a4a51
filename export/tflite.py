"""TFLite conversion of a trained model: fp32, fp16, full-integer int8 and QAT int8.

Formats (docs/design.md §4):
  fp32  `model_fp32.tflite`: float; input raw uint8 images like `serving_default`
        (preprocessing inside the graph).
  fp16  `model_fp16.tflite`: fp16 weights, float compute; same raw uint8 input.
  int8  `model_int8.tflite`: full-integer post-training quantization calibrated on a
        representative dataset drawn from the training images. Its input is the
        *normalised* image (preprocessing outside: integer kernels for `x/255 - mean`
        would only add quantization error), as int8 with the input tensor's
        (scale, zero_point) when `int8_io` (the default, what phone NPUs want) else float32.
  qat   `model_qat_int8.tflite`: quantization-aware training. tfmot's `quantize_model`
        rejects Keras 3 models (docs/design.md §5), so the encoding is rebuilt with `tf_keras`
        (`builder_tfkeras`), the weights copied layer by layer, the copy wrapped by
        `tfmot.quantization.keras.quantize_model` and fine-tuned a few epochs, then
        converted to int8 like `int8` (same input convention).

QAT fine-tuning does not go through the project's Keras 3 trainer (a tf_keras model cannot):
it is a short `model.fit` with SGD + momentum on the preprocessed training arrays with the
trainer's loss (sparse categorical cross-entropy on logits). Fine-tuning also initialises
the fake-quant ranges; an un-fine-tuned QAT model classifies at chance.

`predict` runs any of these files in LiteRT on raw uint8 images, handling each input
convention, so callers compare formats on the same held-out data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from typing import Callable, Iterable, Optional

import numpy as np

from export import saved_model as sm_lib

FORMATS = ("fp32", "fp16", "int8", "qat")
FILENAMES = {"fp32": "model_fp32.tflite", "fp16": "model_fp16.tflite",
             "int8": "model_int8.tflite", "qat": "model_qat_int8.tflite"}


class ConversionError(RuntimeError):
    """The converter rejected the model (e.g. an op TFLite builtins cannot express)."""


@dataclasses.dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning (a short tf_keras `fit`, see module docstring).

    Attributes:
      epochs: fine-tuning epochs over `max_samples` training images.
      learning_rate: SGD learning rate (small: the float model is already trained).
      momentum: SGD momentum.
      batch_size: batch size.
      max_samples: training images used (a seeded random subset; None = all).
      seed: subset and shuffling seed.
    """

    epochs: int = 2
    learning_rate: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 128
    max_samples: Optional[int] = 10000
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError(f"qat: received epochs={self.epochs}, batch_size={self.batch_size}; "
                             "allowed values: epochs >= 0, batch_size >= 1")


def _convert(make_converter: Callable, what: str) -> bytes:
    try:
        return make_converter().convert()
    except Exception as e:  # the converter raises many types; keep one clear line
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()),
                     type(e).__name__)
        raise ConversionError(f"TFLite {what} conversion failed: {first}") from e


@contextlib.contextmanager
def _scratch_saved_model(model, spec: sm_lib.ServingSpec, endpoint: str):
    """A throw-away SavedModel with one `LOGITS_*` endpoint to convert from."""
    with tempfile.TemporaryDirectory(prefix="eatnas_tflite_") as d:
        path = os.path.join(d, "sm")
        sm_lib.write_saved_model(model, spec, path, endpoints=(endpoint,))
        yield path


def _from_saved_model(path: str, endpoint: str):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[endpoint])


def convert_float(model, spec: sm_lib.ServingSpec, fp16: bool = False) -> bytes:
    """fp32 (or fp16-weight) TFLite bytes taking raw uint8 images, preprocessing inside."""
    import tensorflow as tf

    with _scratch_saved_model(model, spec, sm_lib.LOGITS_RAW) as path:
        def make():
            c = _from_saved_model(path, sm_lib.LOGITS_RAW)
            if fp16:
                c.optimizations = [tf.lite.Optimize.DEFAULT]
                c.target_spec.supported_types = [tf.float16]
            return c
        return _convert(make, "fp16" if fp16 else "fp32")


def _int8_settings(c, int8_io: bool):
    import tensorflow as tf

    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
    return c


def convert_int8(model, spec: sm_lib.ServingSpec, representative: np.ndarray,
                 int8_io: bool = True) -> bytes:
    """Full-integer int8 TFLite bytes, calibrated on `representative` raw uint8 images.

    Args:
      model: the Keras 3 model (normalised float input → logits).
      spec: preprocessing used to turn `representative` into model inputs.
      representative: raw uint8 images [N, H, W, C] from the training split.
      int8_io: int8 input/output tensors (else float32 with quantize/dequantize ops inside).
    """
    x = sm_lib.preprocess(representative, spec.mean, spec.std, spec.image_size)

    def rep() -> Iterable:
        for i in range(len(x)):
            yield [x[i:i + 1]]

    with _scratch_saved_model(model, spec, sm_lib.LOGITS_NORMALIZED) as path:
        def make():
            c = _int8_settings(_from_saved_model(path, sm_lib.LOGITS_NORMALIZED), int8_io)
            c.representative_dataset = rep
            return c
        return _convert(make, "int8")


# -- QAT ------------------------------------------------------------------------------------
def _import_tfmot():
    """tfmot sets TF_USE_LEGACY_KERAS=1 on import (to pick tf_keras); undo that so the rest
    of the process keeps resolving `tf.keras` the way it did."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    import tensorflow_model_optimization as tfmot

    if before is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


def inference_model(model):
    """The logits-only model: drops an auxiliary head (a retrain-time second output)."""
    if len(model.outputs) == 1:
        return model
    import keras

    return keras.Model(model.inputs, model.outputs[0], name=model.name)


def build_qat_model(model, arch, macro, image_size: Optional[int] = None):
    """The tf_keras copy of `model` (same encoding, weights copied by layer name) wrapped
    by `tfmot.quantization.keras.quantize_model`."""
    from eatnas_tf.model.builder_tfkeras import build_tf_keras_model, copy_weights

    tfmot = _import_tfmot()
    src = inference_model(model)
    twin = build_tf_keras_model(arch, macro, image_size=image_size)
    copy_weights(src, twin)
    return tfmot.quantization.keras.quantize_model(twin)


def finetune_qat(qat_model, images: np.ndarray, labels: np.ndarray, spec: sm_lib.ServingSpec,
                 config: QATConfig = QATConfig()):
    """Fine-tunes `qat_model` in place on raw uint8 `images`; returns the fit history dict."""
    import tf_keras

    tf_keras.utils.set_random_seed(config.seed)
    x = sm_lib.preprocess(images, spec.mean, spec.std, spec.image_size)
    qat_model.compile(
        optimizer=tf_keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    if config.epochs == 0 or len(x) == 0:
        return {}
    hist = qat_model.fit(x, labels, batch_size=config.batch_size, epochs=config.epochs,
                         shuffle=True, verbose=0)
    return {k: [float(v) for v in vs] for k, vs in hist.history.items()}


def convert_qat(qat_model, spec: sm_lib.ServingSpec, int8_io: bool = True) -> bytes:
    """int8 TFLite bytes of a fine-tuned QAT model (ranges from its fake-quant nodes)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None,) + spec.model_shape, tf.float32,
                                                name="image")])
    def serve(image):
        return {"logits": qat_model(image, training=False)}

    def make():
        c = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], qat_model)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8_io:
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
        return c
    return _convert(make, "qat int8")


# -- running the files -------------------------------------------------------------------
def input_kind(input_detail) -> str:
    """"raw_uint8" (preprocessing inside), "float32" (normalised) or "int8" (quantized
    normalised) — from the input tensor's dtype."""
    dt = np.dtype(input_detail["dtype"])
    return {np.dtype(np.uint8): "raw_uint8", np.dtype(np.float32): "float32",
            np.dtype(np.int8): "int8"}.get(dt, str(dt))


def _model_input(raw: np.ndarray, detail, spec: sm_lib.ServingSpec) -> np.ndarray:
    kind = input_kind(detail)
    if kind == "raw_uint8":
        return np.ascontiguousarray(raw, np.uint8)
    x = sm_lib.preprocess(raw, spec.mean, spec.std, spec.image_size)
    if kind == "float32":
        return x
    scale, zero = detail["quantization"]
    return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)


def _model_output(y: np.ndarray, detail) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def load_interpreter(path: str, num_threads: int = 1):
    """A LiteRT interpreter of `path` (`ai_edge_litert`, default delegates)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=num_threads)


def predict(path: str, images: np.ndarray, spec: sm_lib.ServingSpec, batch_size: int = 256,
            num_threads: int = 2) -> np.ndarray:
    """Float logits of the TFLite file on raw uint8 `images` [N, H, W, C].

    Batches of `batch_size` when the file has a dynamic batch dimension, else one image at
    a time (the QAT converter fixes the batch to 1).
    """
    it = load_interpreter(path, num_threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    dynamic = int(inp["shape_signature"][0]) == -1
    bs = batch_size if dynamic else int(inp["shape"][0])
    results, current = [], None
    for i in range(0, len(images), bs):
        chunk = images[i:i + bs]
        n = len(chunk)
        if n != bs and not dynamic:  # pragma: no cover - bs is 1 for fixed files
            raise ValueError(f"{path}: fixed batch {bs} cannot take {n} images")
        if current != n:
            if dynamic:
                it.resize_tensor_input(inp["index"], [n] + list(inp["shape"][1:]))
            it.allocate_tensors()
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
            current = n
        it.set_tensor(inp["index"], _model_input(chunk, inp, spec))
        it.invoke()
        results.append(_model_output(it.get_tensor(out["index"]), out))
    return np.concatenate(results, 0)


def describe_input(path: str) -> dict:
    """The input convention of a file, for the report."""
    it = load_interpreter(path)
    d = it.get_input_details()[0]
    desc = {"kind": input_kind(d), "dtype": np.dtype(d["dtype"]).name,
            "shape": [int(v) for v in d["shape_signature"]]}
    if desc["kind"] == "int8":
        desc["scale"], desc["zero_point"] = float(d["quantization"][0]), int(d["quantization"][1])
    return desc
