"""`CandidateRecord`: one evaluated candidate, as stored in `DIR/candidates.jsonl`.

Every writer builds one (`evaluate` the metrics, the runner the lineage and the score, a
worker death `CandidateRecord.failure`), every reader gets one back
(`CandidateRecord.from_json`), so the file has one shape for every candidate:

    rec = CandidateRecord.failure(reason="ValueError: loss is NaN", seed=7, epochs=1)
    rec = dataclasses.replace(rec, id=3, stage="search", arch=text, hash=h)
    line = json.dumps(rec.to_json());  CandidateRecord.from_json(json.loads(line)) == rec

The architecture is stored in its text form (docs/design.md §2): the record is the run's
history, readable without the code; `spec(space)` turns it back into an `ArchSpec`.
Keys of older files that this class does not know are kept in `extra` and written back
unchanged, so old `candidates.jsonl` files still load and round-trip.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from eatnas_tf.arch import codec


class Status(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class CandidateRecord:
    """Attributes:
      id: position in the run's candidates file (0, 1, ...).
      stage: name of the search stage that proposed it.
      arch: text form of the architecture.
      hash: canonical hash of the architecture (`codec.canonical_hash`).
      status: ok, or failed with `reason` (one line).
      origin: how the strategy made it ("random", "mutation", "offspring", "promote2", ...).
      parent: id of the candidate whose weights it inherited from (None: none).
      info: the strategy's notes (e.g. the tournament's removed candidate).
      seed: initialisation seed; epochs: epochs trained up to (a continuation included).
      params, madds, layers: cost of the model actually trained.
      val_acc, val_loss, train_acc, train_loss, val_acc_curve: the trainer's metrics.
      images_per_s, train_s, tracing_s, steps, num_train: how the training went.
      resumed_from_epoch: epochs done before this evaluation (continued checkpoint).
      inherit, inherit_summary: `model.sharing.InheritReport` as a dict / one line.
      parent_weights: weights file inherited from (None: none).
      resource: the Eq. 1 cost sub-objective's value; score: Eq. 1 (None when failed).
      latency_ms: predicted batch-1 latency of the architecture from the search's latency
        table (`--latency_table`, `eatnas_tf.latency`; None without one).
      wall_s: wall time of the evaluation.
      duplicate_of: id of the earlier record of the same architecture whose result this
        one reuses (never trained twice).
      checkpoint, continue_from: kept per-epoch checkpoint and the record it continued
        (EcoNAS promotions).
      worker_retries: worker deaths survived before this result (subprocess executor).
      extra: keys this class does not know (older files, notes like `winner`).
    """

    id: Optional[int] = None
    stage: Optional[str] = None
    arch: Optional[str] = None
    hash: Optional[str] = None
    status: Status = Status.FAILED
    origin: Optional[str] = None
    parent: Optional[int] = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed: Optional[int] = None
    epochs: Optional[int] = None
    params: Optional[int] = None
    madds: Optional[int] = None
    layers: Optional[int] = None
    val_acc: Optional[float] = None
    val_loss: Optional[float] = None
    train_acc: Optional[float] = None
    train_loss: Optional[float] = None
    val_acc_curve: Optional[Tuple[float, ...]] = None
    images_per_s: Optional[float] = None
    train_s: Optional[float] = None
    tracing_s: Optional[float] = None
    steps: Optional[int] = None
    num_train: Optional[int] = None
    resumed_from_epoch: Optional[int] = None
    inherit: Optional[Mapping[str, Any]] = None
    inherit_summary: Optional[str] = None
    parent_weights: Optional[str] = None
    resource: Optional[float] = None
    score: Optional[float] = None
    latency_ms: Optional[float] = None
    reason: Optional[str] = None
    wall_s: float = 0.0
    duplicate_of: Optional[int] = None
    checkpoint: Optional[str] = None
    continue_from: Optional[int] = None
    worker_retries: Optional[int] = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    # Written even when None (the file's fixed columns); the others only when set.
    ALWAYS: ClassVar[Tuple[str, ...]] = (
        "id", "stage", "arch", "hash", "status", "origin", "parent", "info", "seed", "epochs",
        "params", "madds", "layers", "val_acc", "inherit", "inherit_summary",
        "parent_weights", "resource", "score", "reason", "wall_s")

    def __post_init__(self):
        object.__setattr__(self, "status", Status(self.status))
        if self.val_acc_curve is not None:
            object.__setattr__(self, "val_acc_curve", tuple(self.val_acc_curve))

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def failure(cls, reason: str, **fields) -> "CandidateRecord":
        """The one shape of a failed candidate: status failed, the reason, no metrics."""
        return cls(status=Status.FAILED, reason=reason, **fields)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CandidateRecord":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = dict(d.get("extra") or {})
        extra.update({k: v for k, v in d.items() if k not in names and k != "extra"})
        return cls(**known, extra=extra)

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is None and f.name not in self.ALWAYS:
                continue
            if f.name == "status":
                v = v.value
            elif f.name == "val_acc_curve":
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        out.update(self.extra)
        return out

    def replace(self, **changes) -> "CandidateRecord":
        return dataclasses.replace(self, **changes)

    # -- derived ------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def scored(self) -> bool:
        """Ok with a score: may join a population."""
        return self.ok and self.score is not None

    @property
    def trained(self) -> bool:
        """Trained here (not a reused duplicate)."""
        return self.duplicate_of is None

    @property
    def candidate_epochs(self) -> int:
        """Epochs this record trained: a continuation counts only the epochs after the one
        it resumed from; a duplicate trained none."""
        if not self.trained:
            return 0
        return (self.epochs or 0) - (self.resumed_from_epoch or 0)

    def metric(self, name: str) -> Optional[float]:
        """A cost or quality metric by name (`params`, `madds`, `latency` (= `latency_ms`),
        `val_acc`, or an `extra` key)."""
        if name == "latency":
            name = "latency_ms"
        if name in _FIELDS and name != "extra":
            return getattr(self, name)
        return self.extra.get(name)

    def spec(self, space):
        """The architecture as an `ArchSpec` of `space` (its stem/head/channel defaults)."""
        return codec.parse_arch(self.arch, **space.arch_defaults())


_FIELDS = frozenset(f.name for f in dataclasses.fields(CandidateRecord))


def load(rows: List[Mapping[str, Any]]) -> List[CandidateRecord]:
    """Records from the JSON objects of a candidates file."""
    return [CandidateRecord.from_json(r) for r in rows]
