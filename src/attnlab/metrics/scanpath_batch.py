"""Scanpath metrics of many pairs at once: the definitions of :mod:`attnlab.metrics.scanpath`, batched.

``pairwise_scanpath_metrics(pairs, sizes, clusters)`` → ``{metric: B values}`` for B (predicted,
human) pairs, equal (to float rounding) to calling the per-pair functions of
:mod:`attnlab.metrics.scanpath` on each pair, which stay the plain reference definitions. The
dynamic programmes run over a batch of padded pairs, one row (or cell) of the table at a time for
every pair together, so Python's per-cell cost is paid once per batch instead of once per pair:

- Needleman–Wunsch (ScanMatch, Sequence Score): row by row; the left move of a row is a running
  maximum (``np.maximum.accumulate``) because the gap is constant along the row;
- Damerau–Levenshtein (SED) and DTW / MultiMatch's alignment: cell by cell over the batch;
- time-delay embedding: window sums along the diagonals of the fixation-distance matrix, grown one
  window length at a time.

Pairs are grouped by length (:func:`_buckets`) so that short pairs are not padded to the longest.
Encodings every pair of a scanpath shares (grid strings, ScanMatch symbols, cluster labels) are
computed once per scanpath object. :func:`fit_fixation_clusters_fast` is scikit-learn's mean
shift (as :func:`attnlab.metrics.scanpath.fit_fixation_clusters` calls it), with every seed
climbing at once.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from attnlab.metrics import kernels
from attnlab.metrics.multimatch import MULTIMATCH_DIMENSIONS, _fixation_arrays, has_durations
from attnlab.metrics.scanpath import FixationClusters, _scanmatch_sequence, as_fixations, grid_string

__all__ = [
    "pairwise_scanpath_metrics",
    "needleman_wunsch_batch",
    "damerau_levenshtein_batch",
    "dtw_batch",
    "multimatch_batch",
    "scaled_tde_batch",
    "fit_fixation_clusters_fast",
    "PAIR_METRICS",
]

PAIR_METRICS = ("SED", "ScanMatch", *(f"MM_{k}" for k in MULTIMATCH_DIMENSIONS), "DTW", "TDE", "SS")
BUCKET = 2048  # pairs per batch: big enough to amortise Python's per-cell cost, small enough for the cache


def _buckets(lengths: np.ndarray, size: int = BUCKET) -> list[np.ndarray]:
    """Pair indices in groups of similar length (longest member pads the group)."""
    order = np.argsort(lengths, kind="stable")
    return [order[k : k + size] for k in range(0, len(order), size)]


def _pad(seqs: Sequence[np.ndarray], fill, dtype, tail: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), max(1, int(lengths.max(initial=0))), *tail), fill, dtype=dtype)
    for k, s in enumerate(seqs):
        out[k, : len(s)] = s
    return out, lengths


# --- dynamic programmes over a batch ------------------------------------------------------------


def needleman_wunsch_batch(
    a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray, table: np.ndarray, gap: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(F[n, m], max of F over each pair's table) of Needleman–Wunsch for B padded symbol rows.

    ``a``: B×N, ``b``: B×M integer symbols (padding: any symbol of ``table``), ``table[u, v]``
    scores a substitution. Equals :func:`attnlab.metrics.scanpath.needleman_wunsch` per pair
    (compiled: :func:`attnlab.metrics.kernels.needleman_wunsch_pairs`).
    """
    final, best = np.empty(len(la)), np.empty(len(la))
    kernels.needleman_wunsch_pairs(
        *_symbols(a, la, b, lb), np.ascontiguousarray(table, dtype=np.float64), float(gap), final, best
    )
    return final, best


def _symbols(a, la, b, lb) -> tuple[np.ndarray, ...]:
    """Padded symbol rows and lengths as the compiled kernels take them (int64, contiguous)."""
    return tuple(np.ascontiguousarray(x, dtype=np.int64) for x in (a, la, b, lb))


def damerau_levenshtein_batch(
    a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray, alphabet: int
) -> np.ndarray:
    """Unrestricted Damerau–Levenshtein distances of B padded pairs of symbols in [0, alphabet).

    Padding must be ``alphabet`` in ``a`` and ``alphabet + 1`` in ``b`` (never equal to a symbol).
    Equals :func:`attnlab.metrics.scanpath.damerau_levenshtein` per pair.
    """
    out = np.empty(len(la), dtype=np.int64)
    kernels.damerau_levenshtein_pairs(*_symbols(a, la, b, lb), int(alphabet), out)
    return out


def _min_plus_table(cost: np.ndarray, start_zero: bool) -> np.ndarray:
    """The cheapest-monotone-path table of B cost matrices (right, down, diagonal moves), with an
    inf border: ``A[:, i+1, j+1]`` = cost of reaching cell (i, j). ``start_zero``: the start cell
    costs 0 (MultiMatch's alignment); else A[0, 0] = 0 before the first cell (DTW)."""
    n_b, n, m = cost.shape
    acc = np.empty((n_b, n + 1, m + 1))
    kernels.min_plus_tables(np.ascontiguousarray(cost, dtype=np.float64), bool(start_zero), acc)
    return acc


def dtw_batch(xa: np.ndarray, la: np.ndarray, xb: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """DTW distances (sum of aligned Euclidean distances) of B padded pairs of n×2 fixations."""
    cost = np.linalg.norm(xa[:, :, None, :] - xb[:, None, :, :], axis=3)
    acc = _min_plus_table(cost, start_zero=False)
    out = acc[np.arange(len(la)), la, lb]
    return np.where((la == 0) | (lb == 0), np.nan, out)


def _median_rows(values: np.ndarray, length: np.ndarray) -> np.ndarray:
    """np.median of the first ``length[k]`` entries of each row (NaN if one of them is NaN)."""
    rows = np.arange(len(length))
    valid = np.arange(values.shape[1])[None, :] < length[:, None]
    has_nan = (np.isnan(values) & valid).any(1)
    s = np.sort(np.where(valid, values, np.inf), axis=1)
    lo, hi = s[rows, (length - 1) // 2], s[rows, length // 2]
    med = np.where(length % 2 == 1, lo, (lo + hi) / 2)
    return np.where(has_nan, np.nan, med)


def multimatch_batch(a: Sequence, b: Sequence, sizes: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """MultiMatch (no simplification, as the benchmark uses it) of B pairs; = ``multimatch`` per pair."""
    fa = [_fixation_arrays(s) for s in a]
    fb = [_fixation_arrays(s) for s in b]
    out = {k: np.full(len(fa), np.nan) for k in MULTIMATCH_DIMENSIONS}
    ok = np.array([len(x[0]) >= 3 and len(y[0]) >= 3 for x, y in zip(fa, fb)], dtype=bool)
    if not ok.any():
        return out
    idx = np.flatnonzero(ok)
    for group in _buckets(np.array([len(fa[k][0]) + len(fb[k][0]) for k in idx]), BUCKET):
        sel = idx[group]
        values = _multimatch_group([fa[k] for k in sel], [fb[k] for k in sel], [sizes[k] for k in sel])
        for name, v in values.items():
            out[name][sel] = v
    timed = np.array([has_durations(x) and has_durations(y) for x, y in zip(a, b)], dtype=bool)
    out["duration"][~timed] = np.nan  # not available, as multimatch()
    return out


def _saccades(fix: list) -> tuple[np.ndarray, ...]:
    """Padded saccade starts, components, lengths, angles and fixation durations (as multimatch)."""
    x, nf = _pad([f[0] for f in fix], 0.0, np.float64)
    y, _ = _pad([f[1] for f in fix], 0.0, np.float64)
    dur, _ = _pad([f[2] for f in fix], 1.0, np.float64)
    dx, dy = np.diff(x, axis=1), np.diff(y, axis=1)
    return x[:, :-1], y[:, :-1], dx, dy, np.hypot(dx, dy), np.arctan2(dy, dx), dur, nf - 1


def _multimatch_group(fa: list, fb: list, sizes: list) -> dict[str, np.ndarray]:
    xa, ya, dxa, dya, rhoa, tha, dura, na = _saccades(fa)
    xb, yb, dxb, dyb, rhob, thb, durb, nb = _saccades(fb)
    va, vb = np.stack([dxa, dya], 2), np.stack([dxb, dyb], 2)
    cost = np.linalg.norm(va[:, :, None, :] - vb[:, None, :, :], axis=3)  # B×(n−1)×(m−1)
    acc = _min_plus_table(cost, start_zero=True)
    rows = np.arange(len(na))
    # backtrack every pair at once from its last cell; ties prefer diagonal, then up, then left
    i, j = na - 1, nb - 1
    steps = int((na + nb).max())
    pi, pj = np.zeros((len(na), steps), np.int64), np.zeros((len(na), steps), np.int64)
    length = np.zeros(len(na), np.int64)
    active = np.ones(len(na), bool)
    for s in range(steps):
        pi[:, s], pj[:, s] = i, j
        length += active
        active = active & ~((i == 0) & (j == 0))
        if not active.any():
            break
        diag, up, left = acc[rows, i, j], acc[rows, i, j + 1], acc[rows, i + 1, j]
        take_diag = (diag <= up) & (diag <= left)
        take_up = ~take_diag & (up <= left)
        ni = np.where(take_diag | take_up, i - 1, i)
        nj = np.where(take_up, j, j - 1)
        i, j = np.where(active, ni, i), np.where(active, nj, j)
    pi, pj = pi[:, : s + 1], pj[:, : s + 1]
    g = lambda v, p: np.take_along_axis(v, p, 1)  # noqa: E731
    two_pi = 2 * math.pi
    ta, tb = np.mod(g(tha, pi), two_pi), np.mod(g(thb, pj), two_pi)
    dtheta = np.abs(ta - tb)
    dtheta = np.where(dtheta > math.pi, two_pi - dtheta, dtheta)
    da, db = g(dura, pi), g(durb, pj)
    diag_px = np.array([math.hypot(w, h) for h, w in sizes])
    vec = cost[rows[:, None], pi, pj]
    with np.errstate(invalid="ignore", divide="ignore"):
        dur_ratio = np.abs(da - db) / np.abs(np.maximum(da, db))
    pos = np.hypot(g(xa, pi) - g(xb, pj), g(ya, pi) - g(yb, pj))
    med = lambda v: _median_rows(v, length)  # noqa: E731
    return {
        "vector": 1 - med(vec) / (2 * diag_px),
        "direction": 1 - med(dtheta) / math.pi,
        "length": 1 - med(np.abs(g(rhoa, pi) - g(rhob, pj))) / diag_px,
        "position": 1 - med(pos) / diag_px,
        "duration": 1 - med(dur_ratio),
    }


def scaled_tde_batch(xa: np.ndarray, la: np.ndarray, xb: np.ndarray, lb: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """:func:`attnlab.metrics.scanpath.scaled_time_delay_embedding` of B padded pairs (``scale`` = max(H, W))."""
    pa, pb = xa / scale[:, None, None], xb / scale[:, None, None]
    d = np.linalg.norm(pa[:, :, None, :] - pb[:, None, :, :], axis=3)
    d2 = d * d
    kmax = np.minimum(la, lb)
    n_b, n, m = d.shape
    total = np.zeros(n_b)
    window = None
    ii, jj = np.arange(n)[None, :, None], np.arange(m)[None, None, :]
    for k in range(1, int(kmax.max(initial=0)) + 1):
        window = d2.copy() if k == 1 else window[:, :-1, :-1] + d2[:, k - 1 :, k - 1 :]
        wi, wj = ii[:, : n - k + 1], jj[:, :, : m - k + 1]
        ok_j = wj < (lb - k + 1)[:, None, None]
        closest = np.where(ok_j, np.sqrt(window), np.inf).min(2) / k  # B×windows of pred
        ok_i = wi[:, :, 0] < (la - k + 1)[:, None]
        count = np.maximum(ok_i.sum(1), 1)
        tde = np.where(ok_i, closest, 0.0).sum(1) / count
        total += np.where(k <= kmax, np.exp(-tde), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kmax > 0, total / kmax, np.nan)


# --- every metric of many pairs -----------------------------------------------------------------


class _Encodings:
    """Per-scanpath encodings shared by every pair the scanpath is in (keyed by the object)."""

    def __init__(self) -> None:
        self.cache: dict[tuple, object] = {}

    def get(self, kind: str, s, *args):
        key = (kind, id(s), *args)
        if key not in self.cache:
            self.cache[key] = self._compute(kind, s, *args)
        return self.cache[key]

    @staticmethod
    def _compute(kind, s, *args):
        if kind == "xy":
            return as_fixations(s)
        if kind == "grid":
            return np.asarray(grid_string(s, args[0], (4, 4)), dtype=np.int64)
        if kind == "scanmatch":
            xy, dur = as_fixations(s)
            return _scanmatch_sequence(xy, dur, args[0], (14, 8), args[1])
        if kind == "labels":
            return np.asarray(args[0].labels(s), dtype=np.int64)
        raise KeyError(kind)


_SCANMATCH_TABLE: dict[tuple, tuple[np.ndarray, float]] = {}


def _scanmatch_table(bins=(14, 8), threshold: float = 3.5) -> tuple[np.ndarray, float]:
    """ScanMatch's substitution table over all bin pairs (+2 padding symbols) and its maximum."""
    if (bins, threshold) not in _SCANMATCH_TABLE:
        cells = np.arange(bins[0] * bins[1])
        c = np.stack([cells % bins[0], cells // bins[0]], 1)
        dist = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
        max_dist = math.hypot(bins[0] - 1, bins[1] - 1)
        table = np.zeros((len(cells) + 2, len(cells) + 2))
        table[: len(cells), : len(cells)] = np.abs(dist - max_dist) - (max_dist - threshold)
        _SCANMATCH_TABLE[(bins, threshold)] = table, abs(0 - max_dist) - (max_dist - threshold)
    return _SCANMATCH_TABLE[(bins, threshold)]


def _symbol_pairs(sa: list[np.ndarray], sb: list[np.ndarray], pad_a: int, pad_b: int):
    a, la = _pad(sa, pad_a, np.int64)
    b, lb = _pad(sb, pad_b, np.int64)
    return a, la, b, lb


def pairwise_scanpath_metrics(
    pairs: Sequence[tuple[object, object]],
    sizes: Sequence[tuple[int, int]],
    clusters: Sequence[Optional[FixationClusters]],
    metrics: Sequence[str] = PAIR_METRICS,
) -> dict[str, np.ndarray]:
    """Every scanpath metric of each (predicted, human) pair, as the benchmark scores them.

    ``sizes[k]``: the image size (H, W) of pair k; ``clusters[k]``: its image's fixation clusters
    (None: SS is NaN). Returns {metric: array of len(pairs)}: SED (string edit similarity, 4×4
    grid), ScanMatch (FixaTons defaults), MM_* (MultiMatch), DTW (/ image diagonal), TDE (scaled
    time-delay embedding), SS (Sequence Score) — each = the per-pair function on that pair.
    """
    n_pairs = len(pairs)
    out = {k: np.full(n_pairs, np.nan) for k in metrics}
    if n_pairs == 0:
        return out
    enc = _Encodings()
    xy = [(enc.get("xy", p), enc.get("xy", h)) for p, h in pairs]
    la_all = np.array([len(a[0]) for a, _ in xy])
    lb_all = np.array([len(b[0]) for _, b in xy])
    for group in _buckets(np.maximum(la_all, lb_all)):
        g_pairs = [pairs[k] for k in group]
        g_sizes = [tuple(sizes[k]) for k in group]
        la, lb = la_all[group], lb_all[group]
        longest = np.maximum(la, lb)
        if "SED" in out:
            sa = [enc.get("grid", p, s) for (p, _), s in zip(g_pairs, g_sizes)]
            sb = [enc.get("grid", h, s) for (_, h), s in zip(g_pairs, g_sizes)]
            dist = damerau_levenshtein_batch(*_symbol_pairs(sa, sb, 16, 17), alphabet=16)
            with np.errstate(invalid="ignore", divide="ignore"):
                out["SED"][group] = np.where(longest > 0, 1.0 - dist / longest, np.nan)
        xa, _ = _pad([xy[k][0][0] for k in group], 0.0, np.float64, (2,))
        xb, _ = _pad([xy[k][1][0] for k in group], 0.0, np.float64, (2,))
        if "DTW" in out:
            diag = np.array([math.hypot(*s) for s in g_sizes])
            out["DTW"][group] = dtw_batch(xa, la, xb, lb) / diag
        if "TDE" in out:
            out["TDE"][group] = scaled_tde_batch(xa, la, xb, lb, np.array([float(max(s)) for s in g_sizes]))
        if "SS" in out:
            have = np.array([c is not None for c in (clusters[k] for k in group)])
            if have.any():
                sel = group[have]
                sa = [enc.get("labels", pairs[k][0], clusters[k]) for k in sel]
                sb = [enc.get("labels", pairs[k][1], clusters[k]) for k in sel]
                top = int(max([s.max(initial=0) for s in sa + sb])) + 1
                a, la_s, b, lb_s = _symbol_pairs(sa, sb, top, top + 1)
                final, _ = needleman_wunsch_batch(a, la_s, b, lb_s, np.eye(top + 2), 0.0)
                n = np.maximum(la_s, lb_s)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out["SS"][sel] = np.where(n > 0, final / n, np.nan)
    if any(k.startswith("MM_") for k in out):
        mm = multimatch_batch([p for p, _ in pairs], [h for _, h in pairs], [tuple(s) for s in sizes])
        for k, v in mm.items():
            if f"MM_{k}" in out:
                out[f"MM_{k}"] = v
    if "ScanMatch" in out:
        out["ScanMatch"] = _scanmatch_pairs(pairs, sizes, xy, enc)
    return out


def _scanmatch_pairs(pairs, sizes, xy, enc: _Encodings) -> np.ndarray:
    """ScanMatch of every pair; sequences (50 ms symbols when both have durations) bucketed by length."""
    table, max_sub = _scanmatch_table()
    seqs = []
    for (p, h), (a, b), size in zip(pairs, xy, sizes):
        tb = 50.0 if (a[1] is not None and b[1] is not None) else 0
        seqs.append((enc.get("scanmatch", p, tuple(size), tb), enc.get("scanmatch", h, tuple(size), tb)))
    la = np.array([len(a) for a, _ in seqs])
    lb = np.array([len(b) for _, b in seqs])
    out = np.full(len(pairs), np.nan)
    pad = table.shape[0] - 2
    for group in _buckets(np.maximum(la, lb)):
        a, la_g, b, lb_g = _symbol_pairs([seqs[k][0] for k in group], [seqs[k][1] for k in group], pad, pad + 1)
        _, best = needleman_wunsch_batch(a, la_g, b, lb_g, table, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[group] = np.where((la_g > 0) & (lb_g > 0), best / (max_sub * np.maximum(la_g, lb_g)), np.nan)
    return out


# --- mean-shift clusters ------------------------------------------------------------------------


def _estimate_bandwidth(xy: np.ndarray, quantile: float) -> float:
    """scikit-learn's ``estimate_bandwidth``: mean distance to the k-th nearest point (k = n·quantile)."""
    k = max(1, int(xy.shape[0] * quantile))
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(2))
    return float(np.sort(d, axis=1)[:, k - 1].sum() / xy.shape[0])


def fit_fixation_clusters_fast(
    xy: np.ndarray, bandwidth: float | None = None, quantile: float = 0.3, max_iter: int = 300
) -> FixationClusters:
    """:func:`attnlab.metrics.scanpath.fit_fixation_clusters` with every mean-shift seed climbing at once.

    Follows scikit-learn's ``MeanShift`` (seeds = the points, flat kernel of radius ``bandwidth``,
    stop at a shift ≤ 1e-3·bandwidth or ``max_iter``; modes sorted by the points within them, then
    by coordinates, near-duplicates within ``bandwidth`` of a stronger mode dropped). The points
    within a radius are summed in index order, as NumPy's mean does, so the modes are the same.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(xy) == 0:
        raise ValueError("cannot cluster an image without fixations")
    if bandwidth is None:
        bandwidth = _estimate_bandwidth(xy, quantile) if len(xy) > 1 else 1.0
        bandwidth = bandwidth if bandwidth > 0 else 1.0
    stop = 1e-3 * bandwidth
    mean = xy.copy()
    count = np.zeros(len(xy), dtype=np.int64)
    running = np.ones(len(xy), dtype=bool)
    iterations = np.zeros(len(xy), dtype=np.int64)
    r2 = bandwidth * bandwidth
    while running.any():
        idx = np.flatnonzero(running)
        m = mean[idx]
        within = ((xy[None, :, :] - m[:, None, :]) ** 2).sum(2) <= r2
        n = within.sum(1)
        count[idx] = n
        empty = n == 0
        sums = np.where(within[:, :, None], xy[None, :, :], 0.0).sum(1)  # index order, as np.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            new = sums / n[:, None]
        new = np.where(empty[:, None], m, new)
        moved = np.sqrt(((new - m) ** 2).sum(1))
        done = empty | (moved <= stop) | (iterations[idx] == max_iter)
        mean[idx] = new
        iterations[idx] += ~done
        running[idx[done]] = False
    modes: dict[tuple, int] = {}
    for k in range(len(xy)):
        if count[k]:
            modes[tuple(mean[k])] = int(count[k])
    ranked = sorted(modes.items(), key=lambda t: (t[1], t[0]), reverse=True)
    centres = np.array([c for c, _ in ranked])
    unique = np.ones(len(centres), dtype=bool)
    close = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(2) <= r2
    for k in range(len(centres)):
        if unique[k]:
            unique[close[k]] = False
            unique[k] = True
    return FixationClusters(centres[unique], bandwidth)
