"""benchmarks/seeds.py: the paired statistics of the seed benchmarks on hand values, the
result JSON and figure, and a 2-seed smoke of one comparison (inheritance vs scratch)."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import seeds  # noqa: E402


def test_paired_stats_hand_values():
    # diffs 1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.776445
    s = seeds.paired_stats([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert s["n"] == 5 and s["diffs"] == [1, 2, 3, 4, 5]
    assert s["mean_diff"] == 3.0
    assert math.isclose(s["sd_diff"], math.sqrt(2.5))
    assert math.isclose(s["t_crit"], 2.776445105, rel_tol=1e-8)
    half = 2.776445105 * math.sqrt(0.5)
    assert math.isclose(s["ci_low"], 3 - half, rel_tol=1e-8)
    assert math.isclose(s["ci_high"], 3 + half, rel_tol=1e-8)
    # t = 3 / sqrt(0.5) = 4.2426 on 4 df: two-sided p = 0.01324
    assert math.isclose(s["t_test_p"], 0.013236, abs_tol=1e-5)
    # all five positive: exact Wilcoxon and sign test both 2 / 2^5 = 0.0625 (their floor at n=5)
    assert math.isclose(s["wilcoxon_p"], 0.0625) and math.isclose(s["sign_test_p"], 0.0625)
    assert s["a_better"] == 5 and s["b_better"] == 0 and s["significant"]


def test_paired_stats_not_significant_ties_and_pairing():
    s = seeds.paired_stats([0.6, 0.5, 0.7, 0.4], [0.5, 0.6, 0.5, 0.6])  # diffs ±0.1, ±0.2
    assert math.isclose(s["mean_diff"], 0.0, abs_tol=1e-12)
    assert s["ci_low"] < 0 < s["ci_high"] and not s["significant"]
    assert math.isclose(s["t_test_p"], 1.0) and s["a_better"] == 2 and s["b_better"] == 2
    # pairing matters: the same values unpaired would not give a constant difference
    s = seeds.paired_stats([0.71, 0.52, 0.93], [0.70, 0.51, 0.92])
    assert math.isclose(s["sd_diff"], 0.0, abs_tol=1e-12) and s["significant"]
    assert s["t_test_p"] == 0.0
    s = seeds.paired_stats([0.5, 0.6, 0.7], [0.5, 0.6, 0.6])  # two ties dropped by the tests
    assert s["ties"] == 2 and s["a_better"] == 1 and s["sign_test_p"] == 1.0
    assert seeds.paired_stats([1, 2], [1, 2])["t_test_p"] == 1.0
    with pytest.raises(ValueError):
        seeds.paired_stats([1, 2], [1])
    with pytest.raises(ValueError):
        seeds.paired_stats([1], [1])


def test_paired_stats_matches_scipy():
    from scipy import stats

    a = [0.81, 0.77, 0.79, 0.85, 0.74, 0.80]
    b = [0.78, 0.78, 0.75, 0.80, 0.73, 0.76]
    s = seeds.paired_stats(a, b)
    assert math.isclose(s["t_test_p"], stats.ttest_rel(a, b).pvalue, rel_tol=1e-9)
    assert math.isclose(s["wilcoxon_p"], stats.wilcoxon(a, b).pvalue, rel_tol=1e-9)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert math.isclose(s["ci_low"], ci.low) and math.isclose(s["ci_high"], ci.high)


def test_write_result_json_and_figure(tmp_path, capsys):
    out = seeds.write_result("demo_cmp", "hand values", [0, 1, 2], "A", "B",
                             {"acc": ([0.9, 0.8, 0.7], [0.8, 0.75, 0.72])},
                             per_seed=[{"seed": s} for s in range(3)], load_before="load 1.0",
                             started=0.0, out_dir=str(tmp_path), fig_dir=str(tmp_path))
    data = json.load(open(tmp_path / "demo_cmp.json"))
    assert data["metrics"]["acc"]["n"] == 3 and data["a"] == "A" and data["load_after"]
    assert os.path.getsize(tmp_path / "demo_cmp.png") > 1000
    assert out["metrics"]["acc"]["mean_diff"] == pytest.approx(0.13 / 3)
    assert "demo_cmp [acc]: A − B = +4.33" in capsys.readouterr().out


@pytest.mark.slow
def test_inheritance_two_seed_smoke(tmp_path):
    """Two seeds of inheritance vs scratch on digits (1 parent, 1 child): the paired JSON."""
    out = tmp_path / "inheritance_vs_scratch.json"
    p = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "inheritance_vs_scratch.py"),
         "--flagfile=" + os.path.join(ROOT, "flags", "smoke.cfg"), "--flag=--batch_size=32",
         "--flag=--max_train_examples=300", "--parents=1", "--children=1", "--seeds", "0", "1",
         f"--out={out}"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.load(open(out))
    m = data["metrics"]["mean_child_val_acc"]
    assert m["n"] == 2 and len(data["per_seed"]) == 2 and "load average" in data["load_before"]
    assert (tmp_path / "inheritance_vs_scratch.png").exists()
    assert "inheritance_vs_scratch [mean_child_val_acc]" in p.stdout
