"""Absl flags of the search commands (`search`, `transfer`), turned into configs once.

    define_search_flags()                        # at import of the binary
    exp = experiment_from_flags("search")        # in main(): a frozen SearchExperiment
    rt = runtime_from_flags()                    # how it runs (executor, verbosity, ...)

The data and training flags of candidates come from `train.flags`, EcoNAS' and EPNAS'
own settings from `econas.flags` / `epnas.flags`; the retraining of the top-k uses the
same settings with the `--retrain_*` overrides. Only binaries call this module.
"""

from __future__ import annotations

import os

from absl import flags

from eatnas_tf import cli
from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.spec import CHANNEL_MODES, InvalidArchitectureError
from eatnas_tf.data import sources
from eatnas_tf.econas import flags as econas_flags
from eatnas_tf.epnas import flags as epnas_flags
from eatnas_tf.search import budget as budget_lib
from eatnas_tf.search import eat_pipeline
from eatnas_tf.search.experiment import RetrainConfig, RuntimeOptions, SearchExperiment, Stage
from eatnas_tf.search.strategy import SearchConfig, strategy_names
from eatnas_tf.train import flags as train_flags
from eatnas_tf.train.config import LR_SCHEDULES

SPLIT_FILE = "data_split.json"  # the user data's stored train/val/test cut, in the run dir


def define_search_flags(fv=flags.FLAGS) -> None:
    if "run_dir" in fv:
        return
    d = SearchConfig()
    flags.DEFINE_string("run_dir", None, "Run directory (created, or resumed when it exists).",
                        flag_values=fv)
    flags.DEFINE_enum("strategy", "eat", strategy_names() or ["eat"],
                      "Search strategy.", flag_values=fv)
    flags.DEFINE_enum("space", "fashion_mnist", list(space_lib.SPACES), "Search space.",
                      flag_values=fv)
    flags.DEFINE_enum("channel_mode", None, list(CHANNEL_MODES),
                      "How block widths give channels (default: the space's; imagenet: mbv2): "
                      "relative = N_out / N_in (the paper's width factor), mbv2 = MobileNetV2 "
                      "base channels x width (the official code).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Run seed: the same seed gives the same candidates.",
                         flag_values=fv)
    flags.DEFINE_integer("population", d.population, "Population size P (paper: 64).",
                         flag_values=fv)
    flags.DEFINE_integer("sample", d.sample, "Tournament sample size S (paper: 16).",
                         flag_values=fv)
    flags.DEFINE_integer("max_candidates", d.max_candidates,
                         "Cap on candidates of the stage, initial population included.",
                         flag_values=fv)
    flags.DEFINE_integer("patience", d.patience, "Stop when the population quality has not "
                         "improved for N steps (0: run to --max_candidates).", flag_values=fv)
    flags.DEFINE_float("min_delta", d.min_delta, "Relative quality gain that counts.",
                       flag_values=fv)
    flags.DEFINE_float("alpha", d.alpha, "Eq. 1-2 exponent below the target (and Eq. 3's "
                       "unless --quality_alpha).", flag_values=fv)
    flags.DEFINE_float("beta", d.beta, "Eq. 1-2 exponent at or above the target (and Eq. "
                       "3's unless --quality_beta).", flag_values=fv)
    flags.DEFINE_float("quality_alpha", None, "Eq. 3 (population quality) exponent below "
                       "the std target (default: --alpha).", flag_values=fv)
    flags.DEFINE_float("quality_beta", None, "Eq. 3 exponent at or above the std target "
                       "(default: --beta).", flag_values=fv)
    flags.DEFINE_float("target_std", d.target_std, "Eq. 3 std target.", flag_values=fv)
    flags.DEFINE_float("target", None, "Eq. 1 resource target (default: the space's).",
                       flag_values=fv)
    flags.DEFINE_enum("cost_metric", None, list(space_lib.COST_METRICS),
                      "Eq. 1 sub-objective (default: the space's; latency: the predicted ms "
                      "of --latency_table).", flag_values=fv)
    flags.DEFINE_float("target_latency_ms", None, "Eq. 1 latency target in ms: sets "
                       "--cost_metric=latency (needs --latency_table).", flag_values=fv)
    _define_latency_table_flags(fv, "Eq. 1's with --cost_metric=latency, EPNAS' latency "
                                "constraint's")
    flags.DEFINE_integer("topk", d.topk, "Models of the best-quality population retrained.",
                         flag_values=fv)
    flags.DEFINE_multi_string("seed_arch", [], "Seed the initial population with offspring of "
                              "this architecture (text form, JSON or file; repeat the flag for "
                              "several): elastic transfer.", flag_values=fv)
    flags.DEFINE_string("seed_weights", None, "Weights file (.npz) of the first --seed_arch "
                        "inherited by its offspring.", flag_values=fv)
    flags.DEFINE_bool("inherit", True, "Children inherit their parent's weights (paper §3.4).",
                      flag_values=fv)
    flags.DEFINE_bool("allow_flag_change", False, "Resume a run dir with different flags.",
                      flag_values=fv)
    flags.DEFINE_integer("retrain_epochs", 0, "Retrain the top-k for N epochs and pick the "
                         "winner (0: no retraining; the report lists the top-k).",
                         flag_values=fv)
    flags.DEFINE_float("retrain_learning_rate", None, "Retraining LR (default --learning_rate).",
                       flag_values=fv)
    flags.DEFINE_enum("retrain_lr_schedule", "cosine", list(LR_SCHEDULES),
                      "Retraining LR schedule.", flag_values=fv)
    flags.DEFINE_float("retrain_val_fraction", 0.1, "Validation share held out while "
                       "retraining (picks the winner; 0: pick by test accuracy).",
                       flag_values=fv)
    flags.DEFINE_integer("retrain_max_train_examples", None, "Cap on retraining examples.",
                         flag_values=fv)
    flags.DEFINE_integer("verbose", 0, "Trainer verbosity per candidate (0, 1, 2).",
                         flag_values=fv)
    flags.DEFINE_bool("deterministic_ops", False, "TensorFlow deterministic ops: the same seed "
                      "gives the same accuracies (slower on GPUs).", flag_values=fv)
    flags.DEFINE_integer("stop_after", None, "Stop after N new candidates (resume later).",
                         flag_values=fv)
    # Where candidates run (`search.executors`); the result depends only on --seed and
    # --parallel, never on the executor.
    flags.DEFINE_enum("executor", "local", ["local", "subprocess", "ray"],
                      "Where candidates train: in this process, K worker processes (one GPU "
                      "each when GPUs exist) or Ray tasks.", flag_values=fv)
    flags.DEFINE_integer("parallel", 1, "K: candidates proposed (K tournaments) and evaluated "
                         "at once per step.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("ray_address", None, "Ray cluster address for --executor=ray (default: "
                        "start a local one).", flag_values=fv)
    flags.DEFINE_integer("max_worker_retries", 2, "Restarts of a candidate whose worker died "
                         "before it is recorded failed.", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("worker_max_tasks", 20, "A worker process is replaced after N "
                         "candidates (keeps memory flat; 0: never).", lower_bound=0,
                         flag_values=fv)
    train_flags.define_data_flags(fv)
    train_flags.define_train_flags(fv)
    econas_flags.define_flags(fv)
    epnas_flags.define_flags(fv)


def _usage(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except (ValueError, InvalidArchitectureError) as e:
        raise cli.UsageError(str(e)) from None


def _define_latency_table_flags(fv, used_for: str) -> None:
    """--latency_table and the format / threads of a new one (what `latency_from_flags`
    reads), shared by the search and the pipeline binaries."""
    flags.DEFINE_string("latency_table", None, "Latency table (python -m "
                        "eatnas_tf.latency_table): every candidate's predicted latency_ms, "
                        f"{used_for}. Created if missing; unseen layers are measured on this "
                        "host and added.", flag_values=fv)
    flags.DEFINE_enum("latency_format", None, ["fp32", "fp16", "int8"], "TFLite format of a "
                      "new --latency_table (default fp32; an existing one's must match).",
                      flag_values=fv)
    flags.DEFINE_integer("latency_threads", None, "LiteRT threads of a new --latency_table "
                         "(default 1; an existing one's must match).", lower_bound=1,
                         flag_values=fv)


def search_config(fv=flags.FLAGS, **overrides) -> SearchConfig:
    kw = dict(population=fv.population, sample=fv.sample, max_candidates=fv.max_candidates,
              patience=fv.patience, min_delta=fv.min_delta, alpha=fv.alpha, beta=fv.beta,
              target_std=fv.target_std, topk=fv.topk, seed_archs=tuple(fv.seed_arch),
              seed_weights=fv.seed_weights, inherit=fv.inherit,
              quality_alpha=fv.quality_alpha, quality_beta=fv.quality_beta)
    kw.update(overrides)
    if "latency" not in kw:
        kw["latency"] = latency_from_flags(fv)
    return _usage(SearchConfig, **kw)


def latency_from_flags(fv=flags.FLAGS):
    """The `--latency_table` as a `LatencyConfig` (None without one); a missing file is
    created empty (filled on demand while the search runs)."""
    if not fv.latency_table:
        if fv.latency_format or fv.latency_threads:
            raise cli.UsageError("latency_format/latency_threads: given without "
                                 "--latency_table; allowed: with --latency_table")
        return None
    from eatnas_tf.latency.config import LatencyConfig

    return _usage(LatencyConfig.from_table, fv.latency_table, fv.latency_format,
                  fv.latency_threads)


def cost_target_from_flags(fv=flags.FLAGS):
    """(cost_metric, target) of Eq. 1: `--target_latency_ms=X` is `--cost_metric=latency
    --target=X`."""
    metric, target = fv.cost_metric, fv.target
    if fv.target_latency_ms is None:
        return metric, target
    if fv.target_latency_ms <= 0:
        raise cli.UsageError(f"target_latency_ms: received {fv.target_latency_ms}; allowed "
                             "values: > 0")
    if metric not in (None, "latency"):
        raise cli.UsageError(f"target_latency_ms: given with --cost_metric={metric}; allowed: "
                             "with --cost_metric=latency or without --cost_metric")
    if target is not None:
        raise cli.UsageError("target/target_latency_ms: give at most one")
    return "latency", fv.target_latency_ms


def split_file(fv=flags.FLAGS):
    """Where a user dataset's train/val/test cut is stored (None for built-in datasets)."""
    try:
        user = sources.parse_dataset(fv.dataset).user
    except ValueError:
        return None  # DataConfig reports the bad value
    return os.path.join(fv.run_dir, SPLIT_FILE) if user else None


def strategy_options(strategy: str, fv=flags.FLAGS):
    """The strategy's own settings from its flags (None for strategies without any)."""
    if strategy == "econas":
        return _usage(econas_flags.config_from_flags, fv)
    if strategy == "epnas":
        return _usage(epnas_flags.from_flags, fv)
    return None


def space_from_flags(fv=flags.FLAGS):
    """The `--space` in `--channel_mode` (None: the space's own mode)."""
    return _usage(space_lib.get_space, fv.space, fv.channel_mode)


def stage_from_flags(name: str, fv=flags.FLAGS, **search_overrides) -> Stage:
    """The stage the flags describe; bad values raise `cli.UsageError` (one line)."""
    if not fv.run_dir:
        raise cli.UsageError("run_dir: required; allowed values: a directory path")
    space = space_from_flags(fv)
    cfg = search_config(fv, **search_overrides)
    for a in cfg.seed_archs:
        _usage(codec.parse_arch, a, **space.arch_defaults())
    if cfg.seed_weights and not cfg.seed_archs:
        raise cli.UsageError("seed_weights: given without --seed_arch; allowed: with --seed_arch")
    if fv.target is not None and fv.target <= 0:
        raise cli.UsageError(f"target: received {fv.target}; allowed values: > 0")
    data = train_flags.data_config_from_flags(fv, split="search", seed=fv.seed,
                                              split_file=split_file(fv))
    train = train_flags.train_config_from_flags(fv, seed=fv.seed)
    train_flags.check_plain_last_epochs(data, train)
    metric, target = cost_target_from_flags(fv)
    return _usage(Stage, name=name, strategy=fv.strategy, space=space, data=data, train=train,
                  config=cfg, seed=fv.seed, cost_metric=metric, target=target,
                  options=strategy_options(fv.strategy, fv))


def retrain_from_flags(fv=flags.FLAGS):
    """The top-k retraining the flags ask for, or None with --retrain_epochs=0."""
    if not fv.retrain_epochs:
        return None
    return _usage(RetrainConfig, epochs=fv.retrain_epochs,
                  learning_rate=fv.retrain_learning_rate, lr_schedule=fv.retrain_lr_schedule,
                  val_fraction=fv.retrain_val_fraction,
                  max_train_examples=fv.retrain_max_train_examples)


def experiment_from_flags(name: str, fv=flags.FLAGS, **search_overrides) -> SearchExperiment:
    """The whole experiment of a search command (`search_overrides`: `SearchConfig`
    fields the binary sets itself, e.g. the transfer's seed architecture)."""
    stage = stage_from_flags(name, fv, **search_overrides)
    exp = _usage(SearchExperiment, stage=stage, retrain=retrain_from_flags(fv),
                 parallel=fv.parallel)
    if exp.retrain is not None:
        _usage(exp.retrain.configs, stage)  # the retraining's TrainConfig is valid too
    return exp


def runtime_from_flags(fv=flags.FLAGS) -> RuntimeOptions:
    """How the search runs (not compared on resume); bad values: `cli.UsageError`."""
    if fv.ray_address and fv.executor != "ray":
        raise cli.UsageError(f"ray_address: given with --executor={fv.executor}; allowed: "
                             "with --executor=ray")
    return RuntimeOptions(run_dir=fv.run_dir, executor=fv.executor, ray_address=fv.ray_address,
                          max_worker_retries=fv.max_worker_retries,
                          worker_max_tasks=fv.worker_max_tasks, verbose=fv.verbose,
                          deterministic_ops=fv.deterministic_ops, stop_after=fv.stop_after,
                          allow_flag_change=fv.allow_flag_change)


def define_pipeline_flags(fv=flags.FLAGS) -> None:
    """The flags of `python -m eatnas_tf.run` (and `api.run`): data, candidate training and
    the pipeline's own (idempotent)."""
    if "stage1_space" in fv:
        return
    if "run_dir" not in fv:
        flags.DEFINE_string(
            "run_dir", None, "Run directory (resumed if it exists).", flag_values=fv
        )
    if "seed" not in fv:
        flags.DEFINE_integer(
            "seed", 0, "Run seed: the same seed gives the same run.", flag_values=fv
        )
    flags.DEFINE_string(
        "time_budget",
        None,
        "Wall-clock budget of search and retraining "
        "(90s, 20m, 2h, 1h30m); the export comes after it.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "space",
        "auto",
        "Stage-2 search space: auto (derived from the data) or a named one.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "stage1_space",
        "auto",
        "Stage-1 space: auto (the small task of the stage-2 space) or a named one.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "stem", None, "auto space: stem channels (default 16, 32 above 64 px).", flag_values=fv
    )
    flags.DEFINE_integer(
        "head", None, "auto space: head channels (default 256, 1280 above 64 px).", flag_values=fv
    )
    flags.DEFINE_float(
        "target_madds",
        None,
        "Eq. 1 Mult-Adds target (default: 6e6 x (image size / 28)^2).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "target_params", None, "Eq. 1 parameter target (instead of --target_madds).", flag_values=fv
    )
    flags.DEFINE_integer(
        "stage1_resolution", None, "Stage-1 image size (default: half).", flag_values=fv
    )
    flags.DEFINE_integer(
        "stage1_train_examples",
        None,
        "Stage-1 training images (default min(N, max(1000, N/10))).",
        flag_values=fv,
    )
    flags.DEFINE_integer("stage1_population", 6, "Stage-1 population P.", flag_values=fv)
    flags.DEFINE_integer("stage1_sample", 3, "Stage-1 tournament size S.", flag_values=fv)
    flags.DEFINE_integer(
        "stage1_candidates",
        None,
        "Stage-1 candidates (default 12, or until its budget share is spent).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "stage1_topk", 1, "Stage-1 models retrained for the basic model.", flag_values=fv
    )
    flags.DEFINE_integer("stage1_retrain_epochs", 2, "Stage-1 retraining epochs.", flag_values=fv)
    flags.DEFINE_integer(
        "stage2_train_examples",
        None,
        "Stage-2 training images (default min(N, max(2000, N/7))).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "stage2_population", 6, "Stage-2 population P (offspring).", flag_values=fv
    )
    flags.DEFINE_integer("stage2_sample", 3, "Stage-2 tournament size S.", flag_values=fv)
    flags.DEFINE_integer(
        "stage2_candidates",
        None,
        "Stage-2 candidates (default 12, or until its budget share is spent).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "topk", 1, "Stage-2 models retrained on all training images.", flag_values=fv
    )
    flags.DEFINE_integer(
        "retrain_epochs",
        3,
        "Final retraining epochs (at most, under a time budget).",
        flag_values=fv,
    )
    flags.DEFINE_float("retrain_learning_rate", 0.1, "Retraining peak LR (cosine).", flag_values=fv)
    flags.DEFINE_integer(
        "retrain_train_examples", None, "Cap on retraining images.", flag_values=fv
    )
    flags.DEFINE_bool(
        "transfer_weights",
        True,
        "Stage-2 offspring inherit the basic model's weights.",
        flag_values=fv,
    )
    flags.DEFINE_bool("export", True, "Export the winner (SavedModel + TFLite).", flag_values=fv)
    flags.DEFINE_integer(
        "min_steps_per_epoch", 30, "A small dataset's --batch_size is cut so an epoch has at "
        "least this many steps (0: never cut).", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("target_latency_ms", None, "Stage 2's Eq. 1 target: the predicted "
                       "latency in ms over --latency_table (instead of MAdds).",
                       flag_values=fv)
    _define_latency_table_flags(fv, "stage 2's Eq. 1 with --target_latency_ms")
    flags.DEFINE_integer("qat_epochs", 1, "Quantization-aware fine-tuning epochs.", flag_values=fv)
    flags.DEFINE_integer("qat_samples", 5000, "Images per QAT epoch.", flag_values=fv)
    flags.DEFINE_integer("verbose", 0, "Trainer verbosity per candidate.", flag_values=fv)
    flags.DEFINE_bool(
        "allow_flag_change",
        False,
        "Resume a run dir with other settings (the change is recorded in config.json).",
        flag_values=fv,
    )
    flags.DEFINE_bool("deterministic_ops", False, "TensorFlow deterministic ops.", flag_values=fv)
    train_flags.define_data_flags(fv)
    train_flags.define_train_flags(fv)
    flags.DEFINE_alias("image_size", "resolution", flag_values=fv)


def pipeline_config_from_flags(fv=flags.FLAGS):
    """The `PipelineConfig` the flags describe (bad values: `cli.UsageError`)."""
    if not fv.run_dir:
        raise cli.UsageError("run_dir: required; allowed values: a directory path")
    if fv.target_madds is not None and fv.target_params is not None:
        raise cli.UsageError("target_madds/target_params: give at most one")
    try:
        seconds = budget_lib.parse_duration(fv.time_budget) if fv.time_budget else None
        data = train_flags.data_config_from_flags(
            fv, split="search", seed=fv.seed, split_file=split_file(fv))
        train = train_flags.train_config_from_flags(fv, seed=fv.seed)
        metric = "params" if fv.target_params is not None else "madds"
        space = eat_pipeline.SpaceOptions(
            name=fv.space, stage1=fv.stage1_space, stem=fv.stem, head=fv.head,
            cost_metric=metric, target=fv.target_params or fv.target_madds)
        s1 = eat_pipeline.StageSizes(
            image_size=fv.stage1_resolution, train_examples=fv.stage1_train_examples,
            population=fv.stage1_population, sample=fv.stage1_sample,
            candidates=fv.stage1_candidates, topk=fv.stage1_topk,
            retrain_epochs=fv.stage1_retrain_epochs)
        s2 = eat_pipeline.StageSizes(
            train_examples=fv.stage2_train_examples, population=fv.stage2_population,
            sample=fv.stage2_sample, candidates=fv.stage2_candidates, topk=fv.topk,
            retrain_epochs=fv.retrain_epochs)
        return eat_pipeline.PipelineConfig(
            data=data, train=train, seed=fv.seed, space=space, stage1=s1, stage2=s2,
            retrain_learning_rate=fv.retrain_learning_rate,
            retrain_train_examples=fv.retrain_train_examples,
            transfer_weights=fv.transfer_weights, time_budget_s=seconds,
            export=eat_pipeline.ExportOptions(fv.export, fv.qat_epochs, fv.qat_samples),
            min_steps_per_epoch=fv.min_steps_per_epoch, latency=latency_from_flags(fv),
            target_latency_ms=fv.target_latency_ms)
    except ValueError as e:
        raise cli.UsageError(str(e).splitlines()[0]) from None
