"""Runs one search stage in a run directory: propose → evaluate → score → store → observe.

Resume by replay: the strategy is rebuilt from its seed and fed the stored records of
this stage in order; as long as the i-th proposal matches the i-th stored candidate
(same canonical hash) no training happens. After the last stored record the search goes
on with fresh evaluations, so an interrupted run and an uninterrupted one with the same
seed produce the same `candidates.jsonl`. A kill -9 loses at most the candidate in flight.

    stage = Stage("search", "eat", space, data_cfg, train_cfg, SearchConfig(...), seed=0)
    result = run_stage(RunDir("runs/x"), stage)

The runner is the only part of a search that writes to the run directory: records,
weights of possible parents, the weights a strategy hands its proposals
(`Proposal.inherited_weights`), the strategy's state and its state files.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from eatnas_tf.arch import codec
from eatnas_tf.model import weights_io
from eatnas_tf.record import CandidateRecord, Status
from eatnas_tf.record import load as load_records
from eatnas_tf.search import objective
from eatnas_tf.search.evaluate import EvalRequest, EvalResult
from eatnas_tf.search.executors import LocalExecutor
from eatnas_tf.search.experiment import Stage
from eatnas_tf.search.run_dir import TB, RunDir, RunDirError
from eatnas_tf.search.strategy import Proposal, RunContext, Strategy, make_strategy
from eatnas_tf.store import atomic
from eatnas_tf.train import hparams

SHARED = "shared"  # weights a strategy handed to a proposal (removed once it is stored)


class ResumeMismatch(RunDirError):
    """The stored candidates were not produced by these settings."""


@dataclasses.dataclass
class StageResult:
    stage: Stage
    strategy: Strategy
    records: List[CandidateRecord]
    wall_s: float
    evaluated: int

    def summary(self) -> Dict[str, Any]:
        ok = [r for r in self.records if r.ok]
        s = self.strategy.summary()
        return {
            "name": self.stage.name, "strategy": self.stage.strategy,
            "space": self.stage.space.name, "dataset": self.stage.data.dataset,
            # What reads an encoding of this stage back (a derived space has no name to
            # look up; a named one may be in another channel mode than its default).
            "arch_defaults": self.stage.space.arch_defaults(),
            "macro": dataclasses.asdict(self.stage.space.macro),
            "image_size": self.stage.data.image_size, "candidates": len(self.records),
            "trained": sum(1 for r in self.records if r.trained),
            "failed": len(self.records) - len(ok),
            "candidate_epochs": sum(r.candidate_epochs for r in self.records),
            "wall_s": self.wall_s,
            "candidate_wall_s": sum(r.wall_s for r in self.records),
            "best_val_acc": max((r.val_acc for r in ok), default=None),
            "best_score": max((r.score for r in ok), default=None),
            "best_quality": s.get("best_quality"), "converged_at": s.get("converged_at"),
            "cost_metric": self.stage.metric, "target": self.stage.target_value,
        }


def candidate_seed(seed: int, cid: int) -> int:
    return (seed * 1_000_003 + cid) % (2 ** 31)


def _score(stage: Stage, record: CandidateRecord) -> Optional[float]:
    if not record.ok or record.val_acc is None:
        return None
    return objective.score(record.val_acc, record.metric(stage.metric), stage.target_value,
                           stage.config.alpha, stage.config.beta)


def stored_weights_path(run: RunDir, cid: int) -> str:
    """The weights file of candidate `cid` (a duplicate's: its source's)."""
    src = run.candidates()[cid].get("duplicate_of")
    return run.weights_path(cid if src is None else src)


def run_context(run: RunDir, strategy: Strategy) -> RunContext:
    """What `strategy` may read of `run` (see `RunContext`)."""
    return RunContext(weights_path=lambda cid: stored_weights_path(run, cid),
                      cache_dir=run.file(strategy.name),
                      read_file=lambda name: atomic.read_json(run.file(strategy.name, name)))


def run_stage(run: RunDir, stage: Stage, *, executor=None, verbose: int = 0,
              progress: Optional[Callable[[str], None]] = print,
              tensorboard: bool = True, max_new: Optional[int] = None,
              parallel: int = 1, deadline: Optional[float] = None) -> StageResult:
    """Runs (or resumes) `stage` in `run` until the strategy finishes.

    Args:
      executor: evaluates `EvalRequest`s (default: `LocalExecutor`); see `search.executors`.
      parallel: K proposals per step (`strategy.propose_batch(K)`: K tournaments before any
        of them is observed), evaluated together by the executor; records are stored and
        observed in proposal order, so the result depends only on the seed and K.
      verbose: passed to the trainer.
      progress: called with one line per candidate (None: silent).
      tensorboard: write per-candidate curves (per step and per epoch), the HParams table
        and the stage's curves over candidates (`hparams.SearchScalars`) under `tb/<stage>/`.
      max_new: stop after this many *new* evaluations (tests: simulate an interruption).
      deadline: `time.monotonic()` by which the stage ends (a time budget's share): no new
        batch is proposed that would end after it at the mean candidate time so far (at
        least one candidate is always evaluated); a later run with more time resumes it.
    """
    if parallel < 1:
        raise ValueError(f"parallel: received {parallel}; allowed values: >= 1")
    t_start = time.perf_counter()
    executor = executor or LocalExecutor(verbose=verbose)
    strategy = make_strategy(stage.strategy, stage.space, stage.config,
                             random.Random(f"{stage.seed}:{stage.name}"), options=stage.options)
    strategy.bind(run_context(run, strategy))
    prior = [r for r in load_records(run.candidates()) if r.stage == stage.name]
    tb_root = os.path.join(run.file(TB), stage.name)
    if tensorboard:
        hparams.write_config(tb_root)
    loop = _Loop(run, stage, strategy, executor, tb_root if tensorboard else None, progress)
    replayed = new = 0
    stopped = False
    t_new = 0.0
    while not strategy.finished() and not stopped:
        # A spent budget ends the stage, once it has at least one candidate to hand on:
        # no new batch starts that would end (at the mean time of a candidate so far)
        # after the deadline; what the stage leaves goes to the later phases.
        if (deadline is not None and replayed >= len(prior) and replayed + new >= 1
                and time.monotonic() + parallel * _mean_s(t_new, new, prior) >= deadline):
            if progress:
                progress(f"[{stage.name}] time budget of the stage spent after "
                         f"{replayed + new} candidates")
            break
        batch = strategy.propose_batch(parallel)
        if not batch:
            break
        start = replayed + new
        records: List[Optional[CandidateRecord]] = [
            _replayed(run, stage, prior[start + j], p) if start + j < len(prior) else None
            for j, p in enumerate(batch)]
        todo = [j for j, r in enumerate(records) if r is None]
        if max_new is not None and len(todo) > max_new - new:
            todo, stopped = todo[:max(0, max_new - new)], True
        if todo:
            t0 = time.monotonic()
            fresh = loop.evaluate([batch[j] for j in todo])
            t_new += time.monotonic() - t0
            for j, record in zip(todo, fresh):
                records[j] = record
                new += 1
                if progress:
                    eta = _eta_s(t_new / new, stage.config.max_candidates - (start + j + 1),
                                 deadline)
                    progress(_progress_line(stage, record, start + j + 1) + f" | ETA {eta}")
        for j, record in enumerate(records):
            if record is None:  # max_new reached inside the batch
                break
            if start + j < len(prior):
                replayed += 1
            loop.observe(record, fresh=start + j >= len(prior))
            if start + j >= len(prior):
                # the batch's records not observed yet keep their weights too
                loop.store_state(pending=[r.id for r in records[j + 1:] if r is not None])
    loop.close()
    if replayed and progress:
        progress(f"[{stage.name}] resumed: {replayed} stored candidates replayed, {new} new")
    records = [r for r in load_records(run.candidates()) if r.stage == stage.name]
    return StageResult(stage=stage, strategy=strategy, records=records,
                       wall_s=time.perf_counter() - t_start, evaluated=new)


def _replayed(run: RunDir, stage: Stage, record: CandidateRecord,
              proposal: Proposal) -> CandidateRecord:
    h = codec.canonical_hash(proposal.arch)
    if record.hash != h:
        raise ResumeMismatch(
            f"{run.path}: stored candidate {record.id} of stage {stage.name} is "
            f"{record.arch}, these settings propose {codec.to_text(proposal.arch)}; resume "
            "with the flags, seed and --parallel the run was started with")
    return record


class _Loop:
    """The runner's per-stage state: turns proposals into stored records and keeps the
    run directory's weights, checkpoints and state in step with the strategy."""

    def __init__(self, run: RunDir, stage: Stage, strategy: Strategy, executor,
                 tb_root: Optional[str], progress):
        self.run, self.stage, self.strategy, self.executor = run, stage, strategy, executor
        self.tb_root = tb_root
        # the stage's curves over candidates (quality, best / mean accuracy): tb/<stage>/search
        self.scalars = hparams.SearchScalars(tb_root) if tb_root else None
        self.by_hash: Dict[str, CandidateRecord] = {}

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, proposals: List[Proposal]) -> List[CandidateRecord]:
        """Prepares the proposals' requests (ids in proposal order), runs them together on
        the executor, then stores every record in proposal order."""
        first = len(self.run.candidates())
        prepared = [self._prepare(p, first + j) for j, p in enumerate(proposals)]
        reqs = [req for _, req in prepared if req is not None]
        results = iter(self.executor.run(reqs) if reqs else [])
        out = []
        for (record, req), proposal in zip(prepared, proposals):
            if req is not None:
                record = self._finish(record, req, next(results), proposal)
            out.append(self._store(record, proposal, req))
        return out

    def _prepare(self, proposal: Proposal,
                 cid: int) -> Tuple[CandidateRecord, Optional[EvalRequest]]:
        """(the record's lineage, the request to run) or (a final record, None)."""
        run, stage, strategy = self.run, self.stage, self.strategy
        h = codec.canonical_hash(proposal.arch)
        base = CandidateRecord(id=cid, stage=stage.name, arch=codec.to_text(proposal.arch),
                               hash=h, origin=proposal.origin, parent=proposal.parent,
                               info=dict(proposal.info))
        # A continuation (EcoNAS promotion) trains the same architecture further on purpose.
        dup = self.by_hash.get(h) if proposal.continue_from is None else None
        if dup is not None:
            # Never train an architecture twice: reuse the stored result.
            return dup.replace(id=cid, stage=base.stage, arch=base.arch, hash=h,
                               origin=base.origin, parent=base.parent, info=base.info,
                               duplicate_of=dup.id, wall_s=0.0, inherit=None), None
        parent_weights, parent_arch = proposal.parent_weights, proposal.parent_arch
        if proposal.inherited_weights is not None:
            parent_weights = weights_io.save(run.file(SHARED, f"{cid:05d}.npz"),
                                             proposal.inherited_weights)
        if proposal.parent is not None:
            parent_rec = CandidateRecord.from_json(run.candidates()[proposal.parent])
            path = stored_weights_path(run, proposal.parent)
            parent_weights = path if os.path.exists(path) else None
            parent_arch = parent_rec.spec(stage.space)
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
            src = CandidateRecord.from_json(run.candidates()[proposal.continue_from])
            checkpoint, seed = src.checkpoint, src.seed if src.seed is not None else seed
            if not checkpoint or not os.path.exists(os.path.join(run.file(checkpoint),
                                                                 "state.json")):
                return CandidateRecord.failure(
                    f"no checkpoint of c{proposal.continue_from:05d} to continue from",
                    **_lineage(base), epochs=train_cfg.epochs,
                    continue_from=proposal.continue_from), None
        elif strategy.keeps_checkpoints:
            checkpoint = os.path.join("ckpt", f"{cid:05d}")
        may_be_parent = stage.config.inherit and strategy.inherits_weights
        req = EvalRequest(
            arch=proposal.arch, space=stage.space, data=stage.data, train=train_cfg,
            seed=seed, parent_weights=parent_weights, parent_arch=parent_arch,
            save_weights=run.weights_path(cid) if may_be_parent else None,
            log_dir=os.path.join(self.tb_root, f"c{cid:05d}") if self.tb_root else None,
            checkpoint_dir=run.file(checkpoint) if checkpoint else None)
        req = strategy.adapt_request(req, proposal)  # e.g. EcoNAS' reduced-setting proxy
        lineage = base.replace(parent_weights=parent_weights, checkpoint=checkpoint,
                               continue_from=proposal.continue_from if checkpoint else None)
        return lineage, req

    def _finish(self, lineage: CandidateRecord, req: EvalRequest, result: EvalResult,
                proposal: Proposal) -> CandidateRecord:
        record = result.record.replace(**_lineage(lineage),
                                       parent_weights=lineage.parent_weights,
                                       checkpoint=lineage.checkpoint,
                                       continue_from=lineage.continue_from)
        record = _with_latency(self.stage, record, proposal)
        record = record.replace(resource=record.metric(self.stage.metric))
        return record.replace(score=_score(self.stage, record))

    def _store(self, record: CandidateRecord, proposal: Proposal,
               req: Optional[EvalRequest]) -> CandidateRecord:
        assert len(self.run.candidates()) == record.id
        stored = CandidateRecord.from_json(self.run.append(record.to_json()))
        shared = self.run.file(SHARED, f"{stored.id:05d}.npz")
        if os.path.exists(shared):
            os.remove(shared)
        if req is not None and req.log_dir and stored.ok:
            hparams.log_candidate(req.log_dir, {**hparams.arch_hparams(proposal.arch),
                                                "stage": self.stage.name,
                                                "origin": proposal.origin},
                                  {k: stored.metric(k) for k in hparams.DEFAULT_METRICS},
                                  trial_id=f"{self.stage.name}/c{stored.id:05d}")
        return stored

    # -- after each record ------------------------------------------------------------------
    def observe(self, record: CandidateRecord, fresh: bool = True) -> None:
        """Feeds `record` to the strategy; `fresh`: evaluated by this process (a replayed
        one's TensorBoard points were written by the process that evaluated it)."""
        if record.ok and record.trained:
            self.by_hash.setdefault(record.hash, record)
        self.strategy.observe(record)
        if self.scalars is not None:
            self.scalars.add(record, self.strategy.history(), write=fresh)

    def close(self) -> None:
        if self.scalars is not None:
            self.scalars.close()

    def store_state(self, pending: List[int]) -> None:
        """Prunes weights and checkpoints no live candidate needs, writes the strategy's
        files and the search state."""
        run, strategy = self.run, self.strategy
        stored = load_records(run.candidates())
        live = set(strategy.live_ids()) | set(pending)
        run.prune_weights(live | {stored[k].duplicate_of for k in live if k < len(stored)}
                          - {None})
        _prune_checkpoints(run, {stored[k].checkpoint for k in live if k < len(stored)}
                           - {None})
        for name, obj in strategy.state_files().items():
            atomic.write_json(run.file(strategy.name, name), obj)
        run.write_state({"stage": self.stage.name, "summary": strategy.summary(),
                         "history": strategy.history()[-1:],
                         "strategy_state": strategy.state_dict(),
                         "candidates": len(stored)})


def _with_latency(stage: Stage, record: CandidateRecord, proposal: Proposal) -> CandidateRecord:
    """`record` with the predicted latency of the proposed (full) architecture at the
    stage's input size, when the stage has a latency table (EcoNAS' proxies train reduced
    models; the latency is the searched model's)."""
    cfg = stage.config.latency
    if cfg is None:
        return record
    from eatnas_tf.latency import config as latency_config

    macro = stage.space.macro
    if stage.data.image_size:
        macro = macro.with_(image_size=stage.data.image_size)
    return record.replace(latency_ms=latency_config.predict_ms(cfg, proposal.arch, macro))


def _lineage(base: CandidateRecord) -> Dict[str, Any]:
    return {k: getattr(base, k) for k in ("id", "stage", "arch", "hash", "origin", "parent",
                                         "info")}


def _prune_checkpoints(run: RunDir, keep) -> None:
    """Removes kept checkpoints (`ckpt/NNNNN`) that no live candidate can continue."""
    root = run.file("ckpt")
    if not os.path.isdir(root):
        return
    keep = {os.path.normpath(k) for k in keep}
    for name in os.listdir(root):
        if os.path.normpath(os.path.join("ckpt", name)) not in keep:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _mean_s(t_new: float, new: int, prior: List[CandidateRecord]) -> float:
    """Mean seconds of a candidate: this process' new ones, else the stored ones'."""
    if new:
        return t_new / new
    walls = [r.wall_s for r in prior if r.trained and r.wall_s]
    return sum(walls) / len(walls) if walls else 0.0


def _eta_s(per_candidate: float, left: int, deadline: Optional[float]) -> str:
    """The stage's remaining time: candidates left × mean time so far, capped by the
    deadline of a time budget."""
    eta = per_candidate * max(0, left)
    if deadline is not None:
        eta = min(eta, max(0.0, deadline - time.monotonic()))
    eta = int(round(eta))
    return f"{eta // 60}m{eta % 60:02d}s" if eta >= 60 else f"{eta}s"


def _progress_line(stage: Stage, r: CandidateRecord, n: int) -> str:
    if r.status is not Status.OK:
        return f"[{stage.name}] #{n} c{r.id:05d} FAILED {r.reason}"
    dup = f" (= c{r.duplicate_of:05d})" if not r.trained else ""
    inh = f" | {r.inherit_summary}" if r.inherit_summary else ""
    return (f"[{stage.name}] #{n}/{stage.config.max_candidates} c{r.id:05d} "
            f"{r.origin:<9} val_acc {r.val_acc:.4f} score {r.score:.4f} "
            f"{stage.metric} {r.metric(stage.metric):,} {r.wall_s:.1f}s{dup}{inh}")
