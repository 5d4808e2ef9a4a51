"""Latency table and predictor (issue 16): signatures, table file, sum rule, on-demand
measurement, the adb path (a fake `adb` on PATH) and the table / cost binaries."""

import json
import os
import random
import stat
import subprocess
import sys

import keras
import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.latency import measure as M
from eatnas_tf.latency import signature as S
from eatnas_tf.latency.predictor import Predictor
from eatnas_tf.latency.table import LatencyTable
from eatnas_tf.model import naming as N
from eatnas_tf.model.builder import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_LAYER = "sep_k3_w1.0_d1_skip,mb3_k5_w2.0_d2_skip,mb6_k3_w1.0_d1,sep_k3_w1.0_d1," \
            "sep_k3_w1.0_d1,sep_k3_w1.0_d1,sep_k3_w1.0_d1"


class CountingTimer:
    """Fake timer: a fixed ms per call, records the names it timed."""

    def __init__(self, ms=0.5):
        self.ms, self.calls = ms, []

    def describe(self):
        return {"kind": "fake", "cpu": "test"}

    def __call__(self, blob, name):
        assert isinstance(blob, bytes) and blob
        self.calls.append(name)
        return self.ms


def _built_layers(model):
    """Per block layer of a built model: (block, layer) -> {op, kernel, stride, shortcut,
    hw, c_in, c_out}, read from the Keras layers by name."""
    out = {}
    for layer in model.layers:
        parsed = N.parse_layer_name(layer.name)
        if not parsed:
            continue
        bl, li, rest = parsed
        d = out.setdefault((bl, li), {"shortcut": "none", "expand": 0})
        if rest == N.DW:
            d["kernel"] = layer.kernel_size[0]
            d["stride"] = layer.strides[0]
            d["hw"] = layer.input.shape[1]
        elif rest == N.EXPAND:
            d["expand"] = layer.filters
            d["c_in"] = layer.input.shape[-1]
        elif rest == N.PROJECT:
            d["c_out"] = layer.filters
            d.setdefault("c_in", layer.input.shape[-1])  # sep: dw keeps channels
        elif rest == N.SHORTCUT:
            d["shortcut"] = "proj"
        elif rest == N.ADD and d["shortcut"] == "none":
            d["shortcut"] = "add"
    return out


@pytest.mark.parametrize("space_name,shortcut", [("fashion_mnist", "identity"),
                                                  ("cifar10", "identity"),
                                                  ("cifar10", "projection")])
def test_signatures_match_built_model(space_name, shortcut):
    """The predictor's layers == the layers the builder builds (count, kinds, fields)."""
    space = space_lib.get_space(space_name)
    rng = random.Random(3)
    for _ in range(4):
        arch = space.sample(rng)
        if shortcut == "projection":
            arch = codec.parse_arch(codec.to_text(arch), **dict(space.arch_defaults(),
                                                                shortcut="projection"))
        sigs = S.arch_layers(arch, space.macro)
        model = build_model(arch, space.macro)
        built = _built_layers(model)
        kinds = S.counts_by_kind(sigs)
        assert kinds["layer"] == len(built) == arch.num_layers
        assert (kinds["stem"], kinds["head"], kinds["classifier"]) == (1, 1, 1)
        layer_sigs = [s for s in sigs if s.kind == "layer"]
        for s, (_, d) in zip(layer_sigs, sorted(built.items())):
            assert (s.kernel, s.stride, s.hw, s.c_in, s.c_out, s.shortcut) == (
                d["kernel"], d["stride"], d["hw"], d["c_in"], d["c_out"], d["shortcut"])
            assert (s.op == "sep") == (d["expand"] == 0)
            assert d["expand"] in (0, s.c_in * s.expansion)
        head = model.get_layer(N.HEAD_CONV)
        assert (sigs[-2].hw, sigs[-2].c_in, sigs[-2].c_out) == (
            head.input.shape[1], head.input.shape[-1], head.filters)
        assert sigs[0].c_out == model.get_layer(N.STEM_CONV).filters
        assert all(s.key in {x.key for x in S.space_layers(space)} for s in sigs) \
            or shortcut == "projection"
        assert all(S.LayerSig.from_key(s.key) == s for s in sigs)
        keras.backend.clear_session()


def test_layer_model_matches_signature():
    """A layer model's output shape is the signature's; a stride-2 mb layer halves H."""
    sig = S.LayerSig.from_key("layer|op=mb3|k=5|s=2|e=3|hw=7x7|cin=8|cout=12|sc=none")
    m = M.layer_model(sig)
    assert tuple(m.output.shape[1:]) == (4, 4, 12) and sig.out_hw == 4
    keras.backend.clear_session()


def test_table_round_trip(tmp_path):
    path = str(tmp_path / "t.json")
    t = LatencyTable("int8", 2, device={"kind": "host", "cpu": "x"}, path=path,
                     entries={"stem|k=3|s=1|hw=8x8|cin=1|cout=16": 0.01},
                     fit={"constant_ms": 0.2, "per_layer_ms": 0.0})
    t.save()
    u = LatencyTable.load(path)
    assert u.to_json() == t.to_json()
    assert (u.fmt, u.threads, u.device["cpu"], u.fit["constant_ms"]) == ("int8", 2, "x", 0.2)
    assert not [f for f in os.listdir(tmp_path) if f != "t.json"]  # no temp file left
    with open(path, "w") as f:
        f.write("{}")
    with pytest.raises(ValueError, match="not a latency table"):
        LatencyTable.load(path)


def test_sum_rule_two_layer_model():
    """Prediction = sum of the (known) entries of the arch's layers + fitted constant."""
    macro = MacroSpec(8, 1, 10, 1, (1, 1, 2, 1, 2, 1, 1))
    arch = codec.parse_arch(TWO_LAYER, stem=4, head=8)
    sigs = S.arch_layers(arch, macro)
    entries = {s.key: 0.01 * (i + 1) for i, s in enumerate(S.iter_unique(sigs))}
    t = LatencyTable("fp32", 1, timer=CountingTimer(), entries=entries)
    p = Predictor(t, measure_missing=False)
    want = sum(entries[s.key] for s in sigs)
    assert p.predict_ms(arch, macro) == pytest.approx(want)
    fit = p.fit([(arch, macro, want + 0.3)])
    assert fit["constant_ms"] == pytest.approx(0.3) and fit["residuals_ms"] == [0.0]
    assert p.predict_ms(arch, macro) == pytest.approx(want + 0.3)
    # Hand-built two-layer case: the sum of two entries + the constant, nothing else.
    a, b = sigs[1], sigs[2]
    assert a.key != b.key and a.kind == b.kind == "layer"
    assert (sum(t.lookup(s, measure=False) for s in (a, b)) + p.constant_ms
            == pytest.approx(entries[a.key] + entries[b.key] + 0.3))
    # the layer repeated in block 2 (d2) is counted twice
    assert len(sigs) > len(entries)


def test_on_demand_measurement_real_host(tmp_path):
    """An unseen signature is built, converted and timed with LiteRT once, then reused."""
    calls = []
    host = M.HostTimer(threads=1, warmup=2, runs=10)

    def timer(blob, name):
        calls.append(name)
        return host(blob, name)

    path = str(tmp_path / "t.json")
    t = LatencyTable("fp32", 1, timer=timer, path=path)
    sig = S.LayerSig.from_key("layer|op=mb3|k=3|s=1|e=3|hw=4x4|cin=4|cout=4|sc=add")
    assert sig not in t
    ms = t.lookup(sig)
    assert ms > 0 and sig in t and len(calls) == 1 and t.measured == 1
    assert t.lookup(sig) == ms and len(calls) == 1
    t.save()
    assert LatencyTable.load(path).entries == {sig.key: ms}
    with pytest.raises(KeyError):
        t.lookup(S.LayerSig("head", 4, 4, 8), measure=False)


FAKE_ADB = r"""#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *getprop\ ro.product.model*) echo "Pixel Fake" ;;
  *getprop\ ro.board.platform*) echo "fakeboard" ;;
  *getprop*) echo "arm64-v8a" ;;
  *benchmark_model*) cat <<'EOF'
INFO: Num runs: [50]
INFO: Timings (microseconds): count=5 first=900 curr=800 min=700 max=900 avg=800 std=50
Timings (microseconds): count=50 first=450 min=400 max=500 avg=432.5 std=12 p5=405 median=425
Inference timings in us: Init: 1000, First inference: 900, Inference (avg): 432.5
EOF
  ;;
esac
exit 0
"""


def _fake_adb(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "adb.log"
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.format(log=log))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_parse_benchmark_model():
    out = "count=50 first=1 curr=2 min=1 max=3 avg=1500.0 std=3\n"
    assert M.parse_benchmark_model(out) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no 'count=... avg='"):
        M.parse_benchmark_model("error: could not open graph")


def test_fake_adb_path(tmp_path, monkeypatch):
    """adb: mkdir once, push each model, run benchmark_model with the flags, parse median."""
    log = _fake_adb(tmp_path, monkeypatch)
    timer = M.make_timer("adb:SER123", threads=2, warmup=3, runs=50)
    t = LatencyTable("fp32", 2, timer=timer, build_layer=lambda sig, fmt: b"tflite-bytes")
    assert t.device == {"kind": "adb", "serial": "SER123", "platform": "fakeboard",
                        "cpu": "arm64-v8a", "model": "Pixel Fake"}
    s1 = S.LayerSig("head", 4, 8, 16)
    s2 = S.LayerSig("classifier", 4, 16, 10)
    assert t.lookup(s1) == pytest.approx(0.425)  # the steady-state line's median, in ms
    t.lookup(s2)
    t.lookup(s1)
    calls = log.read_text().splitlines()
    assert all(c.startswith("-s SER123 ") for c in calls)
    assert sum(" mkdir -p " in c for c in calls) == 1
    pushes = [c for c in calls if c.split()[2] == "push"]
    runs = [c for c in calls if "benchmark_model" in c]
    assert len(pushes) == len(runs) == 2
    assert pushes[0].split()[-1] == f"/data/local/tmp/eatnas_latency/{file_name(s1)}.tflite"
    assert (f"--graph=/data/local/tmp/eatnas_latency/{file_name(s1)}.tflite" in runs[0]
            and "--num_threads=2" in runs[0] and "--warmup_runs=3" in runs[0]
            and "--num_runs=50" in runs[0])


def file_name(sig):
    from eatnas_tf.latency.table import file_name as fn
    return fn(sig)


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.slow  # three binaries (TF start-up) and ~10 real conversions: minutes here
def test_latency_table_cli_fake_adb_and_cost(tmp_path, monkeypatch):
    """The binary over adb (fake) measures a partial table; cost --latency_table prints
    latency_ms, measuring the missing layers on the host; bad input is one line."""
    _fake_adb(tmp_path, monkeypatch)
    out = str(tmp_path / "lat.json")
    r = _run("eatnas_tf.latency_table", "--space=digits", f"--out={out}", "--device=adb:S1",
             "--limit=2", "--fit_models=0", env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["entries"] == summary["measured"] == 2 and not summary["complete"]
    assert summary["layers"] == len(S.space_layers(space_lib.get_space("digits")))
    t = LatencyTable.load(out)
    assert t.device["kind"] == "adb" and set(t.entries.values()) == {0.425}

    r = _run("eatnas_tf.latency_table", "--space=digits", f"--out={out}", "--threads=3",
             "--device=adb:S1", "--limit=0", env=dict(os.environ))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("error: out:") and "threads 1 != 3" in last
    r = _run("eatnas_tf.latency_table", "--space=digits", f"--out={out}", "--device=phone")
    assert r.returncode == 2 and "device: received 'phone'" in r.stderr

    host = str(tmp_path / "host.json")
    LatencyTable("fp32", 1, path=host, fit={"constant_ms": 0.1, "per_layer_ms": 0.0}).save()
    arch = "sep_k3_w1.0_d1,sep_k3_w1.0_d1,mb3_k3_w1.0_d1,sep_k3_w1.0_d1,sep_k3_w1.0_d1," \
           "sep_k3_w1.0_d1,sep_k3_w1.0_d1"
    r = _run("eatnas_tf.cost", f"--arch={arch}", "--space=digits", f"--latency_table={host}")
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    t = LatencyTable.load(host)
    macro = space_lib.get_space("digits").macro
    layers = S.arch_layers(codec.parse_arch(arch, stem=16, head=128), macro)
    distinct = {x.key for x in layers}
    assert set(t.entries) == distinct and d["latency_table"]["measured_now"] == len(distinct) == 8
    # the sum counts a repeated layer (blocks 1 and 2 are the same here) once per occurrence
    want = sum(t.entries[x.key] for x in layers) + 0.1
    assert d["latency_ms"] == pytest.approx(want, abs=1e-3)


def test_space_layers_cover_samples():
    """Every layer of sampled architectures is among the space's enumerated signatures."""
    for name in ("fashion_mnist", "cifar10", "imagenet"):
        space = space_lib.get_space(name)
        keys = {s.key for s in S.space_layers(space)}
        rng = random.Random(0)
        for _ in range(30):
            assert all(s.key in keys for s in S.arch_layers(space.sample(rng), space.macro))


def test_scale_fit_recovers_factor_and_offset():
    """fit(scale=True): least squares on [sum, 1] recovers measured = k * sum + c."""
    space = space_lib.get_space("digits")
    rng = random.Random(1)
    archs = [space.sample(rng) for _ in range(4)]
    t = LatencyTable("fp32", 1, timer=CountingTimer(), build_layer=lambda sig, fmt: b"x")
    for a in archs:
        for s in S.arch_layers(a, space.macro):
            t.entries.setdefault(s.key, 0.01 + 0.001 * len(t.entries))
    p = Predictor(t, measure_missing=False)
    samples = [(a, space.macro, 0.5 * p.layer_sum_ms(a, space.macro)[0] + 0.1) for a in archs]
    fit = p.fit(samples, scale=True)
    assert fit["scale"] == pytest.approx(0.5, abs=1e-3)
    assert fit["constant_ms"] == pytest.approx(0.1, abs=1e-3)
    assert p.predict_ms(archs[0], space.macro) == pytest.approx(samples[0][2], abs=1e-3)


# -- latency as a search objective ----------------------------------------------------------

def _filled_table(path, space, archs, ms=0.01, fit=None):
    """A table file holding every layer of `archs` (entries: `ms` × position) and `fit`."""
    keys = sorted({s.key for a in archs for s in S.arch_layers(a, space.macro)})
    t = LatencyTable("fp32", 1, device={"kind": "host", "cpu": "test"}, path=str(path),
                     entries={k: ms * (i + 1) for i, k in enumerate(keys)}, fit=fit)
    t.save()
    return t


def test_eq1_with_latency_target():
    """Eq. 1 with a latency target: at the target the score is the accuracy; 2x slower
    costs ~5% (w = -0.07), faster gains a little; the record's `latency` is latency_ms."""
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search import objective

    assert objective.score(0.8, 2.0, 2.0) == pytest.approx(0.8)
    assert objective.score(0.8, 4.0, 2.0) == pytest.approx(0.8 * 2 ** -0.07)
    assert objective.score(0.8, 1.0, 2.0) > 0.8
    rec = CandidateRecord(status="ok", val_acc=0.8, madds=10**6, latency_ms=1.5)
    assert rec.metric("latency") == rec.metric("latency_ms") == 1.5
    line = json.loads(json.dumps(rec.to_json()))
    assert line["latency_ms"] == 1.5 and CandidateRecord.from_json(line) == rec
    assert "latency_ms" not in CandidateRecord(status="ok").to_json()  # only when predicted


def test_latency_config_from_table(tmp_path):
    from eatnas_tf.latency import config as LC

    space = space_lib.get_space("digits")
    arch = space.sample(random.Random(0))
    path = tmp_path / "t.json"
    t = _filled_table(path, space, [arch], fit={"constant_ms": 0.05, "scale": 1.0})
    cfg = LC.LatencyConfig.from_table(str(path))
    assert (cfg.fmt, cfg.threads, cfg.device, cfg.constant_ms) == ("fp32", 1, "host: test",
                                                                   0.05)
    want = sum(t.entries[s.key] for s in S.arch_layers(arch, space.macro)) + 0.05
    assert LC.predict_ms(cfg, arch, space.macro) == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError, match="latency_format: received 'int8'"):
        LC.LatencyConfig.from_table(str(path), fmt="int8")
    new = LC.LatencyConfig.from_table(str(tmp_path / "new.json"), threads=2)
    assert (new.fmt, new.threads) == ("fp32", 2) and os.path.exists(tmp_path / "new.json")
    refit = LC.LatencyConfig.from_table(str(path))
    t.fit = {"constant_ms": 0.5}
    t.save()
    LC._PREDICTORS.clear()
    with pytest.raises(ValueError, match="changed since the search started"):
        LC.predict_ms(refit, arch, space.macro)


class _FakeExecutor:
    """Evaluates requests without training: accuracy from the arch hash."""

    def run(self, reqs):
        from eatnas_tf.arch.cost import count
        from eatnas_tf.record import CandidateRecord
        from eatnas_tf.search.evaluate import EvalResult

        out = []
        for r in reqs:
            c = count(r.arch, r.space.macro)
            acc = 0.5 + 0.4 * (int(codec.canonical_hash(r.arch), 16) % 1000) / 1000
            out.append(EvalResult(CandidateRecord(status="ok", val_acc=acc, params=c.params,
                                                  madds=c.madds, layers=c.layers,
                                                  epochs=1, seed=r.seed)))
        return out


def test_cost_metric_latency_through_search_config_and_runner(tmp_path):
    """`cost_metric=latency`: the runner predicts each candidate's latency_ms from the
    stage's table (its SearchConfig.latency), scores Eq. 1 on it and stores it; a stage
    without a table, or a latency metric without a target, is refused."""
    from eatnas_tf.data.datasets import DataConfig
    from eatnas_tf.latency import config as LC
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search import objective
    from eatnas_tf.search.experiment import SearchExperiment, Stage
    from eatnas_tf.search.run_dir import RunDir
    from eatnas_tf.search.runner import run_stage
    from eatnas_tf.search.strategy import SearchConfig, make_strategy
    from eatnas_tf.train.config import TrainConfig

    space = space_lib.get_space("digits")
    cfg0 = SearchConfig(population=4, sample=2, max_candidates=6)
    # the archs the random strategy will propose (same seed), so the table has them all
    s = make_strategy("random", space, cfg0, random.Random("0:search"))
    archs = []
    while not s.finished():
        p = s.propose()
        archs.append(p.arch)
        s.observe(CandidateRecord(status="ok", val_acc=0.5, score=0.5, id=len(archs),
                                  hash=codec.canonical_hash(p.arch)))
    table = tmp_path / "lat.json"
    _filled_table(table, space, archs, fit={"constant_ms": 0.02})
    lat = LC.LatencyConfig.from_table(str(table))
    cfg = SearchConfig(population=4, sample=2, max_candidates=6, latency=lat)
    data, train = DataConfig(dataset="digits"), TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="without a latency table"):
        Stage("search", "random", space, data, train, cfg0, cost_metric="latency", target=1.0)
    with pytest.raises(ValueError, match="target_latency_ms"):
        Stage("search", "random", space, data, train, cfg, cost_metric="latency")
    stage = Stage("search", "random", space, data, train, cfg, cost_metric="latency",
                  target=0.5)
    exp = SearchExperiment(stage).to_dict()["stage"]
    assert exp["cost_metric"] == "latency" and exp["search"]["latency"]["table"] == str(table)
    assert exp["search"]["latency"]["device"] == "host: test"
    result = run_stage(RunDir(str(tmp_path / "run")), stage, executor=_FakeExecutor(),
                       progress=None, tensorboard=False)
    assert len(result.records) == 6
    pred = LC.predictor_for(lat)
    for r in result.records:
        want = pred.predict_ms(r.spec(space), space.macro)
        assert r.latency_ms == pytest.approx(want, abs=1e-4) and r.resource == r.latency_ms
        assert r.score == pytest.approx(objective.score(r.val_acc, r.latency_ms, 0.5))
    rows = [json.loads(x) for x in open(tmp_path / "run" / "candidates.jsonl")]
    assert all(isinstance(x["latency_ms"], float) for x in rows)


def test_search_flags_target_latency(tmp_path):
    """--target_latency_ms=X is --cost_metric=latency --target=X with the table's config;
    without --latency_table it is one usage error."""
    from absl import flags as absl_flags

    from eatnas_tf import cli
    from eatnas_tf.search import flags as search_flags

    space = space_lib.get_space("fashion_mnist")
    table = tmp_path / "lat.json"
    _filled_table(table, space, [space.sample(random.Random(0))])

    def stage(*args):
        fv = absl_flags.FlagValues()
        search_flags.define_search_flags(fv)
        fv(["prog", f"--run_dir={tmp_path / 'run'}", "--dataset=fashion_mnist", *args])
        return search_flags.stage_from_flags("search", fv)

    st = stage("--target_latency_ms=0.8", f"--latency_table={table}")
    assert (st.metric, st.target_value, st.config.latency.fmt) == ("latency", 0.8, "fp32")
    with pytest.raises(cli.UsageError, match="without a latency table"):
        stage("--target_latency_ms=0.8")
    with pytest.raises(cli.UsageError, match="cost_metric=madds"):
        stage("--target_latency_ms=0.8", "--cost_metric=madds", f"--latency_table={table}")
    with pytest.raises(cli.UsageError, match="latency_threads: received 2"):
        stage(f"--latency_table={table}", "--latency_threads=2")
    st = stage(f"--latency_table={table}")  # a table alone: latency_ms reported, MAdds scored
    assert st.metric == "madds" and st.config.latency is not None


def test_epnas_latency_constraint_uses_predictor(tmp_path):
    """EPNAS' `latency` usage is the predictor's number over the search's table (default),
    and over a run-dir table grown on demand without one."""
    from eatnas_tf.epnas.config import EpnasConfig
    from eatnas_tf.epnas.constraints import Constraint
    from eatnas_tf.latency import config as LC
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search.strategy import RunContext, SearchConfig, make_strategy

    space = space_lib.get_space("digits")
    arch = space.sample(random.Random(1))
    _filled_table(tmp_path / "t.json", space, [arch])
    cfg = LC.LatencyConfig.from_table(str(tmp_path / "t.json"))
    opt = EpnasConfig(constraints=(Constraint("latency", upper=1.0),), branches=2, steps=2,
                      episodes=1)
    s = make_strategy("epnas", space, SearchConfig(population=2, sample=1, latency=cfg),
                      random.Random(0), options=opt)
    u = s.usage(arch, CandidateRecord(status="ok", params=1, madds=1))
    assert u["latency"] == LC.predict_ms(cfg, arch, space.macro)
    assert opt.latency == "predict" and EpnasConfig(latency="measure").latency == "measure"
    with pytest.raises(ValueError, match="epnas_latency"):
        EpnasConfig(latency="guess")
    # no --latency_table: a table of this host in the run dir, measured on demand
    s2 = make_strategy("epnas", space, SearchConfig(population=2, sample=1), random.Random(0),
                       options=opt)
    s2.bind(RunContext(weights_path=str, cache_dir=str(tmp_path / "epnas")))
    calls = []
    s2._predictor = lambda cache_dir: (calls.append(cache_dir) or (lambda a: 0.25))
    assert s2.usage(arch, CandidateRecord(status="ok", params=1, madds=1))["latency"] == 0.25
    assert calls == [str(tmp_path / "epnas")]


def test_export_latency_report_rows(tmp_path, monkeypatch):
    """Predicted vs measured per exported format: a row where a table of that format and
    a timed thread count exists (QAT uses the int8 table), a note where none does."""
    import types

    sys.path.insert(0, ROOT)
    from export import latency_report

    space = space_lib.get_space("digits")
    arch = space.sample(random.Random(2))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    os.makedirs(latency_report.table_dir())
    t = _filled_table(os.path.join(latency_report.table_dir(), "fp32.json"), space, [arch],
                      fit={"constant_ms": 0.1})
    t8 = LatencyTable("int8", 1, device={"kind": "host", "cpu": "test"},
                      path=str(tmp_path / "int8.json"), entries=dict(t.entries))
    t8.save()
    plan = types.SimpleNamespace(arch=arch, cost_macro=space.macro, source={})
    report = {"formats": {"fp32": {"latency": {"1": {"median_ms": 2.0}, "2": {"median_ms": 1.5}}},
                          "fp16": {"latency": {"1": {"median_ms": 2.0}}},
                          "qat": {"latency": {"1": {"median_ms": 3.0}}}}}
    out = latency_report.attach(report, plan, tables=[str(tmp_path / "int8.json")])
    want = Predictor(t, measure_missing=False).predict_ms(arch, space.macro)
    rows = {r["format"]: r for r in out["rows"]}
    assert set(rows) == {"fp32", "qat"} and rows["fp32"]["threads"] == 1
    assert rows["fp32"]["predicted_ms"] == pytest.approx(want, abs=1e-4)
    assert rows["fp32"]["error_pct"] == pytest.approx((want - 2.0) / 2.0 * 100, abs=0.01)
    assert rows["qat"]["table_format"] == "int8" and "fp16" in out["missing"]
    assert report["latency_prediction"] is out
    assert "| fp32 | 1 |" in "\n".join(latency_report.markdown(report))
    bad = latency_report.attach({"formats": {"fp32": {}}}, None)
    assert "error" in bad  # never raises


def test_pipeline_target_latency(tmp_path):
    """`python -m eatnas_tf.run --target_latency_ms=X --latency_table=F`: stage 2 scores
    Eq. 1 on the predicted latency with target X, stage 1 keeps its MAdds target, both
    predict every candidate's latency_ms with the table; the config survives config.json's
    round trip; a target without a table is one usage error."""
    from absl import flags as absl_flags

    from eatnas_tf import cli
    from eatnas_tf.search import eat_pipeline
    from eatnas_tf.search import flags as search_flags

    table = tmp_path / "lat.json"
    _filled_table(table, space_lib.get_space("digits"),
                  [space_lib.get_space("digits").sample(random.Random(0))])

    def config(*args):
        fv = absl_flags.FlagValues()
        search_flags.define_pipeline_flags(fv)
        fv(["prog", f"--run_dir={tmp_path / 'run'}", "--dataset=digits", *args])
        return search_flags.pipeline_config_from_flags(fv)

    cfg = config("--target_latency_ms=0.3", f"--latency_table={table}")
    p = eat_pipeline.plan(cfg)
    assert (p.stage2.metric, p.stage2.target_value) == ("latency", 0.3)
    assert p.stage1.metric == "madds"
    assert p.stage1.config.latency == p.stage2.config.latency == cfg.latency
    assert cfg.latency.table == str(table)
    d = json.loads(json.dumps(eat_pipeline.describe(cfg, p)))
    assert d["plan"]["stage2"]["cost_metric"] == "latency"
    assert eat_pipeline.PipelineConfig.from_dict(d["pipeline"]) == cfg
    plain = config()
    assert plain.latency is None and eat_pipeline.plan(plain).stage2.metric == "madds"
    with pytest.raises(cli.UsageError, match="target_latency_ms: given without a latency"):
        config("--target_latency_ms=0.3")
    with pytest.raises(cli.UsageError, match="target_latency_ms: received -1"):
        config("--target_latency_ms=-1", f"--latency_table={table}")
