"""The demo's two-stage EAT-NAS configs (Fashion-MNIST 14×14 → 28×28), built from its
settings: used by `eatnas_tf.demo` and by the benchmarks that replay a demo run.

    cfg = build_configs(settings)     # settings: the demo's flag values, by name
    cfg["stage1"], cfg["stage1_retrain"], cfg["stage2"], cfg["retrain"]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping

from eatnas_tf.arch import space as space_lib
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.search.experiment import Stage
from eatnas_tf.search.strategy import SearchConfig
from eatnas_tf.train.config import TrainConfig


def _stage(name, space, data, train, seed, population, sample, candidates, topk):
    return Stage(name=name, strategy="eat", space=space_lib.get_space(space), data=data,
                        train=train, seed=seed,
                        config=SearchConfig(population=population, sample=sample,
                                            max_candidates=candidates, topk=topk))


def build_configs(v: Mapping[str, Any]) -> Dict[str, Any]:
    """The demo's stages and retraining configs from its settings `v` (the demo's flag
    values by name). Stage 2 comes without its seed:
    the basic model is added once stage 1 has found it. Bad values raise ValueError."""
    train = TrainConfig(epochs=1, batch_size=v["batch_size"], learning_rate=v["learning_rate"],
                        lr_schedule="constant", momentum=0.9, weight_decay=3e-4)
    base = DataConfig("fashion_mnist", val_fraction=v["val_fraction"],
                      batch_size=v["batch_size"], seed=v["seed"])
    d1 = dataclasses.replace(base, image_size=v["stage1_resolution"],
                             max_train_examples=v["stage1_train_examples"])
    d2 = dataclasses.replace(base, max_train_examples=v["stage2_train_examples"])
    retrain = train.replace(lr_schedule="cosine", learning_rate=v["retrain_learning_rate"])
    return {
        "stage1": _stage("stage1", "fashion_mnist_14", d1, train, v["seed"],
                         v["stage1_population"], v["stage1_sample"], v["stage1_candidates"],
                         v["stage1_topk"]),
        "stage1_retrain": (dataclasses.replace(d1, split="final"),
                           retrain.replace(epochs=v["stage1_retrain_epochs"])),
        "stage2": _stage("stage2", "fashion_mnist", d2, train, v["seed"],
                         v["stage2_population"], v["stage2_sample"], v["stage2_candidates"],
                         v["topk"]),
        "retrain": (dataclasses.replace(base, split="final",
                                        max_train_examples=v["retrain_train_examples"]),
                    retrain.replace(epochs=v["retrain_epochs"])),
    }


def describe(settings: Mapping[str, Any], cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The whole demo experiment as plain values (what its config.json stores)."""
    def pair(p):
        return {"data": dataclasses.asdict(p[0]), "train": p[1].as_dict()}

    return {"settings": dict(settings), "stage1": cfg["stage1"].describe(),
            "stage1_retrain": pair(cfg["stage1_retrain"]), "stage2": cfg["stage2"].describe(),
            "retrain": pair(cfg["retrain"])}
