"""EAT evolution vs random search at equal candidate-epochs on offline Fashion-MNIST.

Runs both strategies with the same seed, data and budget (N candidates × 1 epoch) in
fresh run directories and prints the best validation accuracy of each, the best Eq. 1
score, and how many candidates EAT needed to reach random search's best accuracy.

    python benchmarks/eat_vs_random.py [--candidates=24] [--population=8] [--sample=4]
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import runner  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402
from eatnas_tf.search.strategy import SearchConfig  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--sample", type=int, default=4)
    ap.add_argument("--train_examples", type=int, default=10000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default="benchmarks/results/eat_vs_random.json")
    a = ap.parse_args()
    space = space_lib.get_space("fashion_mnist")
    data = DataConfig("fashion_mnist", val_fraction=0.05, max_train_examples=a.train_examples)
    train = TrainConfig(epochs=1, learning_rate=0.05)
    cfg = SearchConfig(population=a.population, sample=a.sample, max_candidates=a.candidates)
    rows = []
    for seed in a.seeds:
        res = {}
        for name in ("random", "eat"):
            d = tempfile.mkdtemp(prefix=f"{name}_")
            st = runner.Stage("search", name, space, data, train, cfg, seed=seed)
            r = runner.run_stage(RunDir(d), st, tensorboard=False, progress=None)
            ok = [x for x in r.records if x["status"] == "ok"]
            accs = [x["val_acc"] for x in ok]
            res[name] = {"best_val_acc": max(accs), "best_score": max(x["score"] for x in ok),
                         "curve": [max(accs[:i + 1]) for i in range(len(accs))],
                         "candidate_epochs": sum(x["epochs"] for x in r.records),
                         "wall_s": r.wall_s, "run_dir": d}
            print(f"seed {seed} {name:6s}: best val_acc {res[name]['best_val_acc']:.4f} "
                  f"best score {res[name]['best_score']:.4f} "
                  f"({res[name]['candidate_epochs']} candidate-epochs, {r.wall_s:.0f} s)",
                  flush=True)
        target = res["random"]["best_val_acc"]
        reach = next((i + 1 for i, v in enumerate(res["eat"]["curve"]) if v >= target), None)
        rows.append({"seed": seed, **res, "eat_candidates_to_random_best": reach})
        print(f"seed {seed}: EAT / random best accuracy ratio "
              f"{res['eat']['best_val_acc'] / target:.3f}; EAT reached random's best after "
              f"{reach} of {a.candidates} candidates", flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
