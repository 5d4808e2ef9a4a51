"""Trainer: schedules, coupled weight decay, 1-epoch candidates above chance, aux head,
divergence, resume, TensorBoard/HParams output, and MirroredStrategy on 2 logical CPUs."""

import gc
import json
import math
import os
import subprocess
import sys
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.data import datasets as D
from eatnas_tf.data import idx
from eatnas_tf.model.builder import build_model
from eatnas_tf.train import gradient_registry, hparams, optim
from eatnas_tf.train import trainer as T
from eatnas_tf.train.config import TrainConfig

TINY = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,"
        "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_KEYS = {"val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "train_acc",
               "val_acc_curve", "val_loss_curve", "lr_curve", "images_per_s", "wall_s",
               "build_s", "train_s", "epochs", "steps", "params", "first_step_s", "clear_s"}


def _arch(space):
    sp = space_lib.get_space(space)
    arch = codec.from_text(TINY, **sp.arch_defaults())
    assert sp.violations(arch) == []
    return arch, sp.macro


def _digits(**kw):
    kw.setdefault("batch_size", 32)
    return D.load_data(D.DataConfig("digits", **kw))


# -- schedules and optimiser ------------------------------------------------------------------
def _lr(cfg, step, spe=10):
    return float(optim.make_schedule(cfg, spe)(step))


def test_schedules_follow_their_formulas():
    c = TrainConfig(epochs=4, learning_rate=0.1, lr_end=0.001)
    assert _lr(c, 0) == pytest.approx(0.1) and _lr(c, 39) == pytest.approx(0.1)
    cos = c.replace(lr_schedule="cosine")
    assert _lr(cos, 0) == pytest.approx(0.1)
    assert _lr(cos, 20) == pytest.approx(0.0505, rel=1e-4)
    assert _lr(cos, 40) == pytest.approx(0.001)
    poly = c.replace(lr_schedule="polynomial", lr_power=2.0)
    assert _lr(poly, 20) == pytest.approx(0.001 + 0.099 * 0.25, rel=1e-4)
    assert _lr(poly, 40) == pytest.approx(0.001)
    sgdr = TrainConfig(epochs=70, learning_rate=0.1, lr_end=0.0, lr_schedule="cosine_restarts",
                       restart_epochs=10, restart_mult=2)
    # Periods of 10, 20, 40 epochs: restarts at epochs 10 and 30.
    assert _lr(sgdr, 99) < 0.001 and _lr(sgdr, 100) == pytest.approx(0.1)
    assert _lr(sgdr, 200) == pytest.approx(0.05, rel=1e-3)  # middle of the 20-epoch period
    assert _lr(sgdr, 300) == pytest.approx(0.1)
    warm = c.replace(lr_schedule="cosine", warmup_epochs=1)
    assert _lr(warm, 0) == pytest.approx(0.01) and _lr(warm, 9) == pytest.approx(0.1)
    assert _lr(warm, 10) == pytest.approx(0.1)


def test_weight_decay_is_coupled_l2_on_kernels_only():
    dense = keras.layers.Dense(2, bias_initializer="ones")
    dense.build((None, 3))
    bn = keras.layers.BatchNormalization()
    bn.build((None, 2))
    opt = optim.CoupledSGD(learning_rate=0.5, momentum=0.0, l2=0.1)
    variables = dense.trainable_variables + bn.trainable_variables
    before = [v.numpy().copy() for v in variables]
    opt.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    after = [v.numpy() for v in variables]
    np.testing.assert_allclose(after[0], before[0] * (1 - 0.5 * 0.1), rtol=1e-6)  # kernel
    for a, b in zip(after[1:], before[1:]):  # bias, gamma, beta untouched
        np.testing.assert_array_equal(a, b)


def test_bad_train_config_values_name_the_field():
    with pytest.raises(ValueError, match="lr_schedule: received 'step'"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(momentum=1.5)


# -- training ---------------------------------------------------------------------------------
@pytest.mark.skipif(not idx.available(), reason="dataset-fashion-mnist not installed")
@pytest.mark.parametrize("bn_momentum,recal", [(0.9, 0), (0.99, 20)])
def test_one_epoch_candidate_beats_chance_on_fashion_mnist(bn_momentum, recal):
    """BN momentum 0.9 (or 0.99 + recalibration) gives usable statistics after 1 short epoch."""
    arch, macro = _arch("fashion_mnist")
    data = D.load_data(D.DataConfig("fashion_mnist", max_train_examples=6400))
    result = T.train(lambda: build_model(arch, macro, bn_momentum=bn_momentum), data,
                     TrainConfig(learning_rate=0.05, bn_recalibration_batches=recal),
                     return_weights=False)
    rec = result.record
    assert rec["steps"] == 50 and rec["bn_recalibration_batches"] == recal
    assert rec["val_acc"] > 0.4, rec  # chance is 0.1


def test_record_weights_and_session_cleared():
    arch, macro = _arch("digits")
    data = _digits(split="final", val_fraction=0.2)
    refs = []

    def prepare(model):
        refs.append(weakref.ref(model))
        return "prepared"

    result = T.train(lambda: build_model(arch, macro), data, TrainConfig(learning_rate=0.05),
                     prepare_fn=prepare, evaluate_test=True)
    rec = result.record
    assert RECORD_KEYS <= set(rec)
    json.dumps(rec)  # plain JSON types
    assert rec["test_acc"] is not None and rec["val_acc"] is not None
    assert len(rec["train_loss"]) == 1 and rec["epochs"] == 1
    assert rec["steps"] == data.steps_per_epoch and rec["images_per_s"] > 0
    assert result.prepare_result == "prepared"
    assert "stem_conv" in "".join(result.weights) and all(
        isinstance(w, np.ndarray) for ws in result.weights.values() for w in ws)
    gc.collect()
    assert refs[0]() is None  # the model does not outlive train()


def _func_graphs():
    gc.collect()
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


def test_traced_graphs_do_not_outlive_train():
    """TF's gradient registry would keep every train step's graph (a custom gradient entry
    per trace, ~11 MB a candidate): train() drops what it registered."""
    arch, macro = _arch("digits")
    data = _digits(split="final", val_fraction=0.2)
    cfg = TrainConfig(learning_rate=0.05, steps_per_epoch=2)
    T.train(lambda: build_model(arch, macro), data, cfg, return_weights=False)
    graphs = _func_graphs()
    custom = gradient_registry.custom_gradients()
    for seed in (1, 2):
        T.train(lambda: build_model(arch, macro), data, cfg.replace(seed=seed),
                return_weights=False)
    assert _func_graphs() <= graphs
    assert gradient_registry.custom_gradients() <= custom


def test_same_seed_same_result_and_initial_weights():
    arch, macro = _arch("digits")
    data = _digits()
    cfg = TrainConfig(learning_rate=0.05, seed=3)
    a = T.train(lambda: build_model(arch, macro), data, cfg)
    b = T.train(lambda: build_model(arch, macro), data, cfg)
    assert a.record["train_loss"] == pytest.approx(b.record["train_loss"], rel=1e-5)
    assert a.record["val_acc"] == pytest.approx(b.record["val_acc"], abs=1e-6)
    # initial_weights are set by layer name before training.
    c = T.train(lambda: build_model(arch, macro), data, cfg.replace(steps_per_epoch=1,
                                                                    learning_rate=1e-9),
                initial_weights=a.weights)
    np.testing.assert_allclose(c.weights["logits"][0], a.weights["logits"][0], atol=1e-5)


def test_aux_head_label_smoothing_and_plain_last_epochs():
    arch, macro = _arch("digits")
    data = _digits(augment=("crop", "flip", "cutout"), cutout_length=4, plain_last_epochs=1)
    result = T.train(lambda: build_model(arch, macro, aux_head=True), data,
                     TrainConfig(epochs=2, learning_rate=0.05, label_smoothing=0.1,
                                 lr_schedule="cosine", steps_per_epoch=5))
    rec = result.record
    assert len(rec["train_loss"]) == 2 and rec["steps"] == 10
    assert 0.0 <= rec["val_acc"] <= 1.0 and math.isfinite(rec["val_loss"])
    assert len(rec["val_acc_curve"]) == 2
    assert "aux_logits" in result.weights


def test_nan_loss_raises_training_diverged():
    arch, macro = _arch("digits")
    with pytest.raises(T.TrainingDiverged):
        T.train(lambda: build_model(arch, macro), _digits(),
                TrainConfig(learning_rate=1e30, steps_per_epoch=5))
    assert isinstance(T.TrainingDiverged("x"), RuntimeError)


def test_checkpoint_resume_and_tensorboard_scalars(tmp_path):
    arch, macro = _arch("digits")
    data = _digits()
    ckpt, logs = str(tmp_path / "ckpt"), str(tmp_path / "tb")
    cfg = TrainConfig(epochs=2, learning_rate=0.05, lr_schedule="cosine", steps_per_epoch=4)
    first = T.train(lambda: build_model(arch, macro), data, cfg.replace(epochs=1),
                    checkpoint_dir=ckpt, keep_checkpoint=True)
    assert os.path.exists(os.path.join(ckpt, "state.json"))
    resumed = T.train(lambda: build_model(arch, macro), data, cfg, checkpoint_dir=ckpt,
                      log_dir=logs)
    rec = resumed.record
    assert rec["resumed_from_epoch"] == 1 and rec["steps"] == 8  # optimizer state restored
    assert rec["train_loss"][0] == pytest.approx(first.record["train_loss"][0])
    assert not os.path.exists(ckpt)  # removed after success
    tags = set()
    for root, _, files in os.walk(logs):
        for f in files:
            for e in tf.compat.v1.train.summary_iterator(os.path.join(root, f)):
                tags.update(v.tag for v in e.summary.value)
    assert {"epoch_loss", "epoch_accuracy", "learning_rate", "images_per_s"} <= tags


def test_checkpoint_killed_between_weights_and_state(tmp_path, monkeypatch):
    """A kill after an epoch's weights are written but before its state.json: the resume
    reads the previous state with the weights it was written with (not the newer ones)."""
    from eatnas_tf.train import checkpoint

    arch, macro = _arch("digits")
    model = build_model(arch, macro)
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    opt.build(model.trainable_variables)
    ckpt = str(tmp_path / "ckpt")
    checkpoint.save(ckpt, model, opt, 1, {"loss": [1.0]})
    checkpoint.save(ckpt, model, opt, 2, {"loss": [1.0, 0.5]})
    assert sorted(os.listdir(ckpt)) == ["state.json", "weights-00002.npz"]  # epoch 1's gone
    saved = [w.copy() for w in model.get_weights()]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before state.json")

    model.set_weights([w + 1.0 for w in saved])  # epoch 3 trained on
    monkeypatch.setattr(checkpoint.atomic, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(ckpt, model, opt, 3, {"loss": [1.0, 0.5, 0.2]})
    monkeypatch.undo()
    fresh = build_model(arch, macro)
    opt2 = keras.optimizers.SGD(0.1, momentum=0.9)
    opt2.build(fresh.trainable_variables)
    state = checkpoint.restore(ckpt, fresh, opt2)
    assert state["epoch"] == 2
    for got, want in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(got, want)


def test_hparams_config_and_candidate_sessions(tmp_path):
    arch, _ = _arch("digits")
    root = str(tmp_path / "tb")
    hparams.write_config(root)
    hp = hparams.arch_hparams(arch)
    assert hp["b1_op"] == "sep" and hp["b3_width"] == 1.5 and hp["arch"] == TINY
    hparams.log_candidate(os.path.join(root, "c0001"), hp, {"val_acc": 0.5, "test_acc": None})
    tags = {}
    for sub in (root, os.path.join(root, "c0001")):
        for f in os.listdir(sub):
            if f.startswith("events"):
                for e in tf.compat.v1.train.summary_iterator(os.path.join(sub, f)):
                    for v in e.summary.value:
                        tags[v.tag] = sub
    assert tags["_hparams_/experiment"] == root
    assert tags["_hparams_/session_start_info"].endswith("c0001")
    assert "val_acc" in tags and "test_acc" not in tags


def test_mixed_precision_runs_and_restores_policy():
    arch, macro = _arch("digits")
    rec = T.train(lambda: build_model(arch, macro), _digits(),
                  TrainConfig(mixed_precision=True, steps_per_epoch=2), return_weights=False).record
    assert math.isfinite(rec["train_loss"][0])
    assert keras.config.dtype_policy().name == "float32"


_MIRRORED = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from eatnas_tf.arch import codec, space as space_lib
from eatnas_tf.data import datasets as D
from eatnas_tf.model.builder import build_model
from eatnas_tf.train import trainer as T
from eatnas_tf.train.config import TrainConfig
sp = space_lib.get_space("digits")
arch = codec.from_text(sys.argv[1], **sp.arch_defaults())
data = D.load_data(D.DataConfig("digits", batch_size=32))
strategy = T.default_strategy()
res = T.train(lambda: build_model(arch, sp.macro), data,
              TrainConfig(learning_rate=0.05, bn_recalibration_batches=3), strategy=strategy)
print("RESULT " + json.dumps({"strategy": type(strategy).__name__, "record": res.record,
                              "layers": sorted(res.weights)}))
"""


def test_mirrored_strategy_on_two_logical_cpus_gives_the_same_record_shape():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _MIRRORED, TINY], capture_output=True, text=True,
                         env=env, timeout=300, cwd=ROOT)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stderr[-3000:]
    got = json.loads(line[0][len("RESULT "):])
    assert got["strategy"] == "MirroredStrategy"
    rec = got["record"]
    assert rec["num_replicas"] == 2 and rec["bn_recalibration_batches"] == 3
    arch, macro = _arch("digits")
    single = T.train(lambda: build_model(arch, macro), _digits(),
                     TrainConfig(learning_rate=0.05, bn_recalibration_batches=3))
    assert single.record["num_replicas"] == 1
    assert set(rec) == set(single.record)
    for k, v in single.record.items():
        assert type(rec[k]) is type(v) or (v is None) == (rec[k] is None) or {
            type(v), type(rec[k])} <= {int, float}, k
        if isinstance(v, list):
            assert len(rec[k]) == len(v), k
    assert got["layers"] == sorted(single.weights)
    assert rec["steps"] == single.record["steps"] and rec["val_acc"] > 0.1
