"""Full retraining of one architecture (paper §4.1 "evaluation", §4.2 retraining).

`retrain(arch, space, data_cfg, train_cfg, out_dir)` trains on the whole train split
(`split="final"`), checkpoints every epoch under `out_dir/checkpoint/` and resumes from
it when rerun, evaluates test accuracy, and writes:

    out_dir/model/         `eatnas_tf.model.artifact` (model.keras + meta.json), the model
                           *without* the auxiliary tower (training-only), ready for export
    out_dir/retrain.json   the metrics record + arch, space, data and train settings
    out_dir/tb/            TensorBoard scalars and one HParams session

A finished `out_dir` (retrain.json and model/ present) is not trained again: the stored
record is returned.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from eatnas_tf.arch import codec
from eatnas_tf.arch.cost import count
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.data.datasets import DataConfig, load_data
from eatnas_tf.model import artifact, layer_weights
from eatnas_tf.model.builder import build_model
from eatnas_tf.store import atomic
from eatnas_tf.train import hparams
from eatnas_tf.train import trainer as trainer_lib
from eatnas_tf.train.config import TrainConfig

RECORD_FILE = "retrain.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoint"


def done(out_dir: str) -> bool:
    return (os.path.exists(os.path.join(out_dir, RECORD_FILE))
            and os.path.exists(os.path.join(out_dir, MODEL_DIR, artifact.META_FILE)))


def retrain(arch: ArchSpec, space: SearchSpace, data_cfg: DataConfig, train_cfg: TrainConfig,
            out_dir: str, *, aux_head: bool = False, log_dir: Optional[str] = None,
            verbose: int = 1, dropout: float = 0.0, strategy=None) -> Dict[str, Any]:
    """Trains `arch` fully and saves it (see the module docstring); returns the record.

    The macro (strides) comes from `space`; input size, channels and classes from the data
    (so `--resolution` and a grey dataset work with any space).
    """
    if done(out_dir):
        with open(os.path.join(out_dir, RECORD_FILE)) as f:
            return json.load(f)
    if data_cfg.split != "final":
        data_cfg = dataclasses.replace(data_cfg, split="final")
    os.makedirs(out_dir, exist_ok=True)
    log_dir = log_dir or os.path.join(out_dir, "tb")
    data = load_data(data_cfg)
    h, _, c = data.image_shape
    macro = space.macro.with_(image_size=h, in_channels=c, num_classes=data.num_classes)
    ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
    if verbose:
        print(f"retrain {codec.to_text(arch)} on {data_cfg.dataset}: {data.num_train} train / "
              f"{data.num_test} test images, {train_cfg.epochs} epochs", flush=True)
    result = trainer_lib.train(
        lambda: build_model(arch, macro, aux_head=aux_head, dropout=dropout,
                            fused_bn=train_cfg.fused_bn), data, train_cfg,
        log_dir=log_dir, checkpoint_dir=ckpt_dir, keep_checkpoint=True, evaluate_test=True,
        verbose=verbose, strategy=strategy)
    cost = count(arch, macro)
    record = dict(result.record)
    record.update({
        "arch": codec.to_text(arch), "hash": codec.canonical_hash(arch), "space": space.name,
        "dataset": data_cfg.dataset, "aux_head": aux_head, "params_trained": record["params"],
        "params": cost.params, "madds": cost.madds, "data": data.describe(),
        "train_config": train_cfg.as_dict(),
    })

    # The exported model has no auxiliary tower: rebuild it and copy weights by layer name.
    import keras

    model = build_model(arch, macro, dropout=dropout, fused_bn=train_cfg.fused_bn)
    try:
        layer_weights.assign(model, result.weights)
        metrics = {k: record[k] for k in ("test_acc", "test_loss", "val_acc", "epochs")
                   if record.get(k) is not None}
        artifact.save(os.path.join(out_dir, MODEL_DIR), model, arch, macro, space=space.name,
                      dataset=data_cfg.dataset, mean=data.mean, std=data.std, metrics=metrics)
    finally:
        del model
        keras.backend.clear_session()
    hparams.write_config(log_dir)
    hparams.log_candidate(log_dir, {**hparams.arch_hparams(arch), "dataset": data_cfg.dataset},
                          {k: record.get(k) for k in hparams.DEFAULT_METRICS}, trial_id="retrain")
    atomic.write_json(os.path.join(out_dir, RECORD_FILE), record, sort_keys=False)
    trainer_lib.ckpt_lib.remove(ckpt_dir)
    return record


__all__ = ["retrain", "done"]
