"""The hand-designed anchor: Keras MobileNetV2 (α 0.35 and 0.5) next to a search's winner.

A NAS result means little without a hand-designed net trained the same way. This module
retrains Keras' `MobileNetV2(weights=None)` with a run's *final* retraining recipe (the
data and train configs the pipeline's `plan(...).retrain` resolved, stored in the run's
config.json) through the project's trainer, and measures what the winner is measured by:
test accuracy, parameters, Mult-Adds (TensorFlow's profiler, `model.profile`) and LiteRT
fp32 latency at batch 1 (`measure.latency`, timed round-robin with the winner so load on
a shared machine hits both alike).

    data_cfg, train_cfg = recipe_from_run("runs/demo")
    row = train_anchor(0.35, data_cfg, train_cfg, "docs/results/anchor/mnv2_035")

Fairness, as measured here:
  * Keras builds MobileNetV2's batch norms with momentum 0.999; after 2 epochs on 57k
    images α = 0.35 evaluated at chance (0.10): its moving statistics had not left their
    initial values. The anchor gets our nets' BN momentum (0.9, `model.builder`).
  * Keras' MobileNetV2 needs ≥ 32×32 inputs: a smaller image (Fashion-MNIST 28×28) is
    zero-padded to 32×32 inside the model; grey images keep their 1 channel (allowed with
    weights=None), so the data pipeline is the winner's, unchanged.
  * The head is the same as ours: the backbone's last 1×1 conv + BN + ReLU6 (1280 wide),
    global average pooling, one Dense layer of logits.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.train.config import TrainConfig

MIN_SIZE = 32  # Keras' MobileNetV2 rejects smaller inputs
BN_MOMENTUM = 0.9  # model.builder's default, what our nets train with
ALPHAS = (0.35, 0.5)


def build_mobilenetv2(alpha: float, image_shape: Sequence[int], num_classes: int, *,
                      bn_momentum: float = BN_MOMENTUM, min_size: int = MIN_SIZE):
    """A flat functional model: input `image_shape` (h, w, c), zero-padded to `min_size`
    when smaller, Keras' MobileNetV2 backbone (`alpha`, weights=None, average pooling), a
    Dense layer of `num_classes` logits; every BN layer's momentum set to `bn_momentum`."""
    import keras

    h, w, c = (int(v) for v in image_shape)
    inputs = keras.Input(shape=(h, w, c), name="image")
    x = inputs
    ph, pw = max(0, min_size - h), max(0, min_size - w)
    if ph or pw:
        x = keras.layers.ZeroPadding2D(((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)),
                                       name="pad_to_min")(x)
    backbone = keras.applications.MobileNetV2(input_tensor=x, alpha=alpha, include_top=False,
                                              weights=None, pooling="avg")
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    logits = keras.layers.Dense(num_classes, name="logits")(backbone.output)
    return keras.Model(inputs, logits, name=f"mobilenetv2_{alpha:g}")


def recipe_from_run(run_dir: str) -> Tuple[DataConfig, TrainConfig]:
    """The final retraining's (data, train) configs stored in `run_dir/config.json` (the
    pipeline's `plan(...).retrain`, under `config` in the run dir's format 2)."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
        pair = cfg["config"]["plan"]["retrain"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: no final retraining recipe ({type(e).__name__}: {e}); "
                         "give the run dir of an `eatnas_tf.run` / demo run") from None
    return DataConfig(**pair["data"]), TrainConfig(**pair["train"])


def reduced(data_cfg: DataConfig, train_cfg: TrainConfig, *, epochs: Optional[int] = None,
            train_examples: Optional[int] = None) -> Tuple[DataConfig, TrainConfig]:
    """The recipe with fewer epochs and / or training images (the same for every model
    compared, so they stay comparable)."""
    import dataclasses

    if train_examples:
        data_cfg = dataclasses.replace(data_cfg, max_train_examples=train_examples)
    if epochs:
        train_cfg = train_cfg.replace(epochs=epochs)
    return data_cfg, train_cfg


def _tflite(model, path: str) -> str:
    from eatnas_tf.latency.measure import to_tflite

    data = to_tflite(model, "fp32", tuple(int(v) for v in model.inputs[0].shape[1:]))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _cost_and_tflite(model, tflite_path: str) -> Dict[str, Any]:
    from eatnas_tf.model.profile import profiler_madds

    return {"params": int(model.count_params()), "madds": int(profiler_madds(model)),
            "tflite": _tflite(model, tflite_path)}


def train_anchor(alpha: float, data_cfg: DataConfig, train_cfg: TrainConfig, out_dir: str, *,
                 verbose: int = 1, log_dir: Optional[str] = None) -> Dict[str, Any]:
    """Retrains MobileNetV2(`alpha`) with the recipe and measures it; writes
    `out_dir/anchor.json` and `out_dir/model_fp32.tflite`; returns the row. A finished
    `out_dir` (anchor.json present) is not trained again."""
    import dataclasses

    import keras

    from eatnas_tf.data.datasets import load_data
    from eatnas_tf.model import layer_weights
    from eatnas_tf.store import atomic
    from eatnas_tf.train import trainer

    done = os.path.join(out_dir, "anchor.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    if data_cfg.split != "final":
        data_cfg = dataclasses.replace(data_cfg, split="final")
    data = load_data(data_cfg)
    shape, classes = data.image_shape, data.num_classes
    if verbose:
        print(f"anchor MobileNetV2 alpha={alpha:g} on {data_cfg.dataset}: {data.num_train} "
              f"train / {data.num_test} test images, {train_cfg.epochs} epochs", flush=True)
    result = trainer.train(lambda: build_mobilenetv2(alpha, shape, classes), data, train_cfg,
                           evaluate_test=True, verbose=verbose, log_dir=log_dir)
    model = build_mobilenetv2(alpha, shape, classes)
    try:
        layer_weights.assign(model, result.weights, strict=True)
        cost = _cost_and_tflite(model, os.path.join(out_dir, "model_fp32.tflite"))
    finally:
        del model
        keras.backend.clear_session()
    rec = result.record
    row = {"name": f"MobileNetV2 α={alpha:g}", "alpha": alpha, "bn_momentum": BN_MOMENTUM,
           "input": f"{shape[0]}x{shape[1]}x{shape[2]} zero-padded to "
                    f"{max(shape[0], MIN_SIZE)}x{max(shape[1], MIN_SIZE)}",
           "test_acc": rec["test_acc"], "val_acc": rec["val_acc"], **cost,
           "epochs": rec["epochs"], "num_train": rec["num_train"], "train_s": rec["train_s"],
           "images_per_s": rec["images_per_s"], "wall_s": rec["wall_s"],
           "train_loss": rec["train_loss"], "val_acc_curve": rec["val_acc_curve"],
           "train_config": train_cfg.as_dict(), "data_config": dataclasses.asdict(data_cfg)}
    os.makedirs(out_dir, exist_ok=True)
    atomic.write_json(done, row, sort_keys=False)
    return row


def winner_row(model_dir: str, record: Mapping[str, Any], out_dir: str) -> Dict[str, Any]:
    """The winner's row from its model artifact (`retrain_lib` / the run's `winner/`) and
    its retraining record (test / val accuracy, epochs): profiler MAdds, params, fp32
    TFLite at `out_dir/model_fp32.tflite`."""
    import keras

    from eatnas_tf.model import artifact

    model, meta = artifact.load(model_dir)
    try:
        cost = _cost_and_tflite(model, os.path.join(out_dir, "model_fp32.tflite"))
    finally:
        del model
        keras.backend.clear_session()
    return {"name": "EAT-NAS winner", "arch": meta["arch"],
            "test_acc": record.get("test_acc", record.get("test_accuracy")),
            "val_acc": record.get("val_acc"), **cost, "madds_cost_model": meta.get("madds"),
            "epochs": record.get("epochs"), "num_train": record.get("num_train"),
            "train_s": record.get("train_s"), "images_per_s": record.get("images_per_s"),
            "wall_s": record.get("wall_s"), "model_dir": model_dir}


def measure_latency(rows: Sequence[Dict[str, Any]], threads: Sequence[int] = (1, 2),
                    runs: int = 200, warmup: int = 20) -> None:
    """Adds `latency_ms` ({threads: median ms}) and `latency` (full stats) to every row,
    timing all rows' TFLite files round-robin (`measure_interleaved`)."""
    from eatnas_tf.measure.latency import measure_interleaved

    paths = {r["name"]: r["tflite"] for r in rows}
    stats = measure_interleaved(paths, threads=threads, warmup=warmup, runs=runs)
    for r in rows:
        r["latency"] = stats[r["name"]]
        r["latency_ms"] = {k: v["median_ms"] for k, v in stats[r["name"]].items()}


def pareto_anchors(rows: Sequence[Mapping[str, Any]]) -> list:
    """The rows as the Pareto figure's `anchors` (name, madds, params, val / test acc)."""
    return [{"label": r["name"], "madds": r["madds"], "params": r["params"],
             "val_acc": r.get("val_acc"), "test_acc": r.get("test_acc"),
             "winner": r["name"] == "EAT-NAS winner"} for r in rows]


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side table (README / report.md)."""
    out = ["| model | test acc | params | MAdds | LiteRT fp32 1 thread (ms) | 2 threads (ms) "
           "| train img/s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r.get("latency_ms") or {}
        ips = r.get("images_per_s")
        out.append(f"| {r['name']} | {r['test_acc']:.4f} | {int(r['params']):,} "
                   f"| {int(r['madds']):,} | {lat.get('1', float('nan')):.3f} "
                   f"| {lat.get('2', float('nan')):.3f} | {f'{ips:.0f}' if ips else '–'} |")
    return "\n".join(out)


def add_to_run_report(run_dir: str, rows: Sequence[Mapping[str, Any]],
                      note: str = "") -> None:
    """Adds the anchors to a run's report: `report.json` gets `anchors` (the figure's
    points) and `anchor_rows`; `plots/pareto.png` is redrawn with them; `report.md` gets
    (or has replaced) its "## Hand-designed anchor" section."""
    from eatnas_tf.report import plots, search_report, sections
    from eatnas_tf.store import atomic

    path = os.path.join(run_dir, "report.json")
    with open(path) as f:
        report = json.load(f)
    report["anchors"] = pareto_anchors(rows)
    report["anchor_rows"] = [dict(r) for r in rows]
    atomic.write_json(path, report, sort_keys=False)
    cands_path = os.path.join(run_dir, "candidates.jsonl")
    if os.path.exists(cands_path):
        with open(cands_path) as f:
            cands = [json.loads(line) for line in f if line.strip()]
        w = report.get("winner") or {}
        for c in cands:
            c["winner"] = c.get("id") == w.get("id") and c.get("stage") == w.get("stage")
        plots.pareto_scatter(cands, os.path.join(run_dir, "plots", "pareto.png"),
                             cost_key="madds", target=search_report._pareto_target(report),
                             anchors=report["anchors"])
    md = os.path.join(run_dir, "report.md")
    if os.path.exists(md):
        sections.replace_section(md, "## Hand-designed anchor",
                                 (note + "\n\n" if note else "") + markdown_table(rows))
