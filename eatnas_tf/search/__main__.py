"""Runs (or resumes) an architecture search in a run directory (docs/design.md §4).

    python -m eatnas_tf.search --run_dir=DIR --flagfile=flags/smoke.cfg [--strategy=eat|random]
    python -m eatnas_tf.search --run_dir=DIR --flagfile=flags/eat_cifar10_search.cfg

See `eatnas_tf.search.app` for what it writes.
"""

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.search import app
from eatnas_tf.search import flags as search_flags

search_flags.define_search_flags()


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    app.run_search(search_flags.experiment_from_flags("search", flags.FLAGS),
                   search_flags.runtime_from_flags(flags.FLAGS))


if __name__ == "__main__":
    cli.run(main)
