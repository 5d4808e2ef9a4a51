"""Transfer-seeded vs scratch search on the large task (issue 7), at equal candidate-epochs.

Takes a finished demo run (`python -m eatnas_tf.demo --run_dir=DIR`): its stage 2 is the
EAT search on 28×28 Fashion-MNIST seeded with offspring of the basic model (elastic
transfer). This benchmark runs the same stage 2 — same space, data subset, trainer, seed,
population, sample and candidate count — from a random initial population, and prints the
best validation accuracy of both after each candidate, the ratio, and how many candidates
the scratch search needs to reach the seeded one's best (if it does). Stage 1's cost (the
price of the seed) is printed next to it.

With `--seeds` (two or more) it first runs the whole pipeline (`eat_pipeline.run`, the
code of `python -m eatnas_tf.run`, export off) for each seed with the pipeline flags given
by `--flag`, then the same comparison per seed; `benchmarks/seeds.py` reports the paired
differences with a 95% t-interval (`benchmarks/results/seeds/transfer_vs_scratch_search.json`,
figure in `docs/results/seeds/`).

    python benchmarks/transfer_vs_scratch_search.py --run_dir=runs/demo [--work_dir=runs/bench_scratch_s2]
    python benchmarks/transfer_vs_scratch_search.py --seeds 0 1 2 3 4 --flag=--dataset=digits ...
"""  # noqa: E501 - the usage line is a command to copy whole

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import seeds as seeds_lib  # noqa: E402

from eatnas_tf.record import CandidateRecord  # noqa: E402
from eatnas_tf.search import eat_pipeline, runner  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402


def _curve(records):
    accs = [r.val_acc if r.ok else 0.0 for r in records]
    return [max(accs[:i + 1]) for i in range(len(accs))]


def compare(run_dir, work_dir, progress=print):
    """The finished pipeline run's stage 2 vs the same stage 2 from a random population
    (run in `work_dir`); returns the comparison as a dict."""
    with open(os.path.join(run_dir, "config.json")) as f:
        stored = json.load(f)
    cfg = eat_pipeline.PipelineConfig.from_dict(stored["config"]["pipeline"])
    with open(os.path.join(run_dir, "report.json")) as f:
        report = json.load(f)
    seeded = [CandidateRecord.from_json(json.loads(line))
              for line in open(os.path.join(run_dir, "candidates.jsonl")) if line.strip()]
    seeded = [r for r in seeded if r.stage == "stage2"]
    stage = eat_pipeline.plan(cfg).stage2  # the pipeline's stage 2, without its seed
    res = runner.run_stage(RunDir(work_dir), stage, progress=progress, tensorboard=False)
    scratch = res.records
    cs, cx = _curve(seeded), _curve(scratch)
    reach = next((i + 1 for i, v in enumerate(cx) if v >= cs[-1]), None)
    walls = {s["name"]: s.get("wall_s") for s in report.get("stages", [])}
    out = {"run_dir": run_dir, "candidates": len(cx),
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
          f"{reach or 'no'}; the seed cost {out['stage1_cost_s']:.0f} s of stage 1", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run_dir", default="runs/demo")
    ap.add_argument("--work_dir", default="runs/bench_scratch_stage2")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="run the pipeline (with --flag's) per seed and compare paired")
    ap.add_argument("--flag", action="append", default=[],
                    help="a flag of `python -m eatnas_tf.run` for --seeds (repeat)")
    ap.add_argument("--out", default=None, help="JSON (default: benchmarks/results/"
                    "transfer_vs_scratch_search.json; seeds/ with --seeds)")
    a = ap.parse_args()
    if a.seeds:
        if len(a.seeds) < 2 or len(set(a.seeds)) != len(a.seeds):
            sys.exit(f"seeds: received {a.seeds}; allowed values: two or more distinct seeds")
        load_before, t0 = seeds_lib.load(), time.time()
        rows = []
        for seed in a.seeds:
            cfg = seeds_lib.pipeline_config(*a.flag, f"--seed={seed}", "--noexport")
            d = tempfile.mkdtemp(prefix=f"transfer_s{seed}_")
            eat_pipeline.run(cfg, d, say=lambda line: None)
            row = compare(d, tempfile.mkdtemp(prefix=f"scratch_s{seed}_"), progress=None)
            rows.append({"seed": seed, **row})
            print(f"seed {seed}: seeded {row['seeded']['best_val_acc']:.4f} scratch "
                  f"{row['scratch']['best_val_acc']:.4f}", flush=True)
        seeds_lib.write_result(
            "transfer_vs_scratch_search",
            " ".join(a.flag) + f"; stage 2: {rows[0]['candidates']} candidates each",
            a.seeds, "seeded", "scratch",
            {"best_val_acc": ([r["seeded"]["best_val_acc"] for r in rows],
                              [r["scratch"]["best_val_acc"] for r in rows]),
             "mean_val_acc": ([r["seeded"]["mean_val_acc"] for r in rows],
                              [r["scratch"]["mean_val_acc"] for r in rows])},
            per_seed=rows, load_before=load_before, started=t0, **seeds_lib.dirs(a.out))
        return
    if not os.path.exists(os.path.join(a.run_dir, "report.json")):
        sys.exit(f"run_dir: no finished demo run in {a.run_dir!r} (run `make demo` first)")
    out = compare(a.run_dir, a.work_dir)
    path = a.out or os.path.join(ROOT, "benchmarks/results/transfer_vs_scratch_search.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
