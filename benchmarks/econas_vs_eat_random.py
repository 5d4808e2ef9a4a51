"""EcoNAS vs EAT vs random search at equal candidate-epochs on offline Fashion-MNIST (issue 5).

Runs the search command three times from `flags/econas_fmnist.cfg` (same data, seed and
trainer), changing only the strategy: `econas` as the flagfile says (reduced-setting proxy,
E / 2E / 3E hierarchy), then `eat` (with weight inheritance, its method) and `random`, each
given as many 1-epoch candidates as EcoNAS spent candidate-epochs. Every search then
retrains its top-k the same way (`--retrain_*` below) so the final accuracies compare
models, not proxies. Prints, per strategy: candidate-epochs, training cost (Σ MAdds ×
training images × epochs of the models actually trained), search wall time, best search
val_acc (EcoNAS' is measured on its reduced models) and the winner's test accuracy.

    python benchmarks/econas_vs_eat_random.py [--out_dir=runs/bench_econas] [--econas_cycles=2] [--retrain_epochs=2]

Run directories are kept (a rerun resumes them: nothing is trained twice).

With `--seeds` (two or more) it compares EcoNAS and EAT at equal *training cost* instead,
in process, per seed: EcoNAS runs as `--flagfile` (plus `--flag`s) says; EAT (with weight
inheritance, same data, trainer and seed) then evaluates one candidate at a time until its
Σ MAdds × images × epochs reaches EcoNAS', and keeps the prefix whose cost is closer to
EcoNAS' (the runner's replay gives the strategy's state after exactly that prefix, so this
is the EAT run that budget would have stopped). Each side's top-1 is retrained
`--retrain_epochs` epochs on the final split; `benchmarks/seeds.py` reports the paired
differences (`benchmarks/results/seeds/econas_vs_eat.json`, figure in `docs/results/seeds/`).

    python benchmarks/econas_vs_eat_random.py --flagfile=flags/econas_smoke.cfg --seeds 0 1 2 3 4
"""  # noqa: E501 - the usage line is a command to copy whole

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import seeds as seeds_lib  # noqa: E402


def _flag(flagfile, name, cast=int):
    for line in open(flagfile):
        if line.startswith(f"--{name}="):
            return cast(line.strip().split("=", 1)[1])
    raise KeyError(name)


def econas_candidate_epochs(flagfile, cycles=None):
    """N_init × E + C × (N_0 + N_1 + N_2) × E: EcoNAS' budget in candidate-epochs."""
    e = _flag(flagfile, "econas_epochs")
    per_cycle = sum(_flag(flagfile, f) for f in ("econas_mutations", "econas_promote1",
                                                 "econas_promote2"))
    cycles = cycles or _flag(flagfile, "econas_cycles")
    return (_flag(flagfile, "population") + cycles * per_cycle) * e


def summarize(run_dir):
    recs = [
        json.loads(line) for line in open(os.path.join(run_dir, "candidates.jsonl")) if line.strip()
    ]
    report = json.load(open(os.path.join(run_dir, "report.json")))
    ok = [r for r in recs if r.get("status") == "ok"]
    # a promotion record's `epochs` is the total it reached; it trained only the new ones
    new_epochs = [r["epochs"] - (r.get("resumed_from_epoch") or 0) for r in ok]
    cost = sum(r["madds"] * r["num_train"] * e for r, e in zip(ok, new_epochs))
    win = report.get("winner") or {}
    return {"candidates": len(recs), "failed": len(recs) - len(ok),
            "candidate_epochs": sum(new_epochs), "train_cost_madds_x_images": cost,
            "search_wall_s": report["stages"][0].get("wall_s") if report.get("stages") else None,
            "best_search_val_acc": max(r["val_acc"] for r in ok),
            "winner_arch": win.get("arch"), "winner_madds": win.get("madds"),
            "winner_test_acc": win.get("test_accuracy")}


def training_cost(records):
    """Σ MAdds × training images × epochs trained (a promotion trains only its new epochs)."""
    return sum(r.madds * r.num_train * (r.epochs - (r.resumed_from_epoch or 0))
               for r in records if r.ok and r.trained)


def _retrained_top1(run, result, retrain_epochs):
    from eatnas_tf.search import pipeline
    from eatnas_tf.search.experiment import RetrainConfig

    data, train = RetrainConfig(epochs=retrain_epochs, learning_rate=0.1).configs(result.stage)
    rows = pipeline.retrain_topk(run, result, data, train, 1, verbose=0, progress=None)
    return pipeline.pick_winner(rows)


def equal_cost_seed(a, seed):
    """EcoNAS, then EAT at EcoNAS' training cost, each top-1 retrained; one seed's row."""
    from eatnas_tf.search import runner
    from eatnas_tf.search.run_dir import RunDir

    eco_stage = seeds_lib.experiment(a.flagfile, f"--seed={seed}", *a.flag).stage
    eco_run = RunDir(tempfile.mkdtemp(prefix=f"econas_s{seed}_"))
    eco = runner.run_stage(eco_run, eco_stage, progress=None, tensorboard=False)
    budget = training_cost(eco.records)
    eat_stage = seeds_lib.experiment(a.flagfile, f"--seed={seed}", *a.flag, "--strategy=eat",
                                     "--inherit", "--max_candidates=1000").stage
    eat_run = RunDir(tempfile.mkdtemp(prefix=f"eat_s{seed}_"))
    costs = []  # cumulative cost after each EAT candidate
    while not costs or (costs[-1] < budget and len(costs) < 200):
        r = runner.run_stage(eat_run, eat_stage, progress=None, tensorboard=False, max_new=1)
        costs = [training_cost(r.records[:i + 1]) for i in range(len(r.records))]
    n = len(costs)
    if n > 1 and budget - costs[-2] < costs[-1] - budget:
        n -= 1  # the shorter prefix is closer to EcoNAS' cost
    cut = dataclasses.replace(eat_stage, config=dataclasses.replace(eat_stage.config,
                                                                    max_candidates=n))
    eat = runner.run_stage(eat_run, cut, progress=None, tensorboard=False)  # replay only
    eat_records = eat.records[:n]
    row = {"seed": seed}
    for name, run, res, recs in (("econas", eco_run, eco, eco.records),
                                 ("eat", eat_run, eat, eat_records)):
        w = _retrained_top1(run, res, a.retrain_epochs)
        row[name] = {"evaluations": len(recs),
                     "candidate_epochs": sum(x.candidate_epochs for x in recs),
                     "train_cost_madds_x_images": training_cost(recs),
                     "best_search_val_acc": max(x.val_acc for x in recs if x.ok),
                     "search_wall_s": sum(x.wall_s or 0 for x in recs),
                     "winner_arch": w["arch"], "winner_madds": w["madds"],
                     "winner_val_acc": w["val_acc"], "winner_test_acc": w["test_acc"],
                     "run_dir": run.path}
    eat_cost = row["eat"]["train_cost_madds_x_images"]
    print(f"seed {seed}: cost EcoNAS {budget:.3g} / EAT {eat_cost:.3g}"
          f" ({row['econas']['evaluations']} vs {n} evaluations); retrained top-1 test acc "
          f"EcoNAS {row['econas']['winner_test_acc']:.4f} EAT {row['eat']['winner_test_acc']:.4f}",
          flush=True)
    return row


def seeds_main(a):
    if len(a.seeds) < 2 or len(set(a.seeds)) != len(a.seeds):
        sys.exit(f"seeds: received {a.seeds}; allowed values: two or more distinct seeds")
    load_before, t0 = seeds_lib.load(), time.time()
    rows = [equal_cost_seed(a, s) for s in a.seeds]
    seeds_lib.write_result(
        "econas_vs_eat",
        " ".join([os.path.relpath(a.flagfile, ROOT)] + a.flag)
        + f"; EAT at EcoNAS' training cost; top-1 retrained {a.retrain_epochs} epochs",
        a.seeds, "EcoNAS", "EAT",
        {"winner_test_acc": ([r["econas"]["winner_test_acc"] for r in rows],
                             [r["eat"]["winner_test_acc"] for r in rows]),
         "winner_val_acc": ([r["econas"]["winner_val_acc"] for r in rows],
                            [r["eat"]["winner_val_acc"] for r in rows])},
        per_seed=rows, load_before=load_before, started=t0,
        extra={"cost_ratio_eat_over_econas": [
            r["eat"]["train_cost_madds_x_images"] / r["econas"]["train_cost_madds_x_images"]
            for r in rows]},
        **seeds_lib.dirs(a.seeds_out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flagfile", default=os.path.join(ROOT, "flags/econas_fmnist.cfg"))
    ap.add_argument("--out_dir", default="runs/bench_econas")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--retrain_epochs", type=int, default=2)
    ap.add_argument("--retrain_max_train_examples", type=int, default=20000)
    ap.add_argument("--econas_cycles", type=int, default=2,
                    help="EcoNAS cycles C (the flagfile's value when 0); sets the budget")
    ap.add_argument("--strategies", nargs="+", default=["econas", "eat", "random"])
    ap.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks/results/econas_vs_eat_random.json")
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="two or more: EcoNAS vs EAT at equal training cost, paired by seed")
    ap.add_argument("--flag", action="append", default=[],
                    help="a search flag added after --flagfile for --seeds (repeat)")
    ap.add_argument("--seeds_out", default=None,
                    help="JSON of --seeds (default: benchmarks/results/seeds/econas_vs_eat.json)")
    a = ap.parse_args()
    if a.seeds:
        return seeds_main(a)
    budget = econas_candidate_epochs(a.flagfile, a.econas_cycles)
    common = [f"--flagfile={a.flagfile}", f"--seed={a.seed}", f"--topk={a.topk}",
              f"--retrain_epochs={a.retrain_epochs}", "--retrain_learning_rate=0.1",
              f"--retrain_max_train_examples={a.retrain_max_train_examples}"]
    per = {"econas": [f"--econas_cycles={a.econas_cycles}"] if a.econas_cycles else [],
           "eat": ["--strategy=eat", "--inherit", f"--max_candidates={budget}"],
           "random": ["--strategy=random", f"--max_candidates={budget}"]}
    rows = {}
    for name in a.strategies:
        run_dir = os.path.join(a.out_dir, name)
        cmd = (
            [sys.executable, "-m", "eatnas_tf.search", f"--run_dir={run_dir}"] + common + per[name]
        )
        print(f"== {name}: {' '.join(cmd[2:])}", flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        rows[name] = summarize(os.path.join(ROOT, run_dir))
    print(f"\nbudget: {budget} candidate-epochs (EcoNAS' N_init·E + C·(N_0+N_1+N_2)·E)")
    print(f"{'strategy':<8} {'cand-ep':>7} {'cost (MAdds·img)':>17} {'search s':>9} "
          f"{'best search val':>15} {'winner test':>11}")
    for name, r in rows.items():
        print(f"{name:<8} {r['candidate_epochs']:>7} {r['train_cost_madds_x_images']:>17.3g} "
              f"{r['search_wall_s'] or 0:>9.0f} {r['best_search_val_acc']:>15.4f} "
              f"{r['winner_test_acc'] or 0:>11.4f}")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(
            {
                "budget_candidate_epochs": budget,
                "econas_cycles": a.econas_cycles,
                "seed": a.seed,
                "flagfile": os.path.relpath(a.flagfile, ROOT),
                "retrain_epochs": a.retrain_epochs,
                "retrain_max_train_examples": a.retrain_max_train_examples,
                "strategies": rows,
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
