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

from typing import Literal, Sequence

import numpy as np
import torch

from attnlab.metrics.maps import as_batch, constant, fixated, flat, match_size, minmax

__all__ = ["auc_judd", "auc_borji", "auc_shuffled", "shuffled_nonfixations", "ShuffledNegatives", "roc_auc"]

JITTER = 1e-7


def _inputs(pred: torch.Tensor, fixations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = as_batch(fixations, "fixation map")
    p = match_size(as_batch(pred), f.shape[-2:])
    if p.shape[0] != f.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {f.shape[0]} fixation maps")
    return flat(p), flat(f)


def _padded(values: torch.Tensor, weights: torch.Tensor, fill: float, binary: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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


def _count_at_or_above(thresholds_sorted: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """For each (ascending) threshold t_i of each row: total weight of ``values`` ≥ t_i."""
    idx = torch.searchsorted(thresholds_sorted, values, right=True)  # #thresholds ≤ v: v ≥ t_i iff i < idx
    hist = torch.zeros(values.shape[0], thresholds_sorted.shape[1] + 1, dtype=torch.float64, device=values.device)
    hist.scatter_add_(1, idx, torch.ones_like(values) if weights is None else weights.to(torch.float64))
    return hist.flip(1).cumsum(1).flip(1)[:, 1:]


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
    flat_map = constant(p)
    if jitter:  # normalise first so that the jitter only ever breaks ties
        p = minmax(p)
        g = torch.Generator(device=p.device).manual_seed(seed)
        p = p + JITTER * torch.rand(p.shape, generator=g, device=p.device, dtype=p.dtype)
    thr, w = _padded(p, f, float("inf"), binary=variant == "mit")  # one threshold per fixated pixel
    thr, order = thr.sort(1)
    w = w.gather(1, order)
    fixated = (w > 0).sum(1, keepdim=True).to(p.dtype)
    # pixels ≥ t_i, minus the fixated pixels ≥ t_i, = non-fixated pixels ≥ t_i
    ge_all = _count_at_or_above(thr, p)
    left = torch.searchsorted(thr, thr, right=False)  # #thresholds < t_i
    ge_fixated = (fixated - left).clamp_min(0)
    cum_w = torch.cat([torch.zeros_like(w[:, :1]), w.cumsum(1)], 1)
    total_w = cum_w[:, -1:]
    pos_ge = total_w - cum_w.gather(1, left)
    negatives = p.shape[1] - fixated
    tpr = pos_ge / total_w.clamp_min(1e-300)
    fpr = (ge_all - ge_fixated) / negatives.clamp_min(1)
    auc = _trapezoid(fpr.flip(1), tpr.flip(1))  # descending thresholds
    auc = torch.where(flat_map, torch.full_like(auc, 0.5), auc)
    return torch.where(total_w[:, 0] > 0, auc, torch.full_like(auc, float("nan")))


def _grid_auc(positives: torch.Tensor, pos_w: torch.Tensor, negatives: torch.Tensor, neg_w: torch.Tensor, step: float) -> torch.Tensor:
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


def auc_borji(pred: torch.Tensor, fixations: torch.Tensor, splits: int = 100, step: float = 0.1, seed: int = 0) -> torch.Tensor:
    """AUC-Borji per image: uniform random negatives, ``splits`` draws, thresholds every ``step``."""
    p, f = _inputs(pred, fixations)
    flat_map = constant(p)
    p = minmax(p)
    pos, pos_w = _padded(p, f, 0.0, binary=True)  # each fixated pixel once, as the binary map
    n_fix = pos_w.sum(1)
    g = torch.Generator(device=p.device).manual_seed(seed)
    k = pos.shape[1]
    idx = torch.randint(0, p.shape[1], (p.shape[0], splits, k), generator=g, device=p.device)
    neg = p.gather(1, idx.reshape(p.shape[0], -1)).reshape(p.shape[0], splits, k)
    neg_w = pos_w[:, None, :].expand(-1, splits, -1)  # as many negatives as fixated pixels, per draw
    auc = _grid_auc(pos, pos_w, neg, neg_w, step).mean(1)
    auc = torch.where(flat_map, torch.full_like(auc, 0.5), auc)
    return torch.where(n_fix > 0, auc, torch.full_like(auc, float("nan")))


def roc_auc(positives: torch.Tensor, pos_w: torch.Tensor, negatives: torch.Tensor, neg_w: torch.Tensor) -> torch.Tensor:
    """Exact weighted ROC-AUC per row: P(pos > neg) + ½ P(pos = neg) (pysaliency ``general_roc``)."""
    neg, order = negatives.sort(1)
    nw = neg_w.gather(1, order).to(torch.float64)
    cum = torch.cat([torch.zeros_like(nw[:, :1]), nw.cumsum(1)], 1)
    below = cum.gather(1, torch.searchsorted(neg, positives, right=False))
    at_or_below = cum.gather(1, torch.searchsorted(neg, positives, right=True))
    score = (pos_w * (below + 0.5 * (at_or_below - below))).sum(1)
    return score / (pos_w.sum(1) * cum[:, -1]).clamp_min(1e-300)


def auc_shuffled(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    nonfixations: torch.Tensor,
    variant: Literal["pysaliency", "mit"] = "pysaliency",
    splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """Shuffled AUC per image; ``nonfixations`` = counts of other images' fixations (B×H×W)."""
    p, f = _inputs(pred, fixations)
    nf = flat(as_batch(nonfixations, "nonfixation map"))
    if nf.shape != p.shape:
        raise ValueError(f"nonfixation maps have shape {tuple(nonfixations.shape)}; expected the fixation maps' {tuple(fixations.shape)}")
    flat_map = constant(p)
    has_neg = torch.bincount(fixated(nf)[0], minlength=nf.shape[0]) > 0
    if variant == "pysaliency":
        pos, pos_w = _padded(p, f, float("inf"))
        neg, neg_w = _padded(p, nf, float("inf"))
        auc = roc_auc(pos, pos_w, neg, neg_w)
    elif variant == "mit":
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
    else:
        raise ValueError(f"variant={variant!r}; choose 'pysaliency' or 'mit'")
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

    def __init__(self, fixations_xy: Sequence[tuple[np.ndarray, np.ndarray]], image_sizes: Sequence[tuple[int, int]]) -> None:
        self.xy = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in fixations_xy]
        self.sizes = [tuple(s) for s in image_sizes]
        self._totals: dict[tuple[int, int], np.ndarray] = {}

    def _scaled(self, i: int, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        hi, wi = self.sizes[i]
        x, y = self.xy[i]
        cols = (x * (w / wi)).astype(np.int64)
        rows = (y * (h / hi)).astype(np.int64)
        ok = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        return np.bincount(rows[ok] * w + cols[ok], minlength=h * w)

    def counts(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        size = tuple(size or self.sizes[index])
        if size not in self._totals:
            self._totals[size] = sum(self._scaled(i, size) for i in range(len(self.xy)))
        return (self._totals[size] - self._scaled(index, size)).astype(np.float64).reshape(size)


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
