"""ROC-AUC saliency metrics in torch (batched, any device): AUC-Judd, AUC-Borji, shuffled AUC.

All take ``pred`` (B×H×W) and ``fixations`` = fixation counts per pixel (B×H×W) and return B
per-image AUCs (NaN for images without fixations). A constant prediction scores exactly 0.5.

- :func:`auc_judd` — thresholds are the predicted values at the fixated pixels; TPR = share of
  fixations (counted with multiplicity, like pysaliency; ``variant="mit"``: each fixated pixel once,
  like the binary map of AUC_Judd.m) at or above the threshold; FPR = share of NON-fixated pixels
  at or above it. Equals pysaliency ``AUC_Judd`` per image (``nonfixations='unfixated',
  thresholds='fixations'``). Jitter: a uniform [0, 1e-7) noise on the min-max normalised map breaks
  ties, as in MIT's AUC_Judd.m; attnlab adds it AFTER normalising (MIT and pysaliency add it to the
  raw map, where 1e-7 is not small for density maps whose values are ~1e-6). ``jitter=False`` gives
  the tie-aware exact value, equal to pysaliency's ``AUC_Judd(jitter=False)``.
- :func:`auc_borji` — MIT AUC_Borji.m: positives = values at fixated pixels, negatives = as many
  uniformly random pixels, ``splits`` = 100 draws, thresholds 0:0.1:1 on the min-max map, mean over
  draws. Random, seeded (``seed``); pysaliency has no equivalent.
- :func:`auc_shuffled` — negatives are other images' fixations, given as counts ``nonfixations``.
  ``variant="pysaliency"`` (default): exact ROC (Mann–Whitney, ties count ½) against every
  other-image fixation, = pysaliency ``AUC_per_image(nonfixations='shuffled')``; build the negatives
  with :func:`shuffled_nonfixations`. ``variant="mit"``: AUC_shuffled.m — negatives are the union of
  the fixations of M = 10 random other images (binary map), ``splits`` random subsets of size
  min(#fixated pixels, #other), thresholds in steps of 0.1. The two variants give different values.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, Sequence

import numpy as np
import torch

from attnlab.metrics.maps import (
    InvalidMapError,
    RowBuffers,
    as_batch,
    as_float32,
    constant,
    fixated,
    flat,
    flat_nonzero,
    for_each_row,
    match_size,
    minmax,
    scaled_to_unit,
    sorted_,
    value_range,
)

__all__ = [
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "shuffled_nonfixations",
    "ShuffledNegatives",
    "SupportCounts",
    "roc_auc",
]

JITTER = 1e-7
# Histogram resolution of the exact counts of AUC-Judd and sAUC (see OrderKeys). 2^14 bins: the
# int64 histogram is 128 KiB (512 KiB at 2^16: a quarter of an Intel Xeon core's L2, all of an AMD
# EPYC core's), so bincount's random increments hit in cache (0.44 vs 0.64 ms per 600×800 map on
# the Xeon); ~4× more pixels share a bin with a threshold (~6,000 of 480,000), and NumPy's SIMD
# sort of their values takes 0.05 ms instead of 0.03.
BINS = 1 << 14


def _inputs(pred: torch.Tensor, fixations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = as_batch(fixations, "fixation map")
    p = match_size(as_batch(pred), f.shape[-2:])
    if p.shape[0] != f.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {f.shape[0]} fixation maps")
    return flat(p), flat(f)


def _padded(
    values: torch.Tensor, weights: torch.Tensor, fill: float, binary: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The entries of ``values`` where ``weights`` > 0, per row, left-aligned in a B×K tensor.

    Padding has value ``fill`` and weight 0; K is the largest count of a row (at least 1).
    ``binary``: every selected entry weighs 1 (a binary fixation map).
    """
    b, n, w = fixated(weights)
    counts = torch.bincount(b, minlength=values.shape[0])
    k = max(int(counts.max()) if counts.numel() else 0, 1)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(b.numel(), device=values.device) - start[b]
    out_v = torch.full((values.shape[0], k), fill, dtype=values.dtype, device=values.device)
    out_w = torch.zeros((values.shape[0], k), dtype=weights.dtype, device=values.device)
    out_v[b, slot] = values[b, n]
    out_w[b, slot] = 1 if binary else w
    return out_v, out_w


def _trapezoid(fpr: torch.Tensor, tpr: torch.Tensor) -> torch.Tensor:
    """Area under the curve through (0, 0), the given points in order, and (1, 1)."""
    zeros = torch.zeros_like(fpr[:, :1])
    ones = torch.ones_like(fpr[:, :1])
    x = torch.cat([zeros, fpr, ones], 1)
    y = torch.cat([zeros, tpr, ones], 1)
    return ((x[:, 1:] - x[:, :-1]) * (y[:, 1:] + y[:, :-1]) / 2).sum(1)


def _count_at_or_above(
    thresholds_sorted: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """For each (ascending) threshold t_i of each row: total weight of ``values`` ≥ t_i."""
    idx = torch.searchsorted(thresholds_sorted, values, right=True)  # #thresholds ≤ v: v ≥ t_i iff i < idx
    hist = torch.zeros(values.shape[0], thresholds_sorted.shape[1] + 1, dtype=torch.float64, device=values.device)
    hist.scatter_add_(1, idx, torch.ones_like(values) if weights is None else weights.to(torch.float64))
    return hist.flip(1).cumsum(1).flip(1)[:, 1:]


def _float32_resolves(lo: float, hi: float) -> bool:
    """Whether float32 keeps values spread over [lo, hi] apart well enough to key a histogram."""
    magnitude = max(abs(lo), abs(hi))
    return 1e-30 < magnitude < 1e30 and hi - lo > 1e-3 * magnitude


def _scaled_keys(m: torch.Tensor, lo: float, scale: float, bins: int, buffers: RowBuffers) -> torch.Tensor:
    """⌊(m − lo)·scale⌋ as int32 in [0, bins] for a flat map m ≥ lo with (max m − lo)·scale ≈ bins:
    non-decreasing in m (rounding keeps the order; the clamp catches overshoot past the ends)."""
    keys = buffers("keys", m, torch.int32)
    if lo == 0 and m.device.type == "cpu":
        # one pass, cast in NumPy's small chunks; m ≥ 0 truncates to ≥ 0, and the top (max m rounded
        # up by a few ulps at most, ~1e-7 of bins) truncates to bins at most: no clamp needed
        np.multiply(m.numpy(), np.asarray(scale, dtype=m.numpy().dtype), out=keys.numpy(), casting="unsafe")
        return keys
    scaled = torch.add(m.new_full((), -lo * scale), m, alpha=scale, out=buffers(f"scaled_{m.dtype}", m))
    return keys.copy_(scaled).clamp_(0, bins)


class OrderKeys:
    """Histogram keys of one flat map ``v`` (lo ≤ v ≤ hi) for exact counts around the thresholds
    t = v[positions] (the fixated pixels), without a binary search per pixel.

    Each value gets the key ⌊(v − lo)·bins / (hi − lo)⌋, non-decreasing in v: a key below t's key
    means a value below t, a key above it a value above t, and only values sharing a key with a
    threshold are compared with it (in v's own precision). The keys only need to keep the order, so
    they are computed in float32 where that resolves the range: from ``ordered`` = (m, min m, max m)
    when the caller has a float32 map m that is a non-decreasing function of v (its density), else
    from a float32 copy of v.
    """

    def __init__(
        self,
        v: torch.Tensor,
        positions: torch.Tensor,
        lo: float,
        hi: float,
        buffers: RowBuffers,
        ordered: tuple[torch.Tensor, float, float] | None = None,
        bins: int = BINS,
    ) -> None:
        if ordered is None or not _float32_resolves(ordered[1], ordered[2]):
            # a map with minimum 0 (a blur of fixations) is keyed from its own values in one pass
            cast = _float32_resolves(lo, hi) and not (lo == 0 and v.device.type == "cpu")
            ordered = (as_float32(v, buffers, "pixels32"), lo, hi) if cast else (v, lo, hi)
        m, lo, hi = ordered
        scale = bins / (hi - lo) if hi > lo else 0.0
        scale = scale if math.isfinite(scale) else 0.0  # a (nearly) constant map: one bin, all compared
        self.v, self.buffers, self.bins = v, buffers, bins
        self.keys = _scaled_keys(m, lo, scale, bins, buffers)
        self.thresholds = v.index_select(0, positions)
        self.threshold_keys = self.keys.index_select(0, positions).long()
        self.in_threshold_bin = (
            buffers("in_threshold_bin", v, torch.bool, size=bins + 1).zero_().index_fill_(0, self.threshold_keys, True)
        )

    def pixels_at_or_above(self) -> torch.Tensor:
        """How many of v's values are ≥ each threshold (int64, in the order of ``positions``).

        = all − (values not sharing a key with any threshold and below t) − (values sharing one and
        below t): the first are exactly those with a key ≤ t's key (none has t's key), counted by
        a histogram without the threshold keys; the second are compared exactly."""
        v, keys = self.v, self.keys
        histogram = torch.bincount(keys, minlength=self.bins + 1).index_fill_(0, self.threshold_keys, 0)
        apart_below = torch.cumsum(histogram, 0, out=self.buffers("cumulative", histogram)).index_select(
            0, self.threshold_keys
        )
        shared = torch.index_select(self.in_threshold_bin, 0, keys, out=self.buffers("shared", v, torch.bool))
        shared_values = sorted_(v.index_select(0, flat_nonzero(shared)))
        return v.numel() - apart_below.add_(torch.searchsorted(shared_values, self.thresholds, right=False))

    def place(self, positions: torch.Tensor, weights: torch.Tensor) -> PlacedSamples:
        """Weighted samples v[positions] placed among the thresholds as far as their keys tell
        (the per-map part of :func:`samples_below`, which finishes many maps at once).

        A sample whose key is no threshold's key is below exactly the thresholds with a higher key:
        its rank among the threshold keys says which, and its weight is counted at that rank. The
        few sharing a key with a threshold are kept for an exact comparison.
        """
        weights = weights.to(torch.float64)
        sample_keys = self.keys.index_select(0, positions)
        # distinct threshold keys ≤ each key (a lookup: no binary search)
        keys_up_to = torch.cumsum(
            self.in_threshold_bin, 0, out=self.buffers("keys_up_to", self.in_threshold_bin, torch.int64)
        )
        rank = keys_up_to.index_select(0, sample_keys)  # = threshold keys below, for a key that is none
        shared = self.in_threshold_bin.index_select(0, sample_keys)
        apart = torch.bincount(rank, weights.masked_fill(shared, 0), minlength=self.thresholds.numel() + 1)
        close = flat_nonzero(shared)
        threshold_rank = keys_up_to.index_select(0, self.threshold_keys).sub_(1)  # of t's key among the distinct ones
        return PlacedSamples(
            self.thresholds,
            threshold_rank,
            apart,
            self.v.index_select(0, positions.index_select(0, close)),
            weights.index_select(0, close),
        )


class PlacedSamples(NamedTuple):
    """One map's samples placed among its thresholds by :meth:`OrderKeys.place`."""

    thresholds: torch.Tensor  # K threshold values
    threshold_rank: torch.Tensor  # K: each threshold's key's rank among the distinct threshold keys
    apart: torch.Tensor  # weight of the samples not sharing a key with a threshold, by rank
    close_values: torch.Tensor  # values of the samples sharing a key with a threshold
    close_weights: torch.Tensor


def samples_below(placed: Sequence[PlacedSamples]) -> tuple[torch.Tensor, torch.Tensor]:
    """For R maps at once: weight of the samples below each threshold, and of those equal to it
    (R×K, the thresholds' order, padded); the samples sharing a key with a threshold are compared
    exactly."""
    thresholds = torch.nn.utils.rnn.pad_sequence(
        [p.thresholds for p in placed], batch_first=True, padding_value=float("inf")
    )
    ranks = torch.nn.utils.rnn.pad_sequence([p.threshold_rank for p in placed], batch_first=True)
    below = torch.nn.utils.rnn.pad_sequence([p.apart for p in placed], batch_first=True).cumsum(1).gather(1, ranks)
    sizes = torch.tensor([p.close_values.numel() for p in placed], device=below.device)
    if int(sizes.sum()) == 0:
        return below, torch.zeros_like(below)
    rows = torch.repeat_interleave(torch.arange(len(placed), device=below.device), sizes)
    slot = torch.arange(rows.numel(), device=below.device) - (torch.cumsum(sizes, 0) - sizes)[rows]
    close = torch.full((len(placed), int(sizes.max())), float("inf"), dtype=thresholds.dtype, device=below.device)
    close_w = torch.zeros(close.shape, dtype=torch.float64, device=below.device)
    close[rows, slot] = torch.cat([p.close_values for p in placed])
    close_w[rows, slot] = torch.cat([p.close_weights for p in placed])
    # in ascending threshold order t_j: a sample v is below t_j iff j ≥ #thresholds ≤ v, and at
    # most t_j iff j ≥ #thresholds < v; padding (inf, weight 0) counts nowhere
    ascending, order = thresholds.sort(1)

    def weight_up_to(
        right: bool,
    ) -> torch.Tensor:  # Σ weight of the samples v with #thresholds (≤ or <) v ≤ j, in the thresholds' order
        first = torch.searchsorted(ascending, close, right=right)
        ascending_order = (
            torch.zeros(len(placed), ascending.shape[1] + 1, dtype=torch.float64, device=below.device)
            .scatter_add_(1, first, close_w)
            .cumsum(1)[:, :-1]
        )
        return torch.empty_like(below).scatter_(1, order, ascending_order)

    lower = weight_up_to(right=True)
    return below.add_(lower), weight_up_to(right=False).sub_(lower)


class JuddPass:
    """The whole-map part of AUC-Judd, one map at a time (:meth:`run_row`), then :meth:`auc`.

    Thresholds are the (jittered) predicted values at the fixated pixels; for each, the pixels at
    or above it are counted exactly (:meth:`OrderKeys.pixels_at_or_above`). The jitter of map i comes from a
    generator seeded with (``seed``, i), so maps can run in any order.
    """

    def __init__(self, p: torch.Tensor, f: torch.Tensor, jitter: bool, seed: int, binary: bool) -> None:
        rows = _per_row(f)
        self.positions = [n for n, _ in rows]
        self.weights = [torch.ones_like(w) if binary else w for _, w in rows]
        self.n_pixels, self.n_rows = p.shape[1], p.shape[0]
        self.jitter, self.seed = jitter, seed
        self.thresholds: list[torch.Tensor] = [p.new_zeros(0)] * p.shape[0]
        self.at_or_above: list[torch.Tensor] = [torch.zeros(0, dtype=torch.int64, device=p.device)] * p.shape[0]

    def run_row(
        self,
        i: int,
        v: torch.Tensor,
        lo: float,
        hi: float,
        buffers: RowBuffers,
        ordered: tuple[torch.Tensor, float, float] | None = None,
    ) -> OrderKeys | None:
        """Map i (flat, with min ``lo`` and max ``hi``; ``ordered``: a float32 map non-decreasing in
        it, with its min and max, if the caller has one — see :class:`OrderKeys`). Returns the keys
        of the unjittered map at its fixations (for :meth:`ShuffledPass.run_row`), else None."""
        positions = self.positions[i]
        if positions.numel() == 0:
            return None
        if self.jitter:  # normalise first so that the jitter only ever breaks ties
            generator = torch.Generator(device=v.device).manual_seed(self.seed * 1_000_003 + i)
            noise = torch.rand(v.shape, generator=generator, out=buffers("noise", v), dtype=v.dtype)
            v = (
                torch.sub(v, lo, out=buffers("jittered", v))
                .mul_(1.0 / (hi - lo) if hi > lo else 0.0)
                .add_(noise, alpha=JITTER)
            )
            lo, hi, ordered = 0.0, 1.0 + JITTER, None
        if hi == lo:  # a constant map: every pixel is at or above every threshold
            self.thresholds[i] = v.index_select(0, positions)
            self.at_or_above[i] = torch.full_like(self.thresholds[i], self.n_pixels, dtype=torch.int64)
            return None
        keys = OrderKeys(v, positions, lo, hi, buffers, ordered)
        self.thresholds[i], self.at_or_above[i] = keys.thresholds, keys.pixels_at_or_above()
        return None if self.jitter else keys

    def auc(self, flat_map: torch.Tensor) -> torch.Tensor:
        """B AUCs from the rows run so far (0.5 where ``flat_map``, NaN without fixations)."""
        thr = torch.nn.utils.rnn.pad_sequence(self.thresholds, batch_first=True, padding_value=float("inf"))
        ge_all = torch.nn.utils.rnn.pad_sequence(self.at_or_above, batch_first=True).to(thr.dtype)
        w = torch.nn.utils.rnn.pad_sequence(self.weights, batch_first=True).to(thr.dtype)
        if thr.shape[1] == 0:
            return torch.full((self.n_rows,), float("nan"), dtype=torch.float64, device=thr.device)
        thr, order = thr.sort(1)
        w, ge_all = w.gather(1, order), ge_all.gather(1, order)
        fixated_pixels = (w > 0).sum(1, keepdim=True).to(thr.dtype)
        # pixels ≥ t_i, minus the fixated pixels ≥ t_i, = non-fixated pixels ≥ t_i
        left = torch.searchsorted(thr, thr, right=False)  # #thresholds < t_i
        ge_fixated = (fixated_pixels - left).clamp_min(0)
        cum_w = torch.cat([torch.zeros_like(w[:, :1]), w.cumsum(1)], 1)
        total_w = cum_w[:, -1:]
        pos_ge = total_w - cum_w.gather(1, left)
        negatives = self.n_pixels - fixated_pixels
        tpr = pos_ge / total_w.clamp_min(1e-300)
        fpr = (ge_all - ge_fixated) / negatives.clamp_min(1)
        auc = _trapezoid(fpr.flip(1), tpr.flip(1))  # descending thresholds
        auc = torch.where(flat_map, torch.full_like(auc, 0.5), auc)
        return torch.where(total_w[:, 0] > 0, auc, torch.full_like(auc, float("nan")))


def auc_judd(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    jitter: bool = True,
    seed: int = 0,
    variant: Literal["pysaliency", "mit"] = "pysaliency",
) -> torch.Tensor:
    """AUC-Judd per image (see the module docstring for the exact convention)."""
    if variant not in ("pysaliency", "mit"):
        raise ValueError(f"variant={variant!r}; choose 'pysaliency' or 'mit'")
    p, f = _inputs(pred, fixations)
    judd = JuddPass(p, f, jitter, seed, binary=variant == "mit")
    ranges = torch.stack(value_range(p), 1).tolist()
    for_each_row(lambda i, buffers: judd.run_row(i, p[i], *ranges[i], buffers), p.shape[0], p.device)
    return judd.auc(constant(p))


def _grid_auc(
    positives: torch.Tensor, pos_w: torch.Tensor, negatives: torch.Tensor, neg_w: torch.Tensor, step: float
) -> torch.Tensor:
    """MIT-style AUC on thresholds 0, step, 2·step, ... ≤ 1 for rows of (weighted) samples in [0, 1].

    ``positives``: B×K, ``negatives``: B×S×M (S draws); returns B×S AUCs.
    """
    grid = torch.arange(0, int(np.floor(1.0 / step + 1e-9)) + 1, device=positives.device, dtype=torch.float64) * step
    grid = grid.expand(positives.shape[0], -1).contiguous()
    tpr = _count_at_or_above(grid, positives, pos_w) / pos_w.sum(1, keepdim=True).clamp_min(1e-300)
    b, s, m = negatives.shape
    neg_grid = grid.repeat_interleave(s, 0)
    fpr = _count_at_or_above(neg_grid, negatives.reshape(b * s, m), neg_w.reshape(b * s, m))
    fpr = fpr / neg_w.reshape(b * s, m).sum(1, keepdim=True).clamp_min(1e-300)
    tpr = tpr.repeat_interleave(s, 0)
    return _trapezoid(fpr.flip(1), tpr.flip(1)).reshape(b, s)


def auc_borji(
    pred: torch.Tensor, fixations: torch.Tensor, splits: int = 100, step: float = 0.1, seed: int = 0
) -> torch.Tensor:
    """AUC-Borji per image: uniform random negatives, ``splits`` draws, thresholds every ``step``."""
    p, f = _inputs(pred, fixations)
    flat_map = constant(p)
    # min-max scale only the sampled values (the same arithmetic as scaling the whole map first)
    low, high = value_range(p)
    pos, pos_w = _padded(p, f, 0.0, binary=True)  # each fixated pixel once, as the binary map
    pos = scaled_to_unit(pos, low, high)
    n_fix = pos_w.sum(1)
    g = torch.Generator(device=p.device).manual_seed(seed)
    k = pos.shape[1]
    idx = torch.randint(0, p.shape[1], (p.shape[0], splits, k), generator=g, device=p.device)
    neg = scaled_to_unit(p.gather(1, idx.reshape(p.shape[0], -1)), low, high).reshape(p.shape[0], splits, k)
    neg_w = pos_w[:, None, :].expand(-1, splits, -1)  # as many negatives as fixated pixels, per draw
    auc = _grid_auc(pos, pos_w, neg, neg_w, step).mean(1)
    auc = torch.where(flat_map, torch.full_like(auc, 0.5), auc)
    return torch.where(n_fix > 0, auc, torch.full_like(auc, float("nan")))


def roc_auc(positives: torch.Tensor, pos_w: torch.Tensor, negatives: torch.Tensor, neg_w: torch.Tensor) -> torch.Tensor:
    """Exact weighted ROC-AUC of 1-D samples: P(pos > neg) + ½ P(pos = neg) (pysaliency ``general_roc``).

    Sorts the negatives and places the (usually few) positives among them with two binary searches:
    the negative weight below a positive and equal to it are counted exactly, so ties need no
    special case.
    """
    neg, order = negatives.sort()
    cum = torch.cat([neg_w.new_zeros(1), neg_w[order].cumsum(0)]).to(torch.float64)
    below = cum[torch.searchsorted(neg, positives, right=False)]
    at_or_below = cum[torch.searchsorted(neg, positives, right=True)]
    pos_w = pos_w.to(torch.float64)
    return torch.dot(pos_w, below + at_or_below) / (2 * pos_w.sum() * cum[-1]).clamp_min(1e-300)


class ShuffledPass:
    """Shuffled AUC (pysaliency's convention), one map at a time (:meth:`run_row`), then :meth:`auc`:
    the map's values at its own fixations against its values at the other images' fixations."""

    def __init__(self, f: torch.Tensor, nf: torch.Tensor | SupportCounts) -> None:
        self.positives = _per_row(f)
        self.negatives = nf.rows() if isinstance(nf, SupportCounts) else _per_row(nf)
        self.pairs = [
            max(p * n, 1e-300) for p, n in zip(_row_totals(f), _row_totals(nf))
        ]  # Σ positive · Σ negative weight
        self.values: list[float] = [float("nan")] * f.shape[0]
        self.placed: list[PlacedSamples | None] = [None] * f.shape[0]

    def run_row(self, i: int, v: torch.Tensor, keys: OrderKeys | None = None) -> None:
        """Map i (flat). ``keys``: its :class:`OrderKeys` at the same fixations, if made already —
        the negatives are then placed by their keys instead of sorted, and finished in :meth:`auc`."""
        (pos, pos_w), (neg, neg_w) = self.positives[i], self.negatives[i]
        if not (pos.numel() and neg.numel()):
            return
        if keys is None:
            self.values[i] = float(roc_auc(v.index_select(0, pos), pos_w, v.index_select(0, neg), neg_w))
        else:
            self.placed[i] = keys.place(neg, neg_w)

    def auc(self, flat_map: torch.Tensor) -> torch.Tensor:
        """B AUCs (0.5 where ``flat_map``, NaN without fixations or negatives)."""
        rows = [i for i, placed in enumerate(self.placed) if placed is not None]
        if rows:
            below, equal = samples_below([self.placed[i] for i in rows])
            pos_w = torch.nn.utils.rnn.pad_sequence(
                [self.positives[i][1].to(torch.float64) for i in rows], batch_first=True
            )
            for i, total in zip(rows, (pos_w * below.add_(equal, alpha=0.5)).sum(1).tolist()):
                self.values[i] = total / self.pairs[i]
        auc = torch.tensor(self.values, dtype=torch.float64, device=flat_map.device)
        return torch.where(flat_map & ~torch.isnan(auc), torch.full_like(auc, 0.5), auc)


def _row_totals(counts: torch.Tensor | SupportCounts) -> list[float]:
    """Σ of the positive counts of each row (B×N counts, dense or sparse, or :class:`SupportCounts`)."""
    if isinstance(counts, SupportCounts):
        return counts.counts.sum(1).tolist()
    b, _, w = fixated(counts)
    return (
        torch.zeros(counts.shape[0], dtype=torch.float64, device=w.device)
        .index_add_(0, b, w.to(torch.float64))
        .tolist()
    )


def _per_row(counts: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(pixel indices, counts) of the fixated pixels of each row of B×N count maps."""
    b, n, w = fixated(counts)
    sizes = torch.bincount(b, minlength=counts.shape[0]).tolist()
    return list(zip(torch.split(n, sizes), torch.split(w, sizes)))


def nonfixation_counts(
    nonfixations: torch.Tensor | SupportCounts, fixations: torch.Tensor
) -> torch.Tensor | SupportCounts:
    """The validated negatives of shuffled AUC (B×N, or :class:`SupportCounts`), the same size as
    the fixation maps."""
    if isinstance(nonfixations, SupportCounts):
        nf = nonfixations
        suspects = (
            (~torch.isfinite(nf.counts.sum(1))).nonzero().flatten().tolist()
        )  # one reduction per map, as first_invalid
        bad = [i for i in suspects if not bool(torch.isfinite(nf.counts[i]).all())]
        if bad:
            raise InvalidMapError("nonfixation map", bad[0])
    else:
        nf = flat(as_batch(nonfixations, "nonfixation map"))
    if (nf.shape[0], math.prod(nf.shape[1:])) != (fixations.shape[0], math.prod(fixations.shape[1:])):
        raise ValueError(
            f"nonfixation maps have shape {tuple(nonfixations.shape)}; expected the fixation maps' "
            f"{tuple(fixations.shape)}"
        )
    return nf


def auc_shuffled(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    nonfixations: torch.Tensor | SupportCounts,
    variant: Literal["pysaliency", "mit"] = "pysaliency",
    splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """Shuffled AUC per image; ``nonfixations`` = counts of other images' fixations (B×H×W, dense or
    sparse, or :class:`SupportCounts`)."""
    p, f = _inputs(pred, fixations)
    nf = nonfixation_counts(nonfixations, as_batch(fixations, "fixation map"))
    flat_map = constant(p)
    if variant == "pysaliency":
        shuffled = ShuffledPass(f, nf)
        for_each_row(lambda i, buffers: shuffled.run_row(i, p[i]), p.shape[0], p.device)
        return shuffled.auc(flat_map)
    if variant != "mit":
        raise ValueError(f"variant={variant!r}; choose 'pysaliency' or 'mit'")
    if isinstance(nf, SupportCounts):
        nf = flat(nf.to_sparse())
    has_neg = torch.bincount(fixated(nf)[0], minlength=nf.shape[0]) > 0
    p = minmax(p)
    pos, pos_w = _padded(p, f, 0.0, binary=True)
    other, other_w = _padded(p, nf, 0.0, binary=True)
    n_fix, n_other = pos_w.sum(1), other_w.sum(1)
    g = torch.Generator(device=p.device).manual_seed(seed)
    # a random subset per draw: random keys, valid entries first, keep the first min(n_fix, n_other)
    keys = torch.rand((p.shape[0], splits, other.shape[1]), generator=g, device=p.device, dtype=p.dtype)
    keys = torch.where(other_w[:, None, :] > 0, keys, torch.full_like(keys, 2.0))
    order = keys.argsort(2)
    take = torch.minimum(n_fix, n_other)
    rank = torch.arange(other.shape[1], device=p.device)
    neg = other[:, None, :].expand(-1, splits, -1).gather(2, order)
    neg_w = (rank[None, None, :] < take[:, None, None]).to(p.dtype).expand(-1, splits, -1)
    auc = _grid_auc(pos, pos_w, neg, neg_w, step).mean(1)
    auc = torch.where(flat_map, torch.full_like(auc, 0.5), auc)
    ok = (torch.bincount(fixated(f)[0], minlength=f.shape[0]) > 0) & has_neg
    return torch.where(ok, auc, torch.full_like(auc, float("nan")))


class ShuffledNegatives:
    """Negatives for shuffled AUC of every image of a dataset, counting each image's fixations once.

    ``fixations_xy[i]`` = (x, y) of image i in its own pixels, ``image_sizes[i]`` = (H, W).
    ``counts(i, size)``: pysaliency's negatives (every fixation of every OTHER image, coordinates
    scaled to image i's size and truncated, ``FullShuffledNonfixationProvider``) as an H×W count map.
    The sum over all images is built once per target size, so each image costs one subtraction.
    """

    def __init__(
        self, fixations_xy: Sequence[tuple[np.ndarray, np.ndarray]], image_sizes: Sequence[tuple[int, int]]
    ) -> None:
        self.xy = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in fixations_xy]
        self.sizes = [tuple(s) for s in image_sizes]
        self._pixel_lists: dict[tuple[int, int], list[np.ndarray]] = {}
        self._totals: dict[tuple[int, int], np.ndarray] = {}
        self._supports: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _pixels(self, size: tuple[int, int]) -> list[np.ndarray]:
        """Flat pixel indices of each image's fixations at ``size`` (repeats kept, outside dropped),
        computed once per size."""
        if size not in self._pixel_lists:
            self._pixel_lists[size] = [self._scale_to(k, size) for k in range(len(self.xy))]
        return self._pixel_lists[size]

    def _scale_to(self, i: int, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        hi, wi = self.sizes[i]
        x, y = self.xy[i]
        cols = (x * (w / wi)).astype(np.int64)
        rows = (y * (h / hi)).astype(np.int64)
        ok = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        return rows[ok] * w + cols[ok]

    def _scaled(self, i: int, size: tuple[int, int]) -> np.ndarray:
        return np.bincount(self._pixels(size)[i], minlength=size[0] * size[1])

    def _total(self, size: tuple[int, int]) -> np.ndarray:
        if size not in self._totals:
            self._totals[size] = np.bincount(np.concatenate(self._pixels(size)), minlength=size[0] * size[1])
        return self._totals[size]

    def counts(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        size = tuple(size or self.sizes[index])
        return (self._total(size) - self._scaled(index, size)).astype(np.float64).reshape(size)

    def support_counts(
        self, indices: Sequence[int], size: tuple[int, int] | None = None, device: torch.device | str = "cpu"
    ) -> SupportCounts:
        """The negatives of images ``indices`` (all at ``size``, default the first image's), stored on
        the pixels fixated in any image: the fastest input of :func:`auc_shuffled` and
        :func:`attnlab.metrics.saliency.saliency_metrics` for many images."""
        size = tuple(size or self.sizes[indices[0]])
        if size not in self._supports:  # sorts the fixations (not H×W pixels), once per size
            self._supports[size] = np.unique(np.concatenate(self._pixels(size)), return_counts=True)
        support, total = self._supports[size]
        counts = np.tile(total.astype(np.float64), (len(indices), 1))  # B × (pixels fixated in any image)
        own = [self._pixels(size)[i] for i in indices]
        rows = np.repeat(np.arange(len(indices)), [len(o) for o in own])
        np.subtract.at(counts, (rows, np.searchsorted(support, np.concatenate(own))), 1)  # minus the image's own
        return SupportCounts(torch.from_numpy(support).to(device), torch.from_numpy(counts).to(device), size)

    def sparse_counts(
        self, indices: Sequence[int], size: tuple[int, int] | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """The negatives of images ``indices`` as one sparse B×H×W count tensor (all at ``size``,
        default the first image's): a few thousand pixels each instead of a dense map."""
        return self.support_counts(indices, size, device).to_sparse()


class SupportCounts:
    """B count maps of H×W pixels that are zero outside one shared, sorted set of S pixels:
    ``support`` (S flat pixel indices) and ``counts`` (B×S, zeros allowed). Shuffled AUC's negatives
    (:meth:`ShuffledNegatives.support_counts`) have this form — every image's negatives are the
    fixations of all the others — and take B·S numbers instead of a sparse tensor's 4·B·S."""

    def __init__(self, support: torch.Tensor, counts: torch.Tensor, size: tuple[int, int]) -> None:
        if counts.dim() != 2 or support.shape != counts.shape[1:]:
            raise ValueError(f"counts must be B×S for S = {support.numel()} support pixels; got {tuple(counts.shape)}")
        if counts.numel() and float(counts.min()) < 0:
            raise ValueError("counts must be ≥ 0 (they count fixations)")
        self.support, self.counts, self.size = support, counts.to(torch.float64), tuple(size)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.counts.shape[0], *self.size)

    def rows(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(flat pixel indices, counts) of each map: the support and its row of counts, zeros
        included (they weigh nothing); a map whose counts are all zero gets empty tensors."""
        empty = self.support[:0], self.counts[0, :0]
        return [(self.support, c) if has else empty for c, has in zip(self.counts, (self.counts.sum(1) > 0).tolist())]

    def to_sparse(self) -> torch.Tensor:
        """The same counts as a coalesced sparse COO B×H×W tensor (zeros left out)."""
        batch, position = (self.counts > 0).nonzero(as_tuple=True)  # row-major: sorted, as a coalesced tensor needs
        pixel = self.support[position]
        index = torch.stack([batch, pixel // self.size[1], pixel % self.size[1]])
        return torch.sparse_coo_tensor(
            index, self.counts[batch, position], self.shape, is_coalesced=True, check_invariants=False
        )


def shuffled_nonfixations(
    fixations_xy: Sequence[tuple[np.ndarray, np.ndarray]],
    image_sizes: Sequence[tuple[int, int]],
    index: int,
    size: tuple[int, int] | None = None,
    variant: Literal["pysaliency", "mit"] = "pysaliency",
    other_images: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Counts (H×W) of the negatives for image ``index`` of a dataset, for :func:`auc_shuffled`.

    pysaliency: every fixation of every other image (see :class:`ShuffledNegatives`, faster for
    many images). mit: the union of the fixations of ``other_images`` random other images (seeded
    by ``seed`` and ``index``), as a binary map.
    """
    if variant == "pysaliency":
        return ShuffledNegatives(fixations_xy, image_sizes).counts(index, size)
    h, w = size or image_sizes[index]
    others = [i for i in range(len(fixations_xy)) if i != index]
    rng = np.random.default_rng([seed, index])
    others = sorted(rng.choice(others, size=min(other_images, len(others)), replace=False).tolist())
    helper = ShuffledNegatives([fixations_xy[i] for i in others], [image_sizes[i] for i in others])
    counts = sum((helper._scaled(k, (h, w)) for k in range(len(others))), np.zeros(h * w))
    return (np.asarray(counts) > 0).astype(np.float64).reshape(h, w)
