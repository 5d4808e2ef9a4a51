"""The pipeline on any data (issue 15): the space derived from the data, the small task,
the time budget, `python -m eatnas_tf.run` end to end with resume, `api.run`."""

import json
import os
import subprocess
import sys
import time

import pytest

from eatnas_tf.arch import auto_space
from eatnas_tf.arch import space as space_lib
from eatnas_tf.search import budget as budget_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--stage1_candidates=3", "--stage1_population=2", "--stage1_sample=2",
        "--stage2_candidates=3", "--stage2_population=2", "--stage2_sample=2",
        "--stage1_retrain_epochs=1", "--retrain_epochs=1", "--batch_size=64",
        "--noexport", "--deterministic_ops"]


def _run(*args, check=True, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, "-m", "eatnas_tf.run", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"run {args} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


# -- the space from the data ----------------------------------------------------------------
@pytest.mark.parametrize("size,stem,blocks,final", [
    (8, 1, (1, 1, 2, 1, 1, 1, 1), 4), (14, 1, (1, 1, 2, 1, 2, 1, 1), 4),
    (28, 2, (1, 1, 2, 1, 2, 1, 1), 4), (64, 2, (1, 2, 2, 1, 2, 1, 1), 4),
    (224, 2, (1, 2, 2, 2, 2, 1, 1), 7)])
def test_auto_space_rule(size, stem, blocks, final):
    s = auto_space.derive_space(image_size=size, channels=3, num_classes=5)
    assert (s.macro.stem_stride, s.macro.block_strides) == (stem, blocks)
    assert auto_space.final_size(size, stem, blocks) == final >= 2
    assert s.macro.num_classes == 5 and s.macro.in_channels == 3
    assert s.head == (1280 if size > 64 else 256)


def test_auto_space_for_fashion_mnist_is_the_demo_layout():
    s = auto_space.derive_space(image_size=28, channels=1, num_classes=10)
    assert s.macro == space_lib.get_space("fashion_mnist").macro
    small = auto_space.small_task(s, auto_space.small_size(28))
    assert small.macro == space_lib.get_space("fashion_mnist_14").macro
    assert s.target == pytest.approx(6e6) and s.max_madds == pytest.approx(12e6)


def test_small_task_keeps_block_feature_maps():
    for size in (32, 64, 96, 224):
        full = auto_space.derive_space(image_size=size, channels=3, num_classes=10)
        small = auto_space.small_task(full, auto_space.small_size(size))
        m, n = full.macro, small.macro
        assert auto_space.final_size(n.image_size, n.stem_stride, n.block_strides) == \
            auto_space.final_size(m.image_size, m.stem_stride, m.block_strides)


def test_auto_space_bad_values_one_line():
    with pytest.raises(ValueError, match="image_size"):
        auto_space.derive_space(image_size=4, channels=1, num_classes=2)
    with pytest.raises(ValueError, match="target"):
        auto_space.derive_space(image_size=32, channels=3, num_classes=2, target=-1)


# -- the time budget --------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [("90s", 90), ("20m", 1200), ("2h", 7200),
                                          ("1h30m", 5400), ("45", 45)])
def test_parse_duration(text, seconds):
    assert budget_lib.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "20x", "m", "-5m", "0s", "1h 30m"])
def test_parse_duration_bad(bad):
    with pytest.raises(ValueError, match="time_budget"):
        budget_lib.parse_duration(bad)


@pytest.mark.parametrize("images,batch,min_steps,want", [
    (57000, 128, 30, 128),  # a large dataset keeps its batch
    (320, 128, 30, 10),     # a small folder: 32 steps an epoch, not 3
    (100, 128, 30, 8),      # never below MIN_BATCH
    (320, 128, 0, 128),     # 0: the batch as given
    (320, 4, 30, 4),        # never above the batch given
])
def test_fit_batch(images, batch, min_steps, want):
    from eatnas_tf.search.eat_pipeline import fit_batch

    assert fit_batch(images, batch, min_steps) == want


def test_budget_shares_and_resume(tmp_path):
    path = str(tmp_path / "budget.json")
    b = budget_lib.Budget.load(path, 1000.0)
    assert b.share_s("stage1_search") == pytest.approx(250.0)
    b.add("stage1_search", 100.0)  # finished early: the rest goes to the later phases
    assert b.share_s("stage1_retrain") == pytest.approx(900 * 0.10 / 0.75)
    again = budget_lib.Budget.load(path, 1000.0)  # a resumed run
    assert again.left_s() == pytest.approx(900.0) and again.spent == {"stage1_search": 100.0}
    with again.phase("stage1_retrain") as ph:
        assert ph.deadline - time.monotonic() <= again.share_s("stage1_retrain") + 1
    assert "stage1_retrain" in budget_lib.Budget.load(path, 1000.0).spent
    assert budget_lib.Budget(None, None).share_s("retrain") is None


# -- the command end to end -----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("run") / "digits")
    p = _run("--dataset=digits", f"--run_dir={d}", *TINY)
    return d, p


def test_run_on_digits_end_to_end(digits_run):
    d, p = digits_run
    report = json.load(open(os.path.join(d, "report.json")))
    assert [s["name"] for s in report["stages"]] == ["stage1", "stage2"]
    assert report["winner"]["test_accuracy"] is not None
    spaces = report["spaces"]
    assert spaces["stage2"]["macro"]["image_size"] == 8
    assert spaces["stage1"]["macro"]["image_size"] == 4  # the derived small task
    recs = [json.loads(line) for line in open(os.path.join(d, "candidates.jsonl"))]
    assert [r["stage"] for r in recs] == ["stage1"] * 3 + ["stage2"] * 3
    assert all(r["origin"] == "offspring" for r in recs[3:5])  # elastic transfer
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["config"]["plan"]["stage2"]["space"]["name"] == "auto"
    assert "ETA" in p.stdout and "winner" in p.stdout
    # ~1150 digits at --batch_size=64 are 18 steps an epoch: the batch is cut to 30+ steps.
    plan = cfg["config"]["plan"]
    assert plan["stage1"]["data"]["batch_size"] < 64 and plan["retrain"]["data"]["batch_size"] < 64
    assert "batch 33" in p.stdout


def test_run_resumes_without_training_again(digits_run):
    d, _ = digits_run
    before = open(os.path.join(d, "candidates.jsonl")).read()
    p = _run("--dataset=digits", f"--run_dir={d}", *TINY)
    assert "resumed: 3 stored candidates replayed, 0 new" in p.stdout
    assert open(os.path.join(d, "candidates.jsonl")).read() == before


def test_run_refuses_changed_settings(digits_run):
    d, _ = digits_run
    p = _run("--dataset=digits", f"--run_dir={d}", *TINY, "--target_madds=5e5", check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "space" in lines[0]


@pytest.mark.parametrize("args,field", [
    (["--dataset=folder:/nonexistent/photos"], "folder"),
    (["--dataset=digits", "--time_budget=soon"], "time_budget"),
    (["--dataset=digits", "--space=mars"], "space"),
    (["--dataset=digits", "--target_madds=1e6", "--target_params=1e5"], "target"),
])
def test_run_bad_input_one_line_nothing_written(tmp_path, args, field):
    d = str(tmp_path / "x")
    p = _run(f"--run_dir={d}", *args, check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and field in lines[0], p.stderr[-1500:]
    assert not os.path.exists(os.path.join(d, "candidates.jsonl"))


def test_time_budget_is_kept(tmp_path):
    """Unbounded stages under a 60 s budget: the search and retraining end within the
    budget plus the candidate / epoch in flight when a share ran out."""
    d = str(tmp_path / "budget")
    t0 = time.monotonic()
    _run("--dataset=digits", f"--run_dir={d}", "--time_budget=60s", "--stage1_population=2",
         "--stage1_sample=2", "--stage2_population=2", "--stage2_sample=2", "--batch_size=64",
         "--noexport")
    wall = time.monotonic() - t0
    spent = json.load(open(os.path.join(d, "budget.json")))["spent"]
    recs = [json.loads(line) for line in open(os.path.join(d, "candidates.jsonl"))]
    slowest = max(r["wall_s"] for r in recs)
    assert sum(spent.values()) <= 60 + 3 * slowest + 30, (spent, slowest)
    assert {r["stage"] for r in recs} == {"stage1", "stage2"}  # each stage hands one on
    assert wall < 60 + 3 * slowest + 120


def test_api_run_same_code_path(digits_run, tmp_path):
    from eatnas_tf import api

    d, _ = digits_run
    res = api.run(dataset="digits", run_dir=d, **{a[2:].split("=")[0]: a.split("=")[1]
                                                for a in TINY if "=" in a},
                  export=False, deterministic_ops=True)
    report = json.load(open(os.path.join(d, "report.json")))
    assert res.arch == report["winner"]["arch"] and res.test_accuracy is not None
    with pytest.raises(ValueError, match="time_budget"):
        api.run(dataset="digits", run_dir=str(tmp_path / "y"), time_budget="soon")


def test_search_on_bad_folder_exits_2_and_writes_nothing(tmp_path):
    """One class only: the search command refuses before the run dir exists."""
    import numpy as np
    from PIL import Image

    cls = tmp_path / "photos" / "cat"
    cls.mkdir(parents=True)
    for i in range(6):
        Image.fromarray((np.random.RandomState(i).rand(16, 16, 3) * 255).astype("uint8")).save(
            cls / f"{i}.png")
    d = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, "-m", "eatnas_tf.search", f"--run_dir={d}",
                        "--flagfile=flags/smoke.cfg", f"--dataset=folder:{tmp_path / 'photos'}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "class" in lines[0], p.stderr[-1500:]
    assert not d.exists()
