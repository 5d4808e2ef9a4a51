"""The EAT-NAS pipeline on any dataset (paper Fig. 1): small task → elastic transfer →
retraining → export → report, as `python -m eatnas_tf.run` and `api.run` run it.

    1. stage 1: evolution on a small task derived from the data (half the resolution, a
       subset of the images; the paper's CIFAR-10 → ImageNet idea);
    2. the basic model: top-k of the best-quality population retrained, best on validation;
    3. stage 2: elastic transfer to the full task: the population is seeded with offspring
       of the basic model (inheriting its weights with `transfer_weights`), then evolved;
    4. the winner: top-k of stage 2 retrained on the training set, best on validation,
       tested on the held-out test images;
    5. export: versioned SavedModel + TFLite files with measured latency;
    6. report: DIR/report.json, DIR/report.md, DIR/plots/, with every phase's wall time.

Rules for what the user does not set (each a `PipelineConfig` field, `None` = the rule):
  * space: `arch.auto_space.derive_space` from the data's size, channels and classes;
    stage 1's space: `auto_space.small_task` of it at `auto_space.small_size` pixels;
  * stage-1 images: min(N, max(1000, N // 10)); stage-2 images: min(N, max(2000, N // 7))
    (N = training images of the search split; the demo's 5k / 8k of 57k);
  * with a time budget (`search.budget`; it counts from the process' start) the stages
    run until their share is spent (no candidate starts that would end after it) and
    each retraining gets as many epochs (up to its setting) as its share allows at the
    images/s the search measured, or one shortened epoch when not even one fits.

Every phase resumes where it stopped when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Optional, Tuple

from eatnas_tf.arch import auto_space
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.report import sections
from eatnas_tf.search import budget as budget_lib
from eatnas_tf.search import pipeline, runner
from eatnas_tf.search.evaluate import cached_data
from eatnas_tf.search.experiment import Stage
from eatnas_tf.search.run_dir import RunDir
from eatnas_tf.search.strategy import SearchConfig
from eatnas_tf.train.config import TrainConfig

BUDGET_FILE = "budget.json"
UNBOUNDED = 100_000  # candidates of a stage under a time budget: the budget ends it
MIN_RETRAIN_STEPS = 20  # a retraining's least steps when its share holds less than an epoch
MIN_BATCH = 8  # the smallest batch `fit_batch` chooses
# A retraining is sized to this part of its share: measured on the demo (2 loaded cores,
# 5-minute budget, two runs), the final retraining (one long epoch on 57k images) trained
# at 0.66-0.74 of the steady images/s its own architecture had as a 1-epoch candidate.
RETRAIN_MARGIN = 0.65


@dataclasses.dataclass(frozen=True)
class SpaceOptions:
    """How `--space=auto` derives the space (see `arch.auto_space`).

    Attributes:
      name: a named space (`space.SPACES`) or "auto".
      stage1: stage 1's named space, or "auto" (the small task of the stage-2 space).
      stem, head: channels (None: the rule's).
      cost_metric: "madds" or "params" (Eq. 1's sub-objective).
      target: its target (None: the rule's).
    """

    name: str = "auto"
    stage1: str = "auto"
    stem: Optional[int] = None
    head: Optional[int] = None
    cost_metric: str = "madds"
    target: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class StageSizes:
    """Attributes:
      image_size: stage 1's image size (None: half the full size).
      train_examples: images of the stage (None: the rule's).
      population, sample, candidates: Alg. 1's P, S and the candidate cap (None: 6, 3, 12,
        or no cap under a time budget).
      topk, retrain_epochs: models retrained after the stage and their epochs.
    """

    image_size: Optional[int] = None
    train_examples: Optional[int] = None
    population: int = 6
    sample: int = 3
    candidates: Optional[int] = None
    topk: int = 1
    retrain_epochs: int = 2

    def __post_init__(self):
        for name in ("image_size", "train_examples", "candidates"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name}: received {v}; allowed values: >= 1 (or unset: "
                                 "the rule)")
        for name in ("population", "sample", "topk", "retrain_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: received {getattr(self, name)}; allowed values: >= 1")


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    enabled: bool = True
    qat_epochs: int = 1
    qat_samples: int = 5000


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole experiment of `python -m eatnas_tf.run` (config.json stores it).

    Attributes:
      data: the full task's data (split "search"; stage 1 and the retraining derive theirs).
      train: candidate training (1 epoch in the paper's search).
      seed: run seed.
      space: how the spaces are chosen.
      stage1, stage2: stage sizes (stage 2's `topk` / `retrain_epochs`: the final ones).
      retrain_learning_rate: peak LR of the retraining (cosine).
      retrain_train_examples: cap on the final retraining's images (None: all).
      transfer_weights: stage-2 offspring inherit the basic model's weights.
      time_budget_s: wall-clock budget of the search and retraining (None: none).
      export: what the export phase does.
      min_steps_per_epoch: a small dataset's batch is cut so an epoch has at least this
        many SGD steps (`fit_batch`; 0: the batch as given).
      latency: the latency table (`latency.config.LatencyConfig`, `--latency_table`) every
        candidate's `latency_ms` is predicted with (None: no prediction).
      target_latency_ms: stage 2's Eq. 1 sub-objective becomes the predicted latency with
        this target (needs `latency`). Stage 1 keeps its MAdds / params target: its models
        are the small task's (half the resolution), not the model that ships.
    """

    data: DataConfig
    train: TrainConfig = TrainConfig(learning_rate=0.05)
    seed: int = 0
    space: SpaceOptions = SpaceOptions()
    stage1: StageSizes = StageSizes()
    stage2: StageSizes = StageSizes(retrain_epochs=3)
    retrain_learning_rate: float = 0.1
    retrain_train_examples: Optional[int] = None
    transfer_weights: bool = True
    time_budget_s: Optional[float] = None
    export: ExportOptions = ExportOptions()
    min_steps_per_epoch: int = 30
    latency: Any = None
    target_latency_ms: Optional[float] = None

    def __post_init__(self):
        if self.target_latency_ms is not None:
            if self.latency is None:
                raise ValueError("target_latency_ms: given without a latency table; allowed: "
                                 "with --latency_table=FILE")
            if not self.target_latency_ms > 0:
                raise ValueError(f"target_latency_ms: received {self.target_latency_ms}; "
                                 "allowed values: a latency in ms > 0")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PipelineConfig":
        return cls(data=DataConfig(**d["data"]), train=TrainConfig(**d["train"]),
                   seed=d["seed"], space=SpaceOptions(**d["space"]),
                   stage1=StageSizes(**d["stage1"]), stage2=StageSizes(**d["stage2"]),
                   retrain_learning_rate=d["retrain_learning_rate"],
                   retrain_train_examples=d["retrain_train_examples"],
                   transfer_weights=d["transfer_weights"], time_budget_s=d["time_budget_s"],
                   export=ExportOptions(**d["export"]),
                   min_steps_per_epoch=d.get("min_steps_per_epoch", 0),
                   latency=_latency_config(d.get("latency")),
                   target_latency_ms=d.get("target_latency_ms"))


def _latency_config(d: Optional[Dict[str, Any]]):
    if not d:
        return None
    from eatnas_tf.latency.config import LatencyConfig  # the latency package, when used

    return LatencyConfig(**d)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The resolved stages and retraining configs of a `PipelineConfig` on its data."""

    stage1: Stage
    stage1_retrain: Tuple[DataConfig, TrainConfig]
    stage2: Stage
    retrain: Tuple[DataConfig, TrainConfig]
    num_train: int

    def describe(self) -> Dict[str, Any]:
        def pair(p):
            return {"data": dataclasses.asdict(p[0]), "train": p[1].as_dict()}

        return {"stage1": self.stage1.describe(), "stage1_retrain": pair(self.stage1_retrain),
                "stage2": self.stage2.describe(), "retrain": pair(self.retrain)}


def _spaces(cfg: PipelineConfig, bundle) -> Tuple[SearchSpace, SearchSpace, int]:
    opts = cfg.space
    h, _, c = bundle.image_shape
    if opts.name == "auto":
        full = auto_space.derive_space(image_size=h, channels=c,
                                       num_classes=bundle.num_classes, stem=opts.stem,
                                       head=opts.head, cost_metric=opts.cost_metric,
                                       target=opts.target)
    else:
        full = space_lib.get_space(opts.name)
    size = cfg.stage1.image_size or auto_space.small_size(h)
    if opts.stage1 == "auto":
        small = auto_space.small_task(full, size)
    else:
        small = space_lib.get_space(opts.stage1)
    return full, small, size


def fit_batch(num_images: int, batch_size: int, min_steps: int) -> int:
    """The batch of a phase training on `num_images`: `batch_size`, cut (not below
    `MIN_BATCH`) so one epoch has at least `min_steps` SGD steps.

    The paper's one-epoch candidate is ~390 steps on CIFAR-10; a user's folder of 320
    images at batch 128 gives 3, and a candidate (or the 5-minute winner) then stays at
    chance. Large datasets (≥ `min_steps` × `batch_size` images) keep their batch.
    """
    if min_steps <= 0 or num_images <= 0 or -(-num_images // batch_size) >= min_steps:
        return batch_size
    return max(MIN_BATCH, min(batch_size, num_images // min_steps))


def plan(cfg: PipelineConfig) -> Plan:
    """Resolves the rules on the data (loads it once; bad data raises ValueError)."""
    bundle = cached_data(cfg.data)
    n = bundle.num_train
    full, small, size = _spaces(cfg, bundle)
    budgeted = cfg.time_budget_s is not None
    n1 = cfg.stage1.train_examples or min(n, max(1000, n // 10))
    n2 = cfg.stage2.train_examples or min(n, max(2000, n // 7))
    base = dataclasses.replace(cfg.data, split="search")

    def batch(images: int) -> int:
        return fit_batch(min(images, n), cfg.data.batch_size, cfg.min_steps_per_epoch)

    d1 = dataclasses.replace(base, image_size=size, max_train_examples=n1, batch_size=batch(n1))
    d2 = dataclasses.replace(base, max_train_examples=n2, batch_size=batch(n2))
    n_final = cfg.retrain_train_examples or n
    retrain = cfg.train.replace(lr_schedule="cosine", learning_rate=cfg.retrain_learning_rate)

    def stage(name, space, data, sizes, latency_target=None):
        cands = sizes.candidates or (UNBOUNDED if budgeted else 12)
        return Stage(name=name, strategy="eat", space=space, data=data, train=cfg.train,
                     seed=cfg.seed,
                     config=SearchConfig(population=sizes.population, sample=sizes.sample,
                                         max_candidates=cands, topk=sizes.topk,
                                         latency=cfg.latency),
                     cost_metric="latency" if latency_target else None,
                     target=latency_target)

    return Plan(
        stage1=stage("stage1", small, d1, cfg.stage1),
        stage1_retrain=(dataclasses.replace(d1, split="final"),
                        retrain.replace(epochs=cfg.stage1.retrain_epochs)),
        stage2=stage("stage2", full, d2, cfg.stage2, cfg.target_latency_ms),
        retrain=(dataclasses.replace(base, split="final",
                                     max_train_examples=cfg.retrain_train_examples,
                                     batch_size=batch(n_final)),
                 retrain.replace(epochs=cfg.stage2.retrain_epochs)),
        num_train=n)


def describe(cfg: PipelineConfig, p: Plan) -> Dict[str, Any]:
    """The whole experiment as plain values: what config.json stores and a resume checks."""
    return {"pipeline": cfg.to_dict(), "plan": p.describe()}


def _retrain_size(records, share_s: Optional[float], n_images: int, k: int, max_epochs: int,
                  batch_size: int) -> Tuple[int, Optional[int]]:
    """(epochs, steps per epoch or None: full epochs) of a retraining that fit in
    `RETRAIN_MARGIN` × `share_s` at the steady images/s the stage's candidates trained at,
    after each model's fixed cost (build, tracing, evaluation: a candidate's wall time
    beyond its steady training). Up to `max_epochs` full epochs; when not even one fits,
    one epoch of as many steps as fit (at least `MIN_RETRAIN_STEPS`). Without a budget:
    `max_epochs` full epochs."""
    if share_s is None:
        return max_epochs, None
    ok = [r for r in records if r.ok and r.trained and r.train_s and r.num_train and r.epochs]
    if not ok:
        return 1, None
    # Steady images/s (training time without the first step's tracing: all images over all
    # time) and the fixed cost.
    steady = [max(r.train_s - (r.tracing_s or 0.0), 1e-3) for r in ok]
    rate = sum(r.num_train * r.epochs for r in ok) / sum(steady)
    fixed = sum(max(0.0, (r.wall_s or 0.0) - t) for r, t in zip(ok, steady)) / len(ok)
    per_model = max(0.0, RETRAIN_MARGIN * share_s / k - fixed)
    epoch_s = n_images / rate
    if per_model >= epoch_s:
        return int(min(max_epochs, per_model // epoch_s)), None
    steps = -(-n_images // batch_size)
    return 1, int(min(steps, max(MIN_RETRAIN_STEPS, per_model * rate // batch_size)))


def run(cfg: PipelineConfig, run_dir: str, *, allow_change: bool = False, verbose: int = 0,
        say: Callable[[str], None] = print,
        exporter: Optional[Callable[[str, ExportOptions], Dict[str, Any]]] = None,
        started: Optional[float] = None) -> Dict[str, Any]:
    """Runs (or resumes) the pipeline in `run_dir`; returns the report (with `winner`,
    and `export` when exported).

    Args:
      exporter: `(run_dir, options) -> summary` of the export phase (with `markdown`, the
        report.md section), given by the caller (`export.export_lib.export_run_once`: the
        export package sits above this one, so the library never imports it); None or
        `cfg.export.enabled=False`: no export.
      started: `time.monotonic()` when the process began (the command passes its start, so
        importing TensorFlow counts too); the time before the first phase (loading the
        data, planning) is charged to the budget as phase "setup" (None: from this call).
    """
    started = time.monotonic() if started is None else started
    p = plan(cfg)  # every config is resolved (validated) before the run dir is touched
    run = RunDir(run_dir)
    run.check_config(describe(cfg, p), allow_change)
    budget = budget_lib.Budget.load(run.file(BUDGET_FILE), cfg.time_budget_s)
    if not budget.finished():  # every process' start-up is spent time (not a finished rerun)
        budget.add("setup", time.monotonic() - started)

    def progress(line):
        eta = budget.eta_text()
        say(f"{line} | {eta}" if eta else line)

    def search_and_retrain(make_stage, phase, retrain, retrain_phase, what):
        """One stage's search (`make_stage()` prepares it, inside the phase's time), then
        the retraining of its top-k within their budget shares."""
        with budget.phase(phase) as ph:
            stage = make_stage()
            result = runner.run_stage(run, stage, verbose=verbose, progress=progress,
                                      deadline=ph.deadline if ph else None)
        k = stage.config.topk
        with budget.phase(retrain_phase) as ph:
            data, train = retrain
            # Decided once: a resumed retraining keeps its epochs (and LR schedule).
            epochs, steps = budget.plan(f"{retrain_phase}_size", lambda: _retrain_size(
                result.records, ph.seconds if ph else None,
                data.max_train_examples or p.num_train, k, train.epochs, data.batch_size))
            say(f"== {stage.name}: retrain top-{k} for {epochs} epochs"
                + (f" of {steps} steps (what the time budget holds)" if steps else "")
                + f" -> {what}")
            rows = pipeline.retrain_topk(run, result, data,
                                         train.replace(epochs=epochs, steps_per_epoch=steps),
                                         k, verbose=1)
        return result, rows

    s1 = p.stage1
    say(f"== stage 1: EAT evolution on the small task ({s1.space.macro.image_size} px, "
        f"{s1.data.max_train_examples} images, batch {s1.data.batch_size}, space "
        f"{s1.space.name})"
        + (f", time budget {cfg.time_budget_s:.0f} s" if cfg.time_budget_s else ""))
    r1_stage, r1 = search_and_retrain(lambda: s1, "stage1_search", p.stage1_retrain,
                                      "stage1_retrain", "the basic model")
    basic = pipeline.pick_winner(r1)
    say(f"basic model: {basic['arch']} val_acc {basic['val_acc']:.4f}")
    s2 = p.stage2
    say(f"== stage 2: elastic transfer to the full task ({s2.space.macro.image_size} px, "
        f"{s2.data.max_train_examples} images, batch {s2.data.batch_size}), seeded with "
        "offspring of the basic model")

    def stage2():  # the basic model's weights: part of stage 2's time
        seed_weights = pipeline.basic_seed_weights(run, basic) if cfg.transfer_weights else None
        return dataclasses.replace(p.stage2, config=dataclasses.replace(
            p.stage2.config, seed_archs=(basic["arch"],), seed_weights=seed_weights))

    r2_stage, r2 = search_and_retrain(stage2, "stage2_search", p.retrain, "retrain",
                                      "the winner")
    s2 = r2_stage.stage
    winner = pipeline.pick_winner(r2)

    bundle = cached_data(cfg.data)

    def write_report(extra_export=None):
        phases = {f"{k}_s": v for k, v in budget.spent.items()}
        extra = {"basic_model": basic, "phases_s": phases,
                 "time_budget_s": cfg.time_budget_s, "dataset": cfg.data.dataset,
                 "class_names": list(getattr(bundle, "class_names", ()) or ()),
                 "bad_files": getattr(bundle, "bad_files", None),
                 "spaces": {"stage1": dataclasses.asdict(s1.space),
                            "stage2": dataclasses.asdict(s2.space)}}
        extra.update({f"{k}_wall_s": v for k, v in budget.spent.items()})
        if extra_export is not None:
            extra["export"] = extra_export
        return pipeline.finish(run, [r1_stage, r2_stage], winner=winner, retrained=r1 + r2,
                               wall_s=budget.spent_s(), extra=extra,
                               stage_extra={"stage1": {"retrain_s":
                                                       budget.spent.get("stage1_retrain")}})

    t = time.monotonic()
    report = write_report()
    if "report" not in budget.spent:  # the report's time (plots) is spent time too
        budget.add("report", time.monotonic() - t)
    if cfg.export.enabled and exporter is not None:
        say("== export: SavedModel + TFLite (fp32, fp16, int8, QAT) with latency")
        t = time.perf_counter()
        exported = exporter(run.path, cfg.export)
        if "export" not in budget.spent:
            budget.add("export", time.perf_counter() - t)
        report = write_report({k: v for k, v in exported.items() if k != "markdown"})
        sections.replace_section(run.file("report.md"), "## Export", exported["markdown"])
    w = report["winner"]
    lines = ", ".join(f"{k} {v:.0f} s" for k, v in budget.spent.items())
    say(f"== done in {budget.spent_s():.0f} s ({lines})\n"
        f"   winner {w['arch']}: params {w['params']:,}, MAdds {w['madds']:,}, "
        f"test accuracy {w['test_accuracy']:.4f}\n   report: {run.file('report.md')}")
    return report
