"""The search command's logic, shared by `python -m eatnas_tf.search` and `transfer`.

Runs (or resumes) one search stage in a run directory (docs/design.md §4).

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

from eatnas_tf import cli
from eatnas_tf.search import executors, pipeline, runner
from eatnas_tf.search.experiment import RuntimeOptions, SearchExperiment
from eatnas_tf.search.run_dir import RunDir, RunDirError


def make_executor(rt: RuntimeOptions, parallel: int):
    """The executor the runtime options ask for (bad values: `cli.UsageError`)."""
    try:
        return executors.make_executor(
            rt.executor, parallel=parallel, verbose=rt.verbose,
            deterministic_ops=rt.deterministic_ops, max_retries=rt.max_worker_retries,
            max_tasks_per_worker=rt.worker_max_tasks, ray_address=rt.ray_address)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def data_notes(stage) -> dict:
    """What the report says about a user dataset: class names and the skipped bad files."""
    if not stage.data.user:
        return {}
    from eatnas_tf.search.evaluate import cached_data  # loads TensorFlow

    bundle = cached_data(stage.data)
    return {"class_names": list(bundle.class_names), "bad_files": bundle.bad_files}


def run_search(exp: SearchExperiment, rt: RuntimeOptions, extra=None) -> dict:
    """Shared by `search` and `transfer`: one stage, optional top-k retraining, report."""
    t0 = time.perf_counter()
    stage = exp.stage
    if rt.deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if stage.data.user:  # the user's data is checked before anything is written
        from eatnas_tf.data import datasets

        try:
            datasets.check_data(stage.data)
        except ValueError as e:
            raise cli.UsageError(str(e).splitlines()[0]) from None
    executor = make_executor(rt, exp.parallel)  # validated before anything is written
    try:
        run = RunDir(rt.run_dir)
        run.check_config(exp.to_dict(), rt.allow_flag_change)
        result = runner.run_stage(run, stage, verbose=rt.verbose, max_new=rt.stop_after,
                                  executor=executor, parallel=exp.parallel)
    except RunDirError as e:
        raise cli.UsageError(str(e)) from None
    finally:
        executor.close()
    if rt.stop_after is not None and not result.strategy.finished():
        print(f"stopped after {result.evaluated} new candidates; rerun to resume", flush=True)
        return {}
    retrained, winner = [], None
    if exp.retrain is not None:
        data, train = exp.retrain.configs(stage)
        retrained = pipeline.retrain_topk(run, result, data, train, stage.config.topk,
                                          verbose=min(rt.verbose, 1))
        winner = pipeline.pick_winner(retrained)
    else:
        retrained = [pipeline.search_row(stage.name, r) for r in result.strategy.topk()]
    report = pipeline.finish(run, [result], winner=winner, retrained=retrained,
                             wall_s=time.perf_counter() - t0,
                             extra={**data_notes(stage), **(extra or {})})
    w = report.get("winner")
    best = result.summary()
    print(f"{stage.name}: {best['candidates']} candidates, best val_acc "
          f"{best['best_val_acc']}, report {run.file('report.md')}"
          + (f"; winner {w['arch']} test_acc {w['test_accuracy']}" if w else ""), flush=True)
    return report
