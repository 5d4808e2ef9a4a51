"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a fresh hidden temp file in the destination's directory (same
filesystem, so the rename is atomic), is flushed and fsynced, then `os.replace`d onto the
destination, and the directory is fsynced so the rename itself survives a power cut:

    atomic.write_json(run.file("state.json"), {"checksum": c, "state": state})
    with atomic.temp_path(png_path) as tmp:     # for libraries that write a file themselves
        fig.savefig(tmp, format="png")
    atomic.publish_dir(tmp_model_dir, model_dir)  # a whole directory, never overwriting

Temp files are opened with mode "x" (not `mkstemp`, whose files are 0600): they honour the
umask, so reports stay readable by whoever serves the run directory. Their names start with
"." and end with ".tmp" (plus `suffix`), so listings that look for "*.npz" or "*.json" do not
pick up a file being written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import uuid
from typing import Any, Iterator


def to_plain(v: Any) -> Any:
    """`json.dump(..., default=to_plain)`: numpy scalars and arrays (`.item()` / `.tolist()`),
    sets and tuples (lists), dataclasses (`asdict`), enums (their value).

    Raises:
      TypeError: any other type (what `json` would raise itself).
    """
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return dataclasses.asdict(v)
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    if hasattr(v, "tolist") and getattr(v, "ndim", 0) > 0:  # numpy array
        return v.tolist()
    if hasattr(v, "item"):  # numpy scalar / 0-d array
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _temp_name(path: str, suffix: str = "") -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    name = f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}"
    return os.path.join(directory, name)


def fsync_dir(directory: str) -> None:
    """fsyncs `directory` so a rename or a new entry in it is durable (no-op where the
    platform cannot open directories)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_bytes(path: str, data: bytes) -> str:
    """Writes `data` to `path` atomically (parent directories are created); returns `path`."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def write_text(path: str, text: str) -> str:
    """Writes `text` (UTF-8) to `path` atomically; returns `path`."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any, *, indent: int = 2, sort_keys: bool = True) -> str:
    """Writes `obj` as JSON to `path` atomically (`default=to_plain`); returns `path`.

    The text is built before the temp file is opened, so an object that does not serialise
    raises TypeError and leaves the old file as it was.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=to_plain)
    return write_text(path, text)


@contextlib.contextmanager
def temp_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yields a fresh temp path next to `path` for a library that writes a file itself
    (`np.savez`, `savefig`, a TFLite converter's bytes); when the block succeeds the file is
    fsynced and `os.replace`d onto `path`; when it raises, the temp file is deleted and
    `path` is left as it was.

    `suffix` is appended to the temp name for libraries that pick the format from it (or
    append one: `np.savez("x")` writes "x.npz", so pass ".npz" when giving it a name).
    """
    tmp = _temp_name(path, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_tree(root: str) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                _fsync_file(p)
        fsync_dir(dirpath)


def publish_dir(tmp_dir: str, final_dir: str) -> str:
    """Renames the fully written directory `tmp_dir` to `final_dir` (same filesystem);
    returns `final_dir`. Its files are fsynced first, so what is published is complete.

    Raises:
      FileExistsError: `final_dir` exists (it is never overwritten; a POSIX rename would
        silently replace an empty directory).
    """
    if os.path.lexists(final_dir):
        raise FileExistsError(f"{final_dir} exists; not overwriting it with {tmp_dir}")
    _fsync_tree(tmp_dir)
    os.rename(tmp_dir, final_dir)
    fsync_dir(os.path.dirname(os.path.abspath(final_dir)))
    return final_dir


def read_json(path: str) -> Any:
    """The JSON value stored in `path`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
