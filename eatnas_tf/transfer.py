"""Elastic architecture transfer (EAT-NAS paper §3.5, §4.2): seeds the large task's
population with offspring of the basic model and runs the same evolution there.

    python -m eatnas_tf.transfer --run_dir=DIR --from_run=STAGE1_DIR \
        --flagfile=flags/eat_imagenet_search.cfg
    python -m eatnas_tf.transfer --run_dir=DIR --basic_arch=ARCH [--basic_model=MODEL_DIR] ...

The basic model is the winner of a finished stage-1 run (`--from_run`: its report.json
and winner/ artifact) or given directly. Its channels are mapped explicitly into the
target space (`arch/channel_map.py`): the basic model is read in its own space (the stage-1
run's config.json, or `--basic_space` / `--basic_channel_mode`), and the seed is the
target-space encoding with the same per-block output channels; in `--channel_mode=relative`
(the paper's N_out / N_in, the paper flagfile) the widths carry over unchanged, in `mbv2`
each block takes the nearest allowed width and the changed blocks are printed ("transfer:"
lines, report.json "basic_mapping"). With `--transfer_weights` (default) the offspring
also inherit the basic model's trained weights wherever op, kernel and shapes allow (the
paper transfers the architecture only: `--notransfer_weights` reproduces that). Outputs
as `python -m eatnas_tf.search`.
"""

import json
import os

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.arch import channel_map, codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.spec import CHANNEL_MODES, InvalidArchitectureError
from eatnas_tf.search import app, pipeline
from eatnas_tf.search import flags as search_flags

_FROM_RUN = flags.DEFINE_string("from_run", None, "Finished stage-1 run dir (report.json + "
                                "winner/) whose winner is the basic model.")
_BASIC_ARCH = flags.DEFINE_string("basic_arch", None, "The basic model's architecture "
                                  "(instead of --from_run).")
_BASIC_MODEL = flags.DEFINE_string("basic_model", None, "Model artifact dir of the basic "
                                   "model (its weights are transferred).")
_BASIC_SPACE = flags.DEFINE_enum("basic_space", None, list(space_lib.SPACES),
                                 "Space of --basic_arch (its stem, head, channel mode; "
                                 "default: read it in the target --space's encoding).")
_BASIC_CHANNEL_MODE = flags.DEFINE_enum("basic_channel_mode", None, list(CHANNEL_MODES),
                                        "Channel mode of --basic_arch (default: its "
                                        "--basic_space's).")
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


def _run_space_defaults(run_dir, report):
    """(space name, arch defaults) the stage-1 run searched in: its config.json's space
    (the channel mode it ran with), else report.json's named space."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            sp = json.load(f)["config"]["stage"]["space"]
        keys = ("stem", "head", "channel_mode", "shortcut")
        return sp["name"], {k: sp[k] for k in keys if k in sp}
    except (OSError, ValueError, KeyError, TypeError):
        name = report.get("space") if isinstance(report, dict) else None
        if not name:
            raise cli.UsageError(f"from_run: {run_dir} records no search space (config.json, "
                                 "report.json)") from None
        return name, space_lib.get_space(name).arch_defaults()


def basic_space_from_flags(target):
    """(space name, arch defaults) the basic model's encoding is read in."""
    if _FROM_RUN.value:
        path = os.path.join(_FROM_RUN.value, "report.json")
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError):
            report = {}
        return _run_space_defaults(_FROM_RUN.value, report)
    if _BASIC_SPACE.value is None and _BASIC_CHANNEL_MODE.value is None:
        return target.name, target.arch_defaults()
    space = space_lib.get_space(_BASIC_SPACE.value or target.name, _BASIC_CHANNEL_MODE.value)
    return space.name, space.arch_defaults()


def map_basic(arch_text, target, extra):
    """The basic model's encoding in the `target` space, per-block channels carried over
    (`channel_map.map_channels`); prints the mapping and records it in `extra`."""
    name, defaults = basic_space_from_flags(target)
    try:
        basic = codec.parse_arch(arch_text, **defaults)
    except InvalidArchitectureError as e:
        raise cli.UsageError(f"basic arch: {e}") from None
    mapping = channel_map.map_channels(basic, target)
    for line in mapping.lines():
        print(line, flush=True)
    extra.update(basic_space=name, basic_mapping=mapping.as_dict())
    return codec.to_text(mapping.arch)


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    extra = {}
    arch, model_dir = basic_from_flags(extra)
    arch = map_basic(arch, search_flags.space_from_flags(FLAGS), extra)
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
