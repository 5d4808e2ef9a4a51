"""benchmarks/trainer_profile.py at its smallest: one net, both batch norms, a 2-step TF
profile; the JSON holds the phases, the bound and an op-type breakdown in which the fused
run's batch norm is TensorFlow's fused kernel and Keras' is not."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_trainer_profile_small(tmp_path):
    out = tmp_path / "profile.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "trainer_profile.py"),
                        "--nets=small", "--train_examples=700", "--profile_steps=2",
                        f"--out={out}"], capture_output=True, text=True, timeout=600, env=env,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["peak_flops"] > 0 and r["bandwidth_bytes_s"] > 0
    net = r["nets"]["small"]
    assert net["madds"] > 0 and net["bound_images_per_s"] > 0
    for mode in ("keras_bn", "fused_bn"):
        m = net["modes"][mode]
        assert set(m["phases_s"]) == {"build", "tracing", "train_steady", "eval", "clear"}
        assert m["images_per_s_steady"] > 0 and 0 < m["efficiency"]
        ops = m["op_s_per_step"]
        assert any("Conv2D" in k for k in ops), ops
    fused = " ".join(net["modes"]["fused_bn"]["op_s_per_step"])
    keras_bn = " ".join(net["modes"]["keras_bn"]["op_s_per_step"])
    assert "FusedBatchNorm" in fused and "FusedBatchNorm" not in keras_bn
    assert "| small |" in p.stdout and "op time per steady step" in p.stdout
