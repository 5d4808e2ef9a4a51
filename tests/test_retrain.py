"""Retraining library and binary, shared flags and the paper flagfiles."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import count
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.model import artifact
from eatnas_tf.train import flags as train_flags
from eatnas_tf.train import retrain_lib
from eatnas_tf.train.config import TrainConfig

TINY = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,"
        "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_retrain_saves_an_artifact_without_aux_head_and_is_not_repeated(tmp_path):
    sp = space_lib.get_space("digits")
    arch = codec.from_text(TINY, **sp.arch_defaults())
    out = str(tmp_path / "rt")
    data_cfg = DataConfig("digits", batch_size=64, val_fraction=0.1, augment=("crop", "flip"))
    rec = retrain_lib.retrain(arch, sp, data_cfg, TrainConfig(epochs=2, learning_rate=0.05,
                                                              lr_schedule="cosine"),
                              out, aux_head=True, verbose=0)
    assert rec["test_acc"] is not None and rec["epochs"] == 2 and rec["aux_head"]
    assert rec["params"] == count(arch, sp.macro).params < rec["params_trained"]
    assert not os.path.exists(os.path.join(out, retrain_lib.CHECKPOINT_DIR))
    with open(os.path.join(out, "retrain.json")) as f:
        assert json.load(f)["test_acc"] == rec["test_acc"]
    model, meta = artifact.load(os.path.join(out, "model"))
    assert len(model.outputs) == 1 and model.count_params() == rec["params"]
    assert meta["arch"] == TINY and meta["dataset"] == "digits"
    assert meta["metrics"]["test_acc"] == pytest.approx(rec["test_acc"])
    assert os.path.isdir(os.path.join(out, "tb", "train"))
    again = retrain_lib.retrain(arch, sp, data_cfg, TrainConfig(epochs=2), out, verbose=0)
    assert again["wall_s"] == rec["wall_s"]  # the stored record, no training


def _parse(argv):
    fv = flags.FlagValues()
    train_flags.define_data_flags(fv)
    train_flags.define_train_flags(fv)
    train_flags.define_data_flags(fv)  # safe to call again
    train_flags.define_train_flags(fv)
    flags.DEFINE_string("space", None, "", flag_values=fv)
    flags.DEFINE_string("channel_mode", None, "", flag_values=fv)
    flags.DEFINE_bool("aux_head", False, "", flag_values=fv)
    flags.DEFINE_float("dropout", 0.0, "", flag_values=fv)
    fv(["prog"] + argv)
    return fv


def test_flags_become_configs_and_bad_values_are_usage_errors():
    fv = _parse(["--dataset=digits", "--augment=crop,flip", "--resolution=16", "--epochs=3"])
    d = train_flags.data_config_from_flags(fv, split="final", seed=4)
    t = train_flags.train_config_from_flags(fv, seed=4)
    assert d.augment == ("crop", "flip") and d.image_size == 16 and d.split == "final"
    assert t.epochs == 3 and t.seed == 4 and t.weight_decay == 3e-4
    from eatnas_tf import cli
    with pytest.raises(cli.UsageError, match="augment: received 'mixup'"):
        train_flags.data_config_from_flags(_parse(["--augment=mixup"]))


def _flagfile(name):
    return _parse([f"--flagfile={os.path.join(ROOT, 'flags', name)}"])


def test_paper_flagfiles_hold_the_paper_values():
    f = _flagfile("train_cifar10_search.inc.cfg")
    d, t = train_flags.data_config_from_flags(f), train_flags.train_config_from_flags(f)
    assert (d.dataset, d.val_fraction, d.augment, d.batch_size) == (
        "cifar10",
        0.2,
        ("crop", "flip"),
        128,
    )
    assert (t.epochs, t.learning_rate, t.lr_schedule, t.momentum, t.weight_decay) == (
        1, 0.0256, "constant", 0.9, 3e-4)
    f = _flagfile("eat_cifar10_retrain.cfg")
    d, t = (
        train_flags.data_config_from_flags(f, split="final"),
        train_flags.train_config_from_flags(f),
    )
    assert (t.epochs, d.batch_size, t.learning_rate, t.lr_schedule) == (
        630,
        96,
        0.0125,
        "cosine_restarts",
    )
    assert "cutout" in d.augment and d.cutout_length == 16 and f.aux_head and t.aux_weight == 0.4
    assert f.dropout == 0.0 and d.val_fraction == 0.0
    f = _flagfile("train_imagenet_search.inc.cfg")
    d, t = train_flags.data_config_from_flags(f), train_flags.train_config_from_flags(f)
    assert (d.dataset, d.batch_size, t.learning_rate) == ("imagenet2012", 128, 0.05)
    assert d.augment == ("random_resized_crop", "flip")
    f = _flagfile("eat_imagenet_retrain.cfg")
    d, t = (
        train_flags.data_config_from_flags(f, split="final"),
        train_flags.train_config_from_flags(f),
    )
    assert (t.epochs, t.momentum, t.weight_decay, t.learning_rate) == (200, 0.9, 4e-5, 0.1)
    assert (t.lr_schedule, t.lr_end) == ("polynomial", 1e-4)
    assert set(d.augment) == {"scale", "flip", "color"} and d.plain_last_epochs == 20


def test_retrain_binary_reports_bad_values_in_one_line():
    out = subprocess.run([sys.executable, "-m", "eatnas_tf.retrain", f"--arch={TINY}",
                          "--space=digits", "--dataset=digits", "--output_dir=/nonexistent/x",
                          "--sample_fraction=2"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
                         timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: sample_fraction: received 2")
    assert "Traceback" not in out.stderr
