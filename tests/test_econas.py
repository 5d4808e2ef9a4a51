"""EcoNAS: proxy names and reductions, rank correlations, the calibration store and table,
the hierarchical proxy evolution (strategy alone, then end to end on digits), and
promotion continuing from checkpoints (E then E more epochs == a straight 2E run)."""

import os
import random
import re

import econas_fakes  # tests/econas_fakes.py: the runner stand-in
import numpy as np
import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import count
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.econas import calibration, rank
from eatnas_tf.econas import proxy as proxy_lib
from eatnas_tf.econas.config import EcoNASConfig
from eatnas_tf.econas.proxy import PAPER_NAMES, PAPER_TABLE1, Proxy, reduce_value
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search.strategy import SearchConfig, make_strategy
from eatnas_tf.train.config import TrainConfig

PAPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "seeds", "004_174f69b4da9c6623.txt")
DIGITS = space_lib.get_space("digits")


# -- proxy names --------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER_NAMES)
def test_every_paper_name_parses_and_round_trips(name):
    p = Proxy.parse(name)
    assert str(p) == name and Proxy.parse(str(p)) == p
    m = re.fullmatch(r"c(\d)r(\d)s(\d)(?:e(\d+))?", name)
    assert (p.c, p.r, p.s) == tuple(int(v) for v in m.groups()[:3])
    assert p.e == (int(m.group(4)) if m.group(4) else None)


def test_paper_latex_and_tuple_forms():
    assert Proxy.parse("$c_4r_4s_0e_{60}$") == Proxy(4, 4, 0, 60)
    assert Proxy.parse("(c_0, r_0, s_0, e_{600})") == Proxy(0, 0, 0, 600)
    assert Proxy.parse(" C3R2S1E60 ") == Proxy(3, 2, 1, 60)
    assert Proxy.parse("$c_2r_0s_0$").e is None


@pytest.mark.skipif(not os.path.exists(PAPER), reason="paper text not present")
def test_every_concrete_name_in_the_paper_text_parses():
    text = open(PAPER).read()
    names = re.findall(r"c_\{?\d\}?\s*r_\{?\d\}?\s*s_\{?\d\}?(?:\s*e_\{?\d+\}?)?", text)
    assert len(set(names)) >= 15
    for n in names:
        assert Proxy.parse(n).name in PAPER_NAMES


@pytest.mark.parametrize("bad, words", [
    ("c5r0s0e60", "proxy c: received c5"), ("c0r9s0", "proxy r: received r9"),
    ("c0r0s4e30", "proxy s: received s4"), ("c0r0s0e0", "proxy e: received e0"),
    ("c4r4", "allowed form"), ("r4c4s0e60", "allowed form"), ("c4r4s0e", "allowed form"),
    ("", "allowed form"), ("c4r4s0e60x", "allowed form"), ("c-1r0s0", "allowed form")])
def test_bad_names_get_one_clear_error(bad, words):
    with pytest.raises(ValueError) as e:
        Proxy.parse(bad)
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "allowed" in msg


def test_table1_values():
    # The stated rule gives Table 1 except c4, where the table prints 8 (36/4 = 9).
    assert [reduce_value(32, x) for x in range(5)] == list(PAPER_TABLE1["r"])
    assert [reduce_value(36, x) for x in range(4)] == list(PAPER_TABLE1["c"][:4])
    assert reduce_value(36, 4) == 9 and PAPER_TABLE1["c"][4] == 8
    assert [Proxy(s=s).sample_ratio for s in range(4)] == list(PAPER_TABLE1["s"])
    # Our bases: a 16-channel stem, 28 / 8 pixel sides.
    assert [reduce_value(16, x) for x in range(5)] == [16, 12, 8, 6, 4]
    assert [reduce_value(28, x) for x in range(5)] == [28, 20, 14, 8, 7]
    assert Proxy(4, 4, 0).nominal_speedup == 256


# -- applying a proxy ---------------------------------------------------------------------
def _arch(space=DIGITS, seed=0):
    return space.sample(random.Random(seed))


def test_apply_reduces_channels_resolution_samples_epochs():
    arch = _arch()
    data = DataConfig("digits", max_train_examples=1000, cutout_length=4)
    train = TrainConfig(epochs=10)
    red = proxy_lib.apply("c2r1s1e3", arch, data, train)
    assert (red.arch.stem, red.arch.head) == (8, 64)
    assert red.arch.blocks == arch.blocks and red.arch.channel_mode == "relative"
    full, small = arch.block_channels(), red.arch.block_channels()
    assert all(s <= f for s, f in zip(small, full)) and small[-1] < full[-1]
    assert red.data.image_size == 6 and red.data.cutout_length == 3
    assert red.data.sample_fraction == 0.5 and red.data.max_train_examples == 500
    assert red.train.epochs == 3
    # no e: the training config's epochs stay
    assert proxy_lib.apply("c0r0s0", arch, data, train).train.epochs == 10
    assert proxy_lib.apply("c0r0s0", arch, data, train).arch == arch


def test_cost_is_madds_samples_epochs():
    arch = _arch()
    macro = DIGITS.macro
    c, madds, samples = proxy_lib.cost("c2r1s1e3", arch, macro, num_train=1000, epochs=10)
    red = proxy_lib.reduce_arch(Proxy(2), arch)
    assert madds == count(red, macro.with_(image_size=6)).madds
    assert samples == 500 and c == madds * 500 * 3
    full, _, _ = proxy_lib.cost("c0r0s0", arch, macro, num_train=1000, epochs=10)
    assert full == count(arch, macro).madds * 1000 * 10 and full > 8 * c


def test_channel_proxy_refuses_mbv2_and_collapsing_archs():
    arch = _arch(space_lib.get_space("imagenet"))
    with pytest.raises(ValueError, match="channel_mode 'mbv2'"):
        proxy_lib.reduce_arch(Proxy(c=1), arch)
    assert proxy_lib.reduce_arch(Proxy(r=2), arch) == arch
    thin = codec.parse_arch(",".join(["sep_k3_w0.5_d1"] * 2 + ["sep_k3_w1.0_d1"] * 5),
                            stem=8, head=64)
    with pytest.raises(ValueError, match="proxy c4"):
        proxy_lib.reduce_arch(Proxy(c=4), thin)
    assert not proxy_lib.reducible(thin, ["c4r0s0"]) and proxy_lib.reducible(thin, ["c1r0s0"])


# -- rank correlations ----------------------------------------------------------------------
REF = [0.90, 0.80, 0.70, 0.60]
SWAP = [0.80, 0.90, 0.70, 0.60]  # the top two swapped


def test_correlations_against_hand_values():
    # ranks 1 2 3 4 vs 2 1 3 4: d = (-1, 1, 0, 0), rho = 1 - 6*2/(4*15) = 0.8
    assert rank.spearman(REF, SWAP) == pytest.approx(0.8)
    # 6 pairs, 1 discordant: tau = (5 - 1) / 6
    assert rank.kendall(REF, SWAP) == pytest.approx(2 / 3)
    assert rank.spearman(REF, REF[::-1]) == pytest.approx(-1.0)
    assert rank.kendall(REF, [0.6, 0.7, 0.9, 0.8]) == pytest.approx(-2 / 3)
    # 5 models, ranks (1..5) vs (3, 1, 2, 5, 4): d = (-2, 1, 1, -1, 1), sum d^2 = 8
    ref5, px5 = [5, 4, 3, 2, 1], [3, 5, 4, 1, 2]
    assert rank.spearman(ref5, px5) == pytest.approx(1 - 6 * 8 / (5 * 24))
    # of 10 pairs, (0,1) (0,2) (3,4) are discordant: tau = (7 - 3) / 10
    assert rank.kendall(ref5, px5) == pytest.approx(0.4)


def test_tolerant_spearman():
    # The swapped pair differs by 0.10 in both settings: within b = 0.15 it is no swap.
    assert rank.tolerant_spearman(REF, SWAP, 0.15) == pytest.approx(1.0)
    assert rank.tolerant_spearman(REF, SWAP, 0.05) == pytest.approx(0.8)
    # Within b in one setting only: still a rank difference.
    assert rank.tolerant_spearman(REF, [0.8, 0.95, 0.7, 0.6], 0.1) == pytest.approx(0.8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(8), rng.random(8)
        assert rank.tolerant_spearman(a, b, 0.0) == pytest.approx(rank.spearman(a, b))
    assert rank.tolerant_spearman(REF, REF[::-1], 1.0) == pytest.approx(1.0)
    assert list(rank.rank_differences(REF, SWAP)) == [-1, 1, 0, 0]
    assert rank.top_retained(REF, SWAP, top=1, within=1) == 0
    assert rank.top_retained(REF, SWAP, top=1, within=2) == 1
    with pytest.raises(ValueError, match="same length"):
        rank.spearman([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2"):
        rank.kendall([0.1], [0.2])


# -- calibration store, table, recommendation ----------------------------------------------------
def _fake_pair(calls):
    def fake(setting, arch, space, data, train, seed, verbose=0):
        p = Proxy.parse(setting)
        red = proxy_lib.apply(p, arch, data, train)
        madds = count(red.arch, space.macro.with_(image_size=red.data.size)).madds
        quality = (int(codec.canonical_hash(arch), 16) % 1000) / 1000.0
        noise = {"c0r0s0e4": 0.0, "c0r0s0e1": 0.0, "c2r0s0e2": 0.01, "c4r2s0e1": 0.9}[setting]
        acc = 0.5 + 0.4 * quality + noise * ((seed * 7919) % 13) / 13.0
        calls.append(setting)
        n = 800 // (2 ** p.s)
        return {"key": calibration.key(setting, arch), "setting": setting,
                "arch": codec.to_text(arch), "hash": codec.canonical_hash(arch), "status": "ok",
                "val_acc": acc, "madds": madds, "num_train": n, "epochs": red.train.epochs,
                "wall_s": 1.0, "seed": seed, "reduced_image_size": red.data.size,
                "cost": proxy_lib.training_cost(madds, n, red.train.epochs)}
    return fake


def test_calibration_resumes_and_recommends(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(calibration, "evaluate_pair", _fake_pair(calls))
    proxies = ["c0r0s0e1", "c2r0s0e2", "c4r2s0e1"]
    archs = calibration.sample_archs(DIGITS, 6, 0, ["c0r0s0e4"] + proxies)
    assert archs == calibration.sample_archs(DIGITS, 6, 0, ["c0r0s0e4"] + proxies)
    data, train = DataConfig("digits"), TrainConfig(epochs=4)
    d = str(tmp_path / "cal")
    kw = dict(min_rho=0.95, seed=0, progress=None)
    assert calibration.calibrate(d, DIGITS, archs, "c0r0s0e4", proxies, data, train,
                                 max_new=5, **kw) == {}
    assert len(calls) == 5
    with open(os.path.join(d, "results.jsonl"), "a") as f:
        f.write('{"key": "partial')  # a kill mid-write
    table = calibration.calibrate(d, DIGITS, archs, "c0r0s0e4", proxies, data, train, **kw)
    assert len(calls) == 24  # 4 settings x 6 archs, each once (the partial one again)
    rows = {r["setting"]: r for r in table["rows"]}
    assert rows["c0r0s0e4"]["spearman"] == pytest.approx(1.0)
    assert rows["c0r0s0e1"]["spearman"] == pytest.approx(1.0)
    assert rows["c2r0s0e2"]["speedup"] > rows["c0r0s0e1"]["speedup"] == pytest.approx(4.0)
    # the cheapest with rho >= 0.95: c2r0s0e2 if it keeps the order, never the noisy one
    assert rows["c4r2s0e1"]["spearman"] < 0.95
    expected = "c2r0s0e2" if rows["c2r0s0e2"]["spearman"] >= 0.95 else "c0r0s0e1"
    assert table["recommended"] == expected and table["complete"]
    for f in ("calibration.md", "calibration.json", "calibration.png"):
        assert os.path.getsize(os.path.join(d, f)) > 0
    md = open(os.path.join(d, "calibration.md")).read()
    assert f"`{expected}` **recommended**" in md and "Spearman" in md
    calibration.calibrate(d, DIGITS, archs, "c0r0s0e4", proxies, data, train, **kw)
    assert len(calls) == 24  # finished: nothing trained again
    with pytest.raises(Exception, match="was started with"):
        calibration.calibrate(d, DIGITS, archs, "c0r0s0e4", proxies, data,
                              train.replace(epochs=5), **kw)


# -- the strategy alone (no training) ---------------------------------------------------------
ECO = EcoNASConfig(epochs=2, mutations=3, promote1=2, promote2=1, cycles=2,
                          proxy="c2r0s0")


_drive = econas_fakes.drive


def _strategy(seed=0, **kw):
    return make_strategy("econas", DIGITS, SearchConfig(population=4, sample=2, inherit=False,
                                                        max_candidates=1000),
                         random.Random(seed), options=kw.pop("econas", ECO))


def test_strategy_follows_algorithm_1():
    s = _strategy()
    recs = _drive(s)
    cycle = ["mutation"] * 3 + ["promote2"] * 2 + ["promote3"]
    assert [r.origin for r in recs] == ["random"] * 4 + cycle * 2
    assert [r.epochs for r in recs] == [2] * 4 + ([2] * 3 + [4] * 2 + [6]) * 2
    by_id = {r.id: r for r in recs}
    # cycle 1: the top-2 of P_E (the 4 initial + 3 children) continue to 2E ...
    first_pe = recs[:7]
    top2 = sorted(first_pe, key=lambda r: (-r.score, r.id))[:2]
    assert [r.continue_from for r in recs[7:9]] == [r.id for r in top2]
    # ... then the best of P_2E to 3E, continuing its 2E record (same architecture)
    src = by_id[recs[9].continue_from]
    assert src.origin == "promote2" and src.hash == recs[9].hash
    assert recs[9].continue_from == max(recs[7:9], key=lambda r: r.score).id
    summary = s.summary()
    # P_E: 4 + 3 + 3 new - 2 - 2 promoted; P_2E: (2 - 1) + (2 - 1); P_3E: 1 + 1
    assert [len(summary[k]) for k in ("P2", "P4", "P6")] == [6, 2, 2]
    assert {r.id for r in s.final_population()} == set(summary["P6"])
    assert summary["candidate_epochs"] == 10 * 2 + 4 * 2 + 2 * 2
    assert all(r.info["proxy"].startswith("c2r0s0e") for r in recs)
    # only P_E and P_2E members may still be continued: their checkpoints are kept
    assert set(s.live_ids()) == set(summary["P2"]) | set(summary["P4"])
    # children are new architectures, mutated from a live model by one field of one block
    assert len({r.hash for r in recs if r.origin != "promote2"
                and r.origin != "promote3"}) == 10
    for r in recs:
        if r.origin == "mutation":
            parent = codec.parse_arch(by_id[r.info["selected"]].arch)
            child = codec.parse_arch(r.arch)
            diff = [(a, b) for a, b in zip(parent.blocks, child.blocks) if a != b]
            assert len(diff) == 1
    assert [h["cycle"] for h in s.history()] == [0, 1, 2]


def test_strategy_is_deterministic_and_replayable():
    a, b = _drive(_strategy(3)), _drive(_strategy(3))
    assert [r.hash for r in a] == [r.hash for r in b]
    assert [r.hash for r in a] != [r.hash for r in _drive(_strategy(4))]


def test_dead_models_are_removed():
    s = _strategy()
    recs = _drive(s, fail_ids={1, 7})  # an initial model and a promotion fail
    summary = s.summary()
    assert summary["dead"] == [1, 7]
    live = set(summary["P2"]) | set(summary["P4"]) | set(summary["P6"])
    assert 1 not in live and recs[7].continue_from not in live and 7 not in live
    # aging: with a lifespan of 1 cycle the initial models die at the end of cycle 1
    s = _strategy(econas=EcoNASConfig(epochs=1, mutations=2, promote1=1, promote2=1,
                                             cycles=2, proxy="c0r0s0", lifespan=1))
    recs = _drive(s)
    assert {0, 1, 2, 3} <= set(s.summary()["dead"])


def test_selection_prefers_higher_levels_and_ranks():
    s = _strategy()
    rec = CandidateRecord
    s.levels = [[rec(id=i, score=0.1 * i, arch="", hash=str(i)) for i in range(4)],
                [rec(id=10, score=0.5, arch="", hash="10")],
                [rec(id=20, score=0.6, arch="", hash="20")]]
    counts = {}
    for _ in range(6000):
        r = s._select_parent()
        counts[r.id] = counts.get(r.id, 0) + 1
    # weights: P_E ranks 4..1 × 2/5 × 1, P_2E 1 × 2, P_3E 1 × 3 (total 9)
    assert counts[3] > counts[2] > counts[1] > counts[0]
    assert counts[20] / 6000 == pytest.approx(3 / 9, abs=0.03)
    assert counts[3] / 6000 == pytest.approx(1.6 / 9, abs=0.03)


def test_config_errors():
    with pytest.raises(ValueError, match="without e"):
        EcoNASConfig(proxy="c4r4s0e60")
    with pytest.raises(ValueError, match="econas_mutation"):
        EcoNASConfig(mutation="x")
    with pytest.raises(ValueError, match="proxy c"):
        EcoNASConfig(proxy="c9r0s0")


# -- training: promotion continues, the search end to end ----------------------------------------
@pytest.fixture(scope="module")
def deterministic():
    """TensorFlow deterministic ops for this module only (the flag is process-wide)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was:
        tf_config.disable_op_determinism()


def test_promotion_continues_from_checkpoint(tmp_path, deterministic):
    from eatnas_tf.search.evaluate import EvalRequest, evaluate

    arch = _arch()
    data = DataConfig("digits", batch_size=64, max_train_examples=256)
    train = TrainConfig(epochs=1, learning_rate=0.05, steps_per_epoch=3)
    ck = str(tmp_path / "ck")

    def run(epochs, ckpt):
        return evaluate(EvalRequest(arch=arch, space=DIGITS, data=data,
                                    train=train.replace(epochs=epochs), seed=5,
                                    checkpoint_dir=ckpt), keep_weights=True)

    e1 = run(1, ck)
    e2 = run(2, ck)  # the promotion: the same checkpoint, 2E epochs
    straight = run(2, None)
    assert e1.record.resumed_from_epoch == 0 and e2.record.resumed_from_epoch == 1
    assert os.path.exists(os.path.join(ck, "state.json"))  # kept for the next promotion
    assert e2.record.steps == straight.record.steps == 6
    for name, ws in straight.weights.items():
        for a, b in zip(ws, e2.weights[name]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert e2.record.val_acc == pytest.approx(straight.record.val_acc)
    moved = [n for n, ws in e1.weights.items()
             if any(not np.allclose(a, b) for a, b in zip(ws, e2.weights[n]))]
    assert moved  # the second epoch did train


def test_econas_search_end_to_end(tmp_path, deterministic):
    from eatnas_tf.search.experiment import Stage
    from eatnas_tf.search.run_dir import RunDir
    from eatnas_tf.search.runner import run_stage

    eco = EcoNASConfig(epochs=1, mutations=1, promote1=1, promote2=1, cycles=1,
                       proxy="c2r0s0")
    stage = Stage("search", "econas", DIGITS,
                  DataConfig("digits", batch_size=64, max_train_examples=256),
                  TrainConfig(epochs=1, learning_rate=0.05, steps_per_epoch=3),
                  SearchConfig(population=2, sample=2, inherit=False, max_candidates=50,
                               alpha=0.0, beta=0.0, topk=1), seed=0, options=eco)
    run = RunDir(str(tmp_path / "run"))
    res = run_stage(run, stage, progress=None, tensorboard=False)
    recs = res.records
    assert [r.origin for r in recs] == ["random", "random", "mutation", "promote2",
                                           "promote3"]
    assert all(r.status == "ok" for r in recs)
    assert [r.epochs for r in recs] == [1, 1, 1, 2, 3]
    assert [r.resumed_from_epoch for r in recs] == [0, 0, 0, 1, 2]
    p2, p3 = recs[3], recs[4]
    assert p3.continue_from == p2.id and p2.continue_from in (0, 1, 2)
    src = recs[p2.continue_from]
    assert p2.hash == src.hash == p3.hash
    assert p2.checkpoint == src.checkpoint == p3.checkpoint
    assert p2.seed == src.seed
    # the proxy's channels were trained: stem 16 -> 8, head 128 -> 64
    full = codec.parse_arch(src.arch, **DIGITS.arch_defaults())
    assert src.params < count(full, DIGITS.macro).params
    red = proxy_lib.reduce_arch(Proxy(2), full)
    assert src.params == count(red, DIGITS.macro).params
    # checkpoints of models that cannot be continued any more are gone
    assert not os.path.exists(run.file(p2.checkpoint))
    p_e = res.strategy.summary()["P1"]
    assert sorted(os.listdir(run.file("ckpt"))) == [f"{i:05d}" for i in sorted(p_e)]
    assert res.summary()["candidate_epochs"] == 5
    assert [r.id for r in res.strategy.topk()] == [p3.id]
    # resume: everything replays, nothing trains
    again = run_stage(RunDir(run.path), stage, progress=None, tensorboard=False)
    assert again.evaluated == 0 and len(again.records) == 5
