"""Elastic architecture transfer (EAT-NAS paper §3.5, §4.2): seeds the large task's
population with offspring of the basic model and runs the same evolution there.

    python -m eatnas_tf.transfer --run_dir=DIR --from_run=STAGE1_DIR \
        --flagfile=flags/eat_imagenet_search.cfg
    python -m eatnas_tf.transfer --run_dir=DIR --basic_arch=ARCH [--basic_model=MODEL_DIR] ...

The basic model is the winner of a finished stage-1 run (`--from_run`: its report.json
and winner/ artifact) or given directly. With `--transfer_weights` (default) the offspring
also inherit the basic model's trained weights wherever op, kernel and shapes allow (the
paper transfers the architecture only: `--notransfer_weights` reproduces that). Outputs
as `python -m eatnas_tf.search`.
"""

import json
import os

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.search import app
from eatnas_tf.search import flags as search_flags
from eatnas_tf.search import pipeline

_FROM_RUN = flags.DEFINE_string("from_run", None, "Finished stage-1 run dir (report.json + "
                                "winner/) whose winner is the basic model.")
_BASIC_ARCH = flags.DEFINE_string("basic_arch", None, "The basic model's architecture "
                                  "(instead of --from_run).")
_BASIC_MODEL = flags.DEFINE_string("basic_model", None, "Model artifact dir of the basic "
                                   "model (its weights are transferred).")
_TRANSFER_WEIGHTS = flags.DEFINE_bool("transfer_weights", True, "Offspring inherit the basic "
                                      "model's weights where shapes allow.")
search_flags.define_search_flags()
FLAGS = flags.FLAGS


def basic_from_flags():
    """(basic arch text, model artifact dir or None) from --from_run / --basic_*."""
    if bool(_FROM_RUN.value) == bool(_BASIC_ARCH.value):
        raise cli.UsageError("from_run/basic_arch: give exactly one of --from_run=DIR or "
                             "--basic_arch=ARCH")
    if _BASIC_ARCH.value:
        return _BASIC_ARCH.value, _BASIC_MODEL.value
    path = os.path.join(_FROM_RUN.value, "report.json")
    try:
        with open(path) as f:
            winner = json.load(f).get("winner")
    except (OSError, ValueError) as e:
        raise cli.UsageError(f"from_run: cannot read {path} ({e})") from None
    if not winner:
        raise cli.UsageError(f"from_run: {path} has no winner; run stage 1 with "
                             "--retrain_epochs > 0")
    model_dir = os.path.join(_FROM_RUN.value, pipeline.WINNER_DIR)
    return winner["arch"], model_dir if os.path.isdir(model_dir) else None


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    arch, model_dir = basic_from_flags()
    rt = search_flags.runtime_from_flags(FLAGS)
    seed_weights = None
    if _TRANSFER_WEIGHTS.value and model_dir:
        if not rt.run_dir:
            raise cli.UsageError("run_dir: required; allowed values: a directory path")
        seed_weights = os.path.join(rt.run_dir, "basic_weights.npz")
    exp = search_flags.experiment_from_flags("transfer", FLAGS, seed_archs=(arch,),
                                             seed_weights=seed_weights)
    if seed_weights:
        os.makedirs(rt.run_dir, exist_ok=True)
        pipeline.artifact_weights(model_dir, seed_weights)
    app.run_search(exp, rt, extra={"basic_arch": arch})


if __name__ == "__main__":
    cli.run(main)
