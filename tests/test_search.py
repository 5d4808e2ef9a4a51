"""EAT-NAS search logic without training: Eq. 1-3, Alg. 1 (tournament, remove the worst,
convergence, best-quality population), Alg. 3 (offspring), random search, run dir."""

import json
import math
import os
import random

import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search import objective, offspring
from eatnas_tf.search.run_dir import RunDir, RunDirError
from eatnas_tf.search.strategy import SearchConfig, make_strategy

SPACES = ("cifar10", "imagenet", "fashion_mnist", "fashion_mnist_14", "digits")


# -- Eq. 1 / Eq. 2 / Eq. 3 ---------------------------------------------------------------
def test_score_eq1_hand_values():
    # 0.9 × (6e6 / 3e6)^-0.07 = 0.9 × 2^-0.07 = 0.9 × 0.9526380 = 0.8573742
    assert objective.score(0.9, 6e6, 3e6) == pytest.approx(0.8573742, abs=1e-6)
    # below the target, w = alpha: 0.8 × 0.5^-0.07 = 0.8 × 1.0497167 = 0.8397734
    assert objective.score(0.8, 1.5e6, 3e6) == pytest.approx(0.8397734, abs=1e-6)
    # different alpha / beta pick the side (Eq. 2)
    assert objective.score(0.8, 1.5e6, 3e6, alpha=0.0, beta=-1.0) == pytest.approx(0.8)
    assert objective.score(0.8, 6e6, 3e6, alpha=0.0, beta=-1.0) == pytest.approx(0.4)
    assert objective.score(0.7, 3e6, 3e6) == pytest.approx(0.7)  # at the target: × 1
    with pytest.raises(ValueError):
        objective.score(0.5, 0, 3e6)


def test_population_quality_eq3_hand_values():
    # mean 0.85, std 0.05 (ddof 0); Q = 0.85 × (0.05 / 0.01)^-0.07 = 0.85 × 0.8934538
    q = objective.population_quality([0.8, 0.9], target_std=0.01)
    assert q.mean_acc == pytest.approx(0.85)
    assert q.std_acc == pytest.approx(0.05)
    assert q.quality == pytest.approx(0.7594357, abs=1e-6)
    # a tighter population of the same mean has higher quality
    assert objective.population_quality([0.84, 0.86]).quality > q.quality
    # identical accuracies: finite (std floored)
    assert math.isfinite(objective.population_quality([0.5, 0.5]).quality)


def test_convergence_monitor():
    m = objective.ConvergenceMonitor(patience=2, min_delta=0.01)
    assert m.update(0, 0.5)
    assert m.update(1, 0.6)
    assert not m.update(2, 0.59)
    assert m.update(3, 0.601)  # a new best, but < 1% better: still counts as stale
    assert m.converged and m.best_step == 3


# -- Alg. 3 ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_offspring_one_field_per_block_and_in_space(name):
    space = space_lib.get_space(name)
    rng = random.Random(1)
    for _ in range(30):
        parent = space.sample(rng)
        child = offspring.transform(parent, space, rng)
        assert space.contains(child)
        for pb, cb in zip(parent.blocks, child.blocks):
            changed = [f for f in offspring.FIELDS if getattr(pb, f) != getattr(cb, f)]
            assert len(changed) == 1, (codec.to_text(parent), codec.to_text(child))


def test_offspring_population_distinct_and_from_other_space():
    small, large = space_lib.get_space("fashion_mnist_14"), space_lib.get_space("fashion_mnist")
    basic = small.sample(random.Random(0))
    kids = offspring.offspring(basic, large, 12, random.Random(0))
    assert len({codec.canonical_hash(k) for k in kids}) == 12
    assert all(large.contains(k) for k in kids)
    # CIFAR-10 basic model → ImageNet space (16-18 layers, mbv2 channels)
    c10, imnet = space_lib.get_space("cifar10"), space_lib.get_space("imagenet")
    for k in offspring.offspring(c10.sample(random.Random(3)), imnet, 4, random.Random(0)):
        assert imnet.contains(k) and k.channel_mode == "mbv2"


# -- Alg. 1 with a synthetic evaluator -----------------------------------------------------
def _fake_record(cid, proposal, space, acc_fn):
    arch = proposal.arch
    acc = acc_fn(arch)
    madds = space.cost(arch).madds
    return CandidateRecord(id=cid, arch=codec.to_text(arch), hash=codec.canonical_hash(arch),
                           status="ok", val_acc=acc, madds=madds,
                           score=objective.score(acc, madds, space.target),
                           parent=proposal.parent)


def _acc(arch):
    return (
        0.5
        + 0.02 * sum(b.depth for b in arch.blocks) / 7
        + 0.01 * sum(b.kernel for b in arch.blocks) / 7
    )


def _drive(strategy, space, n=None, acc_fn=_acc):
    out = []
    while not strategy.finished() and (n is None or len(out) < n):
        p = strategy.propose()
        if p is None:
            break
        rec = _fake_record(len(strategy.records), p, space, acc_fn)
        out.append((p, rec))
        strategy.observe(rec)
    return out


def test_evolution_removes_worst_of_sample_and_mutates_best():
    space = space_lib.get_space("digits")
    cfg = SearchConfig(population=8, sample=4, max_candidates=30)
    evo = make_strategy("eat", space, cfg, random.Random(0))
    _drive(evo, space, n=8)
    assert len(evo.population) == 8
    for _ in range(10):
        before = {r.id: r for r in evo.population}
        p = evo.propose()
        sample = [before[i] for i in evo._pending["sample"]]
        best = max(sample, key=lambda r: (r.score, -r.id))
        worst = min(sample, key=lambda r: (r.score, -r.id))
        assert p.parent == best.id and p.info["removes"] == worst.id
        assert p.origin == "mutation"
        parent = best.spec(space)
        changed = [sum(getattr(a, f) != getattr(b, f) for f in offspring.FIELDS)
                   for a, b in zip(parent.blocks, p.arch.blocks)]
        assert changed == [1] * 7
        rec = _fake_record(len(evo.records), p, space, _acc)
        evo.observe(rec)
        ids = {r.id for r in evo.population}
        assert worst.id not in ids and rec.id in ids and len(ids) == 8


def test_evolution_never_proposes_an_architecture_twice():
    space = space_lib.get_space("digits")
    evo = make_strategy("eat", space, SearchConfig(population=6, sample=3, max_candidates=40),
                        random.Random(2))
    hashes = [codec.canonical_hash(p.arch) for p, _ in _drive(evo, space)]
    assert len(hashes) == 40 and len(set(hashes)) == 40


def test_evolution_converges_and_keeps_best_quality_population():
    space = space_lib.get_space("digits")
    cfg = SearchConfig(population=6, sample=3, max_candidates=500, patience=5, min_delta=0.0)
    evo = make_strategy("eat", space, cfg, random.Random(0))
    _drive(evo, space, acc_fn=lambda a: 0.7)  # constant accuracy: quality never improves
    assert evo.monitor.converged and len(evo.records) == 6 + 5
    hist = evo.history()
    best = max(hist, key=lambda h: h["quality"])
    assert evo.summary()["best_quality"] == pytest.approx(best["quality"])
    assert {r.id for r in evo.final_population()} == set(evo.monitor.best_population)
    assert len(evo.topk(3)) == 3


def test_evolution_failed_child_changes_nothing():
    space = space_lib.get_space("digits")
    evo = make_strategy("eat", space, SearchConfig(population=4, sample=2, max_candidates=10),
                        random.Random(0))
    _drive(evo, space, n=4)
    pop = [r.id for r in evo.population]
    p = evo.propose()
    evo.observe(CandidateRecord.failure("ValueError: diverged", id=4,
                                        arch=codec.to_text(p.arch),
                                        hash=codec.canonical_hash(p.arch)))
    assert [r.id for r in evo.population] == pop


def test_transfer_seeded_population_are_offspring():
    small, large = space_lib.get_space("fashion_mnist_14"), space_lib.get_space("fashion_mnist")
    basic = small.sample(random.Random(5))
    cfg = SearchConfig(population=6, sample=3, max_candidates=6,
                       seed_archs=(codec.to_text(basic),), seed_weights="w.npz")
    evo = make_strategy("eat", large, cfg, random.Random(0))
    for p, _ in _drive(evo, large):
        assert p.origin == "offspring" and p.parent_weights == "w.npz"
        assert p.parent_arch == basic
        assert all(sum(getattr(a, f) != getattr(b, f) for f in offspring.FIELDS) == 1
                   for a, b in zip(basic.blocks, p.arch.blocks))


def test_same_seed_same_sequence_random_and_eat():
    space = space_lib.get_space("digits")
    for name in ("eat", "random"):
        runs = []
        for _ in range(2):
            s = make_strategy(name, space, SearchConfig(population=5, sample=2, max_candidates=15),
                              random.Random("7:search"))
            runs.append([codec.canonical_hash(p.arch) for p, _ in _drive(s, space)])
        assert runs[0] == runs[1] and len(runs[0]) == 15


def test_search_config_errors():
    with pytest.raises(ValueError, match="sample"):
        SearchConfig(population=4, sample=8)
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("nope", space_lib.get_space("digits"), SearchConfig(), random.Random(0))


# -- run directory ------------------------------------------------------------------------
def test_run_dir_partial_line_dropped_and_state_fallback(tmp_path, capsys):
    run = RunDir(str(tmp_path))
    run.append({"id": 0, "x": 1.0})
    run.append({"id": 1, "x": 0.1 + 0.2})
    with open(run.file("candidates.jsonl"), "a") as f:
        f.write('{"id": 2, "x"')  # killed mid-write
    again = RunDir(str(tmp_path))
    assert [r["id"] for r in again.candidates()] == [0, 1]
    assert again.candidates()[1]["x"] == 0.1 + 0.2  # floats round-trip exactly
    assert "partial" in capsys.readouterr().err
    again.append({"id": 2})
    assert [json.loads(line)["id"] for line in open(run.file("candidates.jsonl"))] == [0, 1, 2]

    run.write_state({"n": 1})
    run.write_state({"n": 2})
    assert run.read_state() == {"n": 2}
    with open(run.file("state.json"), "w") as f:
        f.write('{"checksum": "x", "sta')  # truncated
    assert run.read_state() == {"n": 1}
    assert "corrupt" in capsys.readouterr().err


def test_run_dir_config_change_refused(tmp_path):
    run = RunDir(str(tmp_path))
    run.check_config({"seed": 0, "search": {"population": 8}})
    run.check_config({"seed": 0, "search": {"population": 8}})
    with pytest.raises(RunDirError, match="search.population 8 -> 9"):
        run.check_config({"seed": 0, "search": {"population": 9}})
    run.check_config({"seed": 0, "search": {"population": 9}}, allow_change=True)
    stored = json.load(open(os.path.join(str(tmp_path), "config.json")))
    assert stored["config"]["search"]["population"] == 9
    assert stored["changes"][-1]["changed"] == {"search.population": [8, 9]}


def test_prune_weights_keeps_live(tmp_path):
    run = RunDir(str(tmp_path))
    os.makedirs(run.file("weights"))
    for i in range(4):
        open(run.weights_path(i), "w").close()
    assert run.prune_weights({1, 3}) == 2
    assert sorted(os.listdir(run.file("weights"))) == ["00001.npz", "00003.npz"]


# -- pipeline helpers ---------------------------------------------------------------------
def test_pick_winner_by_validation_then_earlier_id():
    from eatnas_tf.search import pipeline

    rows = [{"id": 3, "val_acc": 0.9, "test_acc": 0.5}, {"id": 1, "val_acc": 0.9, "test_acc": 0.4},
            {"id": 2, "val_acc": 0.8, "test_acc": 0.99}]
    assert pipeline.pick_winner(rows)["id"] == 1  # test accuracy never picks
    rows = [
        {"id": 3, "val_acc": None, "test_acc": 0.5},
        {"id": 1, "val_acc": None, "test_acc": 0.4},
    ]
    assert pipeline.pick_winner(rows)["id"] == 3  # no validation part: test accuracy
    with pytest.raises(ValueError):
        pipeline.pick_winner([])


def test_pareto_rows_front_and_model_dirs():
    from eatnas_tf.search import pipeline

    recs = [CandidateRecord(id=i, arch=f"a{i}", val_acc=acc, madds=m, params=1, status="ok")
            for i, (acc, m) in enumerate([(0.8, 100), (0.7, 200), (0.9, 300), (0.85, 50)])]
    recs.append(CandidateRecord.failure("x", id=9, arch="x", madds=1, params=1))
    rows = pipeline.pareto_rows(recs, [{"id": 2, "model_dir": "retrain/c2/model"}])
    assert [r["id"] for r in rows] == [3, 2]  # 0.85@50, 0.9@300; 0 and 1 dominated
    assert rows[1]["model_dir"] == "retrain/c2/model" and rows[0]["model_dir"] is None


# -- the typed record ---------------------------------------------------------------------
def test_candidate_record_round_trip_and_old_keys():
    line = {"id": 3, "stage": "search", "arch": "a", "hash": "h", "status": "ok",
            "val_acc": 0.5, "val_acc_curve": [0.4, 0.5], "score": 0.4, "wall_s": 1.5,
            "epochs": 3, "resumed_from_epoch": 1, "winner": True, "old_field": [1, 2]}
    rec = CandidateRecord.from_json(line)
    assert rec.ok and rec.candidate_epochs == 2 and rec.extra == {"winner": True,
                                                                   "old_field": [1, 2]}
    again = CandidateRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert again == rec
    out = rec.to_json()
    assert out["winner"] is True and out["status"] == "ok" and "duplicate_of" not in out
    assert out["reason"] is None and out["parent"] is None  # the fixed columns


def test_candidate_record_failure_has_one_shape():
    a = CandidateRecord.failure("ValueError: x", seed=1, epochs=2).to_json()
    b = CandidateRecord.failure("worker died", seed=5, epochs=1).to_json()
    assert set(a) == set(b) and a["status"] == "failed" and a["score"] is None
    dup = CandidateRecord(id=1, status="ok", val_acc=0.5, epochs=1, duplicate_of=0)
    assert dup.candidate_epochs == 0 and not dup.trained
