"""Accuracy-vs-cost Pareto front of evaluated candidates (the report's trade-off curve).

A point is on the front when no other point is at least as accurate *and* at least as
cheap while being strictly better in one of the two. Exact ties (same accuracy, same cost)
do not dominate each other, so by default all of them stay on the front; the report can
then show every architecture that reaches that trade-off.

    >>> pts = [{"acc": 0.9, "madds": 10}, {"acc": 0.8, "madds": 20}, {"acc": 0.95, "madds": 30}]
    >>> pareto_front(pts)
    [0, 2]
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence


def finite_float(v: Any) -> Optional[float]:
    """`v` as a finite float, or None (missing, None, bool, NaN, inf, not a number)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _value(p: Mapping[str, Any], key: str) -> Optional[float]:
    """The point's value for `key` as a finite float, or None."""
    return finite_float(p.get(key)) if isinstance(p, Mapping) else None


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], maximize: str = "acc",
              minimize: str = "madds") -> bool:
    """True when `a` is no worse than `b` on both objectives and strictly better on one."""
    aa, ac, ba, bc = (
        _value(a, maximize),
        _value(a, minimize),
        _value(b, maximize),
        _value(b, minimize),
    )
    if None in (aa, ac, ba, bc):
        return False
    return aa >= ba and ac <= bc and (aa > ba or ac < bc)


def pareto_front(points: Sequence[Mapping[str, Any]], maximize: str = "acc",
                 minimize: str = "madds", *, keep_ties: bool = True) -> List[int]:
    """Indices of the non-dominated `points`, sorted by increasing cost.

    Args:
      points: dicts holding at least the two keys; points whose value for either key is
        missing, None or NaN (failed candidates) are ignored.
      maximize: key of the objective to maximise (accuracy).
      minimize: key of the objective to minimise (cost: MAdds, params, ...).
      keep_ties: keep every point of a group of exact ties (same accuracy and cost);
        False keeps only the first of them (lowest index).

    Returns:
      Indices into `points`; along the list the cost increases and the accuracy strictly
      increases (ties share a position, ordered by index). `front_records` gives the points.
    """
    valid = []
    for i, p in enumerate(points):
        acc, cost = _value(p, maximize), _value(p, minimize)
        if acc is not None and cost is not None:
            valid.append((cost, -acc, i))
    valid.sort()
    front: List[int] = []
    best = -math.inf  # best accuracy among strictly cheaper points
    j = 0
    while j < len(valid):
        cost = valid[j][0]
        group = []
        while j < len(valid) and valid[j][0] == cost:
            group.append(valid[j])
            j += 1
        top = -group[0][1]  # sorted by -acc: the first is the most accurate at this cost
        if top > best:
            members = [i for c, na, i in group if -na == top]
            front.extend(members if keep_ties else members[:1])
            best = top
    return front


def front_records(points: Sequence[Dict[str, Any]], maximize: str = "acc",
                  minimize: str = "madds", *, keep_ties: bool = True) -> List[Dict[str, Any]]:
    """The points themselves (not indices) on the front, sorted by increasing cost."""
    return [points[i] for i in pareto_front(points, maximize, minimize, keep_ties=keep_ties)]
