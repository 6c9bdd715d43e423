"""Scanpath metrics: compare a predicted scanpath with a human one.

A scanpath is a :class:`attnlab.data.fixations.Scanpath` or an n×2 / n×3 array of (x, y[, duration
ms]) in pixels of an image of ``image_size`` = (height, width). Every function compares ONE pair;
:func:`score_against_humans` averages a metric over all human scanpaths of an image.

=========================================  ======================================================
function                                   definition (reference)
=========================================  ======================================================
``string_edit_distance(a, b, size, 4)``    Damerau–Levenshtein distance (unrestricted, as nltk's
                                           ``edit_distance(transpositions=True)`` used by FixaTons)
                                           between grid-cell strings on a 4×4 grid (raw count)
``string_edit_similarity(...)``            1 − distance / max(len a, len b)  ∈ [0, 1]
``scanmatch(a, b, size, ...)``             ScanMatch (Cristino et al. 2010) as in FixaTons: 14×8
                                           bins, optional TempBin repetition (50 ms) when both have
                                           durations, substitution = Threshold(3.5) − bin distance,
                                           gap 0, Needleman–Wunsch; score = max F / (3.5 · max len)
``multimatch(a, b, size, ...)``            five dimensions, = ``multimatch_gaze`` (see
                                           :mod:`attnlab.metrics.multimatch`)
``dtw(a, b, size=None)``                   dynamic time warping: cheapest monotone alignment summing
                                           Euclidean fixation distances; divided by the image
                                           diagonal when ``size`` is given
``time_delay_embedding(pred, human, k)``   for each k-window of ``pred``: min over human k-windows of
                                           ‖per-fixation distances‖₂ / k; mean ("mean") or max
                                           ("hausdorff") over windows, in px (FixaTons)
``scaled_time_delay_embedding(...)``       coordinates / max(H, W); mean over k = 1..min len of
                                           exp(−TDE_k)  ∈ (0, 1] (FixaTons)
``sequence_score(pred, human, clusters)``  Yang et al. 2020: fixations → nearest mean-shift cluster
                                           of the image's human fixations; Needleman–Wunsch with
                                           match 1, mismatch 0, gap 0; / max len  ∈ [0, 1]
=========================================  ======================================================

Grid cells: column = floor(x · gx / W), row = floor(y · gy / H), clipped to the grid (FixaTons uses
integer cell sizes W // gx, which puts the last pixels of non-divisible widths outside the grid).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np

from attnlab.metrics.multimatch import MULTIMATCH_DIMENSIONS, multimatch

__all__ = [
    "as_fixations",
    "grid_string",
    "damerau_levenshtein",
    "string_edit_distance",
    "string_edit_similarity",
    "scanmatch",
    "multimatch",
    "dtw",
    "time_delay_embedding",
    "scaled_time_delay_embedding",
    "fit_fixation_clusters",
    "FixationClusters",
    "sequence_score",
    "needleman_wunsch",
    "score_against_humans",
    "MULTIMATCH_DIMENSIONS",
]


def as_fixations(s) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(n×2 xy float array, durations or None) of a Scanpath or an n×2/n×3 array."""
    if hasattr(s, "x") and hasattr(s, "y"):
        return np.stack([np.asarray(s.x, float), np.asarray(s.y, float)], 1), getattr(s, "duration", None)
    a = np.asarray(s, dtype=float)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"a scanpath must be a Scanpath or an n×2/n×3 array (x, y[, duration]); got shape {a.shape}")
    return a[:, :2], (a[:, 2] if a.shape[1] > 2 else None)


def grid_string(s, image_size: tuple[int, int], grid: tuple[int, int] = (4, 4)) -> list[int]:
    """Grid-cell index (row · gx + column) of each fixation; ``grid`` = (gx, gy) cells."""
    xy, _ = as_fixations(s)
    h, w = image_size
    gx, gy = grid
    col = np.clip(np.floor(xy[:, 0] * gx / w), 0, gx - 1).astype(int)
    row = np.clip(np.floor(xy[:, 1] * gy / h), 0, gy - 1).astype(int)
    return (row * gx + col).tolist()


def damerau_levenshtein(a: Sequence, b: Sequence) -> int:
    """Unrestricted Damerau–Levenshtein distance (insert, delete, substitute, transpose; cost 1)."""
    n, m = len(a), len(b)
    big = n + m
    d = np.zeros((n + 2, m + 2), dtype=np.int64)
    d[0, :] = big
    d[:, 0] = big
    d[1:, 1] = np.arange(n + 1)
    d[1, 1:] = np.arange(m + 1)
    last_row: dict = {}
    for i in range(1, n + 1):
        last_col = 0
        for j in range(1, m + 1):
            i1, j1 = last_row.get(b[j - 1], 0), last_col
            cost = 0 if a[i - 1] == b[j - 1] else 1
            if cost == 0:
                last_col = j
            d[i + 1, j + 1] = min(
                d[i, j] + cost,
                d[i + 1, j] + 1,
                d[i, j + 1] + 1,
                d[i1, j1] + (i - i1 - 1) + 1 + (j - j1 - 1),
            )
        last_row[a[i - 1]] = i
    return int(d[n + 1, m + 1])


def string_edit_distance(a, b, image_size: tuple[int, int], grid: int | tuple[int, int] = 4) -> int:
    """Raw edit distance between the grid strings of two scanpaths (FixaTons convention)."""
    grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
    return damerau_levenshtein(grid_string(a, image_size, grid), grid_string(b, image_size, grid))


def string_edit_similarity(a, b, image_size: tuple[int, int], grid: int | tuple[int, int] = 4) -> float:
    """1 − edit distance / max length (1 = same cell sequence); NaN if both are empty."""
    n = max(len(as_fixations(a)[0]), len(as_fixations(b)[0]))
    if n == 0:
        return float("nan")
    return 1.0 - string_edit_distance(a, b, image_size, grid) / n


def needleman_wunsch(
    a: Sequence[int],
    b: Sequence[int],
    substitution: Callable[[np.ndarray, np.ndarray], np.ndarray] | np.ndarray,
    gap: float = 0.0,
) -> np.ndarray:
    """The Needleman–Wunsch score matrix F ((n+1)×(m+1)); ``substitution[a_i, b_j]`` scores a pair."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    n, m = len(a), len(b)
    sub = (
        substitution(a[:, None], b[None, :])
        if callable(substitution)
        else np.asarray(substitution)[a[:, None], b[None, :]]
    )
    f = np.zeros((n + 1, m + 1))
    f[:, 0] = gap * np.arange(n + 1)
    f[0, :] = gap * np.arange(m + 1)
    for i in range(1, n + 1):
        row, prev = f[i], f[i - 1]
        diag = prev[:-1] + sub[i - 1]
        up = prev[1:] + gap
        best = np.maximum(diag, up)
        # the left move depends on the cell just computed: a short scan along the row
        for j in range(1, m + 1):
            row[j] = max(best[j - 1], row[j - 1] + gap)
    return f


def _scanmatch_sequence(xy: np.ndarray, dur: Optional[np.ndarray], image_size, bins, temporal_bin) -> np.ndarray:
    h, w = image_size
    xb, yb = bins
    x = np.clip(np.floor(np.clip(xy[:, 0], 0, w - 1)).astype(int) * xb // w, 0, xb - 1)
    y = np.clip(np.floor(np.clip(xy[:, 1], 0, h - 1)).astype(int) * yb // h, 0, yb - 1)
    seq = y * xb + x
    if temporal_bin and dur is not None:
        # ScanMatch: one symbol per temporal bin of the (integer ms) duration
        repeats = np.round(np.floor(np.clip(dur, 0, None)) / temporal_bin).astype(int)
        seq = np.repeat(seq, repeats)
    return seq


def scanmatch(
    a,
    b,
    image_size: tuple[int, int],
    bins: tuple[int, int] = (14, 8),
    temporal_bin: float = 50.0,
    threshold: float = 3.5,
    gap: float = 0.0,
) -> float:
    """ScanMatch similarity (FixaTons defaults: 14×8 bins, TempBin 50 ms, Threshold 3.5, gap 0).

    Temporal binning is used only when both scanpaths have durations (``temporal_bin=0`` turns it
    off). Returns NaN when a sequence is empty.
    """
    (xa, da), (xb_, db) = as_fixations(a), as_fixations(b)
    tb = temporal_bin if (da is not None and db is not None) else 0
    sa = _scanmatch_sequence(xa, da, image_size, bins, tb)
    sb = _scanmatch_sequence(xb_, db, image_size, bins, tb)
    if len(sa) == 0 or len(sb) == 0:
        return float("nan")
    xbins = bins[0]
    ca = np.stack([sa % xbins, sa // xbins], 1)
    cb = np.stack([sb % xbins, sb // xbins], 1)
    # substitution = |distance − max distance| − (max distance − threshold) = threshold − distance
    dist = np.hypot(ca[:, None, 0] - cb[None, :, 0], ca[:, None, 1] - cb[None, :, 1])
    max_dist = math.hypot(bins[0] - 1, bins[1] - 1)
    sub = np.abs(dist - max_dist) - (max_dist - threshold)
    f = needleman_wunsch(np.arange(len(sa)), np.arange(len(sb)), sub, gap)
    max_sub = abs(0 - max_dist) - (max_dist - threshold)
    return float(f.max() / (max_sub * max(len(sa), len(sb))))


def dtw(a, b, image_size: tuple[int, int] | None = None) -> float:
    """Dynamic time warping distance (sum of aligned Euclidean distances), / diagonal if sized."""
    xa, _ = as_fixations(a)
    xb, _ = as_fixations(b)
    if len(xa) == 0 or len(xb) == 0:
        return float("nan")
    cost = np.linalg.norm(xa[:, None, :] - xb[None, :, :], axis=2)
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    value = float(acc[n, m])
    if image_size is not None:
        value /= math.hypot(*image_size)
    return value


def _windows(xy: np.ndarray, k: int) -> np.ndarray:
    return np.stack([xy[i : i + k] for i in range(len(xy) - k + 1)])  # (n−k+1)×k×2


def time_delay_embedding(pred, human, k: int = 3, mode: str = "mean") -> float:
    """TDE distance (px): each k-window of ``pred`` to its closest human k-window, mean or max."""
    xp, _ = as_fixations(pred)
    xh, _ = as_fixations(human)
    if k < 1 or len(xp) < k or len(xh) < k:
        return float("nan")
    wp, wh = _windows(xp, k), _windows(xh, k)
    per_fix = np.linalg.norm(wp[:, None] - wh[None, :], axis=3)  # P×H×k fixation distances
    closest = np.linalg.norm(per_fix, axis=2).min(1) / k
    if mode == "mean":
        return float(closest.mean())
    if mode == "hausdorff":
        return float(closest.max())
    raise ValueError(f"mode={mode!r}; choose 'mean' or 'hausdorff'")


def scaled_time_delay_embedding(pred, human, image_size: tuple[int, int]) -> float:
    """Mean over k = 1..min length of exp(−TDE_k) on coordinates divided by max(H, W)."""
    xp, _ = as_fixations(pred)
    xh, _ = as_fixations(human)
    scale = float(max(image_size))
    kmax = min(len(xp), len(xh))
    if kmax == 0:
        return float("nan")
    return float(np.mean([math.exp(-time_delay_embedding(xp / scale, xh / scale, k)) for k in range(1, kmax + 1)]))


class FixationClusters:
    """Mean-shift clusters of an image's human fixations; ``labels(xy)`` = nearest centre."""

    def __init__(self, centres: np.ndarray, bandwidth: float) -> None:
        self.centres = np.asarray(centres, dtype=float).reshape(-1, 2)
        self.bandwidth = float(bandwidth)

    def labels(self, s) -> list[int]:
        xy, _ = as_fixations(s)
        if len(xy) == 0:
            return []
        d = np.linalg.norm(xy[:, None, :] - self.centres[None, :, :], axis=2)
        return d.argmin(1).tolist()


def fit_fixation_clusters(xy: np.ndarray, bandwidth: float | None = None, quantile: float = 0.3) -> FixationClusters:
    """Mean-shift (scikit-learn) on fixations (n×2); bandwidth estimated (``quantile``) when None."""
    from sklearn.cluster import MeanShift, estimate_bandwidth

    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(xy) == 0:
        raise ValueError("cannot cluster an image without fixations")
    if bandwidth is None:
        bandwidth = float(estimate_bandwidth(xy, quantile=quantile)) if len(xy) > 1 else 1.0
        bandwidth = bandwidth if bandwidth > 0 else 1.0
    ms = MeanShift(bandwidth=bandwidth).fit(xy)
    return FixationClusters(ms.cluster_centers_, bandwidth)


def sequence_score(pred, human, clusters: FixationClusters) -> float:
    """Sequence Score: Needleman–Wunsch on cluster-label strings (match 1, else 0, gap 0) / max len."""
    a, b = clusters.labels(pred), clusters.labels(human)
    n = max(len(a), len(b))
    if n == 0:
        return float("nan")
    f = needleman_wunsch(a, b, lambda u, v: (u == v).astype(float), 0.0)
    return float(f[-1, -1] / n)


def score_against_humans(metric: Callable[..., float], pred, humans: Sequence, **kwargs) -> float:
    """Mean of ``metric(pred, human, **kwargs)`` over the human scanpaths (NaNs ignored)."""
    values = [metric(pred, h, **kwargs) for h in humans]
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")
