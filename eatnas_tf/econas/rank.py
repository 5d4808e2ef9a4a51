"""Rank consistency between a proxy's accuracies and a reference's (EcoNAS §3.2, A2).

    spearman(ref_acc, proxy_acc)   # Eq. 1: 1 - 6 sum d_i^2 / (K (K^2 - 1)), via scipy
    kendall(ref_acc, proxy_acc)    # Kendall tau-b, via scipy
    tolerant_spearman(ref_acc, proxy_acc, b=0.0015)   # A2's variant

Inputs are accuracies of the same K models in the same order (fractions in [0, 1]);
a higher accuracy is a better (smaller) rank.

The tolerant variant (A2): "if the absolute accuracy difference of two models [is] within
an interval b in both original and reduced setting, they will be considered as having no
ranking difference" (b = 0.15% in the paper). Our reading, which is exact for the standard
coefficient: a model's rank is 1 + the number of models above it, so its rank difference is
d_i = sum_j ([ref_j > ref_i] - [proxy_j > proxy_i]); the tolerant d_i leaves out every pair
(i, j) whose accuracy gap is <= b in both settings, and Eq. 1 is applied to those d_i.
With b = 0 and no ties it equals `spearman`; b >= every gap gives 1.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from scipy import stats

PAPER_TOLERANCE = 0.0015  # b = 0.15 % accuracy (A2)


def _pair(a: Sequence[float], b: Sequence[float]):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"accuracies: received shapes {a.shape} and {b.shape}; allowed values: "
                         "two 1-D sequences of the same length")
    if len(a) < 2:
        raise ValueError(f"accuracies: received {len(a)} models; allowed values: at least 2")
    return a, b


def spearman(ref: Sequence[float], proxy: Sequence[float]) -> float:
    """Spearman's rho (EcoNAS Eq. 1; ties get average ranks)."""
    a, b = _pair(ref, proxy)
    return float(stats.spearmanr(a, b).statistic)


def kendall(ref: Sequence[float], proxy: Sequence[float]) -> float:
    """Kendall's tau-b."""
    a, b = _pair(ref, proxy)
    return float(stats.kendalltau(a, b).statistic)


def rank_differences(ref: Sequence[float], proxy: Sequence[float],
                     tolerance: float = 0.0) -> np.ndarray:
    """d_i of every model (see the module docstring), pairs within `tolerance` in both
    settings left out."""
    a, b = _pair(ref, proxy)
    above_ref = (a[None, :] > a[:, None]).astype(np.int64)   # [i, j]: j above i
    above_px = (b[None, :] > b[:, None]).astype(np.int64)
    keep = ~((np.abs(a[None, :] - a[:, None]) <= tolerance)
             & (np.abs(b[None, :] - b[:, None]) <= tolerance))
    return ((above_ref - above_px) * keep).sum(axis=1)


def tolerant_spearman(ref: Sequence[float], proxy: Sequence[float],
                      tolerance: float = PAPER_TOLERANCE) -> float:
    """EcoNAS A2's tolerant Spearman coefficient (b = `tolerance`, accuracy fraction)."""
    if tolerance < 0:
        raise ValueError(f"tolerance: received {tolerance}; allowed values: >= 0")
    d = rank_differences(ref, proxy, tolerance)
    k = len(d)
    return float(1.0 - 6.0 * float((d ** 2).sum()) / (k * (k * k - 1)))


def top_retained(ref: Sequence[float], proxy: Sequence[float], top: int = 10,
                 within: int = 15) -> int:
    """EcoNAS §5.3, Fig. 9: how many of the reference's top-`top` models are in the proxy's
    top-`within` (ties broken by position)."""
    a, b = _pair(ref, proxy)
    top_ref = set(np.argsort(-a, kind="stable")[:top].tolist())
    top_px = set(np.argsort(-b, kind="stable")[:within].tolist())
    return len(top_ref & top_px)


def consistency(ref: Sequence[float], proxy: Sequence[float],
                tolerance: float = PAPER_TOLERANCE) -> Dict[str, float]:
    """All the coefficients at once (the calibration table's columns); `top_retained` scales
    the paper's top-10-in-15 of 50 models to K models (K/5 within 3K/10)."""
    k = len(ref)
    return {"spearman": spearman(ref, proxy), "kendall": kendall(ref, proxy),
            "tolerant_spearman": tolerant_spearman(ref, proxy, tolerance),
            "top_retained": top_retained(ref, proxy, max(1, k // 5), max(1, (3 * k) // 10))}
