"""TensorBoard HParams for a search or retraining run (HParams plugin, not Keras 2's callback).

Layout: the run root holds the experiment config (which hparams and metrics exist); every
candidate is one session in its own sub-directory, holding its hparams and its final
metrics as scalars at step 0 (the trainer's per-epoch scalars may live in the same
directory's `train/` and `validation/`):

    tb/                       write_config(tb, hparam_names=..., metrics=...)
    tb/c0007/                 log_candidate(tb/c0007, arch_hparams(arch) | {...}, record)

    from eatnas_tf.train import hparams
    hparams.write_config(tb_root)
    hparams.log_candidate(os.path.join(tb_root, cid), hparams.arch_hparams(arch),
                          {"val_acc": 0.71, "params": 48770}, trial_id=cid)
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from eatnas_tf.arch import codec
from eatnas_tf.arch.spec import BLOCK_FIELDS, NUM_BLOCKS, ArchSpec

DEFAULT_METRICS = ("val_acc", "val_loss", "test_acc", "params", "madds", "latency_ms", "score",
                   "wall_s", "images_per_s")  # latency_ms: predicted (--latency_table)


def arch_hparams(arch: ArchSpec) -> Dict[str, Any]:
    """Flat architecture fields: `arch` (text form), `b1_op` ... `b7_depth`, `layers`,
    `total_expansion` — the values the HParams table and parallel-coordinates view show."""
    if not isinstance(arch, ArchSpec):  # another encoding (EPNAS Table 2 layer lists)
        return arch.hparams()
    out: Dict[str, Any] = {"arch": codec.to_text(arch)}
    for i, b in enumerate(arch.blocks, start=1):
        for f in BLOCK_FIELDS:
            out[f"b{i}_{f}"] = getattr(b, f)
    out["layers"] = int(arch.num_layers)
    out["total_expansion"] = float(arch.total_expansion)
    return out


def default_hparam_names() -> list:
    return (["arch"] + [f"b{i}_{f}" for i in range(1, NUM_BLOCKS + 1) for f in BLOCK_FIELDS]
            + ["layers", "total_expansion"])


def _hparam(name: str) -> hp.HParam:
    if name.endswith("_op"):
        return hp.HParam(name, hp.Discrete(["sep", "mb3", "mb6"]))
    if name.endswith("_skip"):
        return hp.HParam(name, hp.Discrete([False, True]))
    return hp.HParam(name)


def write_config(run_root: str, hparam_names: Optional[Sequence[str]] = None,
                 metrics: Sequence[str] = DEFAULT_METRICS) -> None:
    """Writes the HParams experiment config at `run_root` (once per run; rewriting is harmless)."""
    names = list(hparam_names) if hparam_names is not None else default_hparam_names()
    os.makedirs(run_root, exist_ok=True)
    with tf.summary.create_file_writer(run_root).as_default():
        hp.hparams_config(hparams=[_hparam(n) for n in names],
                          metrics=[hp.Metric(m, display_name=m) for m in metrics])


def _plain(v):
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return str(v)


def log_candidate(session_dir: str, hparams: Mapping[str, Any], metrics: Mapping[str, Any],
                  trial_id: Optional[str] = None) -> None:
    """One HParams session: `hparams` (bool/int/float/str; others become strings) and the
    numeric entries of `metrics` as scalars at step 0 (None values are skipped)."""
    os.makedirs(session_dir, exist_ok=True)
    writer = tf.summary.create_file_writer(session_dir)
    with writer.as_default():
        hp.hparams({k: _plain(v) for k, v in hparams.items()},
                   trial_id=trial_id or os.path.basename(os.path.normpath(session_dir)))
        for k, v in metrics.items():
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                tf.summary.scalar(k, float(v), step=0)
    writer.close()


SEARCH_RUN = "search"  # tb/<stage>/search: the stage's curves over candidates


class SearchScalars:
    """A stage's progress as TensorBoard scalars, x axis = candidate index in the stage
    (1, 2, ...), in the run `<stage root>/search`:

      search/val_acc            the candidate's validation accuracy (failed: skipped)
      search/best_val_acc       best over the candidates evaluated so far
      search/mean_val_acc       mean over them
      population/quality        the population's quality Q (Eq. 3), when the strategy has a
      population/mean_acc       population (evolution) and this candidate changed it
      population/std_acc
      population/best_acc

    `add(record, history, write=False)` keeps the running figures of a replayed (resumed)
    candidate without writing it again: its points are in the earlier process' event file.
    """

    def __init__(self, stage_root: str):
        self.dir = os.path.join(stage_root, SEARCH_RUN)
        self.n = 0
        self.accs: list = []
        self.history_len = 0
        self.writer = None

    def add(self, record, history: Sequence[Mapping[str, Any]], write: bool = True) -> None:
        """`record`: the observed `CandidateRecord`; `history`: the strategy's history rows
        after observing it (`Strategy.history()`)."""
        self.n += 1
        acc = record.val_acc if record.ok else None
        if acc is not None:
            self.accs.append(float(acc))
        row = history[-1] if len(history) > self.history_len else None
        self.history_len = len(history)
        if not write:
            return
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.dir)
        with self.writer.as_default(step=self.n):
            if acc is not None:
                tf.summary.scalar("search/val_acc", float(acc))
            if self.accs:
                tf.summary.scalar("search/best_val_acc", max(self.accs))
                tf.summary.scalar("search/mean_val_acc", sum(self.accs) / len(self.accs))
            for k in ("quality", "mean_acc", "std_acc", "best_acc"):
                v = row.get(k) if row else None
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    tf.summary.scalar(f"population/{k}", float(v))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
