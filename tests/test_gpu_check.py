"""benchmarks/gpu_check.py --small: the GPU readiness script starts and finishes on CPU
(trainer plain and mirrored, bare model.fit, a 3-candidate EAT search) and writes its JSON."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_small_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"),
                        "--small", f"--out={out}", f"--work_dir={tmp_path / 'work'}"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["small"] and r["devices"]["gpus"] == []
    for name in ("trainer_plain", "trainer_mirrored", "bare_fit"):
        assert r["trainer"][name]["images_per_s_steady"] > 0, name
    assert r["trainer"]["trainer_mirrored"]["num_replicas"] == 1
    assert r["trainer"]["trainer_plain"]["vs_bare_fit"] > 0
    cands = r["search"]["per_candidate"]
    assert len(cands) == 3 and all(c["ok"] and c["wall_s"] > 0 for c in cands)
    assert "per-candidate seconds" in p.stdout
    assert r["candidate_settings"]["learning_rate"] == 0.0256
