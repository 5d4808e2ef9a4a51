"""The train/val/test cut of a user source, made once and stored in `split_file`.

Rules (`split_seed` seeds both):

  given       the source has a test split (folder `train/` + `test/`, a tfds test or
              validation split): val is cut from train exactly as for the built-in
              datasets (`round(n * val_fraction)` examples of one seeded permutation,
              not stratified), unless the source also gives a val split.
  stratified  no test split: per class (in label order, one RandomState), a seeded
              permutation; `max(1, round(n_c * test_fraction))` examples go to test,
              `max(1, round((n_c - test) * val_fraction))` to val, the rest to train.
              Every class needs at least one example in each part, or ValueError.

The train part is kept in a seeded order whose prefix is the `sample_fraction` /
`max_train_examples` subset (sorted back to the examples' order when used).

`split_file` (JSON, format 1) stores the example ids of each part, the rule, seed and
fractions. When the file exists it is used as it is (whatever the current fractions), so
search, retraining, export and a resumed run see the same images; ids that no longer
match the source's examples (files added, removed or renamed) are a ValueError.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

FORMAT = 1
PARTS = ("train", "val", "test")


@dataclasses.dataclass
class Cut:
    rule: str
    parts: Dict[str, np.ndarray]   # positions into the source's examples, stored order
    reused: bool = False


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def make_cut(labels: np.ndarray, given: Optional[Sequence[str]], class_names: Sequence[str], *,
             seed: int, val_fraction: float, test_fraction: float, spec: str) -> Cut:
    """A new cut of the examples (see the module docstring)."""
    labels = np.asarray(labels, np.int64)
    if given is not None:
        g = np.asarray(given)
        pool = np.flatnonzero(g == "train")
        test = np.flatnonzero(g == "test")
        val_given = np.flatnonzero(g == "val")
        perm = np.random.RandomState(seed).permutation(len(pool))
        if len(val_given):
            return Cut("given", {"train": pool[perm], "val": val_given, "test": test})
        n_val = int(round(len(pool) * val_fraction))
        if len(pool) - n_val < 1:
            raise ValueError(f"dataset: {spec}: the train split has {len(pool)} images; "
                             "too few for a validation part")
        return Cut("given", {"train": pool[perm[n_val:]], "val": pool[perm[:n_val]], "test": test})
    rng = np.random.RandomState(seed)
    parts: Dict[str, List[np.ndarray]] = {p: [] for p in PARTS}
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        n = len(pos)
        n_test = max(1, _round_half_up(n * test_fraction)) if test_fraction > 0 else 0
        n_val = max(1, _round_half_up((n - n_test) * val_fraction)) if val_fraction > 0 else 0
        if n - n_test - n_val < 1:
            need = 1 + (test_fraction > 0) + (val_fraction > 0)
            raise ValueError(f"dataset: {spec}: class {class_names[c]!r} has {n} usable image(s); "
                             f"the train/val/test cut needs at least {need} per class")
        p = pos[rng.permutation(n)]
        parts["test"].append(p[:n_test])
        parts["val"].append(p[n_test:n_test + n_val])
        parts["train"].append(p[n_test + n_val:])
    out = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    out["train"] = out["train"][rng.permutation(len(out["train"]))]
    out["val"] = np.sort(out["val"])
    out["test"] = np.sort(out["test"])
    return Cut("stratified", out)


def load_cut(path: str, ids: Sequence[str], spec: str) -> Cut:
    """The cut stored in `path`, mapped onto the current example ids."""
    try:
        with open(path) as f:
            d = json.load(f)
        stored = {p: list(d[p]) for p in PARTS}
        rule = str(d["rule"])
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"split_file: {path} is not a stored split ({e}); delete it to cut "
                         "the data again") from None
    where = {s: i for i, s in enumerate(ids)}
    all_stored = [s for p in PARTS for s in stored[p]]
    missing = [s for s in all_stored if s not in where]
    new = sorted(set(ids) - set(all_stored))
    if missing or new or len(all_stored) != len(ids):
        first = (f"first missing: {missing[0]}" if missing else "") + \
            ("; " if missing and new else "") + (f"first new: {new[0]}" if new else "")
        raise ValueError(f"split_file: {path} was cut from other data than {spec} "
                         f"({len(all_stored)} stored, {len(ids)} now; {first or 'duplicates'}); "
                         "use a new run directory or delete the file")
    return Cut(rule, {p: np.asarray([where[s] for s in stored[p]], np.int64) for p in PARTS},
               reused=True)


def save_cut(path: str, cut: Cut, ids: Sequence[str], *, spec: str, seed: int,
             val_fraction: float, test_fraction: float) -> None:
    """Writes the cut atomically (the directory is created when missing)."""
    from eatnas_tf.store import atomic

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    d = {"format": FORMAT, "dataset": spec, "rule": cut.rule, "split_seed": seed,
         "val_fraction": val_fraction, "test_fraction": test_fraction,
         "num_examples": int(sum(len(v) for v in cut.parts.values())),
         **{p: [ids[i] for i in cut.parts[p]] for p in PARTS}}
    atomic.write_json(path, d, indent=None, sort_keys=False)


def resolve_cut(ids: Sequence[str], labels: np.ndarray, given, class_names, *,
                split_file: Optional[str], seed: int, val_fraction: float,
                test_fraction: float, spec: str) -> Cut:
    """The stored cut when `split_file` exists, else a new one (stored when `split_file` is set)."""
    if split_file and os.path.exists(split_file):
        return load_cut(split_file, ids, spec)
    cut = make_cut(labels, given, class_names, seed=seed, val_fraction=val_fraction,
                   test_fraction=test_fraction, spec=spec)
    if split_file:
        save_cut(split_file, cut, ids, spec=spec, seed=seed, val_fraction=val_fraction,
                 test_fraction=test_fraction)
    return cut
