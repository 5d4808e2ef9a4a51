"""Fidelity to the papers (issue 19): EcoNAS' dead-model removal and cosine LR across
promotions, EAT-NAS' architecture-only ImageNet transfer and the two-stage paper run,
Γ = "normal" initialisation, EPNAS' Nesterov prediction, Eq. 1 / Eq. 3 exponents."""

import dataclasses
import json
import math
import os
import random
import re
import subprocess
import sys

import econas_fakes  # tests/econas_fakes.py: the runner stand-in
import numpy as np
import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.econas.config import EcoNASConfig
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search.strategy import SearchConfig, make_strategy
from eatnas_tf.train.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_DIR = os.path.join(ROOT, "flags")
DIGITS = space_lib.get_space("digits")


def _flagfile(name):
    """{flag: value} of a flagfile (its own lines; includes not followed)."""
    out = {}
    for line in open(os.path.join(FLAGS_DIR, name)):
        line = line.strip()
        if not line.startswith("--"):
            continue
        k, _, v = line[2:].partition("=")
        out[k] = v
    return out


# -- 1. EcoNAS: dead models out of the sampling pools -------------------------------------------
_drive = econas_fakes.drive


def _econas(eco, population=6, topk=2, seed=0):
    return make_strategy("econas", DIGITS,
                         SearchConfig(population=population, sample=2, inherit=False,
                                      max_candidates=10000, topk=topk),
                         random.Random(seed), options=eco)


def test_econas_unpromoted_models_leave_the_pools_paper_arithmetic():
    N_init, N0, N1, N2, C, topk = 6, 4, 2, 1, 5, 2
    eco = EcoNASConfig(epochs=1, mutations=N0, promote1=N1, promote2=N2, cycles=C,
                       proxy="c0r0s0", dead="unpromoted")
    s = _econas(eco, population=N_init, topk=topk)
    recs = _drive(s)
    by_id = {r.id: r for r in recs}
    # every cycle: N0 children, N1 promotions to 2E, N2 to 3E
    per_cycle = ["mutation"] * N0 + ["promote2"] * N1 + ["promote3"] * N2
    assert [r.origin for r in recs] == ["random"] * N_init + per_cycle * C
    # pool sizes after k cycles: P_E and P_2E empty, |P_3E|_k = N2 + min(topk, |P_3E|_k-1)
    rows = {h["cycle"]: h for h in s.history()}
    p3 = [0]
    for _ in range(1, C + 1):
        p3.append(N2 + min(topk, p3[-1]))
    assert [rows[k]["size_P1"] for k in range(C + 1)] == [N_init] + [0] * C
    assert [rows[k]["size_P2"] for k in range(C + 1)] == [0] * (C + 1)
    assert [rows[k]["size_P3"] for k in range(C + 1)] == p3 == [0, 1, 2, 3, 3, 3]
    start = N_init
    for k in range(1, C + 1):
        cyc = recs[start:start + len(per_cycle)]
        start += len(per_cycle)
        children = cyc[:N0]
        # promotions pick only from this cycle's P_E (cycle 1: also the initial models)...
        pool1 = children + (recs[:N_init] if k == 1 else [])
        top1 = sorted(pool1, key=lambda r: (-r.score, r.id))[:N1]
        assert [r.continue_from for r in cyc[N0:N0 + N1]] == [r.id for r in top1]
        # ... and from this cycle's arrivals in P_2E
        top2 = sorted(cyc[N0:N0 + N1], key=lambda r: (-r.score, r.id))[:N2]
        assert [r.continue_from for r in cyc[N0 + N1:]] == [r.id for r in top2]
        # after cycle 1 the parents come from P_3E (P_E, P_2E were emptied) or are this
        # cycle's earlier children (Alg. 1 line 16 adds each child to P_E at once)
        if k > 1:
            for c in children:
                parent = by_id[c.info["selected"]]
                assert parent.origin == "promote3" or parent in children
    # the final top-k is drawn from P_3E and is the top-k of every model that reached 3E
    reached3 = sorted((r for r in recs if r.origin == "promote3"),
                      key=lambda r: (-r.score, r.id))
    final = s.final_population()
    assert all(r.origin == "promote3" for r in final)
    assert [r.id for r in s.topk()] == [r.id for r in reached3[:topk]]
    summary = s.summary()
    assert summary["P1"] == [] and summary["P2"] == []
    # the removed models stay in the records (history) and no checkpoint is kept for them
    assert len(s.records) == len(recs)
    assert s.live_ids() == []
    removed = set(summary["dead"])
    assert removed.isdisjoint(summary["P3"])
    assert {r.id for r in recs[:N_init]} - {r.continue_from for r in recs} <= removed


def test_econas_paper_numbers_and_old_rule_still_reachable():
    # the paper's cycle on the strategy's arithmetic (no training): 50 + 16 -> 8 -> 4
    eco = EcoNASConfig(epochs=1, mutations=16, promote1=8, promote2=4, cycles=3,
                       proxy="c0r0s0", dead="unpromoted")
    s = _econas(eco, population=50, topk=5)
    _drive(s)
    assert [h["size_P3"] for h in s.history()] == [0, 4, 8, 9]
    assert [h["size_P1"] for h in s.history()] == [50, 0, 0, 0]
    # "aging" with lifespan 0 is the earlier behaviour: P_E grows by 16 - 8 a cycle
    old = _econas(EcoNASConfig(epochs=1, mutations=16, promote1=8, promote2=4, cycles=3,
                               proxy="c0r0s0", dead="aging"), population=50, topk=5)
    _drive(old)
    assert [h["size_P1"] for h in old.history()] == [50, 58, 66, 74]
    assert [h["size_P2"] for h in old.history()] == [0, 4, 8, 12]
    with pytest.raises(ValueError, match="econas_dead: received 'x'; allowed values"):
        EcoNASConfig(dead="x")


def test_econas_unpromoted_without_p3_keeps_parents():
    # N_2 = 0: nothing reaches 3E; the search keeps P_2E as its parents instead of stopping
    eco = EcoNASConfig(epochs=1, mutations=2, promote1=1, promote2=0, cycles=3,
                       proxy="c0r0s0", dead="unpromoted")
    s = _econas(eco, population=3, topk=1)
    recs = _drive(s)
    assert s.cycle == 3 and sum(r.origin == "mutation" for r in recs) == 6


def test_paper_flagfile_uses_removal_cosine_and_cutout():
    f = _flagfile("econas_search.cfg")
    assert f["econas_dead"] == "unpromoted"
    assert f["lr_schedule"] == "cosine" and f["econas_lr_span"] == "final"
    assert float(f["learning_rate"]) == 0.025 and float(f["lr_end"]) == 0.001
    assert f["batch_size"] == "384" and "cutout" in f["augment"].split(",")
    assert "econas_lifespan" not in f


# -- 2. EcoNAS: cosine over 3E, continued across promotions ---------------------------------------
def _cosine(step, total, hi=0.025, lo=0.001):
    return lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * min(step / total, 1.0)))


def test_econas_train_config_spans_3e_or_restarts():
    from eatnas_tf.train import optim

    E, spe = 4, 5
    s = _econas(EcoNASConfig(epochs=E, proxy="c0r0s0"))
    base = TrainConfig(epochs=2 * E, learning_rate=0.025, lr_end=0.001, lr_schedule="cosine")
    t = s.train_config(base)
    assert t.schedule_epochs == 3 * E and t.epochs == 2 * E
    sched = optim.make_schedule(t, spe)
    for step in (0, E * spe - 1, E * spe, 2 * E * spe, 3 * E * spe - 1):
        assert float(sched(step)) == pytest.approx(_cosine(step, 3 * E * spe), rel=1e-5)
    assert float(sched(3 * E * spe)) == pytest.approx(0.001, rel=1e-5)
    # "stage": re-annealed within each E epochs
    st = _econas(EcoNASConfig(epochs=E, proxy="c0r0s0", lr_span="stage")).train_config(base)
    sched = optim.make_schedule(st, spe)
    assert float(sched(E * spe)) == pytest.approx(0.025, rel=1e-5)
    assert float(sched(E * spe - 1)) == pytest.approx(_cosine(E * spe - 1, E * spe), rel=1e-5)
    # a constant LR (other flagfiles) is left alone
    const = TrainConfig(epochs=E)
    assert s.train_config(const) is const


def test_cosine_continues_across_promotion_checkpoint(tmp_path):
    """E then E more from the checkpoint: the LR at the first step of 2E is the 3E cosine's
    value there (`test_econas` shows E + E equals a straight 2E run, weights included)."""
    from eatnas_tf.model.builder import build_model
    from eatnas_tf.search.evaluate import EvalRequest, cached_data, macro_for
    from eatnas_tf.search.strategy import Proposal
    from eatnas_tf.train import optim
    from eatnas_tf.train import trainer as trainer_lib

    E, spe = 1, 3
    s = _econas(EcoNASConfig(epochs=E, proxy="c0r0s0"))
    arch = DIGITS.sample(random.Random(0))
    data_cfg = DataConfig("digits", batch_size=64, max_train_examples=192)
    bundle = cached_data(data_cfg)
    macro = macro_for(DIGITS, bundle)
    train = TrainConfig(epochs=E, learning_rate=0.025, lr_end=0.001, lr_schedule="cosine",
                        steps_per_epoch=spe, seed=5)
    ck = str(tmp_path / "ck")

    def run(epochs, ckpt):
        req = EvalRequest(arch=arch, space=DIGITS, data=data_cfg,
                          train=train.replace(epochs=epochs), checkpoint_dir=ckpt)
        cfg = s.adapt_request(req, Proposal(arch, epochs=epochs)).train
        assert cfg.schedule_epochs == 3 * E and cfg.epochs == epochs
        return trainer_lib.train(lambda: build_model(arch, macro), bundle, cfg,
                                 checkpoint_dir=ckpt, keep_checkpoint=ckpt is not None)

    total = 3 * E * spe
    e1 = run(E, ck)
    e2 = run(2 * E, ck)
    assert e1.record["resumed_from_epoch"] == 0 and e2.record["resumed_from_epoch"] == E
    assert e2.record["steps"] == 2 * E * spe
    # lr_curve holds the optimiser's LR after each epoch, i.e. the LR its next step uses:
    # the first step of 2E (step E × spe, the restored counter) runs at the 3E cosine's
    # value there, not a restart at 0.025 nor the end value 0.001
    first_2e = _cosine(E * spe, total)
    assert 0.001 < first_2e < 0.025
    assert e1.record["lr_curve"][-1] == pytest.approx(first_2e, rel=1e-4)
    sched = optim.make_schedule(s.train_config(train.replace(epochs=2 * E)), spe)
    assert float(sched(E * spe)) == pytest.approx(first_2e, rel=1e-5)
    # the continuation's curve: the checkpoint's epoch, then its own, on the same cosine
    curve = [first_2e, _cosine(2 * E * spe, total)]
    assert e2.record["lr_curve"] == pytest.approx(curve, rel=1e-4)


# -- 3. EAT-NAS: the ImageNet stage transfers the architecture only --------------------------------
def test_paper_imagenet_flagfile_transfers_no_weights():
    f = _flagfile("eat_imagenet_search.cfg")
    assert "notransfer_weights" in f and "transfer_weights" not in f
    assert "transfer_weights" in f["undefok"].split(",")  # the search binary reads it too
    # the last word on the flag in the file is "off"
    lines = [line.strip() for line in open(os.path.join(FLAGS_DIR, "eat_imagenet_search.cfg"))
             if re.match(r"--(no)?transfer_weights\b", line.strip())]
    assert lines == ["--notransfer_weights"]


_MOCK_RUN = """
import runpy, sys
import tensorflow_datasets as tfds
mod = sys.argv[1]
sys.argv = [mod] + sys.argv[2:]
with tfds.testing.mock_data(num_examples=24):
    runpy.run_module(mod, run_name="__main__", alter_sys=True)
"""


def _mock_binary(module, *args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _MOCK_RUN, module, *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p.stdout


def test_two_stage_paper_commands_on_mock_data(tmp_path):
    """README's paper run, CIFAR-10 then ImageNet, as written (the paper flagfiles), on
    tfds mock data with the sizes overridden: stage 1 retrains nothing, so --from_run
    takes its best-quality population's best, architecture only."""
    s1, s2 = str(tmp_path / "cifar"), str(tmp_path / "imagenet")
    tiny = ["--population=1", "--sample=1", "--max_candidates=1", "--topk=1",
            "--batch_size=8", "--max_train_examples=16", "--steps_per_epoch=1", "--verbose=0"]
    _mock_binary("eatnas_tf.search", f"--run_dir={s1}", "--flagfile=flags/eat_cifar10_search.cfg",
                 "--data_source=tfds", *tiny, cwd=ROOT)
    r1 = json.load(open(os.path.join(s1, "report.json")))
    assert r1["winner"] is None and r1["topk"]  # --retrain_epochs=0
    out = _mock_binary("eatnas_tf.transfer", f"--run_dir={s2}", f"--from_run={s1}",
                       "--flagfile=flags/eat_imagenet_search.cfg",
                       f"--data_dir={tmp_path / 'tfds'}", "--resolution=32", *tiny, cwd=ROOT)
    said = [line for line in out.splitlines() if line.startswith("from_run:")]
    assert len(said) == 1 and "no retrained winner" in said[0] and "topk" not in said[0]
    r2 = json.load(open(os.path.join(s2, "report.json")))
    assert r2["basic_source"] == "topk[0]" and r2["basic_arch"] == r1["topk"][0]["arch"]
    assert r2["basic_id"] == r1["topk"][0]["id"]
    assert r2["space"] == "imagenet"
    # the paper's width factor (N_out / N_in) on both stages: the basic model's widths, and so
    # its per-block channels, carry over; the run records the mode it ran with
    mapped = [line for line in out.splitlines() if line.startswith("transfer:")]
    assert mapped[0].startswith("transfer: basic model (relative, stem 32) -> space imagenet "
                                "(relative, stem 32): per-block channels kept"), mapped
    m = r2["basic_mapping"]
    assert (m["exact"], m["channel_mode"], m["arch"]) == (True, "relative", r2["basic_arch"])
    assert r2["basic_space"] == "cifar10" and m["channels"] == m["basic_channels"]
    cfg = json.load(open(os.path.join(s2, "config.json")))["config"]
    assert cfg["stage"]["space"]["channel_mode"] == "relative"
    # architecture only: no basic-model weights written, no offspring inherits any
    assert not os.path.exists(os.path.join(s2, "basic_weights.npz"))
    recs = [json.loads(line) for line in open(os.path.join(s2, "candidates.jsonl"))]
    assert recs and all(r["status"] == "ok" for r in recs)
    assert all(not r.get("parent_weights") for r in recs)
    assert recs[0]["origin"] == "offspring"


# -- 6. Γ "normal", EPNAS Nesterov prediction, Eq. 3's own exponents ----------------------------
def test_builder_offers_the_papers_normal_init():
    import keras

    from eatnas_tf.model.builder import KERNEL_INITS, build_model

    arch = DIGITS.sample(random.Random(1))
    keras.utils.set_random_seed(0)
    normal = build_model(arch, DIGITS.macro, kernel_init="normal")
    keras.utils.set_random_seed(0)
    default = build_model(arch, DIGITS.macro)
    assert KERNEL_INITS == ("glorot_uniform", "normal")
    checked = 0
    for layer in normal.layers:
        if type(layer).__name__ not in ("Conv2D", "DepthwiseConv2D"):
            continue
        w = layer.get_weights()[0]
        kh, kw, _, out = w.shape
        want = math.sqrt(2.0 / (kh * kw * out))  # N(0, 2 / fan_out), untruncated
        if w.size >= 500:
            assert np.std(w) == pytest.approx(want, rel=0.15), layer.name
            assert np.abs(w).max() > 2.0 * want  # not truncated at 2 std
            checked += 1
        glorot = default.get_layer(layer.name).get_weights()[0]
        limit = math.sqrt(6.0 / (kh * kw * (w.shape[2] + out)))
        if type(layer).__name__ == "Conv2D":
            assert np.abs(glorot).max() <= limit + 1e-6  # uniform default kept
    assert checked >= 3
    with pytest.raises(ValueError, match="kernel_init: received 'he'; allowed values"):
        build_model(arch, DIGITS.macro, kernel_init="he")


def test_epnas_prediction_runs_use_nesterov():
    from eatnas_tf.epnas import config as epnas_config
    from eatnas_tf.epnas import constraints as C

    opt = epnas_config.EpnasConfig(constraints=(C.parse_constraint("madds:2e5:1.5e6"),),
                                   mode="block", branches=2, steps=1, episodes=1)
    s = make_strategy("epnas", DIGITS, SearchConfig(max_candidates=4),
                      random.Random(0), options=opt)
    p = s.propose_batch(1)[0]
    assert p.train_overrides == {"learning_rate": 0.5, "nesterov": True}
    train = TrainConfig().replace(**p.train_overrides)
    from eatnas_tf.train import optim
    assert optim.make_optimizer(train, 1).nesterov is True
    flags = _flagfile("epnas_search.cfg")
    assert "epnas_predict" in flags and flags["epnas_predict_lr"] == "0.5"
    assert flags["epnas_space"] == "table2"  # the paper's layer-level space (Table 2)


def test_quality_exponents_are_their_own_flags():
    from absl import flags as absl_flags

    from eatnas_tf.search import flags as search_flags
    from eatnas_tf.search import objective

    c = SearchConfig(alpha=-0.07, beta=-0.07)
    assert c.quality_exponents == (-0.07, -0.07)
    c = SearchConfig(alpha=0.0, beta=0.0, quality_alpha=-0.5, quality_beta=-0.1)
    assert c.quality_exponents == (-0.5, -0.1)
    fv = absl_flags.FlagValues()
    search_flags.define_search_flags(fv)
    fv(["prog", "--alpha=0", "--beta=0", "--quality_alpha=-0.3"])
    cfg = search_flags.search_config(fv)
    assert (cfg.alpha, cfg.beta, cfg.quality_alpha, cfg.quality_beta) == (0.0, 0.0, -0.3, None)
    assert cfg.quality_exponents == (-0.3, 0.0)
    # the evolution logs Eq. 3 with its own exponents, Eq. 1 scores keep alpha/beta
    s = make_strategy("eat", DIGITS, SearchConfig(population=4, sample=2, alpha=0.0, beta=0.0,
                                                  quality_alpha=-0.5, quality_beta=-0.5,
                                                  max_candidates=4, inherit=False),
                      random.Random(0))
    recs = []
    while not s.finished():
        p = s.propose()
        if p is None:
            break
        acc = 0.5 + 0.1 * len(recs)
        r = CandidateRecord(id=len(recs), arch=codec.to_text(p.arch),
                            hash=codec.canonical_hash(p.arch), origin=p.origin, status="ok",
                            val_acc=acc, score=acc)
        recs.append(r)
        s.observe(r)
    accs = [r.val_acc for r in recs]
    want = objective.population_quality(accs, 0.01, -0.5, -0.5).quality
    assert s.history()[-1]["quality"] == pytest.approx(want)
    assert want != pytest.approx(objective.population_quality(accs, 0.01, 0.0, 0.0).quality)


# -- 2b. EcoNAS reduced resolution: pad and crop at full size, then resize -------------------------
def test_reduced_resolution_crops_at_full_size_then_resizes():
    import tensorflow as tf

    from eatnas_tf.data import augment as aug
    from eatnas_tf.data.datasets import load_data
    from eatnas_tf.econas import proxy as proxy_lib

    base = DataConfig("digits", augment=("crop", "flip", "cutout"), cutout_length=4,
                      max_train_examples=64, batch_size=16)
    red = proxy_lib.reduce_data(proxy_lib.Proxy(r=2), base)
    assert (red.image_size, red.cutout_length, red.crop_then_resize) == (4, 2, True)
    assert not proxy_lib.reduce_data(proxy_lib.Proxy(c=2), base).crop_then_resize
    # the transform: pad 1 + crop at 8×8 (the full size), then an area resize to 4×4
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (5, 8, 8, 1)), tf.uint8)
    seed = tf.constant([3, 4], tf.int64)
    got = aug.apply_batch(x, seed, ("crop",), size=4, mean=(0.0,), std=(1.0,))
    s = aug._seeds(seed, 7)
    full = aug.pad_crop(tf.cast(x, tf.float32) / 255.0, s[0], aug.default_pad(8))
    want = tf.image.resize(full, [4, 4], method="area")
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    # an image already at the model's size is cropped as before (pad = size / 8)
    small = tf.image.resize(tf.cast(x, tf.float32), [4, 4], method="area")
    got = aug.apply_batch(small, seed, ("crop",), size=4, mean=(0.0,), std=(1.0,))
    want = aug.pad_crop(small / 255.0, s[0], aug.default_pad(4))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    # the pipeline: training batches come out at the reduced size, eval sets too
    data = load_data(red)
    assert data.image_shape == (4, 4, 1)
    xb, _ = next(iter(data.train))
    assert xb.shape[1:] == (4, 4, 1)
    assert next(iter(data.train_noaug))[0].shape[1:] == (4, 4, 1)
    assert next(iter(data.val))[0].shape[1:] == (4, 4, 1)


# -- 4. The ImageNet width factor: both channel modes, the transfer's channel mapping -------------
IMAGENET_MODES = ("mbv2", "relative")


@pytest.mark.parametrize("mode", IMAGENET_MODES)
def test_imagenet_channel_modes_count_params_exactly(mode):
    import keras

    from eatnas_tf.arch.cost import count
    from eatnas_tf.model import naming as N
    from eatnas_tf.model.builder import build_model

    space = space_lib.get_space("imagenet", channel_mode=mode)
    assert space.channel_mode == mode and space.name == "imagenet"
    # global average pooling before the dense logits: parameters do not depend on the input
    # size, so a 32x32 build stands in for 224x224 (the analytic counts agree too)
    macro = space.macro.with_(image_size=32)
    archs = [space.sample(random.Random(seed)) for seed in range(3)]
    archs.append(dataclasses.replace(archs[0], shortcut="projection"))
    for arch in archs:
        assert space.contains(dataclasses.replace(arch, shortcut="identity"))
        assert arch.channel_mode == mode
        want = count(arch, space.macro).params
        assert count(arch, macro).params == want
        model = build_model(arch, macro)
        assert model.count_params() == want, (mode, codec.to_text(arch))
        # the built network has the mode's per-block channels
        last = {N.parse_layer_name(layer.name)[0]: layer.get_weights()[0].shape[-1]
                for layer in model.layers if layer.name.endswith("_" + N.PROJECT)}
        assert tuple(last[b] for b in sorted(last)) == arch.block_channels()
        del model
        keras.backend.clear_session()
    # the same text is a different network in the other mode
    other = space_lib.get_space("imagenet", [m for m in IMAGENET_MODES if m != mode][0])
    text = codec.to_text(archs[1])
    assert (codec.parse_arch(text, **other.arch_defaults()).block_channels()
            != archs[1].block_channels())


def test_block7_widths_under_the_total_expansion_constraint():
    """Paper §4.2: total expansion (block 7 channels / 32 stem channels) in [8, 16].

    mbv2: block 7 has int(320 x w) channels whatever the other blocks, so 320 w / 32 = 10 w
    in [8, 16] leaves w7 in {1.0, 1.5} for every prefix, and blocks 1-6 are unconstrained.
    relative: the total expansion is the product of the seven widths, so block 7 may take
    each of the four widths (prefix product 16..32 for 0.5 down to 4..8 for 2.0) and,
    given blocks 1-6, one to three of them (three when the prefix product is 8: 1.0, 1.5,
    2.0 give 8, 12, 16)."""
    import collections
    import itertools

    from eatnas_tf.arch.spec import WIDTHS, BlockSpec, InvalidArchitectureError

    depths = (2, 2, 2, 3, 3, 2, 2)  # 16 layers, inside [16, 18]
    allowed = {}
    for mode in IMAGENET_MODES:
        space = space_lib.get_space("imagenet", mode)
        per_prefix = collections.defaultdict(set)
        for ws in itertools.product(WIDTHS, repeat=7):
            try:
                arch = space.make(BlockSpec("mb6", 3, False, w, d) for w, d in zip(ws, depths))
            except InvalidArchitectureError:
                continue
            if space.contains(arch):
                per_prefix[ws[:6]].add(ws[6])
        allowed[mode] = per_prefix
    mbv2, rel = allowed["mbv2"], allowed["relative"]
    assert len(mbv2) == 4 ** 6 and all(v == {1.0, 1.5} for v in mbv2.values())
    assert set().union(*rel.values()) == set(WIDTHS)
    assert max(len(v) for v in rel.values()) == 3
    assert rel[(2.0, 2.0, 2.0, 1.0, 1.0, 1.0)] == {1.0, 1.5, 2.0}  # prefix product 8
    assert rel[(2.0, 2.0, 2.0, 2.0, 1.0, 1.0)] == {0.5, 1.0}  # 16: 8 and 16
    assert rel[(2.0, 2.0, 1.0, 1.0, 1.0, 1.0)] == {2.0}  # 4: only 8


def test_channel_mode_flag_reaches_space_config_and_resume_check(tmp_path):
    from absl import flags as absl_flags

    from eatnas_tf.search import flags as search_flags
    from eatnas_tf.search.experiment import SearchExperiment
    from eatnas_tf.search.run_dir import RunDir, RunDirError

    def experiment(*argv):
        fv = absl_flags.FlagValues()
        search_flags.define_search_flags(fv)
        fv(["prog", f"--run_dir={tmp_path / 'run'}", "--dataset=digits", *argv])
        return search_flags.experiment_from_flags("search", fv)

    assert experiment("--space=imagenet").stage.space.channel_mode == "mbv2"  # the default
    rel = experiment("--space=imagenet", "--channel_mode=relative")
    assert rel.stage.space == space_lib.get_space("imagenet", "relative")
    assert experiment("--space=cifar10").stage.space.channel_mode == "relative"
    assert rel.to_dict()["stage"]["space"]["channel_mode"] == "relative"
    run = RunDir(str(tmp_path / "run"))
    run.check_config(rel.to_dict())
    run.check_config(experiment("--space=imagenet", "--channel_mode=relative").to_dict())
    with pytest.raises(RunDirError, match=r"stage\.space\.channel_mode \"relative\" -> \"mbv2\""):
        run.check_config(experiment("--space=imagenet", "--channel_mode=mbv2").to_dict())
    # a seed architecture is read in the chosen mode
    seed = codec.to_text(space_lib.get_space("imagenet", "relative").sample(random.Random(0)))
    exp = experiment("--space=imagenet", "--channel_mode=relative", f"--seed_arch={seed}")
    assert isinstance(exp, SearchExperiment)
    with pytest.raises(absl_flags.IllegalFlagValueError):
        experiment("--channel_mode=absolute")
    with pytest.raises(space_lib.InvalidArchitectureError, match="channel_mode: received 'x'"):
        space_lib.get_space("imagenet", "x")
    # the paper flagfiles: the search and the retraining read widths as N_out / N_in
    assert _flagfile("eat_imagenet_search.cfg")["channel_mode"] == "relative"
    assert _flagfile("eat_imagenet_retrain.cfg")["channel_mode"] == "relative"


def test_transfer_maps_the_basic_models_channels():
    from eatnas_tf.arch import channel_map
    from eatnas_tf.arch.spec import MBV2_BASE_CHANNELS

    cifar = space_lib.get_space("cifar10")
    rel = space_lib.get_space("imagenet", "relative")
    mbv2 = space_lib.get_space("imagenet", "mbv2")
    for seed in range(8):
        basic = cifar.sample(random.Random(seed))
        # relative: the widths carry over, every block keeps its output channels
        m = channel_map.map_channels(basic, rel)
        assert m.exact and m.arch.blocks == basic.blocks
        assert m.arch.block_channels() == basic.block_channels()
        assert m.arch.channel_mode == "relative"
        assert m.lines()[0].startswith("transfer: basic model (relative, stem 32) -> space "
                                       "imagenet (relative, stem 32): per-block channels kept")
        # mbv2: the nearest allowed width per block; what changed is reported
        m = channel_map.map_channels(basic, mbv2)
        want = basic.block_channels()
        for i, (b, row) in enumerate(zip(m.arch.blocks, m.rows)):
            best = min(abs(int(MBV2_BASE_CHANNELS[i] * w) - want[i]) for w in mbv2.widths)
            assert abs(row.channels - want[i]) == best
            assert (b.op, b.kernel, b.skip, b.depth) == (basic.blocks[i].op,
                                                         basic.blocks[i].kernel,
                                                         basic.blocks[i].skip,
                                                         basic.blocks[i].depth)
        assert [r.channels for r in m.rows] == list(m.arch.block_channels())
        changed = {r.block for r in m.changed}
        listed = {int(line.split("block ")[1].split(":")[0]) for line in m.lines()[1:]
                  if "block " in line}
        assert changed <= listed
        assert m.as_dict()["changed"] == [dataclasses.asdict(r) for r in m.changed]
        # already in the target space: the identity
        same = channel_map.map_channels(m.arch, mbv2)
        assert same.exact and same.arch == m.arch
    # a CIFAR-10 basic model read as-is in the mbv2 space would be another network
    assert any(codec.parse_arch(codec.to_text(cifar.sample(random.Random(s))),
                                **mbv2.arch_defaults()).block_channels()
               != cifar.sample(random.Random(s)).block_channels() for s in range(3))


def test_transfer_binary_reads_basic_arch_in_its_own_space(tmp_path):
    """`--basic_arch` + `--basic_space`: the mapping is printed before anything runs (here a
    bad --target then stops the command, exit 2, no run dir)."""
    basic = ("mb6_k3_w2.0_d2,mb3_k5_w1.0_d3,mb6_k3_w1.5_d3,mb6_k5_w1.0_d3,mb6_k3_w1.5_d2,"
             "mb6_k5_w1.0_d2,sep_k3_w1.0_d1")
    run = tmp_path / "run"

    def transfer(*args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
        p = subprocess.run([sys.executable, "-m", "eatnas_tf.transfer", f"--run_dir={run}",
                            "--space=imagenet", f"--basic_arch={basic}", "--dataset=digits",
                            "--target=-1", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 2 and "target: received -1" in p.stderr, p.stderr[-2000:]
        return [line for line in p.stdout.splitlines() if line.startswith("transfer:")]

    lines = transfer("--basic_space=cifar10", "--channel_mode=mbv2")
    assert lines[0] == ("transfer: basic model (relative, stem 32) -> space imagenet (mbv2, "
                        "stem 32): per-block channels [64, 64, 96, 96, 144, 144, 144] -> "
                        "[32, 48, 64, 96, 144, 160, 160] (5 of 7 blocks changed: nearest "
                        "allowed width)")
    assert "transfer:   block 7: 144 -> 160 channels (w1.0 -> w0.5)" in lines
    lines = transfer("--basic_space=cifar10", "--channel_mode=relative")
    assert "per-block channels kept [64, 64, 96, 96, 144, 144, 144] (widths carried over)" in (
        lines[0])
    assert not run.exists()
