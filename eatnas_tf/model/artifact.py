"""A trained model on disk: `MODEL_DIR/model.keras` + `MODEL_DIR/meta.json`.

This is the hand-off between retraining and export: the `.keras` file holds the Keras 3
model; `meta.json` holds what is needed to rebuild, re-cost and serve it:

    {"arch": "<text form>", "arch_json": {...}, "space": "fashion_mnist",
     "macro": {"image_size": 28, "in_channels": 1, "num_classes": 10,
               "stem_stride": 2, "block_strides": [1, 1, 2, 1, 2, 1, 1]},
     "dataset": "fashion_mnist",
     "preprocessing": {"mean": [0.286], "std": [0.353], "image_size": 28},
     "metrics": {"test_acc": 0.89, ...}, "params": 123, "madds": 456}

Raw uint8 images are served as `((x / 255) - mean) / std` after resizing to `image_size`.
Written to a temporary directory and renamed, so a half-written artifact is never seen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple

from eatnas_tf.arch import codec
from eatnas_tf.arch.cost import MacroSpec, count
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.store import atomic

MODEL_FILE = "model.keras"
META_FILE = "meta.json"


def save(model_dir: str, model, arch: ArchSpec, macro: MacroSpec, *, space: str, dataset: str,
         mean: Sequence[float], std: Sequence[float], metrics: Optional[Dict[str, Any]] = None,
         overwrite: bool = True) -> str:
    """Saves atomically (temp dir + rename); returns `model_dir`."""
    c = count(arch, macro)
    meta = {
        "arch": codec.to_text(arch), "arch_json": codec.to_dict(arch), "space": space,
        "macro": dataclasses.asdict(macro), "dataset": dataset,
        "preprocessing": {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                          "image_size": macro.image_size},
        "metrics": metrics or {}, "params": c.params, "madds": c.madds,
    }
    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_model_", dir=parent)
    try:
        model.save(os.path.join(tmp, MODEL_FILE))
        with open(os.path.join(tmp, META_FILE), "w") as f:
            json.dump(meta, f, indent=2)
        if os.path.exists(model_dir):
            if not overwrite:
                raise FileExistsError(f"{model_dir} exists")
            shutil.rmtree(model_dir)
        atomic.publish_dir(tmp, model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_dir


def load_meta(model_dir: str) -> Dict[str, Any]:
    with open(os.path.join(model_dir, META_FILE)) as f:
        return json.load(f)


def arch_and_macro(meta: Dict[str, Any]) -> Tuple[ArchSpec, MacroSpec]:
    arch = codec.from_dict(meta["arch_json"])
    m = dict(meta["macro"])
    m["block_strides"] = tuple(m["block_strides"])
    return arch, MacroSpec(**m)


def load_keras_model(path: str):
    """The uncompiled Keras model of a `.keras` file written by this project (its fused
    batch-norm layer, `model.fused_bn`, is registered before loading)."""
    import keras

    from eatnas_tf.model.fused_bn import FusedBatchNormalization

    return keras.models.load_model(path, compile=False, custom_objects={
        "FusedBatchNormalization": FusedBatchNormalization})


def load(model_dir: str):
    """(keras model, meta dict)."""
    meta = load_meta(model_dir)
    return load_keras_model(os.path.join(model_dir, MODEL_FILE)), meta
