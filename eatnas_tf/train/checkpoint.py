"""Per-epoch checkpoints that a rerun resumes from (the role of Keras `BackupAndRestore`).

The trainer runs one `fit` call per epoch (the augmentation may change in the last
epochs, paper §4.2), which `BackupAndRestore` does not follow across calls; this small
equivalent saves, after every epoch, the model weights, the optimiser state (momentum,
iteration counter, so the LR schedule continues) and the history so far:

    CKPT_DIR/state.json          {"epoch": <epochs done>, "weights_file": ..., "history": ...}
    CKPT_DIR/weights-NNNNN.npz   model.get_weights() then optimizer.variables, in order

Each epoch's weights go to a file of their own (temp file + rename), then `state.json`
(temp file + rename) names it, then older weight files are removed: a kill at any moment
leaves a `state.json` and the weights it was written with (one shared `weights.npz`
renamed before `state.json` could pair epoch N's state with epoch N+1's weights).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, Optional

import numpy as np

from eatnas_tf.store import atomic

STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.npz"  # checkpoints written before per-epoch weight files


def _weights_file(epoch: int) -> str:
    return f"weights-{int(epoch):05d}.npz"


def save(ckpt_dir: str, model, optimizer, epoch: int, history: Dict[str, Any],
         extra: Optional[Dict[str, Any]] = None) -> None:
    """Saves the state after `epoch` completed epochs."""
    os.makedirs(ckpt_dir, exist_ok=True)
    model_w = model.get_weights()
    opt_w = [np.asarray(v.numpy()) for v in optimizer.variables]
    arrays = {f"m{i:05d}": w for i, w in enumerate(model_w)}
    arrays.update({f"o{i:05d}": w for i, w in enumerate(opt_w)})

    name = _weights_file(epoch)
    with atomic.temp_path(os.path.join(ckpt_dir, name)) as tmp, open(tmp, "xb") as f:
        np.savez(f, **arrays)
    state = {"epoch": int(epoch), "weights_file": name, "history": history,
             "num_model_weights": len(model_w), "num_optimizer_variables": len(opt_w),
             **(extra or {})}
    atomic.write_json(os.path.join(ckpt_dir, STATE_FILE), state, indent=None, sort_keys=False)
    for old in os.listdir(ckpt_dir):  # only now: the new state names the new weights
        if old != name and old.startswith("weights") and old.endswith(".npz"):
            try:
                os.remove(os.path.join(ckpt_dir, old))
            except FileNotFoundError:
                pass


def restore(ckpt_dir: Optional[str], model, optimizer) -> Optional[Dict[str, Any]]:
    """Loads the checkpoint into `model` and the (built) `optimizer`; returns its state
    dict, or None when there is none."""
    if not ckpt_dir or not os.path.exists(os.path.join(ckpt_dir, STATE_FILE)):
        return None
    with open(os.path.join(ckpt_dir, STATE_FILE)) as f:
        state = json.load(f)
    with np.load(os.path.join(ckpt_dir, state.get("weights_file", WEIGHTS_FILE))) as z:
        model_w = [z[f"m{i:05d}"] for i in range(state["num_model_weights"])]
        opt_w = [z[f"o{i:05d}"] for i in range(state["num_optimizer_variables"])]
    model.set_weights(model_w)
    variables = optimizer.variables
    if len(variables) != len(opt_w):
        raise ValueError(f"checkpoint {ckpt_dir}: {len(opt_w)} optimizer variables saved, "
                         f"{len(variables)} in the optimizer")
    for v, w in zip(variables, opt_w):
        v.assign(w)
    return state


def remove(ckpt_dir: Optional[str]) -> None:
    if ckpt_dir and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir, ignore_errors=True)
