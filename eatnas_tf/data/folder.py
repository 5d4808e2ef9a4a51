"""`folder:DIR`: one sub-folder per class, the layout `keras.utils.image_dataset_from_directory`
and MediaPipe Model Maker read.

    DIR/cat/0001.jpg  DIR/cat/more/0002.png  DIR/dog/a.bmp ...   (one pool, cut by splits.py)
    DIR/train/cat/... DIR/test/cat/... [DIR/val|validation/cat/...]   (given splits)

The given-splits layout is used when every sub-folder of DIR is one of train, val,
validation, test, `train` exists and holds folders. Class names are the sorted class
folder names (the union over the given splits). Files are found recursively; names
starting with "." are ignored. Files whose extension is not one of `images.IMAGE_EXTENSIONS`
and zero-byte files are bad files (skipped and reported); decoding failures are found by the
scan (images.py).

Order rule: examples are ordered by their path inside the class folder, then by class
name (then by split). Files named by one running index over all classes therefore keep
that order (this is how a folder reproduces a built-in dataset's order exactly).
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Tuple

from eatnas_tf.data.images import IMAGE_EXTENSIONS

SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclasses.dataclass
class Listing:
    class_names: Tuple[str, ...]
    ids: List[str]                # path relative to DIR, "/"-separated
    paths: List[str]              # absolute paths
    labels: List[int]
    given: Optional[List[str]]    # "train" / "val" / "test" per example (given splits) or None
    bad: List[str]                # "path (reason)"


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _subdirs(d: str) -> List[str]:
    return sorted(n for n in os.listdir(d) if _visible(n) and os.path.isdir(os.path.join(d, n)))


def _files(d: str) -> List[str]:
    """Paths of the visible files under d relative to d, recursively, sorted."""
    out = []
    for root, dirs, files in os.walk(d, followlinks=True):
        dirs[:] = sorted(x for x in dirs if _visible(x))
        rel = os.path.relpath(root, d)
        for f in files:
            if _visible(f):
                out.append(f if rel == "." else os.path.join(rel, f).replace(os.sep, "/"))
    return sorted(out)


def list_folder(root: str, spec: str) -> Listing:
    """The examples of `folder:root` (no decoding yet).

    Raises:
      ValueError: a missing directory, fewer than two class folders, an empty class folder.
    """
    if not os.path.isdir(root):
        raise ValueError(f"dataset: {spec}: no such directory: {root}")
    top = _subdirs(root)
    split_layout = (bool(top) and "train" in top and all(t in SPLIT_DIRS for t in top)
                    and bool(_subdirs(os.path.join(root, "train"))))
    parts = [(SPLIT_DIRS[t], t) for t in top] if split_layout else [(None, "")]
    classes = sorted({c for _, d in parts for c in _subdirs(os.path.join(root, d))})
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise ValueError(f"dataset: {spec}: found {len(classes)} class folder(s) ({found}); "
                         "needs at least 2 sub-folders of images, one per class")
    rows = []  # (path in class folder, class, split dir, label, part)
    bad = []
    for part, d in parts:
        for label, c in enumerate(classes):
            cdir = os.path.join(root, d, c)
            if not os.path.isdir(cdir):
                continue
            files = _files(cdir)
            if not files and part in (None, "train"):
                raise ValueError(f"dataset: {spec}: class folder {os.path.join(d, c) or c!r} "
                                 "is empty; every class needs images")
            for f in files:
                path = os.path.join(cdir, f)
                rel = "/".join(x for x in (d, c, f) if x)
                if not f.lower().endswith(IMAGE_EXTENSIONS):
                    bad.append(f"{rel} (not an image file)")
                elif os.path.getsize(path) == 0:
                    bad.append(f"{rel} (empty file)")
                else:
                    rows.append((f, c, d, label, part, rel, path))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return Listing(class_names=tuple(classes), ids=[r[5] for r in rows], paths=[r[6] for r in rows],
                   labels=[r[3] for r in rows],
                   given=[r[4] for r in rows] if split_layout else None, bad=bad)
