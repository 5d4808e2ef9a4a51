"""TensorBoard shows a search as it runs: step-level train curves per candidate (≥ 2 points
for a 1-epoch candidate, so the chart draws a line), the stage's curves over candidates
(population quality Eq. 3, best / mean accuracy so far), the HParams sessions, and the
retraining curves."""

import glob
import os

import pytest

from eatnas_tf.arch import space as space_lib
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.search.experiment import Stage
from eatnas_tf.search.run_dir import RunDir
from eatnas_tf.search.runner import run_stage
from eatnas_tf.search.strategy import SearchConfig
from eatnas_tf.train import trainer
from eatnas_tf.train.config import TrainConfig


def scalars(run_dir):
    """{tag: [(step, value), ...]} of the event files directly in `run_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("tensors", []):
        out[tag] = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                    for e in acc.Tensors(tag) if not e.tensor_proto.string_val]
    return out


@pytest.fixture(scope="module")
def search_tb(tmp_path_factory):
    """A 4-candidate EAT search on digits (population 2), 1 epoch of 6 steps each, logging
    every 2 steps."""
    path = str(tmp_path_factory.mktemp("tb_run"))
    stage = Stage("search", "eat", space_lib.get_space("digits"),
                  DataConfig("digits", batch_size=64, max_train_examples=384),
                  TrainConfig(epochs=1, learning_rate=0.05),
                  SearchConfig(population=2, sample=2, max_candidates=4), seed=0)
    old = os.environ.get(trainer.STEP_ENV)
    os.environ[trainer.STEP_ENV] = "2"
    try:
        result = run_stage(RunDir(path), stage, progress=None)
    finally:
        if old is None:
            os.environ.pop(trainer.STEP_ENV, None)
        else:
            os.environ[trainer.STEP_ENV] = old
    return path, result


def test_step_scalars_have_a_line_per_one_epoch_candidate(search_tb):
    path, result = search_tb
    runs = sorted(glob.glob(os.path.join(path, "tb", "search", "c*", "train")))
    assert len(runs) == len([r for r in result.records if r.trained]) == 4
    for run in runs:
        s = scalars(run)
        for tag in ("batch_loss", "batch_accuracy", "batch_learning_rate"):
            steps = [st for st, _ in s[tag]]
            assert len(steps) >= 2, (run, tag, steps)
            assert steps == sorted(steps) and steps[0] == 1
        assert all(v is not None and v > 0 for _, v in s["batch_loss"])
        assert "epoch_loss" in s  # the per-epoch scalars stay


def test_stage_curves_over_candidates(search_tb):
    path, result = search_tb
    s = scalars(os.path.join(path, "tb", "search", "search"))
    n = len(result.records)
    for tag in ("search/val_acc", "search/best_val_acc", "search/mean_val_acc"):
        assert [st for st, _ in s[tag]] == list(range(1, n + 1)), tag
    best = [v for _, v in s["search/best_val_acc"]]
    assert best == sorted(best)  # running best never falls
    accs = [r.val_acc for r in result.records]
    assert best[-1] == pytest.approx(max(accs))
    assert [v for _, v in s["search/mean_val_acc"]][-1] == pytest.approx(sum(accs) / n)
    # the population quality (Eq. 3) once the initial population (2) is complete
    q = s["population/quality"]
    assert [st for st, _ in q] == [2, 3, 4]
    history = result.strategy.history()
    assert q[-1][1] == pytest.approx(history[-1]["quality"], rel=1e-5)


def test_hparams_sessions_stay(search_tb):
    path, _ = search_tb
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sessions = 0
    for run in glob.glob(os.path.join(path, "tb", "search", "c*")):
        acc = EventAccumulator(run)
        acc.Reload()
        assert "val_acc" in acc.Tags()["tensors"]
        sessions += any("_hparams_" in t for t in acc.Tags()["tensors"]) or bool(
            acc.PluginTagToContent("hparams"))
    assert sessions == 4


def test_step_interval():
    assert trainer.step_interval(100) == 5
    assert trainer.step_interval(7) == 1
    assert trainer.step_interval(100, 0) == 0
    assert trainer.step_interval(100, 30) == 30
    with pytest.raises(ValueError):
        trainer.step_interval(100, -1)


def test_retraining_curves_under_run_tb(search_tb):
    from eatnas_tf.search import pipeline

    path, result = search_tb
    rows = pipeline.retrain_topk(RunDir(path), result,
                                 DataConfig("digits", batch_size=64, max_train_examples=384,
                                            split="final"),
                                 TrainConfig(epochs=2, learning_rate=0.05, lr_schedule="cosine"),
                                 1, verbose=0, progress=None)
    cid = rows[0]["id"]
    s = scalars(os.path.join(path, "tb", "retrain", "search", f"c{cid:05d}", "train"))
    assert [st for st, _ in s["epoch_loss"]] == [1, 2]
    assert len(s["batch_loss"]) >= 4
    lrs = [v for _, v in s["batch_learning_rate"]]
    assert lrs[-1] < lrs[0]  # the cosine schedule, visible per step
