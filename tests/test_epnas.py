"""EPNAS: soft constraints (Eq. 2, 3), actions, the REINFORCE policy, the sharing
dictionary and a tiny search end to end on digits."""

import json
import math
import os
import random

import numpy as np
import pytest
from absl import flags

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.epnas import actions as A
from eatnas_tf.epnas import config as epnas_config
from eatnas_tf.epnas import constraints as C
from eatnas_tf.epnas import flags as epnas_flags
from eatnas_tf.epnas import sharing_dict as SD

DIGITS = space_lib.get_space("digits")
FMNIST = space_lib.get_space("fashion_mnist")


# -- Eq. 2 / 3 ---------------------------------------------------------------------------
def test_violation_hand_values_both_sides_of_the_bounds():
    lo, hi = 100.0, 300.0
    assert C.violation(200, lo, hi) == 1.0                     # inside
    assert C.violation(100, lo, hi) == 1.0 and C.violation(300, lo, hi) == 1.0
    assert C.violation(600, lo, hi) == pytest.approx(0.9)      # 600/300 - 1 = 1
    assert C.violation(450, lo, hi) == pytest.approx(0.9 ** 0.5)  # 0.948683
    assert C.violation(1200, lo, hi) == pytest.approx(0.729)   # exponent 3
    assert C.violation(50, lo, hi) == pytest.approx(0.9)       # 100/50 - 1 = 1
    assert C.violation(25, lo, hi) == pytest.approx(0.729)     # 100/25 - 1 = 3
    assert C.violation(80, lo, hi) == pytest.approx(0.9 ** 0.25)
    assert C.violation(1e9, lower=lo) == 1.0                   # no upper bound
    assert C.violation(1.0, upper=hi) == 1.0                   # no lower bound
    assert C.violation(0.0, lower=lo) == 0.0
    assert C.violation(600, lo, hi, p=0.5) == pytest.approx(0.5)
    cons = [C.parse_constraint("madds:100:300"), C.parse_constraint("params::10")]
    assert C.reward(0.8, {"madds": 600, "params": 20}, cons) == pytest.approx(0.8 * 0.9 * 0.9)
    assert C.reward(0.8, {"madds": 200, "params": 5}, cons) == pytest.approx(0.8)
    assert C.reward(None, {"madds": 200, "params": 5}, cons) == 0.0
    assert C.all_satisfied({"madds": 200, "params": 5}, cons)
    assert not C.all_satisfied({"madds": 301, "params": 5}, cons)


def test_parse_constraints():
    c = C.parse_constraint("madds:100e6:300e6")
    assert (c.metric, c.lower, c.upper, c.p) == ("madds", 100e6, 300e6, 0.9)
    assert C.parse_constraint("params::4e6").lower is None
    assert C.parse_constraint("intensity:80:").upper is None
    assert str(C.parse_constraint("latency::2.5")) == "latency::2.5"
    both = C.parse_constraints(["madds:1:2,params::3", "intensity:4:"])
    assert [x.metric for x in both] == ["madds", "params", "intensity"]
    for bad in ("madds", "madds:1", "flops:1:2", "madds::", "madds:3:1", "madds:x:1",
                "madds:-1:"):
        with pytest.raises(ValueError):
            C.parse_constraint(bad)
    with pytest.raises(ValueError, match="twice"):
        C.parse_constraints(["madds:1:2", "madds::5"])


def test_flags_reach_the_config():
    fv = flags.FlagValues()
    epnas_flags.define_flags(fv)
    fv(["prog", "--constraint=madds:1e6:2.5e6", "--constraint=params::2e5,intensity:5:",
        "--epnas_branches=3", "--epnas_mode=block", "--constraint_penalty=0.8"])
    cfg = epnas_flags.from_flags(fv)
    assert [str(c) for c in cfg.constraints] == ["madds:1e+06:2.5e+06", "params::200000",
                                                 "intensity:5:"]
    assert cfg.constraints[0].p == 0.8 and cfg.branches == 3 and cfg.mode == "block"
    assert epnas_config.EpnasConfig().describe()["policy_lr"] == 0.0006


# -- actions -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", A.MODES)
@pytest.mark.parametrize("space", [DIGITS, FMNIST], ids=lambda s: s.name)
def test_every_action_keeps_the_encoding_valid_or_is_masked(mode, space):
    asp = A.ActionSpace(space, mode)
    rng = random.Random(1)
    for _ in range(12):
        arch = space.sample(rng)
        for part in range(A.NUM_PARTS):
            mask = asp.scale_mask(arch, part)
            assert mask[0]  # keep is always possible
            for o, ok in enumerate(mask):
                out = asp.apply_scale(arch, part, o)
                assert (out is not None) == ok
                if ok:
                    assert space.contains(out)
        kmask = asp.kind_mask(arch)
        assert kmask[0]
        for kind in (1, 2):
            pmask = asp.place_mask(arch, kind)
            assert len(pmask) == asp.max_places
            assert any(pmask) == kmask[kind]
            for place in range(asp.max_places):
                ops = range(len(A.spec_lib.OPS)) if kind == 1 else [-1]
                skips = range(2) if kind == 1 else [-1]
                results = [asp.apply_insert(arch, kind, place, o, s) for o in ops for s in skips]
                assert any(r is not None for r in results) == pmask[place]
                for r in results:
                    if r is not None:
                        assert space.contains(r)
                        assert r.num_layers == arch.num_layers + (1 if kind == 1 else -1)
        with pytest.raises(ValueError):  # an unmasked-invalid action is refused
            asp.apply(arch, A.Action((0,) * 7, 2, place=asp.max_places + 3))


def test_tokens_layer_mode_one_per_layer():
    arch = DIGITS.sample(random.Random(0))
    assert len(A.ActionSpace(DIGITS, "layer").tokens(arch)) == arch.num_layers
    toks = A.ActionSpace(DIGITS, "block").tokens(arch)
    assert len(toks) == 7 and all(0 <= i < A.TOKEN_VOCAB for t in toks for i in t)


# -- policy ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_arch():
    rng = random.Random(0)
    return min((FMNIST.sample(rng) for _ in range(60)), key=lambda a: a.num_layers)


def _policy(mode="layer", seed=0, lr=0.02):
    from eatnas_tf.epnas.policy import Policy

    return Policy(A.ActionSpace(FMNIST, mode), seed=seed, learning_rate=lr)


def test_policy_samples_valid_children_and_logp_matches(small_arch):
    pol = _policy()
    assert pol.choice_sizes["scale"] == 5
    rng = random.Random(3)
    decs = []
    for _ in range(8):
        action, d, child = pol.sample(small_arch, rng)
        assert FMNIST.contains(child)
        assert A.ActionSpace(FMNIST, "layer").apply(small_arch, action) == child
        decs.append(d)
    np.testing.assert_allclose(pol.log_probs(decs), [d.logp for d in decs], atol=1e-4)


def test_reinforce_gradient_sign_and_policy_learns_to_insert(small_arch):
    pol = _policy(lr=0.02)
    rng = random.Random(5)
    _, d, _ = pol.sample(small_arch, rng)
    before = pol.log_probs([d])[0]
    pol.update([d], [1.0], 1)          # positive advantage: more likely
    up = pol.log_probs([d])[0]
    pol.update([d], [-1.0], 1)
    pol.update([d], [-1.0], 1)         # negative advantage: less likely
    down = pol.log_probs([d])[0]
    assert up > before and down < up

    pol = _policy(mode="block", seed=1, lr=0.05)
    share = []
    for _ in range(8):
        decs, rewards = [], []
        for _ in range(8):
            a, d, _ = pol.sample(small_arch, rng)
            decs.append(d)
            rewards.append(1.0 if a.kind == 1 else 0.0)  # rewarded for "insert"
        share.append(np.mean(rewards))
        pol.update(decs, np.asarray(rewards) - np.mean(rewards), len(decs))
    # uniform start: about 1/3 insert; after 8 updates the policy inserts (almost) always
    assert np.mean(share[-3:]) > 0.9 and np.mean(share[-3:]) > np.mean(share[:2]) + 0.2, share


def test_policy_seeded_deterministic_and_state_roundtrip(small_arch):
    a, b = _policy(seed=7), _policy(seed=7)
    assert a.fingerprint() == b.fingerprint() != _policy(seed=8).fingerprint()
    ra, rb = random.Random(1), random.Random(1)
    da = [a.sample(small_arch, ra)[1] for _ in range(4)]
    db = [b.sample(small_arch, rb)[1] for _ in range(4)]
    a.update(da, [1, -1, 0.5, 0], 4)
    b.update(db, [1, -1, 0.5, 0], 4)
    assert a.fingerprint() == b.fingerprint()  # same data, same weights, bit for bit
    c = _policy(seed=99)
    c.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert c.fingerprint() == a.fingerprint() and c.updates == 1
    r1, r2 = random.Random(4), random.Random(4)
    assert a.sample(small_arch, r1)[0] == c.sample(small_arch, r2)[0]
    a.update(da, [1, 1, 1, 1], 4)
    c.update(da, [1, 1, 1, 1], 4)  # Adam slots restored too
    assert c.fingerprint() == a.fingerprint()


def test_returns_to_go_and_baseline():
    from eatnas_tf.epnas.policy import MovingAverageBaseline, returns_to_go

    assert returns_to_go([1.0, 2.0, 3.0]) == [6.0, 5.0, 3.0]
    b = MovingAverageBaseline(0.5)
    assert b.get(0) is None
    b.update(0, 2.0)
    b.update(0, 4.0)
    assert b.get(0) == 3.0


# -- sharing dictionary ------------------------------------------------------------------
def test_fit_crops_pads_and_slices():
    k5 = np.arange(5 * 5 * 2 * 3, dtype=np.float32).reshape(5, 5, 2, 3)
    k3 = SD.fit(k5, (3, 3, 4, 2))
    assert k3.shape == (3, 3, 2, 2)  # centre crop; channels sliced to <= child's
    np.testing.assert_array_equal(k3, k5[1:4, 1:4, :, :2])
    k7 = SD.fit(k5, (7, 7, 2, 3))
    assert k7.shape == (7, 7, 2, 3) and k7[0].sum() == 0 and k7[:, 0].sum() == 0
    np.testing.assert_array_equal(k7[1:6, 1:6], k5)
    assert SD.fit(np.ones(8), (4,)).shape == (4,) and SD.fit(np.ones(8), (3, 3)) is None


def _model_weights(arch, macro):
    from eatnas_tf.model.builder import build_model

    m = build_model(arch, macro)
    return m, {layer.name: layer.get_weights() for layer in m.layers if layer.weights}


def test_dictionary_reuses_weights_across_candidates():
    import dataclasses

    from eatnas_tf.model import sharing

    macro = DIGITS.macro
    rng = random.Random(2)
    a = DIGITS.sample(rng)
    _, wa = _model_weights(a, macro)
    # shapes computed from the encoding match the built model
    shapes = SD.tensor_shapes(a, macro)
    for name, ws in wa.items():
        assert [tuple(w.shape) for w in ws] == shapes[name], name
    d = SD.SharingDict(macro)
    assert d.add(a, cid=0, acc=0.5) == len(SD.layer_groups(a, macro))
    # a child: block 3 scaled (kernel and width) and one layer more in block 2
    b3 = a.blocks[2]
    kernel = 5 if b3.kernel != 5 else 3
    b2 = a.blocks[1]
    child = a.with_block(2, dataclasses.replace(b3, kernel=kernel))
    if b2.depth < 4:
        child = child.with_block(1, dataclasses.replace(b2, depth=b2.depth + 1))
    assert DIGITS.contains(child) or True
    got, summary = d.materialize(child, lambda cid: {0: wa}[cid])
    assert summary["donors"] == [0] and summary["groups"] >= 8 and summary["adapted"] >= 1
    model_c, _ = _model_weights(child, macro)
    rep = sharing.inherit(model_c, child, got, None)
    assert rep.copied > 0 and rep.fraction > 0.5
    # the stem and a matching layer hold the donor's values
    np.testing.assert_array_equal(model_c.get_layer("stem_conv").get_weights()[0],
                                  wa["stem_conv"][0])
    dw = "block3_layer1_dw"
    src = wa[dw][0]
    dst = model_c.get_layer(dw).get_weights()[0]
    c = min(src.shape[2], dst.shape[2])
    np.testing.assert_array_equal(dst[..., :c, :], SD.fit(src, dst.shape)[..., :c, :])
    # clash: a more accurate model of the same dimensions replaces the entry, a worse not
    key_sig = [(g.key, g.signature) for g in SD.layer_groups(a, macro)]
    assert d.add(a, cid=1, acc=0.4) == 0
    assert d.add(a, cid=2, acc=0.9) == len(key_sig)
    assert d.cids() == [2]
    # closest dimensions are chosen among variants of a key
    key, sig = key_sig[3]
    d.entries[key][sig[:1] + (sig[1] + 50,) + sig[2:]] = SD.Entry(
        7, 0.99, sig[:1] + (sig[1] + 50,) + sig[2:]
    )
    assert d.lookup(key, sig).cid == 2


# -- end to end --------------------------------------------------------------------------
def test_epnas_search_end_to_end_on_digits_and_replay(tmp_path):
    from eatnas_tf.data.datasets import DataConfig
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search import epnas as epnas_strategy
    from eatnas_tf.search import runner
    from eatnas_tf.search.experiment import Stage
    from eatnas_tf.search.run_dir import RunDir
    from eatnas_tf.search.strategy import SearchConfig
    from eatnas_tf.train.config import TrainConfig

    opt = epnas_config.EpnasConfig(
        constraints=(C.parse_constraint("madds:2e5:1.5e6"),), branches=1, steps=2, episodes=1,
        policy_lr=0.01, predict=True, predict_lr=0.05, predict_epochs=1)

    stage = Stage(
        name="search", strategy="epnas", space=DIGITS, options=opt,
        data=DataConfig("digits", split="search", val_fraction=0.2, batch_size=64,
                        max_train_examples=256),
        train=TrainConfig(epochs=3, learning_rate=0.05, steps_per_epoch=4,
                          bn_recalibration_batches=2),
        config=SearchConfig(population=2, sample=1, max_candidates=50, topk=2), seed=0)
    run = RunDir(str(tmp_path / "run"))
    res = runner.run_stage(run, stage, progress=None, tensorboard=False)
    recs = [CandidateRecord.from_json(r) for r in run.candidates()]
    assert len(recs) == 2 and all(r.ok for r in recs)
    assert all(r.origin == "epnas" and r.epochs == 1 for r in recs)
    assert [(r.info["step"], r.info["branch"]) for r in recs] == [(0, 0), (1, 0)]
    # step 1 inherits from the dictionary built from step 0's model, and is its child
    assert recs[1].info["from"] == recs[0].arch
    for r in recs[1:]:
        assert r.info["dictionary"]["donors"] and r.parent_weights
        if r.duplicate_of is None:
            assert r.inherit["copied"] + r.inherit["sliced"] > 0
    strat = res.strategy
    assert len(strat.history()) == 2 and strat._policy.updates == 1 and strat.episode == 1
    state = json.load(open(os.path.join(run.path, "state.json")))["state"]
    pol = state["strategy_state"]["policy"]
    assert pol["updates"] == 1 and os.path.exists(run.file("epnas", pol["file"]))
    assert not os.path.exists(run.file("shared")) or not os.listdir(run.file("shared"))
    assert strat.topk(1)[0].id in {r.id for r in recs}
    # replay: same proposals, no training, the same policy weights
    again = runner.run_stage(run, stage, progress=None, tensorboard=False)
    assert again.evaluated == 0
    assert again.strategy._policy.fingerprint() == strat._policy.fingerprint() == pol["fingerprint"]
    # the stored state restores the policy without replay
    fresh = epnas_strategy.EPNAS(DIGITS, stage.config, random.Random("other"), options=opt)
    fresh.bind(runner.run_context(run, fresh))
    fresh.load_state_dict(state["strategy_state"])
    assert fresh.policy.fingerprint() == pol["fingerprint"]
    assert not math.isnan(strat.history()[-1]["mean_reward"])


def test_propose_batch_stays_within_a_step_and_matches_sequential():
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search.strategy import SearchConfig, make_strategy

    opt = epnas_config.EpnasConfig(constraints=(C.parse_constraint("madds:2e5:1.5e6"),),
                                   mode="block", branches=3, steps=2, episodes=1)

    def fake(p, cid):
        c = DIGITS.cost(p.arch)
        return CandidateRecord(id=cid, status="ok", val_acc=0.5, params=c.params,
                               madds=c.madds, hash=codec.canonical_hash(p.arch), score=0.5)

    def run(k):
        s = make_strategy("epnas", DIGITS, SearchConfig(max_candidates=50),
                          random.Random("0:search"), options=opt)
        out, sizes = [], []
        while not s.finished():
            batch = s.propose_batch(k)
            sizes.append(len(batch))
            for p in batch:
                out.append(codec.canonical_hash(p.arch))
                s.observe(fake(p, len(s.records)))
        return out, sizes, s

    seq, _, s1 = run(1)
    par, sizes, s2 = run(2)
    assert seq == par and sizes == [2, 1, 2, 1] and len(seq) == 6
    assert [h["satisfied_frac"] for h in s1.history()] == [
        h["satisfied_frac"] for h in s2.history()
    ]
    assert s1.policy.fingerprint() == s2.policy.fingerprint()


def test_latency_cache_measures_each_architecture_once(tmp_path):
    from eatnas_tf.epnas.latency import LatencyCache

    calls = []

    def fake(arch, macro, threads, runs):
        calls.append(codec.canonical_hash(arch))
        return 1.5 + len(calls)

    path = str(tmp_path / "epnas" / "latency.json")
    rng = random.Random(0)
    a, b = DIGITS.sample(rng), DIGITS.sample(rng)
    cache = LatencyCache(DIGITS.macro, path, measure=fake)
    assert cache(a) == 2.5 and cache(b) == 3.5 and cache(a) == 2.5 and len(calls) == 2
    again = LatencyCache(DIGITS.macro, path, measure=fake)  # a resumed search: same numbers
    assert again(a) == 2.5 and again(b) == 3.5 and len(calls) == 2
