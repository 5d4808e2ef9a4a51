"""`LatencyTable`: measured per-layer latencies of one device, format and thread count.

The JSON file (format 1):

    {"format": 1, "tflite_format": "fp32", "threads": 1,
     "device": {"kind": "host", "platform": "Linux x86_64", "cpu": "...", ...},
     "litert": "ai-edge-litert 2.3.0", "runs": 100, "warmup": 10,
     "entries": {"layer|op=mb3|k=5|...": 0.0213, ...},     # median ms per signature
     "fit": {"constant_ms": ..., "n_models": 5, "residuals_ms": [...], ...} or null}

Entries are keyed by `LayerSig.key`. `lookup` measures an unseen signature on demand with
the table's timer (this host unless a timer for a device is given) and adds it; `save` is
atomic (temp file + `os.replace`, via `store.atomic`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Dict, Iterable, Optional

from eatnas_tf.latency import measure as measure_lib
from eatnas_tf.latency.signature import LayerSig
from eatnas_tf.store import atomic

FILE_FORMAT = 1


def file_name(sig: LayerSig) -> str:
    """A short file-system- and adb-safe name of a signature."""
    return f"{sig.kind}_{hashlib.sha1(sig.key.encode()).hexdigest()[:12]}"


class LatencyTable:
    """Layer signature → median milliseconds, for one (device, format, threads).

    Args:
      fmt: TFLite format of the timed layers (`measure.FORMATS`).
      threads: LiteRT threads.
      device: description of the measuring device (`measure.host_description()` default).
      timer: `f(tflite_bytes, name) -> ms` used for signatures not in the table (None: a
        `measure.HostTimer` with `threads`, `warmup`, `runs`).
      path: where `save()` writes (None: nowhere).
    """

    def __init__(self, fmt: str = "fp32", threads: int = 1, *, device: Optional[Dict] = None,
                 timer: Optional[Callable] = None, path: Optional[str] = None,
                 warmup: int = 10, runs: int = 100, litert: Optional[str] = None,
                 entries: Optional[Dict[str, float]] = None, fit: Optional[Dict] = None,
                 build_layer: Callable = measure_lib.layer_tflite):
        self.fmt = measure_lib.check_format(fmt)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: received {threads!r}; allowed values: an integer >= 1")
        self.threads, self.warmup, self.runs = threads, warmup, runs
        self._timer = timer
        self.device = dict(device) if device else (timer.describe() if hasattr(timer, "describe")
                                                   else measure_lib.host_description())
        self.litert = litert or measure_lib.litert_version()
        self.path = path
        self.entries: Dict[str, float] = dict(entries or {})
        self.fit = fit
        self.measured = 0  # signatures measured by this object (on demand or in bulk)
        self._build_layer = build_layer

    # -- lookup ---------------------------------------------------------------------------
    @property
    def timer(self) -> Callable:
        if self._timer is None:
            self._timer = measure_lib.HostTimer(self.threads, self.warmup, self.runs)
        return self._timer

    def __contains__(self, sig) -> bool:
        return _key(sig) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def measure(self, sig: LayerSig) -> float:
        """Builds, converts and times `sig`; stores and returns its median ms."""
        ms = float(self.timer(self._build_layer(sig, self.fmt), file_name(sig)))
        self.entries[sig.key] = round(ms, 5)
        self.measured += 1
        return self.entries[sig.key]

    def lookup(self, sig: LayerSig, measure: bool = True) -> float:
        """The entry of `sig`; measured on demand (and added) when missing.

        Raises:
          KeyError: missing and `measure` is False.
        """
        key = _key(sig)
        if key in self.entries:
            return self.entries[key]
        if not measure:
            raise KeyError(f"latency table: no entry for {key}")
        return self.measure(sig if isinstance(sig, LayerSig) else LayerSig.from_key(key))

    def measure_all(self, sigs: Iterable[LayerSig], save_every: int = 50,
                    progress: Optional[Callable[[int, LayerSig], None]] = None) -> int:
        """Measures every signature not yet in the table; saves every `save_every` new
        entries (a long build survives an interruption). Returns how many were measured."""
        n = 0
        for sig in sigs:
            if sig.key in self.entries:
                continue
            self.measure(sig)
            n += 1
            if progress:
                progress(n, sig)
            if self.path and n % save_every == 0:
                self.save()
        return n

    # -- file -----------------------------------------------------------------------------
    def to_json(self) -> Dict:
        return {"format": FILE_FORMAT, "tflite_format": self.fmt, "threads": self.threads,
                "device": self.device, "litert": self.litert, "warmup": self.warmup,
                "runs": self.runs, "entries": dict(sorted(self.entries.items())), "fit": self.fit}

    def save(self, path: Optional[str] = None) -> str:
        path = path or self.path
        if not path:
            raise ValueError("latency table: no path to save to")
        atomic.write_json(path, self.to_json(), indent=1)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str, timer: Optional[Callable] = None) -> "LatencyTable":
        """Reads a table written by `save`.

        Raises:
          ValueError: not a latency table file (one line naming the file and the field).
        """
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"latency_table: cannot read {path}: {e}") from None
        if not isinstance(d, dict) or d.get("format") != FILE_FORMAT or "entries" not in d:
            raise ValueError(f"latency_table: {path} is not a latency table (format "
                             f"{FILE_FORMAT} with 'entries')")
        return cls(d["tflite_format"], int(d["threads"]), device=d.get("device"), timer=timer,
                   path=path, warmup=int(d.get("warmup", 10)), runs=int(d.get("runs", 100)),
                   litert=d.get("litert"), entries={k: float(v) for k, v in d["entries"].items()},
                   fit=d.get("fit"))


def _key(sig) -> str:
    return sig.key if isinstance(sig, LayerSig) else str(sig)
