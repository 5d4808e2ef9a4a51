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
"""  # noqa: E501 - the usage line is a command to copy whole

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


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
    a = ap.parse_args()
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
