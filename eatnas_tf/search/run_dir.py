"""The run directory of a search (DESIGN.md §4) and its crash-safe writes.

    DIR/candidates.jsonl   one JSON object per evaluated candidate, appended and fsynced
                           (a kill -9 can only leave a partial last line, which is dropped
                           on the next start: that candidate is evaluated again)
    DIR/state.json         search state after the last candidate (temp file + rename),
                           with a checksum; the previous good copy is kept as state.json.bak
    DIR/config.json        the settings the run was started with (a resume must match)
    DIR/weights/NNNNN.npz  trained weights of candidates that may still become parents
    DIR/tb/                TensorBoard: one sub-directory per candidate + the HParams table
    DIR/report.json, DIR/report.md, DIR/plots/   written when the search finishes

The candidates file is the source of truth: a resumed search replays it (see
`search.runner`), so the state file is a convenience for humans and the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Dict, List, Optional

from eatnas_tf import cli

CANDIDATES = "candidates.jsonl"
STATE = "state.json"
CONFIG = "config.json"
WEIGHTS = "weights"
TB = "tb"


class RunDirError(cli.UsageError):
    """The run directory cannot be used as asked (one clear line, exit status 2)."""


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes `obj` to `path` via a temp file in the same directory and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_plain)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _plain(v):
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _checksum(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_plain).encode()).hexdigest()[:16]


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str):
        self.path = path
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunDirError(f"run_dir: {path} exists and is not a directory; allowed: a new "
                              "or an existing run directory")
        os.makedirs(path, exist_ok=True)
        self._candidates: Optional[List[Dict[str, Any]]] = None

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    # -- candidates -----------------------------------------------------------------------
    def candidates(self) -> List[Dict[str, Any]]:
        """Every stored record, in order; a partial last line (killed mid-write) is cut off."""
        if self._candidates is None:
            self._candidates = self._read_candidates()
        return list(self._candidates)

    def _read_candidates(self) -> List[Dict[str, Any]]:
        path = self.file(CANDIDATES)
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            data = f.read()
        records, good = [], 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no newline")
                records.append(json.loads(line))
                good += len(line)
            except ValueError:
                print(f"warning: {path}: dropping a partial record after {len(records)} "
                      "candidates (interrupted write); it will be evaluated again",
                      file=sys.stderr)
                with open(path, "r+b") as f:
                    f.truncate(good)
                break
        return records

    def append(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """Appends one record durably; returns it as it reads back (plain JSON values)."""
        line = json.dumps(record, sort_keys=True, default=_plain)
        with open(self.file(CANDIDATES), "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        stored = json.loads(line)
        if self._candidates is None:
            self._candidates = self._read_candidates()
        else:
            self._candidates.append(stored)
        return stored

    # -- state ----------------------------------------------------------------------------
    def write_state(self, state: Dict[str, Any]) -> None:
        path = self.file(STATE)
        if os.path.exists(path) and self.read_state() is not None:
            os.replace(path, path + ".bak")
        write_json_atomic(path, {"checksum": _checksum(state), "state": state})

    def read_state(self) -> Optional[Dict[str, Any]]:
        """The last good state (falls back to state.json.bak with a warning), or None."""
        for path in (self.file(STATE), self.file(STATE) + ".bak"):
            if not os.path.exists(path):
                continue
            try:
                with open(path) as f:
                    obj = json.load(f)
                if obj.get("checksum") == _checksum(obj.get("state")):
                    return obj["state"]
                raise ValueError("checksum mismatch")
            except (ValueError, OSError, AttributeError) as e:
                print(f"warning: {path} is corrupt ({e}); using the previous copy",
                      file=sys.stderr)
        return None

    # -- config ---------------------------------------------------------------------------
    def check_config(self, config: Dict[str, Any], allow_change: bool = False) -> None:
        """Stores `config` on the first start; on a resume refuses different settings
        (naming the first differing key) unless `allow_change`."""
        path = self.file(CONFIG)
        config = json.loads(json.dumps(config, sort_keys=True, default=_plain))
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            if diff and not allow_change:
                k = diff[0]
                raise RunDirError(
                    f"{self.path} was started with {k}={old.get(k)!r}, now {k}={config.get(k)!r}; "
                    "use the same flags to resume, another --run_dir, or --allow_flag_change")
            if not diff:
                return
        write_json_atomic(path, config)

    # -- weights --------------------------------------------------------------------------
    def weights_path(self, cid: int) -> str:
        return self.file(WEIGHTS, f"{cid:05d}.npz")

    def prune_weights(self, keep) -> int:
        """Deletes stored weights of candidates not in `keep` (ids); returns how many."""
        d = self.file(WEIGHTS)
        if not os.path.isdir(d):
            return 0
        keep = {f"{i:05d}.npz" for i in keep}
        n = 0
        for name in os.listdir(d):
            if name.endswith(".npz") and name not in keep:
                os.remove(os.path.join(d, name))
                n += 1
        return n
