"""TFLite conversion of a trained model: fp32, fp16, full-integer int8 and QAT int8.

Every file takes what a phone app has: raw uint8 pixels [N, H, W, 3] (`ServingSpec.app_shape`;
depth 3 even for a model trained on grey images, which converts to grey inside the graph,
because MediaPipe's ImageClassifier accepts only depth 3 or 4), with the normalisation
inside the model, and returns float32 logits. No app-side preprocessing, for any format.

Formats (docs/design.md §4):
  fp32  `model_fp32.tflite`: float; uint8 input, cast and normalised inside.
  fp16  `model_fp16.tflite`: fp16 weights, float compute; same uint8 input.
  int8  `model_int8.tflite`: full-integer post-training quantization calibrated on a
        representative dataset drawn from the training images. The converter is fed float
        pixel values in [0, 255] whose first ops are the normalisation (`preprocess_pixels_graph`)
        and told `inference_input_type=tf.uint8`; the representative set is made to contain
        a 0 and a 255 pixel, so the calibrated input range is exactly [0, 255] and the
        input tensor is uint8 with scale 1, zero point 0: raw pixels. `input_is_raw_pixels`
        checks it on every file (the report says so when a converter did otherwise, and
        `predict` then quantizes with the file's own parameters). Output: float32
        (dequantized inside), what MediaPipe's ImageClassifier handles. With
        `int8_io=False` the input is float32 pixel values in [0, 255] instead.
  qat   `model_qat_int8.tflite`: quantization-aware training. tfmot's `quantize_model`
        rejects Keras 3 models (docs/design.md §5), so the encoding is rebuilt with `tf_keras`
        (`builder_tfkeras`), the weights copied layer by layer, the copy wrapped by
        `tfmot.quantization.keras.quantize_model` and fine-tuned a few epochs, then
        converted to int8 with the same pixel input: the network keeps the ranges its
        fake-quant nodes learned, the representative set calibrates only the normalisation
        ops in front of it (which have none).

QAT fine-tuning does not go through the project's Keras 3 trainer (a tf_keras model cannot):
it is a short `model.fit` with SGD + momentum on the preprocessed training arrays with the
trainer's loss (sparse categorical cross-entropy on logits). Fine-tuning also initialises
the fake-quant ranges; an un-fine-tuned QAT model classifies at chance.

`predict` runs any of these files in LiteRT on raw uint8 images (grey ones repeated to the
file's 3 channels, as an app would send them), so callers compare formats on the same
held-out data.
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


def _int8_settings(c, int8_io: bool, representative: np.ndarray):
    """Full-integer settings: int8 builtins only, uint8 pixel input (`int8_io`) or float32,
    float32 output (dequantized inside), calibrated on `representative` pixels."""
    import tensorflow as tf

    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        c.inference_input_type = tf.uint8
    c.inference_output_type = tf.float32

    def rep() -> Iterable:
        for i in range(len(representative)):
            yield [representative[i:i + 1]]

    c.representative_dataset = rep
    return c


def calibration_pixels(images: Optional[np.ndarray], spec: sm_lib.ServingSpec,
                       seed: int = 0) -> np.ndarray:
    """The converter's representative set: float32 app pixels [N, H, W, app_channels].

    Grey images are repeated to 3 channels (what the app sends). The first image's first
    two pixels are set to 0 and 255 in every channel, so the calibrated input range is
    exactly [0, 255] (scale 1, zero point 0 for the uint8 input) whatever the data's own
    darkest and brightest pixels. None or no images (a caller with no data, e.g. a
    latency benchmark): 8 seeded uniform-noise images."""
    if images is None or len(images) == 0:
        images = np.random.default_rng(seed).integers(
            0, 256, size=(8,) + spec.raw_shape, dtype=np.uint8)
    x = sm_lib.as_app_channels(np.asarray(images, np.uint8), spec.app_channels)
    x = x.astype(np.float32)  # a copy: the caller's images are not touched
    flat = x[0].reshape(-1, x.shape[-1])
    flat[0] = 0.0
    flat[min(1, len(flat) - 1)] = 255.0
    return x


def convert_int8(model, spec: sm_lib.ServingSpec, representative: np.ndarray,
                 int8_io: bool = True) -> bytes:
    """Full-integer int8 TFLite bytes, calibrated on `representative` raw uint8 images.

    Args:
      model: the Keras 3 model (normalised float input → logits).
      spec: the preprocessing put in front of it.
      representative: raw uint8 images [N, H, W, C] from the training split.
      int8_io: uint8 raw-pixel input (scale 1, zero point 0); else float32 pixel values
        with a quantize op inside. The output is float32 either way.
    """
    x = calibration_pixels(representative, spec)
    with _scratch_saved_model(model, spec, sm_lib.LOGITS_PIXELS) as path:
        def make():
            return _int8_settings(_from_saved_model(path, sm_lib.LOGITS_PIXELS), int8_io, x)
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


def convert_qat(qat_model, spec: sm_lib.ServingSpec, int8_io: bool = True,
                representative: Optional[np.ndarray] = None) -> bytes:
    """int8 TFLite bytes of a fine-tuned QAT model taking app pixels like `convert_int8`.

    The network's ranges come from its fake-quant nodes; `representative` (raw uint8
    images, see `calibration_pixels`) calibrates the normalisation ops in front of it."""
    import tensorflow as tf

    x = calibration_pixels(representative, spec)

    @tf.function(input_signature=[tf.TensorSpec((None,) + spec.app_shape, tf.float32,
                                                name="image")])
    def serve(image):
        return {"logits": qat_model(sm_lib.preprocess_pixels_graph(image, spec),
                                    training=False)}

    def make():
        c = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], qat_model)
        return _int8_settings(c, int8_io, x)
    return _convert(make, "qat int8")


# -- running the files -------------------------------------------------------------------
RAW_QUANTIZATION = (1.0, 0)


def input_is_raw_pixels(input_detail) -> bool:
    """A uint8 input that takes pixel values as they are: not quantized, or quantized with
    scale 1 and zero point 0 (a quantized value q means the real value q)."""
    if np.dtype(input_detail["dtype"]) != np.uint8:
        return False
    scale, zero = input_detail["quantization"]
    return (float(scale), int(zero)) in ((0.0, 0), RAW_QUANTIZATION)


def input_kind(input_detail) -> str:
    """"raw_uint8" (raw pixels, `input_is_raw_pixels`), "uint8_quantized" (uint8 with other
    quantization parameters: an app must quantize the pixels itself) or "float32" (pixel
    values in [0, 255] as floats), from the input tensor."""
    dt = np.dtype(input_detail["dtype"])
    if dt == np.uint8:
        return "raw_uint8" if input_is_raw_pixels(input_detail) else "uint8_quantized"
    return "float32" if dt == np.float32 else str(dt)


def _model_input(raw: np.ndarray, detail) -> np.ndarray:
    x = sm_lib.as_app_channels(np.asarray(raw, np.uint8), int(detail["shape"][-1]))
    kind = input_kind(detail)
    if kind == "raw_uint8":
        return np.ascontiguousarray(x, np.uint8)
    if kind == "float32":
        return x.astype(np.float32)
    scale, zero = detail["quantization"]  # honest fallback: the file's own parameters
    info = np.iinfo(np.dtype(detail["dtype"]))
    q = np.round(x.astype(np.float32) / scale + zero)
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def _model_output(y: np.ndarray, detail) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def load_interpreter(path: str, num_threads: int = 1):
    """A LiteRT interpreter of `path` (`ai_edge_litert`, default delegates)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=num_threads)


def predict(path: str, images: np.ndarray, spec: Optional[sm_lib.ServingSpec] = None,
            batch_size: int = 256, num_threads: int = 2) -> np.ndarray:
    """Float logits of the TFLite file on raw uint8 `images` [N, H, W, C].

    Grey images (C = 1) are repeated to the file's 3 channels, as an app sends them. Every
    file made here takes its pixels as they are, so `spec` is not needed (it is accepted
    for older callers). Batches of `batch_size` when the file has a dynamic batch
    dimension, else its fixed batch (1 in older QAT files) at a time.
    """
    del spec
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
        it.set_tensor(inp["index"], _model_input(chunk, inp))
        it.invoke()
        results.append(_model_output(it.get_tensor(out["index"]), out))
    return np.concatenate(results, 0)


def describe_input(path: str) -> dict:
    """The input and output conventions of a file, for the report: `kind` (`input_kind`),
    dtype, shape, the quantization parameters of a quantized input, `raw_pixels` (an app
    feeds its uint8 RGB pixels as they are) and the output dtype."""
    it = load_interpreter(path)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    shape = [int(v) for v in d["shape_signature"]]
    desc = {"kind": input_kind(d), "dtype": np.dtype(d["dtype"]).name, "shape": shape,
            "raw_pixels": input_is_raw_pixels(d) and shape[-1] in (3, 4),
            "output_dtype": np.dtype(o["dtype"]).name}
    scale, zero = d["quantization"]
    if scale:
        desc["scale"], desc["zero_point"] = float(scale), int(zero)
    return desc
