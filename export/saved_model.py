"""TFX-style SavedModel of a trained Keras model, with the preprocessing inside the graph.

A served model must take what a client has — encoded image files, raw uint8 pixels, or
serialized `tf.Example` protos as TFX pipelines and TF Serving's Predict/Classify APIs send
— not the normalised floats the network was trained on. So every signature here starts
from raw pixels (decoding them first when it gets bytes) and runs `(x / 255 - mean) / std`
(after a bilinear resize when the served image size differs from the model's) in the
graph; the numbers come from the artifact's `meta.json` (docs/design.md §4).

Signatures (all return `logits` float32 [N, classes], `probabilities` float32 and
`classes` int64):
  serving_default     `image_bytes`: string [N], each an encoded JPEG/PNG/BMP/GIF file
                      of any size, grey or colour (TF Serving's convention: a REST client
                      sends {"instances": [{"b64": "..."}]}). Decoded, converted to the
                      model's channels and resized with exactly the data layer's
                      `eatnas_tf.data.images.decode`, so a served file gives the pixels
                      training saw for it.
  serving_images      `images`: uint8 [N, H, W, C] raw pixels (C = the model's channels).
  serving_tf_example  `examples`: string [N] serialized `tf.Example`, feature `image` =
                      the H·W·C raw uint8 bytes in row-major HWC order (`make_example`).

The TFLite files are converted from scratch SavedModels with other endpoints (`LOGITS_*`):
they take the *app's* pixels, uint8 [N, H, W, 3] (`ServingSpec.app_shape`) — MediaPipe's
ImageClassifier accepts only depth 3 or 4 — and a model trained on grey images turns
them grey inside the graph (`to_grey`: the luma weights of `tf.image.rgb_to_grayscale`,
normalised to sum 1, so an R = G = B pixel keeps exactly its value).

Written with Keras 3's `keras.export.ExportArchive`: a plain `tf.Module` holding a Keras 3
model saves fine but the TFLite converter then cannot freeze its variables (they stay
VAR_HANDLE ops and the file computes NaN), while the archive's variable tracking converts.

    spec = ServingSpec.from_meta(meta, raw_size=28)
    write_saved_model(model, spec, "/tmp/sm")
    loaded = tf.saved_model.load("/tmp/sm")
    loaded.signatures["serving_default"](image_bytes=tf.constant([png_bytes]))["logits"]
    loaded.signatures["serving_images"](images=tf.constant(x_uint8))["logits"]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
SERVING_TF_EXAMPLE = "serving_tf_example"
SIGNATURES = (SERVING_DEFAULT, SERVING_IMAGES, SERVING_TF_EXAMPLE)
# The input name of each served signature (`predict_logits` calls them by it).
SIGNATURE_INPUTS = {SERVING_DEFAULT: "image_bytes", SERVING_IMAGES: "images",
                    SERVING_TF_EXAMPLE: "examples"}
IMAGE_FEATURE = "image"
# Endpoints used only for conversion to TFLite (never part of the served SavedModel); both
# take the app's pixels (`ServingSpec.app_shape`).
LOGITS_RAW = "logits_from_raw"          # uint8 pixels: the fp32 / fp16 files
LOGITS_PIXELS = "logits_from_pixels"    # float32 pixel values in [0, 255]: the int8 file
# `tf.image.rgb_to_grayscale`'s luma weights (ITU-R BT.601), normalised to sum 1.
_LUMA = (0.2989, 0.5870, 0.1140)
GREY_WEIGHTS = tuple(w / sum(_LUMA) for w in _LUMA)


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

    @property
    def app_channels(self) -> int:
        """Channels of the TFLite files' input: 3 for a grey model (converted inside), else
        the model's own (MediaPipe's ImageClassifier takes only depth 3 or 4)."""
        return 3 if self.channels == 1 else self.channels

    @property
    def app_shape(self) -> Tuple[int, int, int]:
        """[H, W, C] of the TFLite files' raw uint8 input."""
        return (self.raw_size[0], self.raw_size[1], self.app_channels)


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


def as_app_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [N, H, W, c] with grey (c = 1) repeated to `channels` (3): what an app sends
    the TFLite files of a grey model. Other images are returned as they are."""
    if images.shape[-1] == 1 and channels != 1:
        return np.repeat(images, channels, axis=-1)
    return images


def to_grey(x, exact: bool = True):
    """float [..., 3] pixels → [..., 1] luma (`GREY_WEIGHTS`), as TF ops.

    `exact` computes it as G + wr·(R − G) + wb·(B − G): an R = G = B pixel maps to exactly
    its value, so the float files of a grey model give the grey model's logits on
    channel-repeated images. Quantized graphs use the plain weighted sum instead (each
    product keeps a calibrated range that covers colour images too; the differences of a
    grey calibration set would all be 0)."""
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    wr, wg, wb = GREY_WEIGHTS
    if exact:
        return g + wr * (r - g) + wb * (b - g)
    return r * wr + g * wg + b * wb


def preprocess_graph(images, spec: ServingSpec):
    """uint8 [N, H, W, C] → the network's float32 input, as TF ops (the same arithmetic as
    `preprocess`). App-channel images of a grey model (C = 3) are turned grey first."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if spec.channels == 1 and images.shape[-1] == 3:
        x = to_grey(x, exact=True)
    x = x / 255.0
    if spec.raw_size != (spec.image_size, spec.image_size):
        x = tf.image.resize(x, (spec.image_size, spec.image_size))
    return (x - tf.constant(spec.mean, tf.float32)) / tf.constant(spec.std, tf.float32)


def preprocess_pixels_graph(pixels, spec: ServingSpec):
    """float32 app pixels [N, H, W, app_channels] in [0, 255] → the network's input, as few
    TF ops as the quantizer can calibrate well: one multiply-add per channel,
    `x · 1/(255·std) − mean/std`, with the grey weights folded into it for a grey model."""
    import tensorflow as tf

    scale = [1.0 / (255.0 * s) for s in spec.std]
    bias = [-m / s for m, s in zip(spec.mean, spec.std)]
    if spec.channels == 1 and pixels.shape[-1] == 3:
        wr, wg, wb = (w * scale[0] for w in GREY_WEIGHTS)
        x = (pixels[..., 0:1] * wr + pixels[..., 1:2] * wg + pixels[..., 2:3] * wb) + bias[0]
    else:
        x = pixels * tf.constant(scale, tf.float32) + tf.constant(bias, tf.float32)
    if spec.raw_size != (spec.image_size, spec.image_size):
        x = tf.image.resize(x, (spec.image_size, spec.image_size))
    return x


def decode_images(image_bytes, spec: ServingSpec):
    """string [N] of encoded image files → uint8 [N, H, W, C] (`raw_shape`), each decoded,
    converted and resized by the data layer's `eatnas_tf.data.images.decode` (the same
    pixels training saw for that file)."""
    import tensorflow as tf

    from eatnas_tf.data import images as images_lib

    h, w = spec.raw_size

    def one(encoded):
        if h == w:  # always, for the data layer's images
            return images_lib.decode(encoded, h, spec.channels)
        image = images_lib.to_channels(images_lib.decode_any(encoded), spec.channels)
        r = tf.image.resize(tf.cast(image, tf.float32), [h, w], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(r), 0.0, 255.0), tf.uint8)

    return tf.map_fn(one, image_bytes,
                     fn_output_signature=tf.TensorSpec(spec.raw_shape, tf.uint8))


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

    def serve_bytes(image_bytes):
        return _outputs(logits_of(preprocess_graph(decode_images(image_bytes, spec), spec)))

    def serve_examples(examples):
        parsed = tf.io.parse_example(
            examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        raw = tf.io.decode_raw(parsed[IMAGE_FEATURE], tf.uint8)
        images = tf.reshape(raw, (-1,) + spec.raw_shape)
        return _outputs(logits_of(preprocess_graph(images, spec)))

    def logits_from_raw(images):
        return {"logits": logits_of(preprocess_graph(images, spec))}

    def logits_from_pixels(image):
        return {"logits": logits_of(preprocess_pixels_graph(image, spec))}

    table = {
        SERVING_DEFAULT: (serve_bytes, tf.TensorSpec((None,), tf.string, name="image_bytes")),
        SERVING_IMAGES: (serve_images,
                         tf.TensorSpec((None,) + spec.raw_shape, tf.uint8, name="images")),
        SERVING_TF_EXAMPLE: (serve_examples, tf.TensorSpec((None,), tf.string, name="examples")),
        LOGITS_RAW: (logits_from_raw,
                     tf.TensorSpec((None,) + spec.app_shape, tf.uint8, name="image")),
        LOGITS_PIXELS: (logits_from_pixels,
                        tf.TensorSpec((None,) + spec.app_shape, tf.float32, name="image")),
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


def encode_png(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] → object array [N] of PNG files (lossless: `serving_default` on
    them gives the pixels back exactly)."""
    import tensorflow as tf

    return np.array([tf.io.encode_png(im).numpy() for im in images], dtype=object)


def predict_logits(path_or_loaded, inputs: np.ndarray, batch_size: int = 512,
                   signature: Optional[str] = None) -> np.ndarray:
    """Logits of the SavedModel, batched, through `signature`: `serving_images` on raw
    uint8 images, `serving_default` on encoded image files (`encode_png`),
    `serving_tf_example` on serialized examples. None: `serving_images` for uint8 arrays,
    `serving_default` for byte strings."""
    import tensorflow as tf

    loaded = (tf.saved_model.load(path_or_loaded) if isinstance(path_or_loaded, str)
              else path_or_loaded)
    if signature is None:
        signature = SERVING_IMAGES if np.asarray(inputs).dtype == np.uint8 else SERVING_DEFAULT
    fn = loaded.signatures[signature]
    arg = SIGNATURE_INPUTS[signature]
    out = [fn(**{arg: tf.constant(inputs[i:i + batch_size])})["logits"].numpy()
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out, 0) if out else np.zeros((0,), np.float32)
