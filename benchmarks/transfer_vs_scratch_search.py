"""Transfer-seeded vs scratch search on the large task (issue 7), at equal candidate-epochs.

Takes a finished demo run (`python -m eatnas_tf.demo --run_dir=DIR`): its stage 2 is the
EAT search on 28×28 Fashion-MNIST seeded with offspring of the basic model (elastic
transfer). This benchmark runs the same stage 2 — same space, data subset, trainer, seed,
population, sample and candidate count — from a random initial population, and prints the
best validation accuracy of both after each candidate, the ratio, and how many candidates
the scratch search needs to reach the seeded one's best (if it does). Stage 1's cost (the
price of the seed) is printed next to it.

    python benchmarks/transfer_vs_scratch_search.py --run_dir=runs/demo [--work_dir=runs/bench_scratch_s2]
"""  # noqa: E501 - the usage line is a command to copy whole

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from eatnas_tf.record import CandidateRecord  # noqa: E402
from eatnas_tf.search import eat_pipeline, runner  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402


def _curve(records):
    accs = [r.val_acc if r.ok else 0.0 for r in records]
    return [max(accs[:i + 1]) for i in range(len(accs))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run_dir", default="runs/demo")
    ap.add_argument("--work_dir", default="runs/bench_scratch_stage2")
    ap.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks/results/transfer_vs_scratch_search.json")
    )
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.run_dir, "report.json")):
        sys.exit(f"run_dir: no finished demo run in {a.run_dir!r} (run `make demo` first)")
    with open(os.path.join(a.run_dir, "config.json")) as f:
        stored = json.load(f)
    cfg = eat_pipeline.PipelineConfig.from_dict(stored["config"]["pipeline"])
    with open(os.path.join(a.run_dir, "report.json")) as f:
        report = json.load(f)
    seeded = [CandidateRecord.from_json(json.loads(line))
              for line in open(os.path.join(a.run_dir, "candidates.jsonl")) if line.strip()]
    seeded = [r for r in seeded if r.stage == "stage2"]
    stage = eat_pipeline.plan(cfg).stage2  # the demo's stage 2, without its seed
    res = runner.run_stage(RunDir(a.work_dir), stage, progress=print)
    scratch = res.records
    cs, cx = _curve(seeded), _curve(scratch)
    reach = next((i + 1 for i, v in enumerate(cx) if v >= cs[-1]), None)
    walls = {s["name"]: s.get("wall_s") for s in report.get("stages", [])}
    out = {"run_dir": a.run_dir, "candidates": len(cx),
           "seeded": {"best_val_acc": cs[-1], "curve": cs, "wall_s": walls.get("stage2"),
                      "mean_val_acc": sum(r.val_acc or 0 for r in seeded) / len(seeded)},
           "scratch": {"best_val_acc": cx[-1], "curve": cx, "wall_s": res.wall_s,
                       "mean_val_acc": sum(r.val_acc or 0 for r in scratch) / len(scratch)},
           "stage1_cost_s": (walls.get("stage1") or 0) + (report.get("stage1_retrain_wall_s") or 0),
           "scratch_candidates_to_seeded_best": reach}
    print(f"best val_acc after each candidate\n  seeded : {' '.join(f'{v:.3f}' for v in cs)}\n"
          f"  scratch: {' '.join(f'{v:.3f}' for v in cx)}")
    print(f"seeded / scratch best accuracy: {cs[-1]:.4f} / {cx[-1]:.4f} = {cs[-1] / cx[-1]:.3f}; "
          f"mean over candidates {out['seeded']['mean_val_acc']:.4f} vs "
          f"{out['scratch']['mean_val_acc']:.4f}; scratch reached the seeded best: "
          f"{reach or 'no'}; the seed cost {out['stage1_cost_s']:.0f} s of stage 1")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
