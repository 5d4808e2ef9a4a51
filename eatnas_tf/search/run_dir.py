"""The run directory of a search (docs/design.md §4) and its crash-safe writes.

    DIR/candidates.jsonl   one JSON object per evaluated candidate, appended and fsynced
                           (a kill -9 can only leave a partial last line, which is dropped
                           on the next start: that candidate is evaluated again)
    DIR/state.json         search state after the last candidate (temp file + rename),
                           with a checksum; the previous good copy is kept as state.json.bak
    DIR/config.json        the whole experiment config the run was started with, and every
                           change a resume was allowed to make (`check_config`):
                           {"format": 2, "config": {...}, "changes": [{"time", "changed"}]}
    DIR/weights/NNNNN.npz  trained weights of candidates that may still become parents
    DIR/tb/                TensorBoard: one sub-directory per candidate + the HParams table
    DIR/report.json, DIR/report.md, DIR/plots/   written when the search finishes

The candidates file is the source of truth: a resumed search replays it (see
`search.runner`), so the state file is a convenience for humans and the report.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from eatnas_tf import cli
from eatnas_tf.store import atomic
from eatnas_tf.store.jsonl import JsonlStore

CANDIDATES = "candidates.jsonl"
STATE = "state.json"
CONFIG = "config.json"
LEGACY_CONFIG = "config.legacy.json"
CONFIG_FORMAT = 2
MAX_LISTED_CHANGES = 6
WEIGHTS = "weights"
TB = "tb"


class RunDirError(cli.UsageError):
    """The run directory cannot be used as asked (one clear line, exit status 2)."""


def _checksum(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=atomic.to_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_ABSENT = object()


def config_diff(old: Dict[str, Any], new: Dict[str, Any],
                prefix: str = "") -> Dict[str, Tuple[Any, Any]]:
    """`{dotted key: (old, new)}` of every difference, sorted by key: nested dicts are
    compared key by key (`train.label_smoothing`), anything else whole (lists too). A key on
    one side only is a difference; its other side is `_ABSENT`. A group that is a dict on
    one side and not on the other (`retrain`: None → settings) is one difference."""
    out: Dict[str, Tuple[Any, Any]] = {}
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, _ABSENT), new.get(k, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(config_diff(a, b, f"{prefix}{k}."))
        elif a != b:  # `_ABSENT` equals nothing but itself
            out[f"{prefix}{k}"] = (a, b)
    return out


def _show(v: Any, limit: int = 40) -> str:
    if v is _ABSENT:
        return "(absent)"
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe_diff(diff: Dict[str, Tuple[Any, Any]]) -> str:
    items = [f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in diff.items()]
    text = ", ".join(items[:MAX_LISTED_CHANGES])
    if len(items) > MAX_LISTED_CHANGES:
        text += f" and {len(items) - MAX_LISTED_CHANGES} more"
    return text


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str):
        self.path = path
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunDirError(f"run_dir: {path} exists and is not a directory; allowed: a new "
                              "or an existing run directory")
        os.makedirs(path, exist_ok=True)
        self._store = JsonlStore(self.file(CANDIDATES), noun="candidates",
                                 hint="it will be evaluated again")

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    # -- candidates -----------------------------------------------------------------------
    def candidates(self) -> List[Dict[str, Any]]:
        """Every stored record, in order; a partial last line (killed mid-write) is cut off."""
        return self._store.read()

    def append(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """Appends one record durably; returns it as it reads back (plain JSON values)."""
        return self._store.append(record)

    # -- state ----------------------------------------------------------------------------
    def write_state(self, state: Dict[str, Any]) -> None:
        path = self.file(STATE)
        if os.path.exists(path) and self.read_state() is not None:
            os.replace(path, path + ".bak")
        atomic.write_json(path, {"checksum": _checksum(state), "state": state})

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
        """Stores the experiment `config` on the first start; on a resume compares it with
        the stored one, every field, and refuses any difference unless `allow_change`.

        Args:
          config: the whole experiment config as a nested JSON-able dict; nested dicts are
            compared by dotted key (`train.label_smoothing`), lists whole, and a key on one
            side only is a difference, so a field added to the config is covered at once.
          allow_change: accept a different config: config.json gets the new one and its
            `changes` list one entry `{"time": <ISO UTC>, "changed": {key: [old, new]}}`
            (None for a side where the key is absent).

        A config.json from an older version (a flat dict of flag values, no "format") cannot
        be compared: it is kept as config.legacy.json, the new config is stored and one
        warning line says so.

        Raises:
          RunDirError: the settings differ (one line naming every differing key with its old
            and new value), or config.json is unreadable or of a newer format.
        """
        path = self.file(CONFIG)
        config = json.loads(json.dumps(config, sort_keys=True, default=atomic.to_plain))
        if not os.path.exists(path):
            self._write_config(config, [])
            return
        try:
            stored = atomic.read_json(path)
        except (OSError, ValueError) as e:
            raise RunDirError(f"{path} is unreadable ({type(e).__name__}: {e}); allowed: the "
                              "config.json this run wrote, or another --run_dir") from None
        if not isinstance(stored, dict) or "format" not in stored:
            os.replace(path, self.file(LEGACY_CONFIG))
            print(f"warning: {path} was written by an older version (flag values, no format); "
                  f"the old run's settings could not be checked against this one's (kept as "
                  f"{LEGACY_CONFIG})", file=sys.stderr)
            self._write_config(config, [])
            return
        if stored["format"] != CONFIG_FORMAT:
            raise RunDirError(f"{path} has format {stored['format']!r}; allowed: "
                              f"{CONFIG_FORMAT} (written by a newer version?)")
        diff = config_diff(stored.get("config") or {}, config)
        if not diff:
            return
        if not allow_change:
            raise RunDirError(
                f"{self.path} was started with other settings: {_describe_diff(diff)}; resume "
                "with the same flags, use another --run_dir, or pass --allow_flag_change")
        change = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "changed": {k: [None if a is _ABSENT else a, None if b is _ABSENT else b]
                              for k, (a, b) in diff.items()}}
        self._write_config(config, list(stored.get("changes") or []) + [change])

    def _write_config(self, config: Dict[str, Any], changes: List[Dict[str, Any]]) -> None:
        atomic.write_json(self.file(CONFIG),
                          {"format": CONFIG_FORMAT, "config": config, "changes": changes})

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
