"""The saliency metrics as plain definitions: one map at a time, NumPy, float64, no caches or threads.

What :mod:`attnlab.metrics.saliency` computes (the ``pysaliency`` variant, AUC-Judd without jitter), written
to be read: the fast kernels are held equal to these by ``tests/test_saliency_reference.py``, and these to
pysaliency. Arguments: ``s`` the predicted map (H×W), ``counts`` the fixation count of every pixel (H×W),
``q`` the human density (H×W), ``baseline`` the baseline map (H×W), ``negatives`` the shuffled-AUC
negatives as counts per pixel (H×W). Degenerate inputs as documented there: a constant prediction scores
NSS 0, CC 0 and AUCs 0.5; no fixation → NaN; a human density without data (all 0 or all NaN) → NaN.
"""

from __future__ import annotations

import numpy as np

from attnlab.metrics.maps import MIT_EPS

__all__ = ["density", "nss", "cc", "kld", "sim", "information_gain", "auc_judd", "auc_shuffled", "METRICS"]


def density(s: np.ndarray) -> np.ndarray:
    """pysaliency's density of a map: negatives shifted up by the minimum, divided by the sum (all 0 → uniform)."""
    s = np.asarray(s, dtype=np.float64).ravel()
    shifted = s - min(s.min(), 0.0)
    total = shifted.sum()
    return shifted / total if total > 0 else np.full(s.size, 1.0 / s.size)


def _no_data(q: np.ndarray) -> bool:
    return bool(np.all(np.isnan(q)) or np.nansum(q) == 0)


def nss(s: np.ndarray, counts: np.ndarray) -> float:
    """Mean z-score (std with ddof 0) of the map at the fixations, each fixation counted."""
    s, w = np.asarray(s, np.float64).ravel(), np.asarray(counts, np.float64).ravel()
    if w.sum() == 0:
        return float("nan")
    std = s.std()
    if s.max() == s.min() or std == 0:
        return 0.0
    return float(np.sum(w * (s - s.mean()) / std) / w.sum())


def cc(s: np.ndarray, q: np.ndarray) -> float:
    """Pearson correlation of the map and the human density."""
    s, q = np.asarray(s, np.float64).ravel(), np.asarray(q, np.float64).ravel()
    if _no_data(q):
        return float("nan")
    if s.max() == s.min() or q.max() == q.min():
        return 0.0
    ds, dq = s - s.mean(), q - q.mean()
    return float(np.mean(ds * dq) / (np.sqrt(np.mean(ds * ds)) * np.sqrt(np.mean(dq * dq))))


def kld(s: np.ndarray, q: np.ndarray, eps: float = MIT_EPS) -> float:
    """Σ Q log(ε + Q / (P + ε)) of the two densities (MIT's ε; lower is better)."""
    if _no_data(np.asarray(q, np.float64)):
        return float("nan")
    p, qd = density(s), density(q)
    return float(np.sum(qd * np.log(eps + qd / (p + eps))))


def sim(s: np.ndarray, q: np.ndarray) -> float:
    """Σ min(P, Q) of the two densities."""
    if _no_data(np.asarray(q, np.float64)):
        return float("nan")
    return float(np.minimum(density(s), density(q)).sum())


def information_gain(s: np.ndarray, counts: np.ndarray, baseline: np.ndarray, eps: float = MIT_EPS) -> float:
    """Bits per fixation of the map's density over the baseline's, each fixation counted."""
    w = np.asarray(counts, np.float64).ravel()
    if w.sum() == 0:
        return float("nan")
    at = w > 0
    gain = np.log2(eps + density(s)[at]) - np.log2(eps + density(baseline)[at])
    return float(np.sum(w[at] * gain) / w.sum())


def _trapezoid(fpr: np.ndarray, tpr: np.ndarray) -> float:
    x, y = np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def auc_judd(s: np.ndarray, counts: np.ndarray) -> float:
    """ROC area with the map's values at the fixated pixels as thresholds: the share of fixations (counted)
    at or above each against the share of the other pixels at or above it (pysaliency ``AUC_Judd``)."""
    s, w = np.asarray(s, np.float64).ravel(), np.asarray(counts, np.float64).ravel()
    if w.sum() == 0:
        return float("nan")
    if s.max() == s.min():
        return 0.5
    fixated = w > 0
    others = np.sort(s[~fixated])
    thresholds = np.sort(s[fixated])[::-1]
    tpr = np.array([w[fixated][s[fixated] >= t].sum() for t in thresholds]) / w.sum()
    fpr = (others.size - np.searchsorted(others, thresholds, side="left")) / max(others.size, 1)
    return _trapezoid(fpr, tpr)


def auc_shuffled(s: np.ndarray, counts: np.ndarray, negatives: np.ndarray) -> float:
    """P(map at a fixation > map at a negative) + ½ P(equal), both counted (pysaliency's shuffled AUC)."""
    s = np.asarray(s, np.float64).ravel()
    w, nw = np.asarray(counts, np.float64).ravel(), np.asarray(negatives, np.float64).ravel()
    if w.sum() == 0 or nw.sum() == 0:
        return float("nan")
    if s.max() == s.min():
        return 0.5
    pos, neg = s[w > 0], s[nw > 0]
    above = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(w[w > 0] @ above @ nw[nw > 0] / (w.sum() * nw.sum()))


# name → (definition, the target it compares the map with)
METRICS = {
    "AUC_Judd": (auc_judd, "fixations"),
    "sAUC": (auc_shuffled, "fixations+negatives"),
    "NSS": (nss, "fixations"),
    "CC": (cc, "density"),
    "KLD": (kld, "density"),
    "SIM": (sim, "density"),
    "IG": (information_gain, "fixations+baseline"),
}
