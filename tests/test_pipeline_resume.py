"""`python -m eatnas_tf.run` killed with SIGKILL and started again (issue 15, "Resume"):

* without a time budget (`--deterministic_ops`), three seeded random kills spread over
  stage-1 search, stage-1 retraining, stage-2 search and the final retraining end with the
  same winner and the same `candidates.jsonl` (timing fields aside) as an uninterrupted run;
* with `--time_budget`, a run killed once and resumed stays within the budget it had left:
  `budget.json` holds the time the killed process spent, the resumed one sizes its phases
  from what remains, and both processes together end within the budget plus a stated slack.

The data is a real image folder: Fashion-MNIST training images written as PNG files.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from eatnas_tf.data import idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_fmnist = pytest.mark.skipif(not idx.available(), reason="dataset-fashion-mnist not installed")

# Timing fields differ between any two runs; everything else of a record must not.
TIMING = {"wall_s", "train_s", "tracing_s", "images_per_s", "images_per_s_steady", "build_s",
          "first_step_s", "eval_s", "recal_s", "clear_s", "epoch_s"}
# The line each phase starts with (a resumed process prints the earlier ones again).
PHASES = [("stage1_search", "== stage 1:"), ("stage1_retrain", "== stage1: retrain"),
          ("stage2_search", "== stage 2:"), ("retrain", "== stage2: retrain")]
SMALL = ["--image_size=16", "--seed=0", "--stage1_population=2", "--stage1_sample=2",
         "--stage2_population=2", "--stage2_sample=2", "--batch_size=32",
         "--learning_rate=0.02", "--noexport"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """4 classes × 120 Fashion-MNIST training images (seeded) as DIR/<class>/<index>.png."""
    from PIL import Image

    x, y = idx.load_split("train")
    rng = np.random.RandomState(0)
    root = tmp_path_factory.mktemp("photos")
    for c in range(4):
        d = root / f"class{c}"
        d.mkdir()
        for i in rng.choice(np.flatnonzero(y == c), 120, replace=False):
            Image.fromarray(x[i, ..., 0]).save(d / f"{i:05d}.png")
    return str(root)


def _cmd(run_dir, photos, extra):
    return [sys.executable, "-m", "eatnas_tf.run", f"--dataset=folder:{photos}",
            f"--run_dir={run_dir}", *SMALL, *extra]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")


def _run(cmd, timeout=600):
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p


def _run_and_kill(cmd, marker, delay_s, log):
    """Starts `cmd`, SIGKILLs it `delay_s` after it prints a line starting with `marker`;
    returns its exit code (-9 when the kill landed, 0 when it finished first)."""
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen = threading.Event()

    def read():
        for line in p.stdout:
            log.append(line)
            if line.startswith(marker):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while not seen.is_set() and p.poll() is None and time.monotonic() < deadline:
        seen.wait(0.05)
    if seen.is_set():
        time.sleep(delay_s)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
    rc = p.wait(timeout=600)
    reader.join(timeout=10)
    return rc


def _records(run_dir):
    """candidates.jsonl without timing fields, the run directory's path made relative."""
    root = os.path.abspath(run_dir) + os.sep
    with open(os.path.join(run_dir, "candidates.jsonl")) as f:
        return [{k: v.replace(root, "") if isinstance(v, str) else v
                 for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def _winner(run_dir):
    """The winner, the basic model and every retraining's losses (exact floats: a
    retraining resumed from its per-epoch checkpoint must equal an uninterrupted one)."""
    with open(os.path.join(run_dir, "report.json")) as f:
        report = json.load(f)
    w, b = report["winner"], report["basic_model"]
    out = {"winner": {k: w[k] for k in ("arch", "id", "stage", "test_accuracy", "val_acc",
                                        "params", "madds")},
           "basic": {k: b[k] for k in ("arch", "id", "val_acc", "test_acc")}}
    for stage in ("stage1", "stage2"):
        top = os.path.join(run_dir, "retrain", stage)
        for c in sorted(os.listdir(top)):
            with open(os.path.join(top, c, "retrain.json")) as f:
                r = json.load(f)
            out[f"{stage}/{c}"] = {k: r[k] for k in ("train_loss", "val_loss", "test_loss",
                                                     "val_acc", "test_acc", "epochs")}
    return out


def _spent(run_dir):
    with open(os.path.join(run_dir, "budget.json")) as f:
        return json.load(f)["spent"]


@needs_fmnist
@pytest.mark.slow
def test_three_sigkills_end_as_the_uninterrupted_run(tmp_path, photos):
    extra = ["--stage1_candidates=4", "--stage2_candidates=4", "--stage1_retrain_epochs=2",
             "--retrain_epochs=2", "--deterministic_ops"]
    ref = str(tmp_path / "ref")
    _run(_cmd(ref, photos, extra))
    phase_s = _spent(ref)
    # Three kill points, seeded, in three different phases, each at a random moment of it.
    rng = random.Random(15)
    chosen = sorted(rng.sample(range(len(PHASES)), 3))
    points = [(PHASES[i][0], PHASES[i][1], rng.uniform(0.15, 0.85) * phase_s[PHASES[i][0]])
              for i in chosen]
    d = str(tmp_path / "killed")
    logs = []
    for name, marker, delay in points:
        log = []
        rc = _run_and_kill(_cmd(d, photos, extra), marker, delay, log)
        logs.append((name, round(delay, 1), rc))
        assert rc == -signal.SIGKILL, (logs, "".join(log)[-3000:])
    p = _run(_cmd(d, photos, extra))  # the same command once more: runs to the end
    assert "resumed" in p.stdout, p.stdout[-2000:]
    assert _records(d) == _records(ref), logs
    assert _winner(d) == _winner(ref), logs
    assert set(_spent(d)) == set(phase_s)


@needs_fmnist
@pytest.mark.slow
def test_time_budget_kept_across_a_sigkill(tmp_path, photos):
    """A 150 s budget, killed 8 s into stage 2's search and resumed with the same command.

    The budget counts from each process' start (imports and data loading are phase
    "setup"), so the two processes' wall time is what `budget.json` holds, up to the last
    write before the kill (every `budget.TICK_S`) and the interpreter's start. Stated
    slack: two candidates in flight when a share ran out (one per search stage; a stage
    always hands one candidate on), each retraining's fixed cost (build, tracing,
    evaluation, saving: its wall time beyond its steady training; a retraining always
    trains at least one short epoch) and 10 s (the step lost with the kill)."""
    from eatnas_tf.search import budget as budget_lib

    budget = 150.0
    extra = [f"--time_budget={budget:.0f}s", "--stage1_retrain_epochs=3", "--retrain_epochs=3"]
    d = str(tmp_path / "budgeted")
    log = []
    t0 = time.monotonic()
    rc = _run_and_kill(_cmd(d, photos, extra), "== stage 2:", 8.0, log)
    wall1 = time.monotonic() - t0
    assert rc == -signal.SIGKILL, "".join(log)[-3000:]
    spent1 = _spent(d)
    alloc1 = json.load(open(os.path.join(d, "budget.json")))["alloc"]
    # The killed process' time is on record, stage 2's search up to the last tick.
    assert {"setup", "stage1_search", "stage1_retrain", "stage2_search"} <= set(spent1)
    assert spent1["stage2_search"] >= 8.0 - budget_lib.TICK_S - 1, spent1
    assert sum(spent1.values()) >= wall1 - budget_lib.TICK_S - 5, (spent1, wall1)
    left = budget - sum(spent1.values())
    t1 = time.monotonic()
    p = _run(_cmd(d, photos, extra))
    wall2 = time.monotonic() - t1
    spent = _spent(d)
    recs = [json.loads(line) for line in open(os.path.join(d, "candidates.jsonl"))]
    slowest = max(r["wall_s"] for r in recs)
    fixed = 0.0
    for stage in ("stage1", "stage2"):
        for c in os.listdir(os.path.join(d, "retrain", stage)):
            r = json.load(open(os.path.join(d, "retrain", stage, c, "retrain.json")))
            fixed += r["wall_s"] - r["train_s"] + r["tracing_s"]
    slack = 2 * slowest + fixed + 10
    assert "budget left" in p.stdout
    state = json.load(open(os.path.join(d, "budget.json")))
    # Stage 2's search kept the share it started with; the final retraining's share came
    # from what the killed process left.
    assert state["alloc"]["stage2_search"] == pytest.approx(alloc1["stage2_search"])
    assert state["alloc"]["retrain"] <= max(0.0, left), (state, left)
    # The resumed run stays within what was left (and both together within the budget).
    assert wall2 <= left + slack, (wall1, wall2, left, spent1, spent, slowest, fixed)
    assert sum(spent.values()) <= budget + slack, (spent, slowest)
    assert wall1 + wall2 <= budget + slack + 2 * 5, (wall1, wall2, spent, slowest)


def test_budget_written_while_a_phase_runs(tmp_path):
    """What a SIGKILL leaves: the running phase's time (up to the last tick) and its share
    are on disk; a resumed process gives that phase its share minus its spend, and the
    phases not started yet share what is left."""
    from eatnas_tf.search import budget as budget_lib

    path = str(tmp_path / "budget.json")
    b = budget_lib.Budget.load(path, 100.0, tick_s=0.05)
    b.add("setup", 10.0)
    with b.phase("stage1_search") as ph:
        assert ph.seconds == pytest.approx(90 * 0.25)
        time.sleep(0.4)
        on_disk = json.load(open(path))  # as a kill would leave it
        resumed = budget_lib.Budget.load(path, 100.0)
    assert on_disk["spent"]["stage1_search"] >= 0.25 and "stage1_search" not in on_disk["done"]
    spent = resumed.spent["stage1_search"]
    assert resumed.share_s("stage1_search") == pytest.approx(90 * 0.25 - spent)
    left = 100.0 - 10.0 - spent
    assert resumed.share_s("stage1_retrain") == pytest.approx(left * 0.10 / 0.75)
    after = budget_lib.Budget.load(path, 100.0)
    assert "stage1_search" in after.done and not after.finished()
    assert after.plan("retrain_size", lambda: (2, None)) == (2, None)
    again = budget_lib.Budget.load(path, 100.0)
    assert again.plan("retrain_size", lambda: (3, None)) == [2, None]  # kept on resume
