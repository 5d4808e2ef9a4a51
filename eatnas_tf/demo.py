"""The whole EAT-NAS pipeline offline on a laptop (README's main job):

    python -m eatnas_tf.demo --run_dir=runs/demo [--flagfile=flags/demo.cfg]

  1. stage 1: evolution on the small task (Fashion-MNIST at 14×14, a subset), 1 epoch per
     candidate, children inheriting their parent's weights;
  2. the basic model: top-k of the best-quality population retrained, best on validation;
  3. stage 2: elastic transfer to full-resolution Fashion-MNIST (28×28): the population is
     seeded with offspring of the basic model (inheriting its weights), then evolved;
  4. the winner: top-k of stage 2 retrained on the training set, best on validation,
     tested on the 10k test images;
  5. export: versioned SavedModel + TFLite fp32/fp16/int8/QAT with measured latency;
  6. report: DIR/report.json, DIR/report.md, DIR/plots/, with the wall time of every phase.

Each phase resumes where it stopped when the same command runs again.
"""

import dataclasses
import json
import os
import time

from absl import flags, logging

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.search import demo_config, pipeline, runner
from eatnas_tf.search.run_dir import RunDir
from eatnas_tf.store.atomic import write_json as write_json_atomic

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/demo", "Run directory (resumed if it exists).")
_SEED = flags.DEFINE_integer("seed", 0, "Run seed.")
_LR = flags.DEFINE_float("learning_rate", 0.05, "Candidate SGD learning rate (constant).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_VAL = flags.DEFINE_float("val_fraction", 0.05, "Validation share of the training split.")
_S1_RES = flags.DEFINE_integer("stage1_resolution", 14, "Stage-1 image size (small task).")
_S1_N = flags.DEFINE_integer("stage1_train_examples", 5000, "Stage-1 training subset.")
_S1_POP = flags.DEFINE_integer("stage1_population", 6, "Stage-1 population P.")
_S1_SAMPLE = flags.DEFINE_integer("stage1_sample", 3, "Stage-1 tournament size S.")
_S1_CANDS = flags.DEFINE_integer("stage1_candidates", 12, "Stage-1 candidates in total.")
_S1_TOPK = flags.DEFINE_integer("stage1_topk", 2, "Stage-1 models retrained to pick the basic model.")
_S1_RETRAIN = flags.DEFINE_integer("stage1_retrain_epochs", 2, "Stage-1 retraining epochs.")
_S2_N = flags.DEFINE_integer("stage2_train_examples", 8000, "Stage-2 training subset.")
_S2_POP = flags.DEFINE_integer("stage2_population", 6, "Stage-2 population P (offspring).")
_S2_SAMPLE = flags.DEFINE_integer("stage2_sample", 3, "Stage-2 tournament size S.")
_S2_CANDS = flags.DEFINE_integer("stage2_candidates", 12, "Stage-2 candidates in total.")
_TOPK = flags.DEFINE_integer("topk", 1, "Stage-2 models retrained on all training images.")
_RETRAIN = flags.DEFINE_integer("retrain_epochs", 3, "Final retraining epochs.")
_RETRAIN_LR = flags.DEFINE_float("retrain_learning_rate", 0.1, "Final retraining peak LR (cosine).")
_RETRAIN_N = flags.DEFINE_integer("retrain_train_examples", None, "Cap on retraining images.")
_TRANSFER_WEIGHTS = flags.DEFINE_bool("transfer_weights", True, "Stage-2 offspring inherit the "
                                      "basic model's weights.")
_EXPORT = flags.DEFINE_bool("export", True, "Export the winner (SavedModel + TFLite).")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 1, "Quantization-aware fine-tuning epochs.")
_QAT_SAMPLES = flags.DEFINE_integer("qat_samples", 5000, "Images per QAT epoch.")
_VERBOSE = flags.DEFINE_integer("verbose", 0, "Trainer verbosity per candidate.")


def _say(msg):
    print(msg, flush=True)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    # every config is built (validated) before the run directory is touched
    settings = {k: holder.value for k, holder in _SETTINGS.items()}
    try:
        cfg = demo_config.build_configs(settings)
    except ValueError as e:
        raise cli.UsageError(str(e).splitlines()[0]) from None
    run = RunDir(_RUN_DIR.value)
    run.check_config(demo_config.describe(settings, cfg))
    phases = {}
    if os.path.exists(run.file(PHASES_FILE)):
        with open(run.file(PHASES_FILE)) as f:
            phases = json.load(f)

    # 1. Stage 1: the basic model on the small task.
    t = time.perf_counter()
    _say(f"== stage 1: EAT evolution on Fashion-MNIST {_S1_RES.value}x{_S1_RES.value}, "
         f"{_S1_N.value} images, {_S1_CANDS.value} candidates")
    s1 = runner.run_stage(run, cfg["stage1"], verbose=_VERBOSE.value)
    _phase(run, phases, "stage1_search_s", t)

    t = time.perf_counter()
    _say(f"== stage 1: retrain top-{_S1_TOPK.value} for {_S1_RETRAIN.value} epochs -> basic model")
    r1 = pipeline.retrain_topk(run, s1, *cfg["stage1_retrain"], _S1_TOPK.value, verbose=1)
    basic = pipeline.pick_winner(r1)
    _phase(run, phases, "stage1_retrain_s", t)
    _say(f"basic model: {basic['arch']} val_acc {basic['val_acc']:.4f}")

    # 2. Stage 2: elastic transfer to the large task.
    t = time.perf_counter()
    seed_weights = pipeline.basic_seed_weights(run, basic) if _TRANSFER_WEIGHTS.value else None
    _say(f"== stage 2: elastic transfer to Fashion-MNIST 28x28, {_S2_N.value} images, "
         f"{_S2_CANDS.value} candidates seeded with offspring of the basic model")
    stage2 = cfg["stage2"]
    stage2 = dataclasses.replace(stage2, config=dataclasses.replace(
        stage2.config, seed_archs=(basic["arch"],), seed_weights=seed_weights))
    s2 = runner.run_stage(run, stage2, verbose=_VERBOSE.value)
    _phase(run, phases, "stage2_search_s", t)

    # 3. Retrain the winner on all training images.
    t = time.perf_counter()
    _say(f"== retrain top-{_TOPK.value} of stage 2 for {_RETRAIN.value} epochs")
    r2 = pipeline.retrain_topk(run, s2, *cfg["retrain"], _TOPK.value, verbose=1)
    winner = pipeline.pick_winner(r2)

    _phase(run, phases, "retrain_s", t)

    def write_report():
        extra = {"basic_model": basic, "phases_s": dict(phases)}
        extra.update({f"{k[:-2]}_wall_s": v for k, v in phases.items()})
        return pipeline.finish(run, [s1, s2], winner=winner, retrained=r1 + r2,
                               wall_s=sum(phases.values()), extra=extra,
                               stage_extra={"stage1": {"retrain_s": phases["stage1_retrain_s"]}})

    report = write_report()

    # 4. Export (reads winner/ and report.json), then the report again with its time.
    if _EXPORT.value:
        t = time.perf_counter()
        _say("== export: SavedModel + TFLite (fp32, fp16, int8, QAT) with latency")
        from export import export_lib  # noqa: PLC0415
        from export import report as export_report  # noqa: PLC0415

        exported = _export_once(run, export_lib)
        _phase(run, phases, "export_s", t)
        report = write_report()
        report["export"] = {k: v for k, v in exported.items() if k != "markdown"}
        write_json_atomic(run.file("report.json"), report)
        export_report.update_run_report(run.file("report.md"), exported["markdown"])
    w = report["winner"]
    lines = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in phases.items())
    _say(f"== done in {report['wall_s']:.0f} s ({lines})\n"
         f"   winner {w['arch']}: params {w['params']:,}, MAdds {w['madds']:,}, "
         f"test accuracy {w['test_accuracy']:.4f}\n   report: {run.file('report.md')}")


def _phase(run: RunDir, phases: dict, name: str, t0: float) -> None:
    """Adds this process's time of a phase to the stored total (a resumed phase adds what
    it still had to do) and stores the totals."""
    phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0
    write_json_atomic(run.file(PHASES_FILE), phases)


def _export_once(run: RunDir, export_lib) -> dict:
    """Exports the winner once per run (a rerun reuses the stored summary)."""
    marker = run.file("export_summary.json")
    if os.path.exists(marker):
        with open(marker) as f:
            return json.load(f)
    from export import tflite  # noqa: PLC0415

    config = export_lib.ExportConfig(qat=tflite.QATConfig(epochs=_QAT_EPOCHS.value,
                                                          max_samples=_QAT_SAMPLES.value))
    out = export_lib.export_run(run.path, config=config)
    w = out["winner"]
    summary = {"export_dir": out["export_dir"], "path": w.get("path"),
               "checks": w.get("checks"), "timing_s": w.get("timing_s"),
               "markdown": export_lib.report_lib.to_markdown(w, heading="###"),
               "formats": {k: {"accuracy": v.get("accuracy"), "size_bytes": v.get("size_bytes"),
                               "latency_ms_1thread": (v.get("latency") or {}).get("1", {}).get("median_ms")}
                           for k, v in (w.get("formats") or {}).items()}}
    write_json_atomic(marker, summary)
    return summary


PHASES_FILE = "phases.json"
# Every flag that defines the experiment (config.json; a resume must match them all).
_SETTINGS = {"seed": _SEED, "learning_rate": _LR, "batch_size": _BATCH, "val_fraction": _VAL,
             "stage1_resolution": _S1_RES, "stage1_train_examples": _S1_N,
             "stage1_population": _S1_POP, "stage1_sample": _S1_SAMPLE,
             "stage1_candidates": _S1_CANDS, "stage1_topk": _S1_TOPK,
             "stage1_retrain_epochs": _S1_RETRAIN, "stage2_train_examples": _S2_N,
             "stage2_population": _S2_POP, "stage2_sample": _S2_SAMPLE,
             "stage2_candidates": _S2_CANDS, "topk": _TOPK, "retrain_epochs": _RETRAIN,
             "retrain_learning_rate": _RETRAIN_LR, "retrain_train_examples": _RETRAIN_N,
             "transfer_weights": _TRANSFER_WEIGHTS, "qat_epochs": _QAT_EPOCHS,
             "qat_samples": _QAT_SAMPLES}


if __name__ == "__main__":
    cli.run(main)
