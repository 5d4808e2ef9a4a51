"""Runs one search stage in a run directory: propose → evaluate → score → store → observe.

Resume by replay: the strategy is rebuilt from its seed and fed the stored records of
this stage in order; as long as the i-th proposal matches the i-th stored candidate
(same canonical hash) no training happens. After the last stored record the search goes
on with fresh evaluations, so an interrupted run and an uninterrupted one with the same
seed produce the same `candidates.jsonl`. A kill -9 loses at most the candidate in flight.

    stage = Stage("search", "eat", space, data_cfg, train_cfg, SearchConfig(...), seed=0)
    result = run_stage(RunDir("runs/x"), stage)
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
from typing import Any, Callable, Dict, List, Optional

from eatnas_tf.arch import codec
from eatnas_tf.arch.space import SearchSpace
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.search import objective
from eatnas_tf.search.evaluate import EvalRequest, EvalResult, evaluate
from eatnas_tf.search.run_dir import TB, RunDir, RunDirError
from eatnas_tf.search.strategy import Proposal, SearchConfig, Strategy, make_strategy
from eatnas_tf.train import hparams
from eatnas_tf.train.config import TrainConfig


class ResumeMismatch(RunDirError):
    """The stored candidates were not produced by these settings."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One search stage.

    Attributes:
      name: stage name stored with every record ("search", "stage1", "stage2").
      strategy: registered strategy name ("eat", "random", "econas", "epnas").
      space: the search space.
      data, train: candidate data and training settings.
      config: strategy settings.
      seed: run seed; the strategy's RNG is `Random(f"{seed}:{name}")` and candidate i
        trains with seed `seed * 1_000_003 + i`.
      cost_metric, target: Eq. 1's sub-objective (None: the space's).
    """

    name: str
    strategy: str
    space: SearchSpace
    data: DataConfig
    train: TrainConfig
    config: SearchConfig
    seed: int = 0
    cost_metric: Optional[str] = None
    target: Optional[float] = None

    @property
    def metric(self) -> str:
        return self.cost_metric or self.space.cost_metric

    @property
    def target_value(self) -> float:
        return float(self.target or self.space.target)

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "strategy": self.strategy, "space": self.space.name,
                "data": dataclasses.asdict(self.data), "train": self.train.as_dict(),
                "search": dataclasses.asdict(self.config), "seed": self.seed,
                "cost_metric": self.metric, "target": self.target_value}


class LocalExecutor:
    """Evaluates requests one after another in this process."""

    def __init__(self, verbose: int = 0, strategy=None):
        self.verbose = verbose
        self.tf_strategy = strategy

    def run(self, requests: List[EvalRequest]) -> List[EvalResult]:
        return [evaluate(r, verbose=self.verbose, strategy=self.tf_strategy) for r in requests]


@dataclasses.dataclass
class StageResult:
    stage: Stage
    strategy: Strategy
    records: List[Dict[str, Any]]
    wall_s: float
    evaluated: int

    def summary(self) -> Dict[str, Any]:
        ok = [r for r in self.records if r["status"] == "ok"]
        s = self.strategy.summary()
        return {
            "name": self.stage.name, "strategy": self.stage.strategy,
            "space": self.stage.space.name, "dataset": self.stage.data.dataset,
            "image_size": self.stage.data.image_size, "candidates": len(self.records),
            "trained": sum(1 for r in self.records if r.get("duplicate_of") is None),
            "failed": len(self.records) - len(ok),
            # A record that continued a checkpoint (EcoNAS promotion) trained only the
            # epochs after the one it resumed from.
            "candidate_epochs": sum(r.get("epochs", 0) - (r.get("resumed_from_epoch") or 0)
                                    for r in self.records if r.get("duplicate_of") is None),
            "wall_s": self.wall_s,
            "candidate_wall_s": sum(r.get("wall_s", 0.0) for r in self.records),
            "best_val_acc": max((r["val_acc"] for r in ok), default=None),
            "best_score": max((r["score"] for r in ok), default=None),
            "best_quality": s.get("best_quality"), "converged_at": s.get("converged_at"),
            "cost_metric": self.stage.metric, "target": self.stage.target_value,
        }


def candidate_seed(seed: int, cid: int) -> int:
    return (seed * 1_000_003 + cid) % (2 ** 31)


def _score(stage: Stage, record: Dict[str, Any]) -> Optional[float]:
    if record.get("status") != "ok" or record.get("val_acc") is None:
        return None
    return objective.score(record["val_acc"], record[stage.metric], stage.target_value,
                           stage.config.alpha, stage.config.beta)


def _log(progress, msg):
    if progress:
        progress(msg)


def run_stage(run: RunDir, stage: Stage, *, executor=None, verbose: int = 0,
              progress: Optional[Callable[[str], None]] = print,
              tensorboard: bool = True, max_new: Optional[int] = None) -> StageResult:
    """Runs (or resumes) `stage` in `run` until the strategy finishes.

    Args:
      executor: evaluates `EvalRequest`s (default: `LocalExecutor`).
      verbose: passed to the trainer.
      progress: called with one line per candidate (None: silent).
      tensorboard: write per-candidate curves and the HParams table under `tb/<stage>/`.
      max_new: stop after this many *new* evaluations (tests: simulate an interruption).
    """
    t_start = time.perf_counter()
    executor = executor or LocalExecutor(verbose=verbose)
    strategy = make_strategy(stage.strategy, stage.space, stage.config,
                             random.Random(f"{stage.seed}:{stage.name}"))
    if hasattr(strategy, "bind_run"):  # strategies that keep files in the run dir (EPNAS)
        strategy.bind_run(run)
    everything = run.candidates()
    prior = [r for r in everything if r.get("stage") == stage.name]
    by_hash = {}
    tb_root = os.path.join(run.file(TB), stage.name)
    if tensorboard:
        hparams.write_config(tb_root)
    replayed = new = 0
    while not strategy.finished():
        proposal = strategy.propose()
        if proposal is None:
            break
        h = codec.canonical_hash(proposal.arch)
        i = replayed + new
        if i < len(prior):
            record = prior[i]
            if record["hash"] != h:
                raise ResumeMismatch(
                    f"{run.path}: stored candidate {record['id']} of stage {stage.name} is "
                    f"{record['arch']}, these settings propose {codec.to_text(proposal.arch)}; "
                    "resume with the flags and seed the run was started with")
            replayed += 1
        else:
            if max_new is not None and new >= max_new:
                break
            record = _evaluate_one(run, stage, strategy, proposal, h, by_hash, executor,
                                   tensorboard, tb_root)
            new += 1
            _log(progress, _progress_line(stage, record, len(strategy.records) + 1))
        if record.get("status") == "ok" and record.get("duplicate_of") is None:
            by_hash.setdefault(record["hash"], record)
        strategy.observe(record)
        if i >= len(prior):
            live = strategy.live_ids()
            stored = run.candidates()
            run.prune_weights(set(live) | {stored[j].get("duplicate_of") for j in live
                                           if j < len(stored)} - {None})
            _prune_checkpoints(run, {stored[j].get("checkpoint") for j in live
                                     if j < len(stored)} - {None})
            run.write_state({"stage": stage.name, "summary": strategy.summary(),
                             "history": strategy.history()[-1:],
                             "strategy_state": strategy.state_dict(),
                             "candidates": len(run.candidates())})
    if replayed and progress:
        _log(progress, f"[{stage.name}] resumed: {replayed} stored candidates replayed, "
                       f"{new} new")
    records = [r for r in run.candidates() if r.get("stage") == stage.name]
    return StageResult(stage=stage, strategy=strategy, records=records,
                       wall_s=time.perf_counter() - t_start, evaluated=new)


def _evaluate_one(run: RunDir, stage: Stage, strategy: Strategy, proposal: Proposal, h: str,
                  by_hash: Dict[str, Dict[str, Any]], executor, tensorboard: bool,
                  tb_root: str) -> Dict[str, Any]:
    cid = len(run.candidates())
    text = codec.to_text(proposal.arch)
    base = {"id": cid, "stage": stage.name, "arch": text, "hash": h, "origin": proposal.origin,
            "parent": proposal.parent, "info": dict(proposal.info)}
    # A continuation (EcoNAS promotion) trains the same architecture further on purpose.
    dup = by_hash.get(h) if proposal.continue_from is None else None
    if dup is not None:
        # Never train an architecture twice: reuse the stored result.
        record = {k: v for k, v in dup.items() if k not in base}
        record.update(base, duplicate_of=dup["id"], wall_s=0.0, inherit=None)
        return run.append(record)
    parent_weights, parent_arch = proposal.parent_weights, proposal.parent_arch
    if proposal.parent is not None:
        parent_rec = run.candidates()[proposal.parent]
        src = parent_rec.get("duplicate_of")
        path = run.weights_path(proposal.parent if src is None else src)
        parent_weights = path if os.path.exists(path) else None
        parent_arch = parent_rec["arch"]
    train_cfg = stage.train
    if proposal.epochs:
        train_cfg = train_cfg.replace(epochs=proposal.epochs)
    if proposal.train_overrides:
        train_cfg = train_cfg.replace(**dict(proposal.train_overrides))
    # Per-epoch checkpoints: kept for strategies that continue a candidate later
    # (`keeps_checkpoints`); a continuation resumes the source record's checkpoint with
    # the source's seed, so E then E more epochs equals a straight 2E run.
    seed, checkpoint = candidate_seed(stage.seed, cid), None
    if proposal.continue_from is not None:
        src = run.candidates()[proposal.continue_from]
        checkpoint, seed = src.get("checkpoint"), src.get("seed", seed)
        if not checkpoint or not os.path.exists(os.path.join(run.file(checkpoint), "state.json")):
            return run.append(dict(base, status="failed", val_acc=None, score=None,
                                   epochs=train_cfg.epochs, wall_s=0.0, inherit=None,
                                   continue_from=proposal.continue_from,
                                   reason=f"no checkpoint of c{proposal.continue_from:05d} "
                                          "to continue from"))
    elif getattr(strategy, "keeps_checkpoints", False):
        checkpoint = os.path.join("ckpt", f"{cid:05d}")
    req = EvalRequest(
        arch=text, space=stage.space.name, data=stage.data, train=train_cfg,
        seed=seed, parent_weights=parent_weights,
        parent_arch=parent_arch,
        save_weights=run.weights_path(cid) if _may_be_parent(strategy) else None,
        log_dir=os.path.join(tb_root, f"c{cid:05d}") if tensorboard else None,
        checkpoint_dir=run.file(checkpoint) if checkpoint else None)
    adapt = getattr(strategy, "adapt_request", None)  # e.g. EcoNAS' reduced-setting proxy
    if adapt is not None:
        req = adapt(req, proposal)
    result = executor.run([req])[0]
    record = dict(result.record)
    record.update(base)
    if checkpoint:
        record.update(checkpoint=checkpoint, continue_from=proposal.continue_from)
    record["parent_weights"] = parent_weights
    record["resource"] = record.get(stage.metric)
    record["score"] = _score(stage, record)
    stored = run.append(record)
    if tensorboard and stored["status"] == "ok":
        hparams.log_candidate(req.log_dir, {**hparams.arch_hparams(proposal.arch),
                                            "stage": stage.name, "origin": proposal.origin},
                              {k: stored.get(k) for k in hparams.DEFAULT_METRICS},
                              trial_id=f"{stage.name}/c{cid:05d}")
    return stored


def _prune_checkpoints(run: RunDir, keep) -> None:
    """Removes kept checkpoints (`ckpt/NNNNN`) that no live candidate can continue."""
    root = run.file("ckpt")
    if not os.path.isdir(root):
        return
    keep = {os.path.normpath(k) for k in keep}
    for name in os.listdir(root):
        if os.path.normpath(os.path.join("ckpt", name)) not in keep:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _may_be_parent(strategy: Strategy) -> bool:
    return strategy.config.inherit and strategy.name != "random"


def _progress_line(stage: Stage, r: Dict[str, Any], n: int) -> str:
    if r["status"] != "ok":
        return f"[{stage.name}] #{n} c{r['id']:05d} FAILED {r.get('reason')}"
    dup = f" (= c{r['duplicate_of']:05d})" if r.get("duplicate_of") is not None else ""
    inh = f" | {r['inherit_summary']}" if r.get("inherit_summary") else ""
    return (f"[{stage.name}] #{n}/{stage.config.max_candidates} c{r['id']:05d} "
            f"{r['origin']:<9} val_acc {r['val_acc']:.4f} score {r['score']:.4f} "
            f"{stage.metric} {r[stage.metric]:,} {r['wall_s']:.1f}s{dup}{inh}")


def load_history(run: RunDir, stage_result: StageResult) -> List[Dict[str, Any]]:
    return [dict(row, stage=stage_result.stage.name) for row in stage_result.strategy.history()]


