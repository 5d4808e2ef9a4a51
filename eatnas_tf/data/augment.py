"""Image augmentations of the EAT-NAS training recipes (paper §4.1, §4.2), batch-wise.

Every random op is *stateless*: it takes a `seed` (an int32/int64 tensor of shape [2]) and
draws one independent sample per image of the batch, so a pipeline seeded the same way
gives the same images, on any number of parallel calls. Ops work on a whole batch
`[B, H, W, C]` (vectorised gathers and `crop_and_resize`, no per-image Python), which
keeps tf.data off the critical path on a 2-core machine.

Units: geometric and colour ops take float32 images in [0, 1]; `whiten` maps them to the
model's input `(x - mean) / std`; `cutout` runs after whitening, so a cut square is the
channel mean (zero), as in DeVries & Taylor's reference code.

Names used in `DataConfig.augment` (see `AUGMENTATIONS`):

  crop                 pad by `pad` pixels (size/8: 4 for 32×32, paper §4.1) + random crop
  flip                 random horizontal flip (p = 0.5)
  cutout               zero a `cutout_length` square (16, paper §4.1), centre uniform
  random_resized_crop  Inception crop, area fraction in [0.2, 1] (paper §4.2 search),
                       aspect ratio log-uniform in [3/4, 4/3], resized to `size`
  scale                scale augmentation (paper §4.2 retrain, VGG): shorter side drawn in
                       [256, 480] × size/224, then a random size×size crop
  color                colour augmentation (AlexNet PCA lighting, std 0.1, on RGB, plus
                       brightness / contrast / saturation jitter 0.4 as in fb.resnet.torch)

    >>> seed = tf.constant([1, 2])
    >>> x = flip(pad_crop(images, seed, pad=4), seed + 1)
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import tensorflow as tf

AUGMENTATIONS = ("crop", "flip", "cutout", "random_resized_crop", "scale", "color")
# Ops that change the framing of the image; the "plain" last epochs keep only crop + flip.
GEOMETRIC = ("crop", "random_resized_crop", "scale")
RRC_SCALE = (0.2, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
SCALE_SHORTER = (256, 480)  # at 224×224 crops (paper §4.2); scaled by size / 224
EVAL_CROP_FRACTION = 224.0 / 256.0  # resize shorter side to 256, centre crop 224
# AlexNet's PCA of ImageNet RGB pixels (eigenvalues, eigenvectors as columns).
_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
               (-0.5808, -0.0045, -0.8140),
               (-0.5836, -0.6948, 0.4203))


def validate(augment: Sequence[str]) -> Tuple[str, ...]:
    """Returns `augment` as a tuple; raises ValueError naming an unknown entry."""
    for a in augment:
        if a not in AUGMENTATIONS:
            raise ValueError(f"augment: received {a!r}; allowed values: {', '.join(AUGMENTATIONS)}")
    return tuple(augment)


def plain(augment: Sequence[str]) -> Tuple[str, ...]:
    """The "crop + flip only" set used for the last N epochs (paper §4.2).

    `scale` and `random_resized_crop` become a random crop at a fixed scale (shorter side
    256/224 × size, "256×N resized images"); `crop` and `flip` stay; the rest is dropped.
    """
    out = []
    if "crop" in augment:
        out.append("crop")
    if "scale" in augment or "random_resized_crop" in augment:
        out.append("resize_crop")
    if "flip" in augment:
        out.append("flip")
    return tuple(out)


def _seeds(seed, n: int):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n))


def _uniform(shape, seed, lo=0.0, hi=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi, dtype=tf.float32)


def whiten(images, mean: Sequence[float], std: Sequence[float]):
    """Per-channel whitening `(x - mean) / std` of float images in [0, 1] (paper §4.1)."""
    return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop(images, seed, pad: int):
    """Zero-pads each side by `pad` and crops back to H×W at a random offset per image."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    s1, s2 = _seeds(seed, 2)
    oy = tf.random.stateless_uniform([b], s1, 0, 2 * pad + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([b], s2, 0, 2 * pad + 1, dtype=tf.int32)
    rows = oy[:, None] + tf.range(h)[None, :]
    cols = ox[:, None] + tf.range(w)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.ensure_shape(out, images.shape)


def flip(images, seed):
    """Mirrors each image left-right with probability 0.5."""
    mask = _uniform([tf.shape(images)[0]], seed) < 0.5
    return tf.where(mask[:, None, None, None], tf.reverse(images, axis=[2]), images)


def cutout_mask(batch: int, height: int, width: int, seed, length: int):
    """[B, H, W, 1] float mask, 0 inside one `length` square per image (clipped at borders)."""
    s1, s2 = _seeds(seed, 2)
    cy = tf.random.stateless_uniform([batch], s1, 0, height, dtype=tf.int32)
    cx = tf.random.stateless_uniform([batch], s2, 0, width, dtype=tf.int32)
    half = length // 2
    ys = tf.range(height)[None, :]
    xs = tf.range(width)[None, :]
    in_y = (ys >= (cy - half)[:, None]) & (ys < (cy + length - half)[:, None])
    in_x = (xs >= (cx - half)[:, None]) & (xs < (cx + length - half)[:, None])
    inside = in_y[:, :, None] & in_x[:, None, :]
    return 1.0 - tf.cast(inside, tf.float32)[..., None]


def cutout(images, seed, length: int = 16):
    """Cutout (DeVries & Taylor 2017): zeroes a length×length square, centre uniform."""
    shape = tf.shape(images)
    return images * cutout_mask(shape[0], shape[1], shape[2], seed, length)


# -- crops expressed as boxes, applied with crop_and_resize ----------------------------------
def _boxes(y0, x0, ch, cw, h, w):
    """Normalised crop_and_resize boxes for pixel windows [y0, y0+ch) × [x0, x0+cw)."""
    hm1, wm1 = tf.maximum(h - 1.0, 1.0), tf.maximum(w - 1.0, 1.0)
    return tf.stack([y0 / hm1, x0 / wm1, (y0 + ch - 1.0) / hm1, (x0 + cw - 1.0) / wm1], axis=1)


def random_resized_crop_boxes(batch, height, width, seed, scale=RRC_SCALE, ratio=RRC_RATIO):
    """(boxes [B, 4], area fraction [B]) of Inception-style crops.

    One draw per image: area fraction uniform in `scale`, aspect ratio log-uniform in
    `ratio`; a side longer than the image is clipped to it, which keeps the area fraction
    inside `scale` for the paper's [0.2, 1] (and ratio in [3/4, 4/3]).
    """
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    s1, s2, s3, s4 = _seeds(seed, 4)
    area = _uniform([batch], s1, *scale) * h * w
    r = tf.exp(_uniform([batch], s2, math.log(ratio[0]), math.log(ratio[1])))
    cw = tf.minimum(tf.sqrt(area * r), w)
    ch = tf.minimum(tf.sqrt(area / r), h)
    y0 = _uniform([batch], s3) * (h - ch)
    x0 = _uniform([batch], s4) * (w - cw)
    return _boxes(y0, x0, ch, cw, h, w), ch * cw / (h * w)


def scale_crop_boxes(batch, height, width, seed, size: int, shorter=SCALE_SHORTER):
    """Boxes of "resize the shorter side to s ~ U[shorter] × size/224, random size crop".

    `shorter` may be a single value (lo == hi) for the fixed-scale crop of the plain epochs.
    """
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    s1, s2, s3 = _seeds(seed, 3)
    f = size / 224.0
    s = _uniform([batch], s1, shorter[0] * f, shorter[1] * f + 1e-6)
    side = size * tf.minimum(h, w) / s  # crop side in original pixels
    y0 = _uniform([batch], s2) * (h - side)
    x0 = _uniform([batch], s3) * (w - side)
    return _boxes(y0, x0, side, side, h, w)


def center_crop_boxes(batch, height, width, fraction: float = EVAL_CROP_FRACTION):
    """Boxes of the evaluation crop: centred square of `fraction` × the shorter side."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    side = fraction * tf.minimum(h, w)
    y0 = tf.fill([batch], (h - side) / 2.0)
    x0 = tf.fill([batch], (w - side) / 2.0)
    return _boxes(y0, x0, tf.fill([batch], side), tf.fill([batch], side), h, w)


def crop_resize(images, boxes, size: int):
    """Applies one box per image and resizes the crops to size×size (bilinear)."""
    b = tf.shape(images)[0]
    out = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(b),
                                   [size, size], method="bilinear")
    return out


def random_resized_crop(images, seed, size: int, scale=RRC_SCALE, ratio=RRC_RATIO):
    shape = tf.shape(images)
    boxes, _ = random_resized_crop_boxes(shape[0], shape[1], shape[2], seed, scale, ratio)
    return crop_resize(images, boxes, size)


def scale_crop(images, seed, size: int, shorter=SCALE_SHORTER):
    shape = tf.shape(images)
    return crop_resize(images, scale_crop_boxes(shape[0], shape[1], shape[2], seed, size, shorter),
                       size)


# -- colour ---------------------------------------------------------------------------------
def color(images, seed, jitter: float = 0.4, lighting: float = 0.1):
    """Colour augmentation of float images in [0, 1], clipped back to [0, 1].

    Brightness, contrast and (RGB only) saturation factors drawn in [1 - jitter, 1 + jitter]
    per image, then AlexNet's PCA lighting noise (RGB only, std `lighting`).
    """
    b = tf.shape(images)[0]
    channels = images.shape[-1]
    s1, s2, s3, s4 = _seeds(seed, 4)
    bright = _uniform([b], s1, 1.0 - jitter, 1.0 + jitter)[:, None, None, None]
    x = images * bright
    contrast = _uniform([b], s2, 1.0 - jitter, 1.0 + jitter)[:, None, None, None]
    grey = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - grey) * contrast + grey
    if channels == 3:
        sat = _uniform([b], s3, 1.0 - jitter, 1.0 + jitter)[:, None, None, None]
        lum = tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        x = (x - lum) * sat + lum
        alpha = tf.random.stateless_normal([b, 3], s4, stddev=lighting)
        rgb = tf.linalg.matvec(tf.constant(_PCA_EIGVEC), alpha * tf.constant(_PCA_EIGVAL))
        x = x + rgb[:, None, None, :]
    return tf.clip_by_value(x, 0.0, 1.0)


def default_pad(size: int) -> int:
    """Padding of the pad-and-crop augmentation: 4 at 32×32 (paper §4.1), size/8 otherwise."""
    return max(1, int(round(size / 8)))


def apply_batch(images, seed, augment: Sequence[str], *, size: int, mean, std,
                cutout_length: int = 16):
    """The whole training transform of a batch, in the recipe's order.

    Args:
      images: [B, H, W, C] uint8 or float in [0, 255] (H, W may differ from `size` only
        when a box crop `random_resized_crop`/`scale`/`resize_crop` is in `augment`).
      seed: [2] int tensor; each op gets its own split of it.
      augment: names from `AUGMENTATIONS` (plus "resize_crop", see `plain`).
      size: output side.
      mean, std: per-channel whitening constants in [0, 1] units.
      cutout_length: side of the cutout square.

    Returns:
      Whitened float32 images [B, size, size, C].
    """
    seeds = _seeds(seed, 7)
    x = tf.cast(images, tf.float32) / 255.0
    if "crop" in augment:  # at the images' own size (> size: EcoNAS crop-then-resize)
        x = pad_crop(x, seeds[0], default_pad(int(x.shape[1] or size)))
    if "random_resized_crop" in augment:
        x = random_resized_crop(x, seeds[1], size)
    elif "scale" in augment:
        x = scale_crop(x, seeds[2], size)
    elif "resize_crop" in augment:
        x = scale_crop(x, seeds[2], size, shorter=(256, 256))
    if x.shape[1] is not None and (x.shape[1], x.shape[2]) != (size, size):
        x = tf.image.resize(x, [size, size], method="area")  # crop-then-resize
    if "flip" in augment:
        x = flip(x, seeds[3])
    if "color" in augment:
        x = color(x, seeds[4])
    x = whiten(x, mean, std)
    if "cutout" in augment:
        x = cutout(x, seeds[5], cutout_length)
    return x


def eval_batch(images, *, mean, std):
    """Evaluation transform of a batch already at the model's size: scale and whiten."""
    return whiten(tf.cast(images, tf.float32) / 255.0, mean, std)


def augment_batches(ds, seed: int, augment, *, size, mean, std, cutout_length: int):
    """`apply_batch` over a dataset of `(images, labels)` batches, each batch with its own
    pair of stateless seeds drawn from `seed` (deterministic), prefetched."""
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).map(
        lambda xy, sd: (apply_batch(xy[0], sd, augment, size=size, mean=mean, std=std,
                                    cutout_length=cutout_length), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
