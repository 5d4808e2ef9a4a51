"""Search report: Pareto front, the plots (valid PNGs) and report.json / report.md."""

import dataclasses
import json
import math
import os
import random
import stat
import subprocess
import sys

import pytest

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.report import pareto, plots, search_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPACE = space_lib.get_space("fashion_mnist")


def _assert_png(path):
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000
    leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
    assert leftovers == []


def _candidates(n_per_stage=12, seed=0):
    """Candidate records as candidates.jsonl holds them, two stages, one failure each."""
    rng = random.Random(seed)
    out = []
    for stage, space_name in (("stage1", "fashion_mnist_14"), ("stage2", "fashion_mnist")):
        space = space_lib.get_space(space_name)
        for i in range(n_per_stage):
            arch = space.sample(rng)
            cost = space.cost(arch)
            failed = i == 3
            acc = None if failed else 0.6 + 0.05 * math.log10(cost.madds) + rng.uniform(-0.03, 0.03)
            out.append({"id": len(out), "stage": stage, "arch": codec.to_text(arch),
                        "hash": codec.canonical_hash(arch), "parent": None,
                        "origin": "random" if i < 8 else "mutation", "params": cost.params,
                        "madds": cost.madds, "resource": cost.madds, "val_acc": acc,
                        "score": None if failed else acc * 0.98,
                        "status": "failed" if failed else "ok",
                        "reason": "OOM" if failed else None, "wall_s": 3.5, "epochs": 1,
                        "inherit": None})
    return out


def _history():
    rows = []
    for stage, n in (("stage1", 10), ("stage2", 6)):
        for i in range(n):
            mean = 0.7 + 0.01 * i
            rows.append({"step": i, "candidates": 8 + i, "stage": stage, "mean_acc": mean,
                         "std_acc": 0.02, "quality": mean * 1.05 - 0.002 * (i - 5) ** 2,
                         "best_acc": mean + 0.04})
    return rows


def _report(candidates, winner=True):
    ok = [c for c in candidates if c["status"] == "ok" and c["stage"] == "stage2"]
    best = max(ok, key=lambda c: c["score"])
    rep = {
        "space": "fashion_mnist", "strategy": "eat", "seed": 0, "wall_s": 4321.0,
        "stages": [
            {"name": "stage1", "space": "fashion_mnist_14", "dataset": "fashion_mnist",
             "candidates": 12, "failed": 1, "wall_s": 1234.5, "best_val_acc": 0.91,
             "best_quality": 0.93, "converged_at": 11, "cost_metric": "madds", "target": 6e6},
            {"name": "stage2", "space": "fashion_mnist", "dataset": "fashion_mnist",
             "candidates": 12, "failed": 1, "wall_s": 2345.6, "best_val_acc": 0.92,
             "best_quality": 0.94, "converged_at": None, "cost_metric": "madds", "target": 6e6}],
        "pareto": [{"arch": best["arch"], "val_acc": best["val_acc"], "madds": best["madds"],
                    "params": best["params"], "model_dir": None}],
        "topk": [{"arch": best["arch"], "val_acc": 0.93, "test_acc": 0.925,
                  "params": best["params"], "madds": best["madds"]}],
        "winner": None,
    }
    if winner:
        rep["winner"] = {"arch": best["arch"], "params": best["params"], "madds": best["madds"],
                         "test_accuracy": 0.925, "val_acc": 0.93, "source": "retrain",
                         "stage": "stage2", "id": best["id"]}
    return rep, best


# ---------------------------------------------------------------------------------------
# Pareto front
# ---------------------------------------------------------------------------------------
class TestPareto:
    def test_dominated_points_excluded(self):
        pts = [{"acc": 0.90, "madds": 100},   # 0 front
               {"acc": 0.85, "madds": 150},   # 1 dominated by 0
               {"acc": 0.95, "madds": 300},   # 2 front
               {"acc": 0.80, "madds": 50},    # 3 front (cheapest)
               {"acc": 0.95, "madds": 400},   # 4 dominated by 2 (same acc, costlier)
               {"acc": 0.88, "madds": 100}]   # 5 dominated by 0 (same cost, less accurate)
        assert pareto.pareto_front(pts) == [3, 0, 2]
        assert pareto.front_records(pts) == [pts[3], pts[0], pts[2]]

    def test_exact_ties_kept_or_collapsed(self):
        pts = [{"acc": 0.9, "madds": 100}, {"acc": 0.7, "madds": 10},
               {"acc": 0.9, "madds": 100}, {"acc": 0.9, "madds": 100}]
        assert pareto.pareto_front(pts) == [1, 0, 2, 3]
        assert pareto.pareto_front(pts, keep_ties=False) == [1, 0]

    def test_missing_values_ignored_and_custom_keys(self):
        pts = [{"val_acc": None, "params": 1}, {"val_acc": 0.5, "params": 10},
               {"val_acc": float("nan"), "params": 2}, {"params": 3},
               {"val_acc": 0.6, "params": 20}, {"val_acc": 0.55, "params": 30}]
        assert pareto.pareto_front(pts, maximize="val_acc", minimize="params") == [1, 4]
        assert pareto.pareto_front([]) == []

    def test_front_is_monotone_and_nothing_dominates_it(self):
        rng = random.Random(1)
        pts = [{"acc": round(rng.random(), 2), "madds": rng.randint(1, 50)} for _ in range(300)]
        idx = pareto.pareto_front(pts)
        accs = [pts[i]["acc"] for i in idx]
        costs = [pts[i]["madds"] for i in idx]
        assert costs == sorted(costs)
        assert all(a < b for a, b in zip(accs, accs[1:]) if a != b) and accs == sorted(accs)
        for i in idx:
            assert not any(pareto.dominates(q, pts[i]) for q in pts)
        for j in set(range(len(pts))) - set(idx):
            assert any(pareto.dominates(pts[i], pts[j]) for i in idx)


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------
class TestPlots:
    def test_quality_over_time(self, tmp_path):
        path = str(tmp_path / "q" / "quality.png")
        assert plots.quality_over_time(_history(), path) == path
        _assert_png(path)

    def test_quality_over_time_without_stage_or_rows(self, tmp_path):
        rows = [{k: v for k, v in r.items() if k != "stage"} for r in _history()[:5]]
        _assert_png(plots.quality_over_time(rows, str(tmp_path / "a.png")))
        _assert_png(plots.quality_over_time([], str(tmp_path / "b.png")))

    def test_pareto_scatter(self, tmp_path):
        cands = _candidates()
        cands[-1]["winner"] = True
        path = plots.pareto_scatter(cands, str(tmp_path / "p.png"), target=6e6)
        _assert_png(path)
        _assert_png(plots.pareto_scatter(cands, str(tmp_path / "params.png"),
                                         cost_key="params"))
        _assert_png(plots.pareto_scatter([], str(tmp_path / "empty.png")))

    @pytest.mark.parametrize("per_layer", [False, True])
    def test_draw_arch(self, tmp_path, per_layer):
        arch = SPACE.sample(random.Random(0))
        path = str(tmp_path / "arch.png")
        assert plots.draw_arch(arch, SPACE.macro, path, title="t", per_layer=per_layer) == path
        _assert_png(path)

    def test_draw_arch_projection_shortcut(self, tmp_path):
        arch = space_lib.get_space("imagenet").sample(random.Random(2))
        arch = dataclasses.replace(arch, shortcut="projection")
        _assert_png(plots.draw_arch(arch, space_lib.get_space("imagenet").macro,
                                    str(tmp_path / "proj.png")))

    def test_headless_and_pyplot_free(self, tmp_path):
        """Import and draw with no display and no backend configured; pyplot never loads."""
        code = (
            "import sys, random\n"
            "from eatnas_tf.report import search_report, plots\n"
            "assert 'matplotlib' not in sys.modules\n"
            "from eatnas_tf.arch import space\n"
            "s = space.get_space('digits')\n"
            f"plots.draw_arch(s.sample(random.Random(0)), s.macro, {str(tmp_path / 'd.png')!r})\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)
        _assert_png(str(tmp_path / "d.png"))

    def test_overwrites_atomically(self, tmp_path):
        path = str(tmp_path / "q.png")
        plots.quality_over_time(_history(), path)
        plots.quality_over_time(_history()[:3], path)
        _assert_png(path)


# ---------------------------------------------------------------------------------------
# write_report
# ---------------------------------------------------------------------------------------
class TestWriteReport:
    def test_with_winner(self, tmp_path):
        cands = _candidates()
        rep, best = _report(cands)
        original = json.dumps(rep, sort_keys=True)
        cands = [dict(c, winner=True) if c["id"] == best["id"] else c for c in cands]
        out = search_report.write_report(str(tmp_path), rep, cands, _history())
        assert json.dumps(rep, sort_keys=True) == original  # caller's dict untouched
        with open(tmp_path / "report.json") as f:
            data = json.load(f)
        assert data == json.loads(json.dumps(out))
        assert data["plots"] == {"quality": "plots/quality.png", "pareto": "plots/pareto.png",
                                 "winner_arch": "plots/winner_arch.png"}
        assert data["winner"]["arch"] == best["arch"] and "plot_errors" not in data
        ref = tmp_path / "ref"
        ref.write_text("")  # written files honour the umask like any other file
        for name in ("report.json", "report.md", "plots/pareto.png"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == stat.S_IMODE(
                ref.stat().st_mode
            )
        for rel in data["plots"].values():
            _assert_png(str(tmp_path / rel))
        md = (tmp_path / "report.md").read_text()
        assert md.startswith("# Search report: fashion_mnist (eat)")
        assert best["arch"] in md
        for rel in data["plots"].values():
            assert f"]({rel})" in md
        assert "92.50%" in md  # test accuracy
        assert "stage1" in md and "stage2" in md and "20 min 34 s" in md  # stage1 wall time
        assert "## Top-10 candidates by score" in md

    def test_winner_of_a_derived_space_is_drawn(self, tmp_path):
        # A user's data gets a derived space (no name to look up): the stage summary's
        # macro and arch defaults read the winner back.
        cands = _candidates()
        rep, best = _report(cands)
        sp = space_lib.get_space("fashion_mnist")
        rep["stages"][1].update(space="auto_folder_28", macro=dataclasses.asdict(sp.macro),
                                arch_defaults=sp.arch_defaults())
        out = search_report.write_report(str(tmp_path), rep, cands, _history())
        assert out["plots"]["winner_arch"] == "plots/winner_arch.png"
        assert "plot_errors" not in out
        _assert_png(str(tmp_path / "plots" / "winner_arch.png"))

    def test_without_winner_and_sparse_report(self, tmp_path):
        cands = _candidates()
        rep, best = _report(cands, winner=False)
        out = search_report.write_report(str(tmp_path), rep, cands, _history())
        data = json.loads((tmp_path / "report.json").read_text())
        assert data["winner"] is None
        assert set(data["plots"]) == {"quality", "pareto"}
        assert not (tmp_path / "plots" / "winner_arch.png").exists()
        md = (tmp_path / "report.md").read_text()
        assert "No winner" in md and best["arch"] in md
        assert "](plots/quality.png)" in md and "](plots/pareto.png)" in md
        assert out["plots"] == data["plots"]

    def test_minimal_report_renders(self, tmp_path):
        out = search_report.write_report(str(tmp_path / "run"), {"winner": None}, [], [])
        assert out["plots"] == {}
        data = json.loads((tmp_path / "run" / "report.json").read_text())
        assert data == {"winner": None, "plots": {}}
        md = (tmp_path / "run" / "report.md").read_text()
        assert md.startswith("# Search report") and "No winner" in md

    def test_top_candidates_dedup_and_order(self):
        cands = _candidates()
        dup = dict(max((c for c in cands if c["status"] == "ok"), key=lambda c: c["score"]))
        dup["id"] = 999
        cands.append(dup)
        top = search_report.top_candidates(cands, n=10)
        assert len(top) == 10
        scores = [c["score"] for c in top]
        assert scores == sorted(scores, reverse=True)
        assert len({(c["stage"], c["hash"]) for c in top}) == 10
        assert all(c["status"] == "ok" for c in top)


# -- the EPNAS per-step report -----------------------------------------------------------------
@pytest.mark.parametrize("config", [
    {"constraint": ["madds::5e6"], "constraint_penalty": 0.5},  # a flat legacy config.json
    {"format": 2, "changes": [], "config": {"stage": {"options": {
        "constraints": ["madds::5e6"], "constraint_penalty": 0.5}}}},
])
def test_epnas_report_reads_both_config_formats(tmp_path, config):
    from eatnas_tf.epnas import report as epnas_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    a = codec.to_text(SPACE.sample(random.Random(0)))
    recs = [{"id": i, "status": "ok", "arch": a, "space": SPACE.name, "val_acc": 0.5 + i / 10,
             "madds": m, "params": 1000, "info": {"episode": 0, "step": i // 2, "branch": i % 2}}
            for i, m in enumerate([4e6, 6e6, 1e6, 10e6])]
    (run / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = str(tmp_path / "out")
    res = epnas_report.write(str(run), out)
    assert [r["satisfied"] for r in res["rows"]] == [True, False, True, False]
    assert res["rows"][1]["reward"] == pytest.approx(0.6 * 0.5 ** (6 / 5 - 1))
    assert [s["satisfied"] for s in res["steps"]] == [1, 1]
    assert json.load(open(os.path.join(out, "steps.json")))["constraints"] == ["madds::5e+06"]
    assert "p = 0.5" in open(os.path.join(out, "steps.md")).read()
    _assert_png(os.path.join(out, "epnas_run.png"))
