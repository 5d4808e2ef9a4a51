"""One training code path for search candidates and full retraining (paper §4.1, §4.2).

`train(build_fn, data, config)` builds a model inside a `tf.distribute` strategy scope
(`MirroredStrategy` over the GPUs, or over several logical CPU devices, when more than one
is present; the default strategy otherwise), compiles it with SGD + momentum + coupled
weight decay and the configured LR schedule, runs one `model.fit` call per epoch (so the
augmentation can switch to crop + flip in the last epochs and every epoch can be
checkpointed), validates, optionally tests, and returns a JSON-serialisable record:

    result = train(lambda: build_model(arch, macro), data, TrainConfig(epochs=1))
    result.record["val_acc"], result.record["images_per_s"]

Details that matter for NAS:
  * Batch norm: candidates train for about one epoch, so BN moving statistics must be
    usable after a few dozen steps. The builder's BN momentum is 0.9 (Keras' default 0.99
    leaves a 1-epoch candidate at chance, docs/design.md §5); `bn_recalibration_batches > 0`
    additionally recomputes them from un-augmented training batches before validation.
  * Two-output models (`[logits, aux_logits]`, the auxiliary tower, paper §4.1) train on
    `loss + aux_weight · aux_loss`; accuracy and the reported losses come from the logits.
  * Weight decay is coupled L2 on conv / dense kernels (`optim.CoupledSGD`).
  * A NaN / inf loss raises `TrainingDiverged` so a search records the candidate as failed.
  * The model never outlives the call: its weights are copied out as numpy
    (`TrainResult.weights`, `model.layer_weights.get`), then
    `keras.backend.clear_session()` runs, also when training fails, and the custom gradients
    the traced train step registered in TensorFlow's global gradient registry are dropped
    (`train.gradient_registry`): that registry never forgets, and each entry keeps the whole
    train-step graph alive — ~11 MB per candidate, 605 MB over 50 (benchmarks/trainer_memory.py).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from eatnas_tf.data.datasets import DataBundle
from eatnas_tf.model import layer_weights
from eatnas_tf.train import checkpoint as ckpt_lib
from eatnas_tf.train import gradient_registry, optim
from eatnas_tf.train.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    """record: the metrics record (plain JSON types); weights: `{layer name: [arrays]}`
    (None with return_weights=False); prepare_result: what `prepare_fn` returned."""

    record: Dict[str, Any]
    weights: Optional[Dict[str, List[np.ndarray]]] = None
    prepare_result: Any = None


def default_strategy(devices: Optional[List[str]] = None) -> tf.distribute.Strategy:
    """MirroredStrategy over `devices`, over all GPUs when there are several, over the
    logical CPU devices when there is no GPU and several CPUs are configured; the default
    (no-op) strategy otherwise."""
    if devices:
        return tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else \
            tf.distribute.OneDeviceStrategy(devices[0])
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if not gpus:
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.get_strategy()


# -- losses, labels ---------------------------------------------------------------------------
def _loss_and_metric(config: TrainConfig):
    if config.label_smoothing > 0:
        return (keras.losses.CategoricalCrossentropy(from_logits=True,
                                                     label_smoothing=config.label_smoothing),
                lambda: keras.metrics.CategoricalAccuracy(name="accuracy"))
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            lambda: keras.metrics.SparseCategoricalAccuracy(name="accuracy"))


def _labels_for(ds: tf.data.Dataset, num_classes: int, one_hot: bool, two_outputs: bool):
    if not one_hot and not two_outputs:
        return ds

    def fn(x, y):
        if one_hot:
            y = tf.one_hot(y, num_classes)
        return (x, (y, y)) if two_outputs else (x, y)

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _pick(logs: Dict[str, Any], main_output: Optional[str], metric: str, prefix: str = "") -> float:
    """Main-output value of `metric` ("loss" or "accuracy") from Keras logs; two-output
    models log it as `<prefix><output name>_<metric>`."""
    key = f"{prefix}{main_output}_{metric}" if main_output else f"{prefix}{metric}"
    return float(logs[key])


# -- batch norm recalibration -----------------------------------------------------------------
def recalibrate_bn(model, dataset: tf.data.Dataset, num_batches: int) -> int:
    """Sets every BN layer's moving mean / variance to the average of its batch statistics
    over `num_batches` batches of `dataset` (forward passes in training mode, no weight
    update); returns the number of batches used. Momentum is restored afterwards."""
    bns = [bn for bn in model._flatten_layers() if isinstance(bn, keras.layers.BatchNormalization)]
    if not bns or num_batches <= 0:
        return 0
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0  # moving stats := this batch's stats

    @tf.function(reduce_retracing=True)
    def step(x):
        model(x, training=True)
        return [bn.moving_mean + 0.0 for bn in bns], [bn.moving_variance + 0.0 for bn in bns]

    sums_m = [np.zeros(bn.moving_mean.shape, np.float64) for bn in bns]
    sums_v = [np.zeros(bn.moving_variance.shape, np.float64) for bn in bns]
    n = 0
    try:
        for x, _ in dataset.take(num_batches):
            means, variances = step(x)
            for i in range(len(bns)):
                sums_m[i] += means[i].numpy()
                sums_v[i] += variances[i].numpy()
            n += 1
        if n:
            for bn, sm, sv in zip(bns, sums_m, sums_v):
                bn.moving_mean.assign((sm / n).astype(np.float32))
                bn.moving_variance.assign((sv / n).astype(np.float32))
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
    return n


# -- callbacks --------------------------------------------------------------------------------
class _FirstStepTimer(keras.callbacks.Callback):
    """Time from the start of `fit` to the end of its first batch (tracing + one step)."""

    def __init__(self):
        super().__init__()
        self.t_begin = None
        self.first_step_s = None

    def on_train_begin(self, logs=None):
        self.t_begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self.t_begin


def _check_finite(value: float, what: str, epoch: int) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(f"{what} is {value} after epoch {epoch + 1}")


# -- the trainer ------------------------------------------------------------------------------
def train(build_fn: Callable[[], Any], data: DataBundle, config: TrainConfig, *,
          prepare_fn: Optional[Callable[[Any], Any]] = None, log_dir: Optional[str] = None,
          checkpoint_dir: Optional[str] = None, evaluate_test: bool = False,
          return_weights: bool = True, verbose: int = 0,
          strategy: Optional[tf.distribute.Strategy] = None,
          initial_weights: Optional[Dict[str, List[np.ndarray]]] = None,
          keep_checkpoint: bool = False,
          log_every_steps: Optional[int] = None) -> TrainResult:
    """Trains the model `build_fn()` on `data` under `config`.

    Args:
      build_fn: returns an uncompiled Keras model (one output, or `[logits, aux_logits]`);
        called inside `strategy.scope()`.
      data: the data bundle; its batches are used as they are.
      config: optimiser, schedule, epochs and loss settings.
      prepare_fn: called with the built model before compiling (weight inheritance goes
        here); its return value is kept in `TrainResult.prepare_result`.
      log_dir: TensorBoard run directory: scalars per epoch (loss, accuracy, learning rate,
        images/s) under `log_dir/train` and `log_dir/validation`, and per step (`batch_loss`,
        `batch_accuracy`: the epoch-to-date means Keras reports, and `batch_learning_rate`,
        x axis = global step) under `log_dir/train`, so a 1-epoch candidate draws a line.
      log_every_steps: the step scalars' interval (always also the first and last step of
        an epoch); None: `step_interval(steps_per_epoch)` (the EATNAS_TB_EVERY_STEPS
        environment variable, else ~20 points per epoch); 0: no step scalars.
      checkpoint_dir: save after every epoch and resume from it when it exists; removed
        after a successful run unless `keep_checkpoint` (the caller removes it once its
        own outputs are safely written).
      evaluate_test: also evaluate `data.test` (when present).
      return_weights: copy the trained weights out as numpy before clearing the session.
      verbose: 0 silent, 1 one line per epoch, 2 also Keras' progress bar.
      strategy: a `tf.distribute.Strategy`; None picks `default_strategy()`.
      initial_weights: `{layer name: [arrays]}` set before `prepare_fn` (exact shapes).

    Returns:
      `TrainResult`; `record` holds `val_acc`, `val_loss`, `test_acc`, `test_loss` (None
      when not evaluated), per-epoch `train_loss`, `train_acc`, `val_acc_curve`,
      `val_loss_curve`, `lr_curve`, and `images_per_s`, `images_per_s_steady`, `wall_s`,
      `build_s`, `first_step_s`, `train_s`, `eval_s`, `recal_s`, `clear_s`, `epochs`,
      `steps`, `params`, `num_train`, `batch_size`, `num_replicas`, `resumed_from_epoch`,
      `bn_recalibration_batches`.

    Raises:
      TrainingDiverged: the training or validation loss became NaN / inf.
    """
    t_start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or default_strategy()
    previous_policy = keras.config.dtype_policy()
    if config.batch_size != data.config.batch_size and verbose:
        print(f"note: TrainConfig.batch_size={config.batch_size} but the data is batched by "
              f"{data.config.batch_size}; using the data's batches", file=sys.stderr)
    model = None
    custom_gradients = gradient_registry.custom_gradients()
    try:
        if config.mixed_precision:
            keras.config.set_dtype_policy("mixed_float16")
        steps_per_epoch = data.steps_per_epoch
        if config.steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
        loss, metric = _loss_and_metric(config)
        with strategy.scope():
            model = build_fn()
            if initial_weights:
                layer_weights.assign(model, initial_weights)
            prepare_result = prepare_fn(model) if prepare_fn is not None else None
            two_outputs = len(model.outputs) > 1
            main_output = model.output_names[0] if two_outputs else None
            optimizer = optim.make_optimizer(config, steps_per_epoch)
            if two_outputs:
                model.compile(optimizer=optimizer, loss=[loss, loss],
                              loss_weights=[1.0, config.aux_weight],
                              metrics=[[metric()], []], jit_compile=config.jit_compile)
            else:
                model.compile(optimizer=optimizer, loss=loss, metrics=[metric()],
                              jit_compile=config.jit_compile)
            model.optimizer.build(model.trainable_variables)
        params = int(model.count_params())
        build_s = time.perf_counter() - t_start

        state = ckpt_lib.restore(checkpoint_dir, model, model.optimizer)
        start_epoch = state["epoch"] if state else 0
        hist = state["history"] if state else {k: [] for k in (
            "train_loss", "train_acc", "val_acc_curve", "val_loss_curve", "lr_curve",
            "epoch_s", "images")}
        one_hot = config.label_smoothing > 0
        val = (
            _labels_for(data.val, data.num_classes, one_hot, two_outputs)
            if data.val is not None
            else None
        )
        writers = _Writers(log_dir)
        every = step_interval(steps_per_epoch, log_every_steps)
        timer = _FirstStepTimer()
        batch = data.config.batch_size
        for epoch in range(start_epoch, config.epochs):
            ds = data.epoch_dataset(epoch, config.epochs)
            if config.steps_per_epoch and config.steps_per_epoch < data.steps_per_epoch:
                ds = ds.take(config.steps_per_epoch)
            ds = _labels_for(ds, data.num_classes, one_hot, two_outputs)
            last = epoch == config.epochs - 1
            validate = val is not None and not last and (epoch + 1) % config.validate_every == 0
            t0 = time.perf_counter()
            h = model.fit(
                ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                validation_data=val if validate else None,
                verbose=2 if verbose >= 2 else 0,
                shuffle=False,
                callbacks=([timer] if epoch == start_epoch else [])
                + writers.step_callbacks(epoch, steps_per_epoch, every, main_output, model),
            )
            dt = time.perf_counter() - t0
            logs = {k: v[-1] for k, v in h.history.items()}
            tl = _pick(logs, main_output, "loss")
            _check_finite(tl, "training loss", epoch)
            hist["train_loss"].append(tl)
            hist["train_acc"].append(_pick(logs, main_output, "accuracy"))
            hist["lr_curve"].append(float(model.optimizer.learning_rate))
            hist["epoch_s"].append(dt)
            hist["images"].append(steps_per_epoch * batch)
            if validate:
                hist["val_loss_curve"].append(_pick(logs, main_output, "loss", "val_"))
                hist["val_acc_curve"].append(_pick(logs, main_output, "accuracy", "val_"))
                _check_finite(hist["val_loss_curve"][-1], "validation loss", epoch)
            if not last:
                writers.epoch(epoch, hist, steps_per_epoch * batch / dt, validate)
                _progress(
                    verbose, epoch, config.epochs, hist, steps_per_epoch * batch / dt, validate
                )
            if checkpoint_dir:
                ckpt_lib.save(checkpoint_dir, model, model.optimizer, epoch + 1, hist)
        train_s = sum(hist["epoch_s"][len(hist["epoch_s"]) - (config.epochs - start_epoch):]) \
            if config.epochs > start_epoch else 0.0

        t0 = time.perf_counter()
        recal = 0
        if config.bn_recalibration_batches:
            recal = recalibrate_bn(model, data.train_noaug, config.bn_recalibration_batches)
        recal_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_loss = val_acc = test_loss = test_acc = None
        if val is not None:
            logs = model.evaluate(val, verbose=0, return_dict=True)
            val_loss, val_acc = (
                _pick(logs, main_output, "loss"),
                _pick(logs, main_output, "accuracy"),
            )
            _check_finite(val_loss, "validation loss", config.epochs - 1)
            hist["val_loss_curve"].append(val_loss)
            hist["val_acc_curve"].append(val_acc)
        if evaluate_test and data.test is not None:
            test = _labels_for(data.test, data.num_classes, one_hot, two_outputs)
            logs = model.evaluate(test, verbose=0, return_dict=True)
            test_loss, test_acc = (
                _pick(logs, main_output, "loss"),
                _pick(logs, main_output, "accuracy"),
            )
        eval_s = time.perf_counter() - t0
        if start_epoch < config.epochs:
            ips_last = hist["images"][-1] / max(hist["epoch_s"][-1], 1e-9)
            writers.epoch(config.epochs - 1, hist, ips_last, val is not None)
            _progress(verbose, config.epochs - 1, config.epochs, hist, ips_last, val is not None)
        writers.close()

        images = sum(hist["images"][len(hist["images"]) - (config.epochs - start_epoch):]) \
            if config.epochs > start_epoch else 0
        first = timer.first_step_s or 0.0
        step_s = train_s / max(images / batch, 1)
        steady_s = max(train_s - first, 1e-9)
        record = {
            "val_acc": val_acc,
            "val_loss": val_loss,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "train_loss": hist["train_loss"],
            "train_acc": hist["train_acc"],
            "val_acc_curve": hist["val_acc_curve"],
            "val_loss_curve": hist["val_loss_curve"],
            "lr_curve": hist["lr_curve"],
            "images_per_s": images / train_s if train_s else None,
            "images_per_s_steady": (images - batch) / steady_s if images > batch else None,
            "build_s": build_s,
            "first_step_s": first,
            "tracing_s": max(first - step_s, 0.0),
            "train_s": train_s,
            "recal_s": recal_s,
            "eval_s": eval_s,
            "epochs": config.epochs,
            "steps": int(model.optimizer.iterations.numpy()),
            "steps_per_epoch": steps_per_epoch,
            "params": params,
            "num_train": data.num_train,
            "batch_size": batch,
            "num_replicas": int(strategy.num_replicas_in_sync),
            "resumed_from_epoch": start_epoch,
            "bn_recalibration_batches": recal,
            "seed": config.seed,
        }
        weights = None
        if return_weights:
            weights = layer_weights.get(model)
        if checkpoint_dir and not keep_checkpoint:
            ckpt_lib.remove(checkpoint_dir)
        result = TrainResult(record=record, weights=weights, prepare_result=prepare_result)
    finally:
        t0 = time.perf_counter()
        del model
        keras.backend.clear_session()
        keras.config.set_dtype_policy(previous_policy)
        gradient_registry.drop_custom_gradients(keep=custom_gradients)
        gc.collect()
        clear_s = time.perf_counter() - t0
    result.record["clear_s"] = clear_s
    result.record["wall_s"] = time.perf_counter() - t_start
    return result


def _progress(verbose, epoch, epochs, hist, ips, validated):
    if not verbose:
        return
    line = (f"epoch {epoch + 1}/{epochs}  loss {hist['train_loss'][-1]:.4f}  "
            f"acc {hist['train_acc'][-1]:.4f}")
    if validated and hist["val_acc_curve"]:
        line += (
            f"  val_loss {hist['val_loss_curve'][-1]:.4f}  val_acc {hist['val_acc_curve'][-1]:.4f}"
        )
    line += f"  lr {hist['lr_curve'][-1]:.3g}  {ips:.0f} img/s  {hist['epoch_s'][-1]:.1f}s"
    print(line, flush=True)


STEP_POINTS_PER_EPOCH = 20
STEP_ENV = "EATNAS_TB_EVERY_STEPS"


def step_interval(steps_per_epoch: int, log_every_steps: Optional[int] = None) -> int:
    """Steps between two step-level TensorBoard points: `log_every_steps` when given, else
    the `EATNAS_TB_EVERY_STEPS` environment variable (how a search's interval reaches the
    trainer in every executor, subprocesses included), else `steps_per_epoch // 20`
    (at least 1). 0 turns the step scalars off."""
    if log_every_steps is None:
        env = os.environ.get(STEP_ENV, "").strip()
        if env:
            try:
                log_every_steps = int(env)
            except ValueError:
                raise ValueError(f"{STEP_ENV}: received {env!r}; allowed values: an integer "
                                 ">= 0") from None
    if log_every_steps is None:
        return max(1, steps_per_epoch // STEP_POINTS_PER_EPOCH)
    if log_every_steps < 0:
        raise ValueError(f"log_every_steps: received {log_every_steps}; allowed values: >= 0")
    return int(log_every_steps)


class _StepScalars(keras.callbacks.Callback):
    """Step-level scalars of one epoch: every `every` steps, and at its first and last
    step; the logs' tensors are read only then (cheap: a few scalars per ~20 steps)."""

    def __init__(self, writer, epoch: int, steps_per_epoch: int, every: int,
                 main_output: Optional[str], model):
        super().__init__()
        self.writer, self.epoch, self.steps = writer, epoch, steps_per_epoch
        self.every, self.main_output, self.trained = every, main_output, model

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps + batch + 1
        if not logs or not (step % self.every == 0 or batch == 0 or batch == self.steps - 1):
            return
        with self.writer.as_default(step=step):
            for metric in ("loss", "accuracy"):
                try:
                    tf.summary.scalar(f"batch_{metric}",
                                      float(_pick(logs, self.main_output, metric)))
                except KeyError:
                    pass
            opt = getattr(self.trained, "optimizer", None)
            if opt is not None:
                tf.summary.scalar("batch_learning_rate", float(opt.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.writer.flush()


class _Writers:
    """TensorBoard scalars of one run: `train/` and `validation/` (Keras' layout)."""

    def __init__(self, log_dir: Optional[str]):
        self.train = self.val = None
        if log_dir:
            self.train = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
            self.val = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))

    def step_callbacks(self, epoch, steps_per_epoch, every, main_output, model) -> list:
        if self.train is None or every <= 0:
            return []
        return [_StepScalars(self.train, epoch, steps_per_epoch, every, main_output, model)]

    def epoch(self, epoch, hist, images_per_s, validated):
        if self.train is None:
            return
        with self.train.as_default(step=epoch + 1):
            tf.summary.scalar("epoch_loss", hist["train_loss"][-1])
            tf.summary.scalar("epoch_accuracy", hist["train_acc"][-1])
            tf.summary.scalar("learning_rate", hist["lr_curve"][-1])
            tf.summary.scalar("images_per_s", images_per_s)
        if validated and hist["val_acc_curve"]:
            with self.val.as_default(step=epoch + 1):
                tf.summary.scalar("epoch_loss", hist["val_loss_curve"][-1])
                tf.summary.scalar("epoch_accuracy", hist["val_acc_curve"][-1])

    def close(self):
        for w in (self.train, self.val):
            if w is not None:
                w.close()
