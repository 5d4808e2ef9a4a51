"""Executors and --parallel (issue 7): the same candidates from every executor for a fixed
seed and K, faults recorded as `failed` (raise, NaN, killed worker), kill -9 of a
subprocess search resumed to the same candidates, and a fuzz of malformed encodings and
flag values that must only give clean one-line errors."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import count
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search import executors
from eatnas_tf.search.evaluate import EvalResult, evaluate
from eatnas_tf.search.experiment import Stage
from eatnas_tf.search.run_dir import RunDir
from eatnas_tf.search.runner import run_stage
from eatnas_tf.search.strategy import SearchConfig
from eatnas_tf.train.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = space_lib.get_space("digits")
KEYS = ("id", "arch", "hash", "parent", "origin", "status", "val_acc", "score")


# -- helpers (module level: worker processes import them) --------------------------------
def fake_evaluate(req, **kw):
    """No training: val_acc from the architecture hash (tests of the runner's batching)."""
    del kw
    c = count(req.arch, DIGITS.macro)
    h = int(codec.canonical_hash(req.arch), 16)
    return EvalResult(record=CandidateRecord(
        status="ok", seed=req.seed, epochs=req.train.epochs, val_acc=(h % 997) / 997,
        params=c.params, madds=c.madds, layers=c.layers, extra={"pid": os.getpid()}))


FAULTS = {4: "raise", 5: "nan", 6: "kill", 7: "kill_once"}


def faulty_evaluate(req, **kw):
    """Candidate id == seed (run seed 0): injects the fault `FAULTS` names for it."""
    fault = FAULTS.get(req.seed)
    if fault == "raise":
        raise RuntimeError("injected failure")
    if fault == "nan":  # an absurd learning rate: the loss diverges
        req = dataclasses.replace(req, train=req.train.replace(learning_rate=1e30))
    if fault == "kill":
        os._exit(7)
    if fault == "kill_once":
        marker = os.path.join(os.environ["EATNAS_TEST_MARKERS"], f"killed_{req.seed}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(9)
    return evaluate(req, **kw)


def _stage(strategy="eat", population=4, max_candidates=8, seed=0, inherit=True):
    return Stage("search", strategy, DIGITS,
                 DataConfig("digits", batch_size=64, max_train_examples=256),
                 TrainConfig(epochs=1, learning_rate=0.05, steps_per_epoch=3),
                 SearchConfig(population=population, sample=2, max_candidates=max_candidates,
                              topk=1, inherit=inherit), seed=seed)


def _fake_stage(strategy="eat", max_candidates=14):
    return Stage("search", strategy, DIGITS, DataConfig("digits"), TrainConfig(epochs=1),
                 SearchConfig(population=4, sample=2, max_candidates=max_candidates), seed=3)


def _essential(records, keys=KEYS):
    rows = [r.to_json() if isinstance(r, CandidateRecord) else r for r in records]
    return [{k: r.get(k) for k in keys} for r in rows]


@pytest.fixture
def deterministic_ops():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    yield


# -- batching in the runner (no training) ------------------------------------------------
@pytest.mark.parametrize("k", [2, 3])
def test_parallel_batches_are_ordered_and_resumable(tmp_path, k):
    ex = executors.LocalExecutor(evaluate_fn=fake_evaluate)
    st = _fake_stage()
    full = run_stage(RunDir(str(tmp_path / "full")), st, executor=ex, parallel=k,
                     progress=None, tensorboard=False)
    recs = full.records
    assert [r.id for r in recs] == list(range(14))
    assert [r.origin for r in recs] == ["random"] * 4 + ["mutation"] * 10
    assert len({r.hash for r in recs}) == 14
    for r in recs[4:]:
        assert r.parent < r.id
    assert len(full.strategy.population) == 4  # P stays constant with K tournaments per step
    # the same seed and K: the same candidates
    again = run_stage(RunDir(str(tmp_path / "again")), st, executor=ex, parallel=k,
                      progress=None, tensorboard=False)
    assert _essential(again.records) == _essential(recs)
    # interrupted inside a batch (max_new) and after a partial batch was stored
    d = str(tmp_path / "cut")
    part = run_stage(RunDir(d), st, executor=ex, parallel=k, progress=None,
                     tensorboard=False, max_new=7)
    assert len(part.records) == 7
    rest = run_stage(RunDir(d), st, executor=ex, parallel=k, progress=None, tensorboard=False)
    assert rest.evaluated == 7 and _essential(rest.records) == _essential(recs)
    d2 = str(tmp_path / "torn")
    os.makedirs(d2)
    with open(os.path.join(tmp_path, "full", "candidates.jsonl")) as f:
        lines = f.readlines()
    with open(os.path.join(d2, "candidates.jsonl"), "w") as f:
        f.writelines(lines[:9])
        f.write(lines[9][:40])  # killed mid-write
    torn = run_stage(RunDir(d2), st, executor=ex, parallel=k, progress=None, tensorboard=False)
    assert torn.evaluated == 5 and _essential(torn.records) == _essential(recs)


def test_parallel_changes_eat_but_not_random(tmp_path):
    ex = executors.LocalExecutor(evaluate_fn=fake_evaluate)
    runs = {}
    for strat in ("eat", "random"):
        for k in (1, 2):
            r = run_stage(RunDir(str(tmp_path / f"{strat}{k}")), _fake_stage(strat), executor=ex,
                          parallel=k, progress=None, tensorboard=False)
            runs[strat, k] = [x.hash for x in r.records]
    assert runs["random", 1] == runs["random", 2]  # draws do not depend on results
    assert runs["eat", 1][:4] == runs["eat", 2][:4]  # same initial population
    assert len(runs["eat", 2]) == 14


def test_subprocess_executor_recycles_and_orders(tmp_path):
    st = _fake_stage()
    reqs = []
    from eatnas_tf.search.evaluate import EvalRequest

    rng = random.Random(0)
    for i in range(7):
        reqs.append(EvalRequest(arch=DIGITS.sample(rng), space=DIGITS,
                                data=st.data, train=st.train, seed=i))
    with executors.SubprocessExecutor(2, max_tasks_per_worker=2, evaluate_fn=fake_evaluate,
                                      gpus=[]) as ex:
        out = ex.run(reqs)
        assert [r.record.seed for r in out] == list(range(7))
        assert [r.record.val_acc for r in out] == [fake_evaluate(q).record.val_acc for q in reqs]
        assert len({r.record.extra["pid"] for r in out}) >= 4  # recycled every 2 candidates
        assert ex.started >= 4
    assert all(w is None for w in ex._workers)


def test_bad_executor_values():
    with pytest.raises(ValueError, match="executor"):
        executors.make_executor("cluster")
    with pytest.raises(ValueError, match="parallel"):
        executors.make_executor("subprocess", parallel=0)
    with pytest.raises(ValueError, match="max_worker_retries"):
        executors.make_executor("subprocess", parallel=2, max_retries=-1)


# -- the executors give the same candidates ----------------------------------------------
def _search(tmp_path, name, executor, k=2, population=4, max_candidates=8):
    run = RunDir(str(tmp_path / name))
    try:
        return run_stage(run, _stage(population=population, max_candidates=max_candidates),
                         executor=executor, parallel=k, progress=None,
                         tensorboard=False).records
    finally:
        executor.close()


@pytest.mark.parametrize("population,max_candidates", [
    (2, 4), pytest.param(4, 8, marks=pytest.mark.slow)])
def test_local_and_subprocess_give_same_candidates(tmp_path, deterministic_ops, population,
                                                   max_candidates):
    local = _search(tmp_path, "local", executors.LocalExecutor(), population=population,
                    max_candidates=max_candidates)
    sub = _search(tmp_path, "sub", executors.SubprocessExecutor(2, deterministic_ops=True,
                                                                gpus=[]),
                  population=population, max_candidates=max_candidates)
    assert all(r.status == "ok" for r in local)
    n = max_candidates - population
    assert [r.origin for r in local] == ["random"] * population + ["mutation"] * n
    assert _essential(sub) == _essential(local)  # archs, parents, val_acc, score: identical


@pytest.mark.slow
def test_ray_gives_same_candidates(tmp_path, deterministic_ops):
    pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    local = _search(tmp_path, "local", executors.LocalExecutor())
    # a local 2-CPU cluster started here, on the loopback interface only
    ray_ex = executors.RayExecutor(
        parallel=2, deterministic_ops=True, num_gpus=0,
        init_kwargs={"num_cpus": 2, "_node_ip_address": "127.0.0.1"})
    got = _search(tmp_path, "ray", ray_ex)
    assert _essential(got) == _essential(local)


# -- faults ------------------------------------------------------------------------------
@pytest.mark.slow  # ~3-5 min on 2 busy cores (8 trainings + worker restarts)
@pytest.mark.parametrize("name", ["local", "subprocess"])
def test_faults_become_failed_candidates(tmp_path, monkeypatch, name):
    monkeypatch.setenv("EATNAS_TEST_MARKERS", str(tmp_path))
    if name == "local":
        faults = dict(FAULTS)
        faults.pop(6), faults.pop(7)  # os._exit would end the test process
        monkeypatch.setattr(sys.modules[__name__], "FAULTS", faults)
        ex = executors.LocalExecutor(evaluate_fn=faulty_evaluate)
    else:
        ex = executors.SubprocessExecutor(2, max_retries=1, evaluate_fn=faulty_evaluate,
                                          gpus=[])
    try:
        recs = run_stage(RunDir(str(tmp_path / "run")), _stage(max_candidates=8), executor=ex,
                         parallel=2, progress=None, tensorboard=False).records
    finally:
        ex.close()
    assert len(recs) == 8
    by_id = {r.id: r for r in recs}
    assert by_id[4].status == "failed" and "injected failure" in by_id[4].reason
    assert by_id[5].status == "failed" and "TrainingDiverged" in by_id[5].reason
    for r in recs:
        if r.status == "failed":
            assert r.reason and "\n" not in r.reason and r.score is None
    if name == "subprocess":
        assert by_id[6].status == "failed"
        assert "worker died (exit code 7) on all 2 attempts" in by_id[6].reason
        assert by_id[7].status == "ok" and by_id[7].worker_retries == 1
    assert all(by_id[i].status == "ok" for i in range(4))


# -- kill -9 -----------------------------------------------------------------------------
def _cli(*args, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "eatnas_tf.search", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _lines(run_dir):
    try:
        with open(os.path.join(run_dir, "candidates.jsonl")) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def _records(run_dir):
    with open(os.path.join(run_dir, "candidates.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_kill9_subprocess_search_resumes_to_same_candidates(tmp_path):
    flags_ = ["--flagfile=flags/smoke.cfg", "--deterministic_ops", "--executor=subprocess",
              "--parallel=2", "--worker_max_tasks=0"]
    ref = str(tmp_path / "ref")
    p = _cli(f"--run_dir={ref}", *flags_)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    d = str(tmp_path / "killed")
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        p = _cli(f"--run_dir={d}", *flags_)
        target = _lines(d) + rng.randint(0, 2)
        # B023: wait_until calls the lambda now, in this iteration
        executors.wait_until(
            lambda: _lines(d) >= target or p.poll() is not None, 600, 0.2  # noqa: B023
        )
        time.sleep(rng.uniform(0.0, 4.0))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the search and its workers, as a crash would
            kills += 1
        p.communicate(timeout=60)
    assert kills >= 1
    p = _cli(f"--run_dir={d}", *flags_)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    assert _essential(_records(d)) == _essential(_records(ref))
    assert len(_records(d)) == 8


# -- fuzz: malformed encodings and flag values -------------------------------------------
def _mutations(rng, valid):
    junk = ["", " ", ",", ",,", "sep", "sep_k", "sep_k3", "sep_k3_w", "sep_k3_w1.0_d",
            "sep_kx_w1.0_d1", "sep_k3_wNaN_d1", "sep_k3_winf_d1", "sep_k3_w-1_d1",
            "sep_k3_w1.0_d0", "sep_k3_w1.0_d99999999999999999999", "mb0_k3_w1_d1", "zzz_k3",
            "{", "[", "{}", "[]", "[[]]", '{"blocks": 3}', '{"blocks": [{}]}', "null", "/",
            "/nonexistent/arch.json", "a.json", "\x00", "é", "🙂", "sep_k3_w1.0_d1\n,",
            "k3_w1.0_d1_sep", "sep__k3", "sep_k3_w1e309_d1", "sep_k3_w0x10_d1",
            '{"blocks": [{"op": "sep", "kernel": "3"}]}', '[["sep", 3, 1.0, 1]]', "1,2,3"]
    out = list(junk)
    tokens = valid.split(",")
    for _ in range(220):
        t = list(tokens)
        op = rng.randrange(6)
        i = rng.randrange(len(t))
        if op == 0:
            del t[i]
        elif op == 1:
            t[i] = t[i][:rng.randrange(len(t[i]) + 1)]
        elif op == 2:
            parts = t[i].split("_")
            j = rng.randrange(len(parts))
            parts[j] = parts[j][0] + rng.choice(["-1", "0", "999", "1.5", "x", "", "1e9", "nan"])
            t[i] = "_".join(parts)
        elif op == 3:
            t.insert(i, rng.choice(junk))
        elif op == 4:
            t = t * rng.randint(2, 20)
        else:
            s = ",".join(t)
            k = rng.randrange(len(s))
            t = [s[:k] + rng.choice("_,.-x{}[]\"' ") + s[k + 1:]]
        out.append(",".join(t))
    return out


def test_fuzz_malformed_encodings_give_clean_errors():
    from eatnas_tf.arch.spec import InvalidArchitectureError

    rng = random.Random(0)
    valid = codec.to_text(DIGITS.sample(rng))
    cases = _mutations(rng, valid)
    assert len(cases) >= 200
    errors = 0
    for text in cases:
        try:
            arch = codec.parse_arch(text, **DIGITS.arch_defaults())
        except InvalidArchitectureError as e:
            msg = str(e)
            assert msg and "\n" not in msg and "Traceback" not in msg, (text, msg)
            errors += 1
        else:  # what parses is a real architecture that round-trips
            assert codec.parse_arch(codec.to_text(arch), **DIGITS.arch_defaults()) == arch
    assert errors >= 150


BAD_FLAGS = [
    "--population=0", "--population=-3", "--population=x", "--sample=0", "--sample=99",
    "--max_candidates=0", "--patience=-1", "--min_delta=-0.5", "--target_std=0",
    "--target_std=-1", "--topk=0", "--target=0", "--target=-5", "--space=mars",
    "--strategy=genetic", "--cost_metric=joules", "--seed_arch=sep_k4_w1.0_d1",
    "--seed_arch=,", "--seed_arch={", "--seed_weights=w.npz", "--executor=cluster",
    "--executor=", "--parallel=0", "--parallel=-2", "--parallel=two", "--max_worker_retries=-1",
    "--worker_max_tasks=-1", "--ray_address=127.0.0.1:6379", "--epochs=0", "--epochs=abc",
    "--batch_size=0", "--learning_rate=-1", "--val_fraction=1.5", "--val_fraction=-0.1",
    "--dataset=nope", "--lr_schedule=zigzag", "--seed=1.5", "--inherit=maybe",
    "--momentum=abc", "--weight_decay=-1",
]


@pytest.mark.parametrize("seed", range(5))
def test_fuzz_search_flags_give_clean_errors(seed):
    from absl import flags as absl_flags

    from eatnas_tf import cli
    from eatnas_tf.search import app
    from eatnas_tf.search import flags as search_flags

    rng = random.Random(seed)
    for i in range(len(BAD_FLAGS)):
        fv = absl_flags.FlagValues()
        search_flags.define_search_flags(fv)
        picked = rng.sample(["--population=4", "--sample=2", "--space=digits",
                             "--dataset=digits", "--epochs=1"], rng.randint(0, 3))
        picked.append(BAD_FLAGS[(i + seed * 7) % len(BAD_FLAGS)])  # last: it wins
        argv = ["search", "--run_dir=/nonexistent/never_written", *picked]
        try:
            fv(argv)
            exp = search_flags.experiment_from_flags("search", fv)
            app.make_executor(search_flags.runtime_from_flags(fv), exp.parallel).close()
        except cli.USER_ERRORS as e:
            first = str(e).splitlines()[0] if str(e) else ""
            assert first and "Traceback" not in first, (argv, str(e))
        else:
            pytest.fail(f"accepted {picked}")
    assert not os.path.exists("/nonexistent/never_written")


@pytest.mark.parametrize("args,field", [
    (["-m", "eatnas_tf.cost", "--arch=" + ",".join(["sep_k3_w1.0_d1"] * 6 + ["zzz_k3_w1.0_d1"])],
     "op"),
    (["-m", "eatnas_tf.cost", "--arch=sep_k3_w1.0_d1,sep_k3"], "blocks"),
    (["-m", "eatnas_tf.cost", "--arch={"], "arch"),
    (["-m", "eatnas_tf.cost", "--arch=sep_k3_w1.0_d1", "--image_size=0"], "image_size"),
    (["-m", "eatnas_tf.search", "--run_dir=RUN", "--flagfile=flags/smoke.cfg",
      "--executor=cluster"], "executor"),
    (["-m", "eatnas_tf.search", "--run_dir=RUN", "--flagfile=flags/smoke.cfg", "--parallel=0"],
     "parallel"),
    (["-m", "eatnas_tf.search", "--run_dir=RUN", "--flagfile=flags/smoke.cfg",
      "--ray_address=127.0.0.1:1"], "ray_address"),
    (["-m", "eatnas_tf.search", "--run_dir=RUN", "--flagfile=flags/no_such.cfg"], "flagfile"),
    (["-m", "eatnas_tf.transfer", "--run_dir=RUN", "--flagfile=flags/smoke.cfg",
      "--basic_arch=sep_k3_w1.0_d1"], "blocks"),
    (["-m", "eatnas_tf.demo", "--run_dir=RUN", "--flagfile=flags/demo.cfg",
      "--stage1_resolution=0"], "image_size"),
    (["-m", "eatnas_tf.demo", "--run_dir=RUN", "--flagfile=flags/demo.cfg",
      "--stage2_sample=99"], "sample"),
    (["-m", "eatnas_tf.calibrate", "--run_dir=RUN", "--flagfile=flags/econas_calibrate_fmnist.cfg",
      "--proxies=c9r0s0e1"], "proxy"),
    (["-m", "eatnas_tf.retrain", "--arch=sep_k3_w1.0_d1", "--space=digits",
      "--output_dir=RUN"], "blocks"),
    (["-m", "export", "--run_dir=RUN"], "run_dir"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, field):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    run = str(tmp_path / "run")
    args = [a.replace("RUN", run) for a in args]
    p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not os.path.exists(run)


@pytest.mark.parametrize("module", ["eatnas_tf.search", "eatnas_tf.demo"])
def test_run_dir_that_is_a_file_is_a_clean_error(tmp_path, module):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    path = tmp_path / "a_file"
    path.write_text("keep me")
    flagfile = "flags/smoke.cfg" if module.endswith("search") else "flags/demo.cfg"
    p = subprocess.run(
        [sys.executable, "-m", module, f"--run_dir={path}", f"--flagfile={flagfile}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "run_dir" in lines[0], p.stderr[-2000:]
    assert path.read_text() == "keep me"
