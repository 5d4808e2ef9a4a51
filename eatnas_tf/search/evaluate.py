"""One candidate evaluation: a pure function of (architecture, parent weights, training
config, seed), so an executor can run it in this process, a worker process or a Ray task.

    result = evaluate(EvalRequest(arch=spec, space=get_space("fashion_mnist"), data=data_cfg,
                                  train=train_cfg, seed=7,
                                  parent_weights="run/weights/00003.npz", parent_arch=parent))
    result.record.val_acc, result.record.inherit      # a `CandidateRecord`

The request holds only frozen dataclasses, plain values and paths (picklable). The child is built,
inherits the parent's weights layer by layer (paper §3.4, `model.sharing`), trains under
the trainer's distribution strategy and is validated; its trained weights are written to
`save_weights` (for its own children later) before the record is returned. A failure
(diverged loss, out of memory, any exception) is returned as a `failed` record with the
reason in one line, never raised: the search goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import MacroSpec, count
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.data.datasets import DataBundle, DataConfig, load_data
from eatnas_tf.errors import one_line
from eatnas_tf.model import sharing, weights_io
from eatnas_tf.model.builder import build_model
from eatnas_tf.record import CandidateRecord, Status
from eatnas_tf.train import trainer as trainer_lib
from eatnas_tf.train.config import TrainConfig

Weights = Dict[str, List[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class EvalRequest:
    """Attributes:
      arch: the candidate (`ArchSpec`; EcoNAS' proxies pass their reduced one).
      space: the search space (macro strides, stem/head, channel mode); a named one or
        one derived from the data (`arch.auto_space`).
      data, train: data and training settings (`train.seed` is replaced by `seed`).
      seed: initialisation / dropout seed of this candidate.
      parent_weights: weights file (`model.weights_io`) to inherit from, or None.
      parent_arch: the parent's `ArchSpec` (None: share every name-matching layer).
      save_weights: where to write the trained weights (None: not kept).
      log_dir: TensorBoard directory of this candidate (None: no logs).
      checkpoint_dir: continue from / keep a per-epoch checkpoint here (EcoNAS promotion).
      build_overrides: `MacroSpec` fields to replace (e.g. EcoNAS' channel proxies use
        their own arch; the input size always comes from the data).
    """

    arch: ArchSpec
    space: space_lib.SearchSpace
    data: DataConfig
    train: TrainConfig
    seed: int = 0
    parent_weights: Optional[str] = None
    parent_arch: Optional[ArchSpec] = None
    save_weights: Optional[str] = None
    log_dir: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    build_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvalResult:
    """The candidate's metrics (`record`: the runner adds lineage and score) and, when
    asked for, its trained weights."""

    record: CandidateRecord
    weights: Optional[Weights] = None


def failed_result(req: EvalRequest, reason: str) -> EvalResult:
    """The `failed` result of `req` (an exception, a diverged loss, a dead worker)."""
    return EvalResult(record=CandidateRecord.failure(reason, seed=req.seed,
                                                     epochs=req.train.epochs))


@functools.lru_cache(maxsize=4)
def cached_data(cfg: DataConfig) -> DataBundle:
    """One data bundle per config and process: candidates share the pipelines."""
    return load_data(cfg)


def macro_for(space: space_lib.SearchSpace, data: DataBundle, **overrides) -> MacroSpec:
    h, _, c = data.image_shape
    return space.macro.with_(image_size=h, in_channels=c, num_classes=data.num_classes,
                             **overrides)


def evaluate(req: EvalRequest, *, verbose: int = 0, strategy=None,
             keep_weights: bool = False) -> EvalResult:
    """Trains and validates one candidate; see the module docstring."""
    t0 = time.perf_counter()
    space = req.space
    arch = req.arch
    cost = None
    try:
        data = cached_data(req.data)
        macro = macro_for(space, data, **req.build_overrides)
        cost = count(arch, macro)
        parent = weights_io.load(req.parent_weights) if req.parent_weights else None

        def prepare(model):
            if parent is None:
                return None
            return sharing.inherit(model, arch, parent, req.parent_arch)

        result = trainer_lib.train(
            lambda: build_model(arch, macro, fused_bn=req.train.fused_bn), data,
            req.train.replace(seed=req.seed),
            prepare_fn=prepare, log_dir=req.log_dir, checkpoint_dir=req.checkpoint_dir,
            keep_checkpoint=req.checkpoint_dir is not None, verbose=verbose, strategy=strategy)
        r = result.record
        report = result.prepare_result
        record = CandidateRecord(
            status=Status.OK, seed=req.seed, epochs=req.train.epochs, params=cost.params,
            madds=cost.madds, layers=cost.layers, val_acc=r["val_acc"],
            val_loss=r["val_loss"],
            train_loss=r["train_loss"][-1] if r["train_loss"] else None,
            train_acc=r["train_acc"][-1] if r["train_acc"] else None,
            val_acc_curve=r["val_acc_curve"], images_per_s=r["images_per_s"],
            train_s=r["train_s"], tracing_s=r["tracing_s"], steps=r["steps"],
            num_train=r["num_train"], resumed_from_epoch=r["resumed_from_epoch"],
            inherit=report.as_dict() if report is not None else None,
            inherit_summary=report.summary() if report is not None else None)
        if req.save_weights:
            os.makedirs(os.path.dirname(req.save_weights) or ".", exist_ok=True)
            weights_io.save(req.save_weights, result.weights)
        weights = result.weights if keep_weights else None
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed record
        record = failed_result(req, one_line(e)).record
        if cost is not None:
            record = record.replace(params=cost.params, madds=cost.madds, layers=cost.layers)
        if verbose > 1:
            traceback.print_exc()
        weights = None
    return EvalResult(record=record.replace(wall_s=time.perf_counter() - t0), weights=weights)
