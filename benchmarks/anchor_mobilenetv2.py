"""The hand-designed anchor: MobileNetV2 α 0.35 / 0.5 vs the demo's winner, same recipe.

Retrains Keras' MobileNetV2 (weights=None, our BN momentum 0.9, 28×28 grey zero-padded to
32×32) with the demo's final retraining recipe through the project's trainer, and puts it
side by side with the winner: test accuracy, params, MAdds (TF profiler), LiteRT fp32
latency at batch 1 (1 and 2 threads, timed round-robin). Writes OUT/anchor.json,
OUT/anchor.md and OUT/pareto.png (the search's candidates with both anchors and the
retrained winner drawn on it).

    # a finished demo run: its config.json recipe, report.json winner, winner/ model
    python benchmarks/anchor_mobilenetv2.py --run_dir=runs/demo
    # no run dir: the recipe from flags/demo.cfg, the winner of docs/results/demo/report.json
    # retrained with it (the demo's winner under the same recipe as the anchors)
    python benchmarks/anchor_mobilenetv2.py --out=docs/results/anchor
    # a reduced recipe (every model alike): --epochs=1 --train_examples=20000

A run dir's winner/ model is reused only with the full recipe; a reduced one retrains the
winner too, so all rows share the recipe.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEMO_REPORT = os.path.join(ROOT, "docs", "results", "demo", "report.json")
DEMO_FLAGS = os.path.join(ROOT, "flags", "demo.cfg")


def demo_recipe(flagfile: str):
    """(data, train) of the final retraining that `flagfile`'s pipeline resolves."""
    from absl import flags

    from eatnas_tf.search import eat_pipeline
    from eatnas_tf.search import flags as search_flags

    fv = flags.FlagValues()
    search_flags.define_pipeline_flags(fv)
    fv(["anchor", f"--flagfile={flagfile}", "--run_dir=unused"])
    return eat_pipeline.plan(search_flags.pipeline_config_from_flags(fv)).retrain


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run_dir", default=None, help="a finished demo / eatnas_tf.run run dir")
    ap.add_argument("--flagfile", default=DEMO_FLAGS, help="recipe source without --run_dir")
    ap.add_argument("--report", default=DEMO_REPORT, help="winner source without --run_dir")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "anchor"))
    ap.add_argument("--alphas", default="0.35,0.5")
    ap.add_argument("--epochs", type=int, default=None, help="reduced recipe: epochs")
    ap.add_argument("--train_examples", type=int, default=None,
                    help="reduced recipe: training images")
    ap.add_argument("--latency_runs", type=int, default=200)
    a = ap.parse_args()
    try:
        alphas = [float(v) for v in a.alphas.split(",") if v]
    except ValueError:
        sys.exit(f"error: alphas: received {a.alphas!r}; allowed values: numbers, e.g. 0.35,0.5")
    if a.run_dir and not os.path.isdir(a.run_dir):
        sys.exit(f"error: run_dir: {a.run_dir} does not exist")
    report_path = os.path.join(a.run_dir, "report.json") if a.run_dir else a.report
    try:
        with open(report_path) as f:
            report = json.load(f)
        winner = report["winner"]
        space_name = report["space"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"error: {report_path}: no winner ({type(e).__name__}: {e})")

    from eatnas_tf.arch import codec
    from eatnas_tf.arch import space as space_lib
    from eatnas_tf.report import anchor, plots
    from eatnas_tf.train import retrain_lib

    t0 = time.perf_counter()
    load = os.getloadavg()
    if a.run_dir:
        data_cfg, train_cfg = anchor.recipe_from_run(a.run_dir)
    else:
        data_cfg, train_cfg = demo_recipe(a.flagfile)
    full = dict(epochs=train_cfg.epochs, train_examples=data_cfg.max_train_examples)
    reduced = bool(a.epochs or a.train_examples)
    data_cfg, train_cfg = anchor.reduced(data_cfg, train_cfg, epochs=a.epochs,
                                         train_examples=a.train_examples)
    os.makedirs(a.out, exist_ok=True)
    print(f"recipe: {train_cfg.epochs} epochs, {train_cfg.lr_schedule} LR "
          f"{train_cfg.learning_rate}, batch {data_cfg.batch_size}, train images "
          f"{data_cfg.max_train_examples or 'all'}" + (" (reduced)" if reduced else ""),
          flush=True)

    rows = []
    model_dir = os.path.join(a.run_dir, "winner") if a.run_dir else None
    if model_dir and not reduced and os.path.exists(os.path.join(model_dir, "meta.json")):
        rec = {"test_acc": winner.get("test_accuracy"), "val_acc": winner.get("val_acc"),
               "epochs": train_cfg.epochs}
        wrow = anchor.winner_row(model_dir, rec, os.path.join(a.out, "winner"))
        wrow["retrained_here"] = False
    else:
        space = space_lib.get_space(space_name)
        arch = codec.parse_arch(winner["arch"], **space.arch_defaults())
        wdir = os.path.join(a.out, "winner")
        rec = retrain_lib.retrain(arch, space, data_cfg, train_cfg, wdir, verbose=1)
        wrow = anchor.winner_row(os.path.join(wdir, "model"), rec, wdir)
        wrow["retrained_here"] = True
    wrow["demo_test_acc"] = winner.get("test_accuracy")
    rows.append(wrow)
    for alpha in alphas:
        rows.append(anchor.train_anchor(alpha, data_cfg, train_cfg,
                                        os.path.join(a.out, f"mnv2_{alpha:g}")))
    anchor.measure_latency(rows, runs=a.latency_runs)

    # The Pareto figure: the search's candidates (the run's, else the report's front) with
    # the retrained winner and the anchors on it.
    if a.run_dir and os.path.exists(os.path.join(a.run_dir, "candidates.jsonl")):
        with open(os.path.join(a.run_dir, "candidates.jsonl")) as f:
            cands = [json.loads(line) for line in f if line.strip()]
    else:
        cands = [{**r, "stage": "stage2 (Pareto front)", "status": "ok"}
                 for r in report.get("pareto") or []]
    plots.pareto_scatter(cands, os.path.join(a.out, "pareto.png"), cost_key="madds",
                         anchors=anchor.pareto_anchors(rows),
                         title="Search candidates (1-epoch val acc) and retrained models")
    out = {"recipe": {"reduced": reduced, "full": full, "train": train_cfg.as_dict(),
                      "data": {"dataset": data_cfg.dataset, "split": "final",
                               "val_fraction": data_cfg.val_fraction,
                               "max_train_examples": data_cfg.max_train_examples,
                               "batch_size": data_cfg.batch_size,
                               "augment": list(data_cfg.augment)}},
           "rows": rows, "winner_source": report_path, "run_dir": a.run_dir,
           "wall_s": time.perf_counter() - t0, "loadavg_start": load,
           "loadavg_end": os.getloadavg(), "command": " ".join(sys.argv)}
    with open(os.path.join(a.out, "anchor.json"), "w") as f:
        json.dump(out, f, indent=2)
    if a.run_dir:
        anchor.add_to_run_report(
            a.run_dir, rows, note=f"Retrained with the run's final recipe ({train_cfg.epochs} "
            f"epochs{', reduced' if reduced else ''}); benchmarks/anchor_mobilenetv2.py.")
    table = anchor.markdown_table(rows)
    with open(os.path.join(a.out, "anchor.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"wall {out['wall_s']:.0f} s; load average start {load}, end {out['loadavg_end']}")


if __name__ == "__main__":
    main()
