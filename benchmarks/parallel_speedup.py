"""Parallel speed-up (issue 7): a smoke-sized search with K=2 subprocess workers vs K=1 in
process, same seed, wall clock of the whole stage.

    python benchmarks/parallel_speedup.py [--population=4] [--candidates=8] [--steps=10]

Both runs search the digits space (flags/smoke.cfg-sized: P=4, S=2, 8 candidates, 1 short
epoch each) in fresh run directories and print each wall time and the ratio. The K=2 run
proposes 2 children per step (2 tournaments), so its candidates differ from K=1's after the
initial population; the comparison is throughput at equal candidate count. The subprocess
run includes starting its workers (each imports TensorFlow once). On N cores the ceiling
is min(K, N) minus what TensorFlow already spreads over the cores in one process.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import executors  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402
from eatnas_tf.search.runner import Stage, run_stage  # noqa: E402
from eatnas_tf.search.strategy import SearchConfig  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per candidate (default: one full epoch)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow threads per worker (default: TensorFlow's)")
    args = p.parse_args()
    stage = Stage("search", "eat", space_lib.get_space("digits"),
                  DataConfig("digits", batch_size=64, val_fraction=0.2),
                  TrainConfig(epochs=1, learning_rate=0.05, lr_schedule="constant",
                              steps_per_epoch=args.steps),
                  SearchConfig(population=args.population, sample=2,
                               max_candidates=args.candidates, topk=1), seed=0)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, k, ex in (
                ("local_k1", 1, executors.LocalExecutor()),
                (f"subprocess_k{args.workers}", args.workers,
                 executors.SubprocessExecutor(args.workers, threads=args.threads))):
            t0 = time.perf_counter()
            try:
                res = run_stage(RunDir(os.path.join(d, name)), stage, executor=ex, parallel=k,
                                progress=None, tensorboard=False)
            finally:
                ex.close()
            wall = time.perf_counter() - t0
            out[name] = {"wall_s": wall, "candidates": len(res.records),
                         "best_val_acc": res.summary()["best_val_acc"],
                         "candidate_wall_s": res.summary()["candidate_wall_s"]}
            print(f"{name:<14} {len(res.records)} candidates  wall {wall:7.1f}s  best val_acc "
                  f"{out[name]['best_val_acc']}", flush=True)
    sub = out[f"subprocess_k{args.workers}"]["wall_s"]
    out["speedup"] = out["local_k1"]["wall_s"] / sub
    out["cpu_count"] = os.cpu_count()
    print(json.dumps(out))
    print(f"speed-up K={args.workers} subprocess vs K=1 local: {out['speedup']:.2f}x "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
