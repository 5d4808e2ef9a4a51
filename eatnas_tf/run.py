"""The EAT-NAS pipeline on your own data, one command (see `search.eat_pipeline`):

    python -m eatnas_tf.run --dataset=folder:photos/ --run_dir=runs/photos --time_budget=20m
    python -m eatnas_tf.run --dataset=tfrecord:'data/train-*.tfrecord' --run_dir=runs/r
    python -m eatnas_tf.run --dataset=tfds:oxford_flowers102 --data_dir=~/tensorflow_datasets ...
    python -m eatnas_tf.run --flagfile=flags/demo.cfg --run_dir=runs/demo    # the demo

Small task derived from the data → elastic transfer to the full task → retraining of
the top-k → export (SavedModel + TFLite) → DIR/report.md. Running it again resumes.
Bad data or flags exit 2 with one line, before anything is written. Flags:
`search.flags.define_pipeline_flags`.
"""

import time

_STARTED = time.monotonic()  # the process' start: a time budget counts the imports too

from absl import flags, logging  # noqa: E402

from eatnas_tf import cli  # noqa: E402

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.search import eat_pipeline
from eatnas_tf.search import flags as search_flags

search_flags.define_pipeline_flags()
FLAGS = flags.FLAGS


def exporter(run_dir, opts):
    """The export phase (the `export` package is imported only when it runs)."""
    from export import export_lib  # the [export] extra

    return export_lib.export_run_once(run_dir, opts.qat_epochs, opts.qat_samples)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    cfg = search_flags.pipeline_config_from_flags(FLAGS)
    if FLAGS.deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    try:
        eat_pipeline.run(cfg, FLAGS.run_dir, allow_change=FLAGS.allow_flag_change,
                         verbose=FLAGS.verbose, say=lambda m: print(m, flush=True),
                         exporter=exporter, started=_STARTED)
    except ValueError as e:  # bad data found while planning: one line, nothing written
        raise cli.UsageError(str(e).splitlines()[0]) from None


if __name__ == "__main__":
    cli.run(main)
