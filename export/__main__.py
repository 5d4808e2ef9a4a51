"""`python -m export`: export a search run's winner (or a saved `.keras` model).

    python -m export --run_dir=DIR [--pareto] [--export_dir=DIR/export]
        [--formats=fp32,fp16,int8,qat] [--bless_threshold=0.85]
    python -m export --model=PATH.keras --arch=ARCH --space=SPACE --dataset=fashion_mnist \
        --export_dir=OUT

A run that retrained nothing (no DIR/winner/) exports its best candidate's stored weights
and says so in the report. The data is the run's own (its stored data config).

Flags are turned into an `ExportConfig` once and passed to `export.export_lib`; bad input
(missing run dir, unreadable model, unwritable export dir, unconvertible model) prints one
line on stderr and exits 2, leaving no partial version dir. Prints the export report's
Markdown table and the version dir on success.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

from eatnas_tf import cli  # noqa: E402

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from export import tflite as tflite_lib  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Search run directory (exports DIR/winner, or "
                                "the best candidate's weights when nothing was retrained).")
_MODEL = flags.DEFINE_string("model", None, "A saved .keras model (instead of --run_dir).")
_ARCH = flags.DEFINE_string("arch", None, "Encoding of --model: text form, JSON or file.")
_SPACE = flags.DEFINE_string("space", "fashion_mnist", "Search space of --model.")
_DATASET = flags.DEFINE_string("dataset", "fashion_mnist",
                               "Held-out / representative data of --model: any --dataset the "
                               "search takes (fashion_mnist, digits, cifar10, folder:DIR, ...).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None,
                                  "Base dir of version dirs (default DIR/export for --run_dir).")
_PARETO = flags.DEFINE_bool("pareto", False, "Also export every Pareto member with a model_dir.")
_FORMATS = flags.DEFINE_list("formats", list(tflite_lib.FORMATS),
                             f"TFLite formats, any of {','.join(tflite_lib.FORMATS)}.")
_BLESS = flags.DEFINE_float("bless_threshold", 0.0,
                            "Held-out accuracy (0..1) needed for the BLESSED marker.")
_EVAL_SAMPLES = flags.DEFINE_integer("eval_samples", None,
                                     "Held-out images to check on (default: whole test split).")
_REP_SAMPLES = flags.DEFINE_integer("representative_samples", 200,
                                    "Training images calibrating full-integer int8.")
_INT8_IO = flags.DEFINE_bool(
    "int8_io", True, "int8 and QAT files take uint8 raw pixels (else float32 pixels in 0..255).")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 2, "QAT fine-tuning epochs.")
_QAT_SAMPLES = flags.DEFINE_integer("qat_samples", 10000, "Training images for QAT fine-tuning.")
_QAT_LR = flags.DEFINE_float("qat_lr", 1e-3, "QAT fine-tuning SGD learning rate.")
_THREADS = flags.DEFINE_list("threads", ["1", str(max(2, os.cpu_count() or 1))],
                             "LiteRT thread counts to time.")
_WARMUP = flags.DEFINE_integer("latency_warmup", 5, "Untimed LiteRT runs before timing.")
_RUNS = flags.DEFINE_integer("latency_runs", 30, "Timed LiteRT runs (median and p90).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the representative / fine-tuning subsets.")


def _config():
    from export import export_lib

    try:
        threads = tuple(int(t) for t in _THREADS.value)
    except ValueError:
        raise cli.UsageError(f"threads: received {_THREADS.value}; allowed values: "
                             "positive integers") from None
    try:
        qat = tflite_lib.QATConfig(epochs=_QAT_EPOCHS.value, learning_rate=_QAT_LR.value,
                                   max_samples=_QAT_SAMPLES.value, seed=_SEED.value)
        return export_lib.ExportConfig(
            formats=tuple(_FORMATS.value), bless_threshold=_BLESS.value,
            eval_samples=_EVAL_SAMPLES.value, representative_samples=_REP_SAMPLES.value,
            int8_io=_INT8_IO.value, qat=qat, latency_threads=threads,
            latency_warmup=_WARMUP.value, latency_runs=_RUNS.value, seed=_SEED.value)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if bool(_RUN_DIR.value) == bool(_MODEL.value):
        raise cli.UsageError("give exactly one of --run_dir or --model (with --arch and "
                             "--export_dir)")
    if not flags.FLAGS["verbosity"].present:  # TF's INFO lines would bury the report
        logging.set_verbosity(logging.WARNING)
    config = _config()
    from export import export_lib, report

    try:
        if _RUN_DIR.value:
            out = export_lib.export_run(_RUN_DIR.value, _EXPORT_DIR.value, pareto=_PARETO.value,
                                        config=config)
            winner, members = out["winner"], out["pareto"]
        else:
            if not _ARCH.value or not _EXPORT_DIR.value:
                raise cli.UsageError("--model needs --arch and --export_dir")
            winner, members = export_lib.export_keras_file(
                _MODEL.value, _ARCH.value, space=_SPACE.value, dataset=_DATASET.value,
                export_dir=_EXPORT_DIR.value, config=config), []
    except export_lib.ExportError as e:
        raise cli.UsageError(str(e)) from None
    print(report.to_markdown(winner, pareto=members))
    print(f"exported: {winner['path']}")


if __name__ == "__main__":
    cli.run(main)
