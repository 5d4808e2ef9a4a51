"""Versioned publishing of an export: a hidden temp dir under EXPORT_DIR, renamed to
`EXPORT_DIR/<unix-time>/` when complete, never overwriting anything.

    base = prepare_export_dir("out")
    with staging(base) as tmp:          # removed again if the block raises
        ...write files into tmp...
        final = publish(tmp, base, next_version(base))

The version is the current unix time, or the next free integer when that name is taken
(two exports in the same second, or a file of that name). TF Serving ignores the
dot-prefixed temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from typing import Iterator, List, Optional

from eatnas_tf.store import atomic
from export.plan import ExportError

TMP_PREFIX = ".tmp-export-"


def prepare_export_dir(export_dir: str) -> str:
    """Creates `export_dir` if needed; raises ExportError if it cannot hold an export."""
    if not export_dir:
        raise ExportError("export_dir: received an empty path; allowed values: a writable "
                          "directory")
    path = os.path.abspath(export_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExportError(f"export_dir: {export_dir} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ExportError(f"export_dir: cannot create {export_dir} ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExportError(f"export_dir: {export_dir} is not writable")
    return path


def list_versions(export_dir: str) -> List[int]:
    """The complete version dirs under `export_dir` (numeric names), ascending."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir)
                  if n.isdigit() and os.path.isdir(os.path.join(export_dir, n)))


def _now() -> float:
    """The clock versions are named by (a seam for tests)."""
    return time.time()


def next_version(export_dir: str, now: Optional[float] = None) -> int:
    """The current unix time, or the next integer after it that names no existing entry."""
    v = int(_now() if now is None else now)
    while os.path.lexists(os.path.join(export_dir, str(v))):
        v += 1
    return v


@contextlib.contextmanager
def staging(base: str) -> Iterator[str]:
    """A fresh hidden temp dir in `base`; deleted when the block raises (whatever was
    published by then has left it)."""
    try:
        tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base)
    except OSError as e:
        raise ExportError(f"export_dir: cannot write in {base} ({e.strerror})") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: str, export_dir: str, version: int) -> str:
    """Renames the finished temp dir to `export_dir/version`; never replaces anything."""
    final = os.path.join(export_dir, str(version))
    try:
        return atomic.publish_dir(tmp, final)
    except FileExistsError:  # raced with another exporter: never overwrite
        raise ExportError(f"export_dir: version {final} appeared during the export") from None
