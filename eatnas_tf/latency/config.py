"""The latency table a search predicts with (`--latency_table`), as a frozen config (issue 16).

    cfg = LatencyConfig.from_table("latency_fp32.json")     # created (empty) if missing
    predict_ms(cfg, arch, macro)      # sum of the layers' entries + the table's fitted constant

`LatencyConfig` names the table file and what its numbers mean: TFLite format, LiteRT
threads, the measuring device and the fitted constant. It is part of `SearchConfig`, so
`DIR/config.json` stores it and a resumed run refuses another table (another device,
format, thread count or fit) unless `--allow_flag_change`. Its entries are not part of it:
a table grows while a search runs (unseen layers are measured on this host and added), and
a stored candidate's `latency_ms` is never recomputed on resume.

One `Predictor` per table file and process (`predictor_for`) serves the runner (each
record's `latency_ms`) and the strategies (EPNAS' `latency` constraint); new entries are
saved to the file right after they are measured, so an interrupted search keeps them.
Only a host table grows on demand: a layer missing from a device (adb) table is an error
naming it, never a host timing mixed into a phone's table.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional

from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.latency.predictor import Predictor
from eatnas_tf.latency.table import LatencyTable


def describe_device(device: Dict) -> str:
    """One line naming a table's device: `host: AMD EPYC (Linux x86_64, 2 cores)`."""
    d = dict(device or {})
    kind = d.pop("kind", "unknown")
    head = d.pop("cpu", None) or d.pop("model", None) or "unknown"
    rest = ", ".join(f"{v} cores" if k == "cores" else str(v) for k, v in sorted(d.items()))
    return f"{kind}: {head}" + (f" ({rest})" if rest else "")


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """Attributes:
      table: path of the table file (`python -m eatnas_tf.latency_table`).
      fmt: its TFLite format (fp32, fp16, int8).
      threads: its LiteRT thread count.
      device: its device, in one line (`describe_device`).
      constant_ms, scale, per_layer_ms, exponent: its fit (0, 1, 0, 1 when not fitted).
    """

    table: str
    fmt: str = "fp32"
    threads: int = 1
    device: str = ""
    constant_ms: float = 0.0
    scale: float = 1.0
    per_layer_ms: float = 0.0
    exponent: float = 1.0

    @classmethod
    def of(cls, table: LatencyTable) -> "LatencyConfig":
        fit = table.fit or {}
        return cls(table=os.path.abspath(table.path), fmt=table.fmt, threads=table.threads,
                   device=describe_device(table.device),
                   constant_ms=float(fit.get("constant_ms", 0.0)),
                   scale=float(fit.get("scale", 1.0)),
                   per_layer_ms=float(fit.get("per_layer_ms", 0.0)),
                   exponent=float(fit.get("exponent", 1.0)))

    @classmethod
    def from_table(cls, path: str, fmt: Optional[str] = None, threads: Optional[int] = None,
                   create: bool = True) -> "LatencyConfig":
        """The config of the table at `path`; a missing file is created empty (this host,
        `fmt` or fp32, `threads` or 1) when `create`, and filled on demand by the search.

        Raises:
          ValueError: unreadable file, or `fmt` / `threads` other than the file's (one line).
        """
        if not path:
            raise ValueError("latency_table: received an empty path; allowed values: a JSON "
                             "file path")
        if os.path.exists(path):
            table = LatencyTable.load(path)
            for name, want, have in (("latency_format", fmt, table.fmt),
                                     ("latency_threads", threads, table.threads)):
                if want is not None and want != have:
                    raise ValueError(f"{name}: received {want!r}, but {path} was measured "
                                     f"with {have!r}; allowed values: {have!r}, or a new "
                                     "--latency_table")
        elif create:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            table = LatencyTable(fmt or "fp32", threads or 1, path=path)
            table.save()
        else:
            raise ValueError(f"latency_table: {path} does not exist; allowed values: a table "
                             "written by python -m eatnas_tf.latency_table")
        return cls.of(table)

    def describe(self) -> Dict:
        return dataclasses.asdict(self)


_PREDICTORS: Dict[str, Predictor] = {}


def predictor_for(cfg: LatencyConfig) -> Predictor:
    """The process's predictor over `cfg.table` (loaded once; unseen layers are measured on
    this host with the table's format and threads and added).

    Raises:
      ValueError: the file now holds another format, threads, device or fit than `cfg`.
    """
    key = os.path.abspath(cfg.table)
    pred = _PREDICTORS.get(key)
    if pred is None:
        if not os.path.exists(key):  # removed since the config was made: start it again
            os.makedirs(os.path.dirname(key), exist_ok=True)
            LatencyTable(cfg.fmt, cfg.threads, path=key).save()
        table = LatencyTable.load(key)
        # a device table (adb) is never extended with this host's timings
        pred = Predictor(table, measure_missing=(table.device or {}).get("kind") == "host")
        now = LatencyConfig.of(pred.table)
        if dataclasses.replace(now, table=cfg.table) != cfg:
            diff = [f"{f.name} {getattr(cfg, f.name)!r} -> {getattr(now, f.name)!r}"
                    for f in dataclasses.fields(cfg) if f.name != "table"
                    and getattr(cfg, f.name) != getattr(now, f.name)]
            raise ValueError(f"latency_table: {cfg.table} changed since the search started "
                             f"({'; '.join(diff)}); allowed: the table the run was started with")
        _PREDICTORS[key] = pred
    return pred


def predict_ms(cfg: LatencyConfig, arch: ArchSpec, macro: MacroSpec) -> float:
    """Predicted batch-1 latency of `arch` in ms (4 decimals); saves the table when layers
    were measured for it."""
    pred = predictor_for(cfg)
    before = pred.table.measured
    try:
        ms = pred.predict_ms(arch, macro)
    except KeyError as e:
        raise ValueError(f"{e.args[0]} ({cfg.table} is a {cfg.device} table: extend it "
                         "there with python -m eatnas_tf.latency_table)") from None
    if pred.table.measured != before:
        pred.table.save()
    return round(float(ms), 4)
