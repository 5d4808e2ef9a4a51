"""EAT evolution vs random search at equal candidate-epochs, paired by seed.

Runs both strategies with the same seed, data and budget (N candidates × 1 epoch) in
fresh run directories and prints the best validation accuracy of each, the best Eq. 1
score, and how many candidates EAT needed to reach random search's best accuracy. With
`--retrain_epochs=E` each search's top-1 (its strategy's pick) is then retrained E epochs
and its test accuracy reported. With two or more `--seeds` the per-seed differences get a
mean, a 95% t-interval and paired p-values (`benchmarks/seeds.py`), written to
`benchmarks/results/seeds/eat_vs_random.json` with a figure in `docs/results/seeds/`.

    python benchmarks/eat_vs_random.py [--candidates=24] [--population=8] [--sample=4]
    python benchmarks/eat_vs_random.py --flagfile=flags/smoke.cfg --candidates=12 \
        --population=4 --sample=2 --retrain_epochs=3 --seeds 0 1 2 3 4
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import seeds as seeds_lib  # noqa: E402

from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search import pipeline, runner  # noqa: E402
from eatnas_tf.search.experiment import RetrainConfig  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402
from eatnas_tf.search.strategy import SearchConfig  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def make_stage(a, name, seed):
    """The stage of strategy `name`: from `--flagfile` (plus the size flags) or the
    original Fashion-MNIST setting."""
    if a.flagfile:
        return seeds_lib.experiment(a.flagfile, f"--strategy={name}", f"--seed={seed}",
                                    f"--max_candidates={a.candidates}",
                                    f"--population={a.population}",
                                    f"--sample={a.sample}", *a.flag).stage
    space = space_lib.get_space("fashion_mnist")
    data = DataConfig("fashion_mnist", val_fraction=0.05, max_train_examples=a.train_examples)
    train = TrainConfig(epochs=1, learning_rate=0.05)
    cfg = SearchConfig(population=a.population, sample=a.sample, max_candidates=a.candidates)
    return runner.Stage("search", name, space, data, train, cfg, seed=seed)


def run_seed(a, seed):
    """Both strategies for one seed: {name: summary} plus EAT's candidates to random's best."""
    res = {}
    for name in ("random", "eat"):
        d = tempfile.mkdtemp(prefix=f"{name}_")
        st = make_stage(a, name, seed)
        r = runner.run_stage(RunDir(d), st, tensorboard=False, progress=None)
        ok = [x for x in r.records if x.ok]
        accs = [x.val_acc for x in ok]
        res[name] = {"best_val_acc": max(accs), "best_score": max(x.score for x in ok),
                     "curve": [max(accs[:i + 1]) for i in range(len(accs))],
                     "candidate_epochs": sum(x.candidate_epochs for x in r.records),
                     "wall_s": r.wall_s, "run_dir": d}
        if a.retrain_epochs:
            data, train = RetrainConfig(epochs=a.retrain_epochs,
                                        learning_rate=a.retrain_learning_rate).configs(st)
            rows = pipeline.retrain_topk(RunDir(d), r, data, train, 1, verbose=0, progress=None)
            w = pipeline.pick_winner(rows)
            res[name].update(winner_arch=w["arch"], winner_val_acc=w["val_acc"],
                             winner_test_acc=w["test_acc"], winner_madds=w["madds"])
        print(f"seed {seed} {name:6s}: best val_acc {res[name]['best_val_acc']:.4f} "
              f"best score {res[name]['best_score']:.4f} "
              f"({res[name]['candidate_epochs']} candidate-epochs, {r.wall_s:.0f} s)"
              + (f", retrained top-1 test acc {res[name]['winner_test_acc']:.4f}"
                 if a.retrain_epochs else ""), flush=True)
    target = res["random"]["best_val_acc"]
    reach = next((i + 1 for i, v in enumerate(res["eat"]["curve"]) if v >= target), None)
    print(f"seed {seed}: EAT / random best accuracy ratio "
          f"{res['eat']['best_val_acc'] / target:.3f}; EAT reached random's best after "
          f"{reach} of {a.candidates} candidates", flush=True)
    return {"seed": seed, **res, "eat_candidates_to_random_best": reach}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--sample", type=int, default=4)
    ap.add_argument("--train_examples", type=int, default=10000)
    ap.add_argument("--flagfile", default=None,
                    help="search flagfile of both stages (e.g. flags/smoke.cfg: digits); "
                         "default: the Fashion-MNIST setting above")
    ap.add_argument("--flag", action="append", default=[],
                    help="a search flag added after --flagfile (repeat): --flag=--batch_size=16")
    ap.add_argument("--retrain_epochs", type=int, default=0,
                    help="retrain each search's top-1 this many epochs (0: no retraining)")
    ap.add_argument("--retrain_learning_rate", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=None,
                    help="JSON of the runs (default: benchmarks/results/eat_vs_random.json "
                         "for one seed, benchmarks/results/seeds/eat_vs_random.json for more)")
    a = ap.parse_args()
    if len(set(a.seeds)) != len(a.seeds):
        sys.exit(f"seeds: received {a.seeds}; allowed values: distinct seeds")
    load_before, t0 = seeds_lib.load(), time.time()
    rows = [run_seed(a, seed) for seed in a.seeds]
    if len(rows) >= 2:
        metrics = {"best_val_acc": ([r["eat"]["best_val_acc"] for r in rows],
                                    [r["random"]["best_val_acc"] for r in rows])}
        if a.retrain_epochs:
            metrics["winner_test_acc"] = ([r["eat"]["winner_test_acc"] for r in rows],
                                          [r["random"]["winner_test_acc"] for r in rows])
        setting = (f"{' '.join([a.flagfile or ''] + a.flag)}" if a.flagfile else
                   f"{'fashion_mnist ' + str(a.train_examples) + ' images'}")
        setting = (f"{setting}, "
                   f"{a.candidates} candidates x 1 epoch, P={a.population}, S={a.sample}"
                   + (f", top-1 retrained {a.retrain_epochs} epochs" if a.retrain_epochs else ""))
        seeds_lib.write_result("eat_vs_random", setting, a.seeds, "EAT", "random", metrics,
                               per_seed=rows, load_before=load_before, started=t0,
                               **seeds_lib.dirs(a.out))
        return
    out = a.out or "benchmarks/results/eat_vs_random.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
