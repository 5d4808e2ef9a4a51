"""RSS growth over many candidates trained in one process (issue 8: < 200 MB from 5 to 50).

    python benchmarks/trainer_memory.py [--candidates=50] [--steps=5]

Trains `--candidates` random tiny architectures of the digits space (short epochs, so the
test is about what each candidate leaves behind, not about accuracy), each through
`trainer.train` (which clears the Keras session), and prints the process RSS after each
one, then the growth between candidate 5 and the last.
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
from eatnas_tf.arch.spec import BlockSpec  # noqa: E402
from eatnas_tf.data import datasets as D  # noqa: E402
from eatnas_tf.model.builder import build_model  # noqa: E402
from eatnas_tf.train import trainer as T  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def tiny_arch(space, rng):
    """A random valid architecture with depth 1 blocks and small widths (fast to trace)."""
    while True:
        blocks = [BlockSpec(rng.choice(space.ops), rng.choice(space.kernels), rng.random() < 0.5,
                            rng.choice((1.0, 1.5)), 1) for _ in range(7)]
        arch = space.make(blocks)
        if space.contains(arch):
            return arch


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--steps", type=int, default=5, help="training steps per candidate")
    args = p.parse_args()
    sp = space_lib.get_space("digits")
    data = D.load_data(D.DataConfig("digits", batch_size=32))
    rng = random.Random(0)
    proc = psutil.Process()
    rss = []
    for i in range(args.candidates):
        arch = tiny_arch(sp, rng)
        # B023: T.train calls the builder now, in this iteration
        rec = T.train(lambda: build_model(arch, sp.macro), data,  # noqa: B023
                      TrainConfig(learning_rate=0.05, steps_per_epoch=args.steps, seed=i)).record
        rss.append(proc.memory_info().rss / 2 ** 20)
        print(f"candidate {i + 1:3d}  val_acc {rec['val_acc']:.3f}  wall {rec['wall_s']:.1f}s  "
              f"rss {rss[-1]:.0f} MB", flush=True)
    ref = rss[min(4, len(rss) - 1)]
    growth = rss[-1] - ref
    print(json.dumps({"candidates": len(rss), "rss_after_5_mb": ref, "rss_after_last_mb": rss[-1],
                      "growth_mb": growth, "max_rss_mb": max(rss)}))
    print(f"RSS growth from candidate 5 to {len(rss)}: {growth:.0f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
