"""The search command's logic, shared by `python -m eatnas_tf.search` and `transfer`.

Runs (or resumes) one search stage in a run directory (DESIGN.md §4).

    python -m eatnas_tf.search --run_dir=DIR --flagfile=flags/smoke.cfg [--strategy=eat|random]
    python -m eatnas_tf.search --run_dir=DIR --flagfile=flags/eat_cifar10_search.cfg
    python -m eatnas_tf.search --run_dir=DIR --flagfile=flags/smoke.cfg \
        --executor=subprocess --parallel=2     # 2 candidates at once (or --executor=ray)

Writes DIR/candidates.jsonl, DIR/state.json, DIR/tb/ (per-candidate curves + HParams
table), and when the search ends the top-k retraining (`--retrain_epochs`), DIR/winner/,
DIR/report.json and DIR/report.md with plots. Running the same command again resumes; the
same --seed gives the same candidates. With --seed_arch (and --seed_weights) the initial
population is offspring of a basic model: the elastic transfer's second stage (see also
`python -m eatnas_tf.transfer`).
"""

import time

from absl import flags

from eatnas_tf import cli
from eatnas_tf.search import flags as search_flags
from eatnas_tf.search import pipeline, runner
from eatnas_tf.search.run_dir import RunDir, RunDirError


def run_search(stage_name: str, fv=flags.FLAGS, extra=None) -> dict:
    """Shared by `search` and `transfer`: one stage, optional top-k retraining, report."""
    t0 = time.perf_counter()
    stage = search_flags.stage_from_flags(stage_name, fv)
    retrain = search_flags.retrain_configs(stage, fv)
    if fv.deterministic_ops:
        import tensorflow as tf  # noqa: PLC0415

        tf.config.experimental.enable_op_determinism()
    executor = search_flags.executor_from_flags(fv)  # validated before anything is written
    try:
        run = RunDir(fv.run_dir)
        run.check_config(search_flags.experiment_config(fv), fv.allow_flag_change)
        result = runner.run_stage(run, stage, verbose=fv.verbose, max_new=fv.stop_after,
                                  executor=executor, parallel=fv.parallel)
    except RunDirError as e:
        raise cli.UsageError(str(e)) from None
    finally:
        executor.close()
    if fv.stop_after is not None and not result.strategy.finished():
        print(f"stopped after {result.evaluated} new candidates; rerun to resume", flush=True)
        return {}
    retrained, winner = [], None
    if retrain is not None:
        retrained = pipeline.retrain_topk(run, result, retrain[0], retrain[1], stage.config.topk,
                                          verbose=min(fv.verbose, 1))
        winner = pipeline.pick_winner(retrained)
    else:
        retrained = [dict(id=r["id"], stage=stage.name, arch=r["arch"], search_val_acc=r["val_acc"],
                          score=r["score"], params=r["params"], madds=r["madds"], model_dir=None)
                     for r in result.strategy.topk()]
    report = pipeline.finish(run, [result], winner=winner, retrained=retrained,
                             wall_s=time.perf_counter() - t0, extra=extra)
    w = report.get("winner")
    best = result.summary()
    print(f"{stage.name}: {best['candidates']} candidates, best val_acc "
          f"{best['best_val_acc']}, report {run.file('report.md')}"
          + (f"; winner {w['arch']} test_acc {w['test_accuracy']}" if w else ""), flush=True)
    return report
