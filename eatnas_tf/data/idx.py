"""Reader for the original IDX files of (Fashion-)MNIST, for offline use.

Debian's `dataset-fashion-mnist` installs the original 60k/10k IDX files in
`/usr/share/datasets/fashion-mnist/`, but each `.gz` is recompressed, so tfds's own
builder rejects its checksums (docs/design.md §5). This reader parses the IDX format directly
(magic, dims, big-endian sizes; 16-byte image header, 8-byte label header).
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Tuple

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


def _open(path: str):
    if os.path.exists(path):
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rb")
    raise FileNotFoundError(f"IDX file not found: {path}[.gz]")


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file (optionally gzipped)."""
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{path}: bad IDX magic")
    dtype, ndim = data[2], data[3]
    if dtype not in _DTYPES:
        raise IdxFormatError(f"{path}: unknown IDX dtype 0x{dtype:02x}")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    arr = np.frombuffer(data, dtype=_DTYPES[dtype], offset=header)
    if arr.size != int(np.prod(dims)):
        raise IdxFormatError(f"{path}: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims).astype(np.dtype(_DTYPES[dtype]).newbyteorder("="))


def available(root: str = FASHION_MNIST_DIR) -> bool:
    return all(os.path.exists(os.path.join(root, f))
               or os.path.exists(os.path.join(root, f + ".gz"))
               for pair in _FILES.values() for f in pair)


def load_split(split: str, root: str = FASHION_MNIST_DIR) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28, 1], labels int64 [N]) of "train" or "test"."""
    if split not in _FILES:
        raise ValueError(f"split: received {split!r}; allowed values: train, test")
    img_file, lbl_file = _FILES[split]
    images = read_idx(os.path.join(root, img_file))
    labels = read_idx(os.path.join(root, lbl_file)).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise IdxFormatError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images[..., None], labels
