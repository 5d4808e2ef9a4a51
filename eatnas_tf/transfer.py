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
from eatnas_tf.search import app, pipeline
from eatnas_tf.search import flags as search_flags

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


def basic_from_flags(extra=None):
    """(basic arch text, model artifact dir or None) from --from_run / --basic_*.

    `--from_run` takes the stage-1 run's retrained winner; when that run retrained nothing
    (the paper flagfile's `--retrain_epochs=0`), the best of its best-quality population
    (report.json "topk"[0], its search result, no model artifact) instead, said in one
    stdout line. `extra` (a dict, optional) gets "basic_arch" and "basic_source"
    ("basic_arch", "winner" or "topk[0]") for the report.
    """
    if bool(_FROM_RUN.value) == bool(_BASIC_ARCH.value):
        raise cli.UsageError("from_run/basic_arch: give exactly one of --from_run=DIR or "
                             "--basic_arch=ARCH")
    if extra is None:
        extra = {}
    if _BASIC_ARCH.value:
        extra.update(basic_arch=_BASIC_ARCH.value, basic_source="basic_arch")
        return _BASIC_ARCH.value, _BASIC_MODEL.value
    path = os.path.join(_FROM_RUN.value, "report.json")
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise cli.UsageError(f"from_run: cannot read {path} ({e})") from None
    winner = report.get("winner") if isinstance(report, dict) else None
    if not winner:
        top = (report.get("topk") or []) if isinstance(report, dict) else []
        if not top or not isinstance(top[0], dict) or not top[0].get("arch"):
            raise cli.UsageError(f"from_run: {path} has no winner and no top-k; rerun "
                                 "stage 1 to its end (or with --retrain_epochs > 0)")
        best = top[0]
        print(f"from_run: {path} has no retrained winner (stage 1 ran with "
              f"--retrain_epochs=0); the basic model is the best of its best-quality "
              f"population, c{best.get('id', 0):05d} (search val_acc "
              f"{best.get('search_val_acc')}), architecture only", flush=True)
        extra.update(basic_arch=best["arch"], basic_source="topk[0]",
                     basic_id=best.get("id"), basic_search_val_acc=best.get("search_val_acc"))
        return best["arch"], None
    model_dir = os.path.join(_FROM_RUN.value, pipeline.WINNER_DIR)
    extra.update(basic_arch=winner["arch"], basic_source="winner")
    return winner["arch"], model_dir if os.path.isdir(model_dir) else None


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    extra = {}
    arch, model_dir = basic_from_flags(extra)
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
    app.run_search(exp, rt, extra=extra)


if __name__ == "__main__":
    cli.run(main)
