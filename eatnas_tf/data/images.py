"""Decoding, channel conversion, resizing and the one scan of every image of a user source.

One decoder (`tf.io.decode_image`: PNG, BMP, GIF's first frame; JPEG with the accurate
IDCT) and one resize serve the in-memory arrays, the streamed pipelines and the exported
SavedModel's `serving_default`, so all give the same pixels:

  channels  1: grey sources stay grey, RGB(A) is converted (`rgb_to_grayscale`);
            3: grey is repeated, alpha is dropped.
  resize    an image already `size`×`size` is kept as it is; others are resized to
            `size`×`size` (aspect ratio not kept, like `keras.utils.image_dataset_from_directory`)
            bilinearly with antialiasing, rounded to uint8.

`scan` decodes every example once, in order: the ones the decoder rejects (corrupt, empty,
not an image) are returned as bad, so a streamed pipeline never meets one later.
"""

from __future__ import annotations

import dataclasses
import io
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SIZE_SAMPLE = 256
MAX_DEFAULT_SIZE = 224
MIN_DEFAULT_SIZE = 8


def to_channels(image, channels: int):
    """uint8 [H, W, c] (c in 1..4) as uint8 [H, W, channels]."""
    c = tf.shape(image)[2]
    if channels == 1:
        return tf.cond(c >= 3, lambda: tf.image.rgb_to_grayscale(image[..., :3]),
                       lambda: image[..., :1])
    return tf.cond(c >= 3, lambda: image[..., :3],
                   lambda: tf.image.grayscale_to_rgb(image[..., :1]))


def resize(image, size: int, channels: int):
    """uint8 [H, W, C] as uint8 [size, size, C] (unchanged when already that size)."""
    shape = tf.shape(image)

    def do():
        r = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear",
                            antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(r), 0.0, 255.0), tf.uint8)

    out = tf.cond(tf.logical_and(shape[0] == size, shape[1] == size), lambda: image, do)
    return tf.ensure_shape(out, [size, size, channels])


def decode_any(encoded):
    """uint8 [H, W, c] of JPEG (accurate IDCT), PNG, BMP or GIF (first frame) bytes.

    JPEGs are decoded with the accurate integer IDCT: `decode_image`'s default fast IDCT
    differs from libjpeg's default (what phones and MediaPipe decode with) by up to 6
    levels per pixel, enough to flip a few top-1 answers between training and the phone.
    """
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=0, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=0, dtype=tf.uint8,
                                   expand_animations=False))


def decode(encoded, size: int, channels: int):
    """Encoded image bytes (a scalar string tensor) -> uint8 [size, size, channels]."""
    return resize(to_channels(decode_any(encoded), channels), size, channels)


def prepare(raw, size: int, channels: int):
    """An encoded string or an already decoded uint8 image -> uint8 [size, size, channels]."""
    if raw.dtype == tf.string:
        return decode(raw, size, channels)
    return resize(to_channels(tf.cast(raw, tf.uint8), channels), size, channels)


# -- default size and channels ----------------------------------------------------------------
def default_size(short_sides: Sequence[int]) -> int:
    """The documented rule: median short side of the sampled images, rounded to the nearest
    multiple of 8 (halves up), at least 8, at most 224."""
    if not len(short_sides):
        return MIN_DEFAULT_SIZE
    m = float(np.median(np.asarray(short_sides, np.float64)))
    return int(min(MAX_DEFAULT_SIZE, max(MIN_DEFAULT_SIZE, 8 * int(np.floor(m / 8.0 + 0.5)))))


def sample_positions(n: int, k: int = SIZE_SAMPLE) -> List[int]:
    """Up to k positions spread evenly over 0..n-1 (deterministic)."""
    if n <= k:
        return list(range(n))
    return sorted({i * n // k for i in range(k)})


def is_grey(a: np.ndarray) -> bool:
    """One channel, or three equal ones."""
    if a.shape[-1] < 3:
        return True
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


def pil_geometry(data: bytes) -> Optional[Tuple[int, bool]]:
    """(short side, is grey) of encoded image bytes with PIL, or None when PIL cannot read it.

    Grey: a grey mode (1, L, LA, I, I;16, F) or every pixel with R == G == B."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
                return min(w, h), True
            return min(w, h), is_grey(np.asarray(im.convert("RGB")))
    except Exception:  # noqa: BLE001 - any unreadable file is simply not sampled
        return None


def geometry_rule(samples: Sequence[Optional[Tuple[int, bool]]]) -> Tuple[int, int]:
    """(size, channels) from sampled (short side, grey) pairs: `default_size`, and 1 channel
    only when every sampled image is grey."""
    ok = [s for s in samples if s is not None]
    return default_size([s[0] for s in ok]), (1 if ok and all(s[1] for s in ok) else 3)


# -- the scan -------------------------------------------------------------------------------------
@dataclasses.dataclass
class ScanResult:
    good: np.ndarray                # int64 positions (into the scanned order) that decoded
    images: Optional[np.ndarray]    # uint8 [len(good), size, size, C] when kept
    sums: np.ndarray                # int64 [len(good), C]: per-image pixel sums
    sq_sums: np.ndarray             # int64 [len(good), C]: per-image squared pixel sums


def scan(raw: tf.data.Dataset, size: int, channels: int, keep: bool,
         batch: int = 256) -> ScanResult:
    """Decodes every element of `raw` (encoded strings or uint8 images) in order.

    Elements the decoder rejects are dropped (their positions are missing from `good`)."""
    def fn(i, r):
        img = prepare(r, size, channels)
        flat = tf.reshape(tf.cast(img, tf.int64), [-1, channels])
        return i, img, tf.reduce_sum(flat, 0), tf.reduce_sum(flat * flat, 0)

    ds = tf.data.Dataset.zip((tf.data.Dataset.range(2 ** 62), raw))
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors(log_warning=False).batch(batch).prefetch(2)
    good, images, sums, sq = [], [], [], []
    for i, img, s, s2 in ds:
        good.append(i.numpy())
        sums.append(s.numpy())
        sq.append(s2.numpy())
        if keep:
            images.append(img.numpy())
    empty = np.zeros((0, channels), np.int64)
    return ScanResult(
        good=np.concatenate(good) if good else np.zeros(0, np.int64),
        images=(np.concatenate(images) if images else np.zeros((0, size, size, channels), np.uint8))
        if keep else None,
        sums=np.concatenate(sums) if sums else empty,
        sq_sums=np.concatenate(sq) if sq else empty)


def exact_stats(sums: np.ndarray, sq_sums: np.ndarray, pixels_per_image: int):
    """Per-channel (mean, std) in [0, 1] units from exact integer sums (order independent)."""
    n = max(1, len(sums)) * pixels_per_image
    s = sums.sum(0).astype(np.float64) / 255.0
    s2 = sq_sums.sum(0).astype(np.float64) / (255.0 ** 2)
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
