"""An append-only JSON-lines file that survives a kill -9 in the middle of a write.

Each `append` writes one line (`sort_keys`, `default=atomic.to_plain`) and fsyncs it, so a
crash can only leave a partial *last* line. `read` returns every complete line; a partial
last line is cut off with one warning on stderr and the file is truncated to the good
prefix, so the next `append` starts on a clean line:

    store = JsonlStore(run.file("candidates.jsonl"))
    for rec in store.read(): ...
    stored = store.append({"id": 3, "val_acc": np.float32(0.91)})   # plain JSON values back

The records are cached after the first read (one process writes a store at a time).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

from eatnas_tf.store.atomic import to_plain


class JsonlStore:
    """One append-only JSON-lines file; see the module docstring."""

    def __init__(self, path: str, *, noun: str = "records", hint: str = ""):
        """`noun` and `hint` word the partial-line warning ("... after 3 candidates
        (interrupted write); it will be evaluated again")."""
        self.path = path
        self._noun = noun
        self._hint = hint
        self._records: Optional[List[Dict[str, Any]]] = None

    def read(self) -> List[Dict[str, Any]]:
        """Every complete record, in order (a copy of the list: callers may change it)."""
        if self._records is None:
            self._records = self._load()
        return list(self._records)

    def _load(self) -> List[Dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            data = f.read()
        records: List[Dict[str, Any]] = []
        good = 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no newline")
                records.append(json.loads(line))
                good += len(line)
            except ValueError:
                hint = f"; {self._hint}" if self._hint else ""
                print(f"warning: {self.path}: dropping a partial record after {len(records)} "
                      f"{self._noun} (interrupted write){hint}", file=sys.stderr)
                with open(self.path, "r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
                break
        return records

    def append(self, obj: Any) -> Dict[str, Any]:
        """Appends `obj` as one line, durably; returns it as it reads back (plain JSON)."""
        if self._records is None:  # cut a partial last line off before writing after it
            self._records = self._load()
        line = json.dumps(obj, sort_keys=True, default=to_plain)
        stored = json.loads(line)
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._records.append(stored)
        return stored

    def __len__(self) -> int:
        if self._records is None:
            self._records = self._load()
        return len(self._records)
