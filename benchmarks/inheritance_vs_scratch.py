"""Weight inheritance vs training from scratch, 1 epoch per child (EAT-NAS paper §3.4).

Trains a few parents for one epoch, draws mutated children of them with the offspring
generator (Alg. 3), and trains every child twice for one epoch with the same seed: once
inheriting its parent's weights, once from scratch. Prints the mean and median accuracy
gain and writes every pair to a JSON file. With two or more `--seeds` the whole experiment
(parents, children, data shuffling) is repeated per seed, each seed's mean gain is one
paired observation, and `benchmarks/seeds.py` reports the mean gain with a 95% t-interval
and paired p-values (`benchmarks/results/seeds/inheritance_vs_scratch.json`, figure in
`docs/results/seeds/`).

    python benchmarks/inheritance_vs_scratch.py [--children=20] [--parents=4] [--out=FILE]
    python benchmarks/inheritance_vs_scratch.py --flagfile=flags/smoke.cfg --parents=1 \
        --children=2 --seeds 0 1 2 3 4
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import seeds as seeds_lib  # noqa: E402

from eatnas_tf.arch import codec  # noqa: E402
from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import offspring  # noqa: E402
from eatnas_tf.search.evaluate import EvalRequest, evaluate  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def setting(a, seed):
    """(space, data, train) of the candidates: from `--flagfile` or Fashion-MNIST."""
    if a.flagfile:
        st = seeds_lib.experiment(a.flagfile, f"--seed={seed}", *a.flag).stage
        return st.space, st.data, st.train.replace(epochs=1)
    space = space_lib.get_space("fashion_mnist")
    data = DataConfig("fashion_mnist", val_fraction=0.05, max_train_examples=a.train_examples,
                      seed=seed)
    return space, data, TrainConfig(epochs=1, learning_rate=0.05)


def run_seed(a, seed):
    """Parents, then each child inheriting and from scratch; (summary, pairs)."""
    space, data, train = setting(a, seed)
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="inherit_")
    parents = []
    for i in range(a.parents):
        arch = space.sample(rng)
        path = os.path.join(tmp, f"p{i}.npz")
        r = evaluate(EvalRequest(arch, space, data, train, seed=1000 + i,
                                 save_weights=path)).record
        parents.append((arch, path, r.val_acc))
        print(f"seed {seed} parent {i}: val_acc {r.val_acc:.4f} {codec.to_text(arch)}",
              flush=True)
    pairs = []
    t0 = time.time()
    for j in range(a.children):
        parch, ppath, pacc = parents[j % len(parents)]
        child = offspring.transform(parch, space, rng)
        inh = evaluate(EvalRequest(child, space, data, train, seed=j, parent_weights=ppath,
                                   parent_arch=parch)).record
        scr = evaluate(EvalRequest(child, space, data, train, seed=j)).record
        pairs.append({"child": codec.to_text(child), "parent_val_acc": pacc,
                      "inherit": inh.val_acc, "scratch": scr.val_acc,
                      "inherited_fraction": (inh.inherit or {}).get("fraction")})
        print(f"seed {seed} child {j:2d}: inherit {inh.val_acc:.4f} scratch {scr.val_acc:.4f} "
              f"({inh.inherit_summary})", flush=True)
    gains = [p["inherit"] - p["scratch"] for p in pairs]
    summary = {
        "seed": seed, "children": len(pairs), "mean_gain_pt": 100 * statistics.mean(gains),
        "median_gain_pt": 100 * statistics.median(gains),
        "improved": sum(g > 0 for g in gains),
        "mean_inherit": statistics.mean(p["inherit"] for p in pairs),
        "mean_scratch": statistics.mean(p["scratch"] for p in pairs),
        "wall_s": time.time() - t0, "train_examples": data.max_train_examples,
    }
    print(f"seed {seed}: inheritance vs scratch after 1 epoch: {summary['mean_inherit']:.4f} "
          f"vs {summary['mean_scratch']:.4f} mean val acc, gain {summary['mean_gain_pt']:+.1f} "
          f"pt (median {summary['median_gain_pt']:+.1f}), {summary['improved']}/{len(pairs)} "
          "improved", flush=True)
    return summary, pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=20)
    ap.add_argument("--parents", type=int, default=4)
    ap.add_argument("--train_examples", type=int, default=10000)
    ap.add_argument("--flagfile", default=None,
                    help="search flagfile of the candidates (e.g. flags/smoke.cfg: digits); "
                         "default: Fashion-MNIST")
    ap.add_argument("--flag", action="append", default=[],
                    help="a search flag added after --flagfile (repeat): --flag=--batch_size=16")
    ap.add_argument("--seed", type=int, default=0, help="the seed of a one-seed run")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="two or more: paired statistics over seeds")
    ap.add_argument("--out", default=None,
                    help="JSON (default: benchmarks/results/inheritance_vs_scratch.json for one "
                         "seed, benchmarks/results/seeds/inheritance_vs_scratch.json for more)")
    a = ap.parse_args()
    seeds = a.seeds or [a.seed]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"seeds: received {seeds}; allowed values: distinct seeds")
    load_before, t0 = seeds_lib.load(), time.time()
    runs = [run_seed(a, s) for s in seeds]
    if len(runs) >= 2:
        pooled = [p["inherit"] - p["scratch"] for _, ps in runs for p in ps]
        setting_text = (" ".join([a.flagfile] + a.flag) if a.flagfile
                        else f"fashion_mnist {a.train_examples} images")
        seeds_lib.write_result(
            "inheritance_vs_scratch",
            f"{setting_text}; per seed {a.parents} parent(s) + {a.children} children, 1 epoch",
            seeds, "inherit", "scratch",
            {"mean_child_val_acc": ([s["mean_inherit"] for s, _ in runs],
                                    [s["mean_scratch"] for s, _ in runs])},
            per_seed=[{**s, "pairs": ps} for s, ps in runs], load_before=load_before,
            started=t0, extra={"pooled_children": len(pooled),
                               "pooled_improved": sum(g > 0 for g in pooled)},
            **seeds_lib.dirs(a.out))
        return
    summary, pairs = runs[0]
    out = a.out or "benchmarks/results/inheritance_vs_scratch.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump({"summary": summary, "pairs": pairs}, f, indent=2)


if __name__ == "__main__":
    main()
