"""Memory over 200 tiny candidates (issue 7): RSS growth of the search process when the
candidates train in it (local executor) vs in recycled worker processes (subprocess
executor, a worker replaced every --worker_max_tasks candidates).

    python benchmarks/memory_200.py [--candidates=200] [--steps=3] [--worker_max_tasks=20]

Each candidate is a random architecture of the digits space trained for a few steps (the
benchmark is about what a candidate leaves behind, not accuracy), through the same
`EvalRequest`s the search sends. Prints the search process' RSS growth from candidate 5
to the last for both (target < 200 MB), and the largest worker RSS seen.
"""

import argparse
import json
import os
import random
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import executors  # noqa: E402
from eatnas_tf.search.evaluate import EvalRequest  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def _rss_mb(pid=None):
    try:
        return psutil.Process(pid).memory_info().rss / 2 ** 20
    except psutil.Error:
        return 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--worker_max_tasks", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--only", choices=["local", "subprocess"], default=None)
    args = p.parse_args()
    space = space_lib.get_space("digits")
    rng = random.Random(0)
    reqs = [EvalRequest(arch=space.sample(rng), space=space,
                        data=DataConfig("digits", batch_size=32),
                        train=TrainConfig(epochs=1, learning_rate=0.05, steps_per_epoch=args.steps),
                        seed=i) for i in range(args.candidates)]
    out = {}
    for name in ("subprocess", "local"):
        if args.only and name != args.only:
            continue
        ex = (executors.LocalExecutor() if name == "local" else
              executors.SubprocessExecutor(args.workers, max_tasks_per_worker=args.worker_max_tasks,
                                           gpus=[]))
        rss, worker_max, failed = [], 0.0, 0
        try:
            for i in range(0, len(reqs), ex.parallel):
                res = ex.run(reqs[i:i + ex.parallel])
                failed += sum(r.record["status"] != "ok" for r in res)
                rss.append(_rss_mb())
                if name == "subprocess":
                    worker_max = max([worker_max] + [_rss_mb(q) for q in ex.worker_pids()])
                if (i // ex.parallel) % 20 == 0:
                    print(f"{name:<10} candidate {i + ex.parallel:4d}  search RSS {rss[-1]:.0f} MB"
                          + (f"  max worker RSS {worker_max:.0f} MB" if worker_max else ""),
                          flush=True)
        finally:
            ex.close()
        ref = rss[min(4, len(rss) - 1)]
        out[name] = {"candidates": len(reqs), "failed": failed, "rss_after_5_mb": ref,
                     "rss_after_last_mb": rss[-1], "growth_mb": rss[-1] - ref,
                     "max_worker_rss_mb": worker_max or None}
        print(f"{name}: search-process RSS growth from candidate 5 to {len(reqs)}: "
              f"{rss[-1] - ref:.0f} MB (target < 200 MB)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
