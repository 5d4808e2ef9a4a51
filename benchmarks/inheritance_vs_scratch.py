"""Weight inheritance vs training from scratch, 1 epoch per child (EAT-NAS paper §3.4).

Trains a few parents from the `fashion_mnist` space for one epoch, draws mutated children
of them with the offspring generator (Alg. 3), and trains every child twice for one epoch
with the same seed: once inheriting its parent's weights, once from scratch. Prints the
mean and median accuracy gain and writes every pair to a JSON file.

    python benchmarks/inheritance_vs_scratch.py [--children=20] [--parents=4] [--out=FILE]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from eatnas_tf.arch import codec  # noqa: E402
from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import offspring  # noqa: E402
from eatnas_tf.search.evaluate import EvalRequest, evaluate  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=20)
    ap.add_argument("--parents", type=int, default=4)
    ap.add_argument("--train_examples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/inheritance_vs_scratch.json")
    a = ap.parse_args()
    space = space_lib.get_space("fashion_mnist")
    data = DataConfig("fashion_mnist", val_fraction=0.05, max_train_examples=a.train_examples,
                      seed=a.seed)
    train = TrainConfig(epochs=1, learning_rate=0.05)
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="inherit_")
    parents = []
    for i in range(a.parents):
        arch = space.sample(rng)
        path = os.path.join(tmp, f"p{i}.npz")
        r = evaluate(EvalRequest(codec.to_text(arch), space.name, data, train, seed=1000 + i,
                                 save_weights=path)).record
        parents.append((arch, path, r["val_acc"]))
        print(f"parent {i}: val_acc {r['val_acc']:.4f} {codec.to_text(arch)}", flush=True)
    pairs = []
    t0 = time.time()
    for j in range(a.children):
        parch, ppath, pacc = parents[j % len(parents)]
        child = offspring.transform(parch, space, rng)
        text = codec.to_text(child)
        inh = evaluate(EvalRequest(text, space.name, data, train, seed=j, parent_weights=ppath,
                                   parent_arch=codec.to_text(parch))).record
        scr = evaluate(EvalRequest(text, space.name, data, train, seed=j)).record
        pairs.append({"child": text, "parent_val_acc": pacc, "inherit": inh["val_acc"],
                      "scratch": scr["val_acc"], "inherited_fraction": inh["inherit"]["fraction"]})
        print(f"child {j:2d}: inherit {inh['val_acc']:.4f} scratch {scr['val_acc']:.4f} "
              f"({inh['inherit_summary']})", flush=True)
    gains = [p["inherit"] - p["scratch"] for p in pairs]
    summary = {
        "children": len(pairs), "mean_gain_pt": 100 * statistics.mean(gains),
        "median_gain_pt": 100 * statistics.median(gains),
        "improved": sum(g > 0 for g in gains),
        "mean_inherit": statistics.mean(p["inherit"] for p in pairs),
        "mean_scratch": statistics.mean(p["scratch"] for p in pairs),
        "wall_s": time.time() - t0, "train_examples": a.train_examples,
    }
    print(json.dumps(summary, indent=2))
    print(f"inheritance vs scratch after 1 epoch: {summary['mean_inherit']:.4f} vs "
          f"{summary['mean_scratch']:.4f} mean val acc, gain {summary['mean_gain_pt']:+.1f} pt "
          f"(median {summary['median_gain_pt']:+.1f}), {summary['improved']}/{len(pairs)} improved")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"summary": summary, "pairs": pairs}, f, indent=2)


if __name__ == "__main__":
    main()
