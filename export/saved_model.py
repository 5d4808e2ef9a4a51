"""TFX-style SavedModel of a trained Keras model, with the preprocessing inside the graph.

A served model must take what a client has — raw uint8 images, or serialized `tf.Example`
protos as TFX pipelines and TF Serving's Predict/Classify APIs send — not the
normalised floats the network was trained on. So every signature here starts from raw
pixels and runs `(x / 255 - mean) / std` (after a bilinear resize when the served image
size differs from the model's) in the graph; the numbers come from the artifact's
`meta.json` (docs/design.md §4).

Signatures (all return `logits` float32 [N, classes], `probabilities` float32 and
`classes` int64):
  serving_default     `images`: uint8 [N, H, W, C] raw pixels.
  serving_tf_example  `examples`: string [N] serialized `tf.Example`, feature `image` =
                      the H·W·C raw uint8 bytes in row-major HWC order (`make_example`).

Written with Keras 3's `keras.export.ExportArchive`: a plain `tf.Module` holding a Keras 3
model saves fine but the TFLite converter then cannot freeze its variables (they stay
VAR_HANDLE ops and the file computes NaN), while the archive's variable tracking converts.

    spec = ServingSpec.from_meta(meta, raw_size=28)
    write_saved_model(model, spec, "/tmp/sm")
    loaded = tf.saved_model.load("/tmp/sm")
    loaded.signatures["serving_default"](images=tf.constant(x_uint8))["logits"]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
SIGNATURES = (SERVING_DEFAULT, SERVING_TF_EXAMPLE)
IMAGE_FEATURE = "image"
# Endpoints used only for conversion to TFLite (never part of the served SavedModel).
LOGITS_RAW = "logits_from_raw"
LOGITS_NORMALIZED = "logits_from_normalized"


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """What the serving graph needs besides the network.

    Attributes:
      mean, std: per-channel whitening statistics in [0, 1] units.
      image_size: the network's input side.
      raw_size: (height, width) of the raw images clients send.
      channels: image channels.
      num_classes: logits.
    """

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    image_size: int
    raw_size: Tuple[int, int]
    channels: int
    num_classes: int

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "raw_size", tuple(int(v) for v in self.raw_size))
        if len(self.mean) not in (1, self.channels) or len(self.std) != len(self.mean):
            raise ValueError(f"mean/std: received {len(self.mean)}/{len(self.std)} values; "
                             f"allowed: 1 or {self.channels} each")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std: received {self.std}; allowed values: positive numbers")

    @classmethod
    def from_meta(cls, meta: Dict[str, Any], raw_size: Sequence[int] = None) -> "ServingSpec":
        """From an artifact's meta.json; `raw_size` defaults to the model's input size."""
        pre, macro = meta["preprocessing"], meta["macro"]
        size = int(pre.get("image_size") or macro["image_size"])
        return cls(mean=tuple(pre["mean"]), std=tuple(pre["std"]), image_size=size,
                   raw_size=tuple(raw_size) if raw_size else (size, size),
                   channels=int(macro["in_channels"]), num_classes=int(macro["num_classes"]))

    @property
    def raw_shape(self) -> Tuple[int, int, int]:
        return (self.raw_size[0], self.raw_size[1], self.channels)

    @property
    def model_shape(self) -> Tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


def preprocess(images: np.ndarray, mean: Sequence[float], std: Sequence[float],
               image_size: Optional[int] = None) -> np.ndarray:
    """`(x / 255 - mean) / std` of raw uint8 `images` as float32 numpy, resized (bilinear)
    to `image_size` if it differs: the arithmetic of `preprocess_graph`, so Keras and the
    exported files see identical inputs."""
    x = images.astype(np.float32) / np.float32(255.0)
    if image_size is not None and (x.shape[1], x.shape[2]) != (image_size, image_size):
        import tensorflow as tf

        x = tf.image.resize(x, (image_size, image_size)).numpy()
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def preprocess_graph(images, spec: ServingSpec):
    """uint8 [N, H, W, C] → the network's float32 input, as TF ops (the same arithmetic as
    `preprocess`)."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32) / 255.0
    if spec.raw_size != (spec.image_size, spec.image_size):
        x = tf.image.resize(x, (spec.image_size, spec.image_size))
    return (x - tf.constant(spec.mean, tf.float32)) / tf.constant(spec.std, tf.float32)


def _outputs(logits):
    import tensorflow as tf

    return {"logits": logits, "probabilities": tf.nn.softmax(logits),
            "classes": tf.argmax(logits, axis=-1)}


def make_example(image: np.ndarray) -> bytes:
    """A serialized `tf.Example` holding one raw uint8 HWC image (the feature
    `serving_tf_example` parses)."""
    import tensorflow as tf

    img = np.ascontiguousarray(image, dtype=np.uint8)
    value = tf.train.BytesList(value=[img.tobytes()])
    feature = {IMAGE_FEATURE: tf.train.Feature(bytes_list=value)}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _archive(model, spec: ServingSpec, endpoints: Sequence[str]):
    """An ExportArchive tracking `model` with the named endpoints."""
    import keras
    import tensorflow as tf

    def logits_of(x):
        return model(x, training=False)

    def serve_images(images):
        return _outputs(logits_of(preprocess_graph(images, spec)))

    def serve_examples(examples):
        parsed = tf.io.parse_example(
            examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        raw = tf.io.decode_raw(parsed[IMAGE_FEATURE], tf.uint8)
        images = tf.reshape(raw, (-1,) + spec.raw_shape)
        return _outputs(logits_of(preprocess_graph(images, spec)))

    def logits_from_raw(images):
        return {"logits": logits_of(preprocess_graph(images, spec))}

    def logits_from_normalized(image):
        return {"logits": logits_of(image)}

    raw = tf.TensorSpec((None,) + spec.raw_shape, tf.uint8, name="images")
    table = {
        SERVING_DEFAULT: (serve_images, raw),
        SERVING_TF_EXAMPLE: (serve_examples, tf.TensorSpec((None,), tf.string, name="examples")),
        LOGITS_RAW: (logits_from_raw, raw),
        LOGITS_NORMALIZED: (logits_from_normalized,
                            tf.TensorSpec((None,) + spec.model_shape, tf.float32, name="image")),
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name in endpoints:
        fn, sig = table[name]
        archive.add_endpoint(name, fn, input_signature=[sig])
    return archive


def write_saved_model(model, spec: ServingSpec, path: str,
                      endpoints: Sequence[str] = SIGNATURES) -> str:
    """Writes the SavedModel of `model` with `endpoints` as signatures into `path` (which
    must not exist or be empty); returns `path`.

    The default endpoints are the served ones (`SIGNATURES`); `tflite.py` writes a scratch
    SavedModel with the `LOGITS_*` endpoints to convert from.
    """
    _archive(model, spec, endpoints).write_out(path, verbose=False)
    return path


def load_signature(path: str, name: str = SERVING_DEFAULT):
    """(loaded object, concrete signature function); keep the object alive while calling."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return loaded, loaded.signatures[name]


def predict_logits(path_or_loaded, images: np.ndarray, batch_size: int = 512,
                   signature: str = SERVING_DEFAULT) -> np.ndarray:
    """Logits of the SavedModel on raw uint8 `images` (or serialized examples for
    `serving_tf_example`), batched."""
    import tensorflow as tf

    loaded = (tf.saved_model.load(path_or_loaded) if isinstance(path_or_loaded, str)
              else path_or_loaded)
    fn = loaded.signatures[signature]
    arg = "images" if signature == SERVING_DEFAULT else "examples"
    out = [fn(**{arg: tf.constant(images[i:i + batch_size])})["logits"].numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out, 0) if out else np.zeros((0,), np.float32)
