"""What happens around a search stage: top-k retraining, the elastic transfer's seed, the
winner artifact and the run report (EAT-NAS paper Fig. 1).

    s1 = runner.run_stage(run, stage1)
    top = retrain_topk(run, s1, final_data, retrain_cfg, k=2)      # the basic model
    basic = pick_winner(top)
    seed = basic_seed_weights(run, basic)          # weights of the basic model, as npz
    s2 = runner.run_stage(run, stage2_seeded_with(basic, seed))
    ...
    finish(run, [s1, s2], winner=..., wall_s=...)   # winner/, report.json, report.md

Every step is resumable: retraining resumes from its per-epoch checkpoint and a finished
retraining is never repeated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional

from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.model import artifact, layer_weights, weights_io
from eatnas_tf.record import CandidateRecord
from eatnas_tf.report import pareto as pareto_lib
from eatnas_tf.report import search_report
from eatnas_tf.search.run_dir import TB, RunDir
from eatnas_tf.search.runner import StageResult
from eatnas_tf.store import atomic
from eatnas_tf.train import retrain_lib
from eatnas_tf.train.config import TrainConfig

WINNER_DIR = "winner"
RETRAIN_DIR = "retrain"


def retrain_dir(run: RunDir, stage: str, cid: int) -> str:
    return run.file(RETRAIN_DIR, stage, f"c{cid:05d}")


def retrain_topk(run: RunDir, result: StageResult, data: DataConfig, train: TrainConfig,
                 k: int, *, verbose: int = 1,
                 progress: Optional[Callable[[str], None]] = print) -> List[Dict[str, Any]]:
    """Fully retrains the top-k of the stage's best-quality population (paper: k = 8).

    Returns one row per model: search and retrained metrics plus `model_dir`.
    """
    rows = []
    top = result.strategy.topk(k)
    for rank, rec in enumerate(top, start=1):
        out = retrain_dir(run, result.stage.name, rec.id)
        if progress:
            progress(f"[{result.stage.name}] retrain {rank}/{len(top)}: c{rec.id:05d} "
                     f"{rec.arch} (search val_acc {rec.val_acc:.4f})")
        # curves under DIR/tb/retrain/<stage>/cNNNNN: `tensorboard --logdir DIR/tb` shows them
        r = retrain_lib.retrain(rec.spec(result.stage.space), result.stage.space, data, train,
                                out, verbose=verbose,
                                log_dir=run.file(TB, "retrain", result.stage.name,
                                                 f"c{rec.id:05d}"))
        rows.append({**search_row(result.stage.name, rec),
                     "val_acc": r.get("val_acc"), "test_acc": r.get("test_acc"),
                     "params": r["params"], "madds": r["madds"], "epochs": r.get("epochs"),
                     "wall_s": r.get("wall_s"),
                     "model_dir": os.path.relpath(os.path.join(out, retrain_lib.MODEL_DIR),
                                                  run.path)})
    return rows


def search_row(stage: str, rec: CandidateRecord) -> Dict[str, Any]:
    """A top-k row of the report for a searched (not retrained) candidate."""
    return {"id": rec.id, "stage": stage, "arch": rec.arch, "search_val_acc": rec.val_acc,
            "score": rec.score, "params": rec.params, "madds": rec.madds, "model_dir": None}


def pick_winner(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The best retrained model by held-out validation accuracy (test accuracy only when
    the retraining had no validation part), ties to the earlier candidate."""
    if not rows:
        raise ValueError("no retrained model to pick from (every candidate failed?)")
    key = "val_acc" if all(r.get("val_acc") is not None for r in rows) else "test_acc"
    return max(rows, key=lambda r: (r.get(key) or 0.0, -r["id"]))


def basic_seed_weights(run: RunDir, winner: Dict[str, Any], name: str = "basic_weights.npz") -> str:
    """Writes the basic model's retrained weights as a weights file the next stage's
    offspring inherit from; returns its path."""
    return artifact_weights(os.path.join(run.path, winner["model_dir"]), run.file(name))


def artifact_weights(model_dir: str, path: str) -> str:
    """Saves the weights of a model artifact (`model.artifact`) as a weights file."""
    if not os.path.exists(path):
        import keras

        model, _ = artifact.load(model_dir)
        weights = layer_weights.get(model)
        del model
        keras.backend.clear_session()
        weights_io.save(path, weights)
    return path


def install_winner(run: RunDir, winner: Dict[str, Any]) -> str:
    """Copies the winner's model artifact to `DIR/winner/` (what export reads)."""
    dst = run.file(WINNER_DIR)
    src = os.path.join(run.path, winner["model_dir"])
    tmp = os.path.join(tempfile.mkdtemp(prefix=".tmp_winner_", dir=run.path), "model")
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    atomic.publish_dir(tmp, dst)
    shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)
    return dst


def pareto_rows(records: List[CandidateRecord],
                retrained: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The accuracy-vs-MAdds Pareto front of a stage's ok candidates; retrained members
    carry their `model_dir` (export turns those into deployable files)."""
    ok = [r for r in records if r.ok and r.trained]
    pts = [{"acc": r.val_acc, "madds": r.madds, "rec": r} for r in ok]
    front = pareto_lib.pareto_front(pts, maximize="acc", minimize="madds")
    by_id = {r["id"]: r for r in retrained}
    out = []
    for p in front:
        p = pts[p] if isinstance(p, int) else p
        r = p["rec"]
        out.append({"id": r.id, "arch": r.arch, "val_acc": r.val_acc, "madds": r.madds,
                    "params": r.params,
                    "model_dir": by_id[r.id]["model_dir"] if r.id in by_id else None})
    return out


def finish(run: RunDir, results: List[StageResult], *, winner: Optional[Dict[str, Any]],
           retrained: List[Dict[str, Any]], wall_s: float, extra: Optional[Dict[str, Any]] = None,
           stage_extra: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Writes `winner/`, `report.json`, `report.md` and the plots; returns the report."""
    last = results[-1]
    stages = []
    for r in results:
        s = r.summary()
        s.update((stage_extra or {}).get(r.stage.name, {}))
        stages.append(s)
    report: Dict[str, Any] = {
        "space": last.stage.space.name, "strategy": last.stage.strategy, "seed": last.stage.seed,
        "wall_s": wall_s, "stages": stages, "topk": retrained,
        "pareto": pareto_rows(last.records, [t for t in retrained
                                             if t["stage"] == last.stage.name]),
        "winner": None,
    }
    if winner is not None:
        install_winner(run, winner)
        report["winner"] = {"arch": winner["arch"], "params": winner["params"],
                            "madds": winner["madds"], "test_accuracy": winner.get("test_acc"),
                            "val_acc": winner.get("val_acc"), "id": winner["id"],
                            "stage": winner["stage"], "source": "retrain",
                            "model_dir": WINNER_DIR}
    report.update(extra or {})
    candidates = run.candidates()
    winner_id = winner["id"] if winner else None
    candidates = [dict(c, winner=True) if c["id"] == winner_id else c for c in candidates]
    history = []
    for r in results:
        history += [dict(row, stage=r.stage.name) for row in r.strategy.history()]
    out = search_report.write_report(run.path, report, candidates, history)
    return out if isinstance(out, dict) else report


