"""Per-candidate weight files: `{layer name: [arrays]}` as one `.npz`, written atomically.

A search stores the trained weights of every candidate that may still become a parent
(paper §3.4: children inherit from their parent), so any population member can be a
parent after a resume. Keys are `layer/index`, so the order of a layer's tensors
(kernel, bias; gamma, beta, moving mean, moving variance) survives the round trip.
Writes go to a temporary file in the same directory and are renamed into place, so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import Dict, List, Mapping

import numpy as np

from eatnas_tf.store import atomic

Weights = Dict[str, List[np.ndarray]]


def save(path: str, weights: Mapping[str, List[np.ndarray]]) -> str:
    """Writes `weights` to `path` atomically; returns `path`."""
    arrays = {f"{name}/{i}": np.asarray(w) for name, ws in weights.items()
              for i, w in enumerate(ws)}
    # Written through a file object: the temp name does not end in ".npz", so
    # `RunDir.prune_weights` never takes a file being written for a stale one.
    with atomic.temp_path(path) as tmp, open(tmp, "xb") as f:
        np.savez(f, **arrays)
    return path


def load(path: str) -> Weights:
    """Reads a weights file written by `save`.

    Raises:
      FileNotFoundError: no file at `path`.
      ValueError: the file is truncated, corrupt or not a weights file (names `path`).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            items = {k: z[k] for k in z.files}
        out: Dict[str, Dict[int, np.ndarray]] = {}
        for key, arr in items.items():
            name, sep, idx = key.rpartition("/")
            if not sep:
                raise ValueError(f"key {key!r} is not 'layer/index'")
            out.setdefault(name, {})[int(idx)] = arr
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as e:
        raise ValueError(
            f"weights file {path} is unreadable ({type(e).__name__}: {e})") from None
    for name, ws in out.items():
        if sorted(ws) != list(range(len(ws))):
            raise ValueError(f"weights file {path}: layer {name!r} has tensors {sorted(ws)}")
    return {name: [ws[i] for i in range(len(ws))] for name, ws in out.items()}
