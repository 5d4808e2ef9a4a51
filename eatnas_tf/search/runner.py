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
from eatnas_tf.search.evaluate import EvalRequest, EvalResult, evaluate  # noqa: F401
from eatnas_tf.search.executors import LocalExecutor  # noqa: F401 - moved; kept importable here
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
              tensorboard: bool = True, max_new: Optional[int] = None,
              parallel: int = 1) -> StageResult:
    """Runs (or resumes) `stage` in `run` until the strategy finishes.

    Args:
      executor: evaluates `EvalRequest`s (default: `LocalExecutor`); see `search.executors`.
      parallel: K proposals per step (`strategy.propose_batch(K)`: K tournaments before any
        of them is observed), evaluated together by the executor; records are stored and
        observed in proposal order, so the result depends only on the seed and K. K=1 is
        the sequential propose → observe loop.
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
    if parallel < 1:
        raise ValueError(f"parallel: received {parallel}; allowed values: >= 1")
    replayed = new = 0
    stopped = False
    while not strategy.finished() and not stopped:
        if parallel == 1:
            proposal = strategy.propose()
            batch = [] if proposal is None else [proposal]
        else:
            batch = [p for p in strategy.propose_batch(parallel) if p is not None]
        if not batch:
            break
        start = replayed + new
        hashes = [codec.canonical_hash(p.arch) for p in batch]
        records: List[Optional[Dict[str, Any]]] = [None] * len(batch)
        for j, (proposal, h) in enumerate(zip(batch, hashes)):
            if start + j < len(prior):
                record = prior[start + j]
                if record["hash"] != h:
                    raise ResumeMismatch(
                        f"{run.path}: stored candidate {record['id']} of stage {stage.name} is "
                        f"{record['arch']}, these settings propose "
                        f"{codec.to_text(proposal.arch)}; resume with the flags, seed and "
                        "--parallel the run was started with")
                records[j] = record
        todo = [j for j in range(len(batch)) if records[j] is None]
        if max_new is not None and len(todo) > max_new - new:
            todo, stopped = todo[:max(0, max_new - new)], True
        if todo:
            fresh = _evaluate_batch(run, stage, strategy, [batch[j] for j in todo],
                                    [hashes[j] for j in todo], by_hash, executor,
                                    tensorboard, tb_root)
            for j, record in zip(todo, fresh):
                records[j] = record
                new += 1
                _log(progress, _progress_line(stage, record, start + j + 1))
        for j, record in enumerate(records):
            if record is None:  # max_new reached inside the batch
                break
            i = start + j
            if i < len(prior):
                replayed += 1
            if record.get("status") == "ok" and record.get("duplicate_of") is None:
                by_hash.setdefault(record["hash"], record)
            strategy.observe(record)
            if i >= len(prior):
                # the batch's records not observed yet keep their weights too
                live = list(strategy.live_ids()) + [r["id"] for r in records[j + 1:] if r]
                stored = run.candidates()
                run.prune_weights(set(live) | {stored[k].get("duplicate_of") for k in live
                                               if k < len(stored)} - {None})
                _prune_checkpoints(run, {stored[k].get("checkpoint") for k in live
                                         if k < len(stored)} - {None})
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
    return _evaluate_batch(run, stage, strategy, [proposal], [h], by_hash, executor,
                           tensorboard, tb_root)[0]


def _evaluate_batch(run: RunDir, stage: Stage, strategy: Strategy, proposals: List[Proposal],
                    hashes: List[str], by_hash: Dict[str, Dict[str, Any]], executor,
                    tensorboard: bool, tb_root: str) -> List[Dict[str, Any]]:
    """Prepares the proposals' requests (ids in proposal order), runs them together on the
    executor, then appends every record in proposal order."""
    first = len(run.candidates())
    prepared = [_prepare(run, stage, strategy, p, h, by_hash, first + j, tensorboard, tb_root)
                for j, (p, h) in enumerate(zip(proposals, hashes))]
    reqs = [x[1] for x in prepared if x[0] == "request"]
    results = iter(executor.run(reqs) if reqs else [])
    out = []
    for j, item in enumerate(prepared):
        assert len(run.candidates()) == first + j
        if item[0] == "record":
            out.append(run.append(item[1]))
        else:
            out.append(_finish(run, stage, proposals[j], item[1], item[2], next(results),
                               tensorboard))
    return out


def _prepare(run: RunDir, stage: Stage, strategy: Strategy, proposal: Proposal, h: str,
             by_hash: Dict[str, Dict[str, Any]], cid: int, tensorboard: bool = True,
             tb_root: str = ""):
    """("record", record to store as is) or ("request", EvalRequest, context)."""
    text = codec.to_text(proposal.arch)
    base = {"id": cid, "stage": stage.name, "arch": text, "hash": h, "origin": proposal.origin,
            "parent": proposal.parent, "info": dict(proposal.info)}
    # A continuation (EcoNAS promotion) trains the same architecture further on purpose.
    dup = by_hash.get(h) if proposal.continue_from is None else None
    if dup is not None:
        # Never train an architecture twice: reuse the stored result.
        record = {k: v for k, v in dup.items() if k not in base}
        record.update(base, duplicate_of=dup["id"], wall_s=0.0, inherit=None)
        return ("record", record)
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
            return ("record", dict(base, status="failed", val_acc=None, score=None,
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
    return ("request", req, {"base": base, "checkpoint": checkpoint,
                             "parent_weights": parent_weights})


def _finish(run: RunDir, stage: Stage, proposal: Proposal, req: EvalRequest,
            ctx: Dict[str, Any], result: EvalResult, tensorboard: bool) -> Dict[str, Any]:
    base, checkpoint, parent_weights = ctx["base"], ctx["checkpoint"], ctx["parent_weights"]
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
                              trial_id=f"{stage.name}/c{stored['id']:05d}")
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


