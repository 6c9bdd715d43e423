"""Probabilistic sources scored as the MIT/Tübingen benchmark scores them.

- **Metric-specific maps** (Kümmerer, Wallis & Bethge, ECCV 2018): a source with a density p is scored on
  each saliency metric with the map that metric rewards under p (:data:`METRIC_MAPS`): p itself for
  AUC-Judd, AUC-Borji, NSS and IG; log p − log p_centre for shuffled AUC (pysaliency's
  ``ShuffledAUCSaliencyMapModel``: the negatives are other images' fixations, i.e. the centre bias); p
  blurred with the Gaussian of the human density for CC, KLD and SIM (the expected empirical map; the
  SIM map is not the blur but the map that maximises the expected SIM, :func:`sim_map`).
- **Fixation-conditional metrics** (Kümmerer & Bethge 2021): for every human scanpath and fixation, the
  source's density of that fixation given the human's true earlier ones (teacher forcing), scored as
  :data:`CONDITIONAL_METRICS` — ``LL`` (log₂ p + log₂ HW: bits per fixation over the uniform model),
  ``IG_cond`` (bits over the centre bias), ``NSS_cond`` and ``AUC_cond`` (all pixels as negatives) of the
  conditional map at the fixation — averaged over the image's fixations. History-free sources get
  p(x_t | h) = p(x_t). Densities live on the image's pixel grid; a fixation's probability is its pixel's.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

import attnlab.metrics.registry as R
from attnlab.data.fixation_maps import TRUNCATE, pixel_indices
from attnlab.data.gaze import Scanpath
from attnlab.metrics.maps import match_size
from attnlab.sources import AttentionSource, BenchmarkContext
from attnlab.utils.config import UserError

__all__ = [
    "METRIC_MAPS",
    "CONDITIONAL_METRICS",
    "NORM_TOLERANCE",
    "density_at_size",
    "metric_specific_maps",
    "blurred",
    "sim_map",
    "fixations_per_image",
    "conditional_scores",
    "source_log_densities",
    "derived_once",
    "map_statistics",
]

# the map each saliency metric is scored on, derived from a density
METRIC_MAPS = {
    "AUC_Judd": "density",
    "AUC_Borji": "density",
    "NSS": "density",
    "IG": "density",
    "sAUC": "over_centre",
    "CC": "blurred",
    "KLD": "blurred",
    "SIM": "sim_optimal",
}
# sim_map: empirical maps sampled per density, on the coarsest grid that keeps the blur ≥ 3 of its cells wide,
# and at most 2^15 cells (its sorted samples: 64 MiB)
SIM_SAMPLES = 256
SIM_MIN_BLUR_CELLS = 3.0
SIM_MAX_CELLS = 1 << 15
CONDITIONAL_METRICS = R.names("conditional")
CONSTANT = 1e-9  # a density whose spread is below this fraction of its mean is constant (rounding only)
NORM_TOLERANCE = 1e-3  # |Σ p − 1| allowed at the source's own size (float32 networks sum to ~1e-6)


def _fail(source: AttentionSource, ctx: BenchmarkContext, i: int, what: str) -> UserError:
    return UserError(f"source {source.name}: the log density of stimulus {ctx.data.stimuli[i].id!r} {what}")


def density_at_size(
    log_density: np.ndarray, size: tuple[int, int], source: AttentionSource, ctx: BenchmarkContext, i: int
) -> np.ndarray:
    """The source's log density checked (no NaN or +inf, sums to 1 at its own size) and brought to the
    image's ``size``: bilinear on the log density, then renormalised there (as pysaliency's resizing)."""
    log_p = np.asarray(log_density, dtype=np.float64)
    if log_p.ndim != 2:
        raise _fail(source, ctx, i, f"has shape {log_p.shape}, not H×W")
    if np.isnan(log_p).any() or np.isposinf(log_p).any():
        raise _fail(source, ctx, i, "contains NaN or +inf")
    total = float(np.exp(log_p).sum())
    if abs(total - 1.0) > NORM_TOLERANCE:
        raise _fail(source, ctx, i, f"does not sum to 1 (Σ exp = {total:.6g}); return a normalised log density")
    if log_p.shape != tuple(size):
        finite = np.where(np.isfinite(log_p), log_p, np.log(np.finfo(float).tiny))  # −inf does not interpolate
        log_p = match_size(torch.from_numpy(finite)[None], tuple(size))[0].numpy()
        top = log_p.max()
        log_p = log_p - (top + math.log(np.exp(log_p - top).sum()))
    return log_p


def blurred(p: np.ndarray, sigma_px: float) -> np.ndarray:
    """``p`` blurred with the Gaussian the human density uses (:func:`attnlab.data.fixation_maps.gaussian_density`
    is scipy's filter with reflect boundary, truncated at 4σ; tests/test_fixation_data.py holds them equal)."""
    from scipy.ndimage import gaussian_filter

    return p if sigma_px <= 0 else gaussian_filter(p, float(sigma_px), mode="reflect", truncate=TRUNCATE)


def _empirical_maps(mass: np.ndarray, shape: tuple[int, int], fixations: int, samples: int, blur: float, rng):
    """``samples`` empirical maps (samples × cells, each summing to 1): ``fixations`` fixations drawn from
    the cells' ``mass``, blurred as the human density is."""
    from scipy.ndimage import gaussian_filter

    drawn = rng.choice(mass.size, size=(samples, fixations), p=mass / mass.sum())
    counts = np.zeros((samples, mass.size))
    np.add.at(counts, (np.repeat(np.arange(samples), fixations), drawn.ravel()), 1.0)
    maps = gaussian_filter(counts.reshape(samples, *shape), (0, blur, blur), mode="reflect", truncate=TRUNCATE)
    maps = maps.reshape(samples, -1)
    return maps / maps.sum(1, keepdims=True)


def _common_rank(empirical: np.ndarray) -> np.ndarray:
    """The maximiser s (Σ s = 1) of the mean SIM Σ_k Σ_j min(s_j, e_kj) / K over the rows e_k: the mean is
    concave in s and its slope in s_j is the share of samples above s_j, so at the optimum every cell sits
    at one common rank of its own sampled values (interpolated between two ranks to sum to 1)."""
    ranked = np.sort(empirical, axis=0)
    totals = ranked.sum(1)  # Σ_j of each rank, non-decreasing from Σ min (≤ 1) to Σ max (≥ 1)
    r = int(np.clip(np.searchsorted(totals, 1.0), 1, len(totals) - 1))
    t = (1.0 - totals[r - 1]) / (totals[r] - totals[r - 1]) if totals[r] > totals[r - 1] else 0.0
    return ranked[r - 1] + float(np.clip(t, 0.0, 1.0)) * (ranked[r] - ranked[r - 1])


def sim_map(p: np.ndarray, sigma_px: float, fixations: int, seed: int) -> np.ndarray:
    """The map with the highest expected SIM under the density ``p`` (what pysaliency's
    ``SIMSaliencyMapModel`` approaches by gradient ascent from the blurred density): the exact maximiser
    for :data:`SIM_SAMPLES` sampled empirical maps (``fixations`` fixations from ``p``, blurred as the
    human density is; :func:`_common_rank`), shrunk towards the blurred density by the step that scores
    best on :data:`SIM_SAMPLES` further samples (so sampling noise in the ranks of a flat density
    never makes it worse than the blur). Computed on a grid coarsened while the blur stays
    ≥ :data:`SIM_MIN_BLUR_CELLS` cells wide (and to at most :data:`SIM_MAX_CELLS` cells), then resized back."""
    h, w = p.shape
    f = max(1, int(sigma_px // SIM_MIN_BLUR_CELLS), math.ceil(math.sqrt(h * w / SIM_MAX_CELLS)))
    gh, gw = -(-h // f), -(-w // f)
    cells = np.zeros((gh * f, gw * f))
    cells[:h, :w] = p
    mass = cells.reshape(gh, f, gw, f).sum((1, 3))
    rng, blur = np.random.default_rng(seed), sigma_px / f
    optimum = _common_rank(_empirical_maps(mass.ravel(), (gh, gw), fixations, SIM_SAMPLES, blur, rng))
    expected = blurred(mass, blur).ravel()
    expected /= expected.sum()
    held_out = _empirical_maps(mass.ravel(), (gh, gw), fixations, SIM_SAMPLES, blur, rng)
    steps = np.linspace(0.0, 1.0, 21)
    scores = [np.minimum(held_out, expected + a * (optimum - expected)).sum(1).mean() for a in steps]
    s = (expected + steps[int(np.argmax(scores))] * (optimum - expected)).reshape(gh, gw)
    if f > 1:  # back to pixels: each cell's mass spread over its f×f pixels, bilinearly
        s = match_size(torch.from_numpy(s)[None], (gh * f, gw * f))[0].numpy()[:h, :w].clip(min=0.0)
    return s / s.sum()


def metric_specific_maps(
    log_p: np.ndarray, log_centre: np.ndarray, sigma_px: float, sim_fixations: int, seed: int
) -> dict[str, np.ndarray]:
    """{group of :data:`METRIC_MAPS`: its map} for a log density at the image's size (``sim_fixations``,
    ``seed``: the empirical maps :func:`sim_map` samples)."""
    p = np.exp(log_p)
    if np.ptp(p) <= CONSTANT * p.mean():  # a flat density (uniform) stays flat: no blur rounding to score
        return {"density": p, "over_centre": p, "blurred": p, "sim_optimal": p}
    with np.errstate(invalid="ignore"):
        over = np.where(np.isfinite(log_p), log_p - log_centre, -np.inf)
    floor = over[np.isfinite(over)].min() - 1.0 if np.isfinite(over).any() else 0.0
    return {
        "density": p,
        "over_centre": np.where(np.isfinite(over), over, floor),  # rank-based: a floor below all is exact
        "blurred": blurred(p, sigma_px),
        "sim_optimal": sim_map(p, sigma_px, sim_fixations, seed),
    }


def fixations_per_image(ctx: BenchmarkContext) -> int:
    """How many fixations :func:`sim_map`'s empirical maps hold: the training split's mean per image (so a
    density shared by many images, the centre bias, has one SIM map, and no test fixation is used)."""
    if "fixations_per_image" not in ctx.cache:
        counts = [sum(len(p) for p in paths) for paths in ctx.train.scanpaths] or [1]
        ctx.cache["fixations_per_image"] = max(1, round(float(np.mean(counts))))
    return ctx.cache["fixations_per_image"]


def source_log_densities(source: AttentionSource, ctx: BenchmarkContext, indices) -> list[Optional[np.ndarray]]:
    """Each image's log density at its size (None for a map source). A source that returns one array
    for many images (the centre bias: one per image size) gets one checked, resized array back for
    them, so what is derived from it can be computed once (:func:`derived_once`)."""
    out, seen = [], {}
    for i in indices:
        raw = source.log_density(ctx, i)
        if raw is None:
            out.append(None)
            continue
        size = tuple(ctx.data.stimuli[i].size)
        key = (id(raw), size)
        if key not in seen:  # raw is kept alive with it, so its id is not reused meanwhile
            seen[key] = (raw, density_at_size(raw, size, source, ctx, i))
        out.append(seen[key][1])
    return out


def derived_once(log_ps: list[np.ndarray], compute) -> list:
    """``compute(log_p)`` for each log density, once per distinct array (see :func:`source_log_densities`)."""
    done: dict[int, object] = {}
    for lp in log_ps:
        if id(lp) not in done:
            done[id(lp)] = compute(lp)
    return [done[id(lp)] for lp in log_ps]


def _fixation_pixels(path: Scanpath, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(index in the scanpath, row, column) of each fixation inside the image (the others are dropped,
    as for every metric; they stay in the later fixations' history)."""
    rows, cols, inside = pixel_indices(path.x, path.y, size, None)
    return list(zip(np.flatnonzero(inside).tolist(), rows.tolist(), cols.tolist()))


def conditional_scores(
    source: AttentionSource,
    ctx: BenchmarkContext,
    i: int,
    log_p: Optional[np.ndarray],
    log_centre: np.ndarray,
    free: Optional[tuple] = None,
) -> dict[str, float]:
    """:data:`CONDITIONAL_METRICS` of image ``i``: per fixation of every human scanpath, averaged over the
    image's fixations. ``log_p``: the history-free density at the image's size (used when the source
    does not condition on the history), ``free`` its :func:`map_statistics` if already computed."""
    size = tuple(ctx.data.stimuli[i].size)
    scored = []  # per block of fixations scored on one density: {metric: values}
    if not source.conditional:
        pixels = [(r, c) for path in ctx.human_scanpaths[i] for _, r, c in _fixation_pixels(path, size)]
        if pixels:
            rows, cols = np.array(pixels).T
            scored.append(_at_fixations(source, ctx, i, log_p, free or map_statistics(log_p), rows, cols, log_centre))
    else:
        for path in ctx.human_scanpaths[i]:
            for t, r, c in _fixation_pixels(path, size):
                lp = source.conditional_log_density(ctx, i, path.x[:t], path.y[:t])
                if lp is None:
                    raise _fail(source, ctx, i, "is None for a history: a conditional source must always give one")
                lp = density_at_size(lp, size, source, ctx, i)
                scored.append(_at_fixations(source, ctx, i, lp, map_statistics(lp), [r], [c], log_centre))
    if not scored:
        return {m: float("nan") for m in CONDITIONAL_METRICS}
    return {m: float(np.mean(np.concatenate([v[m] for v in scored]))) for m in CONDITIONAL_METRICS}


def _at_fixations(source, ctx, i, log_p, stats, rows, cols, log_centre) -> dict[str, np.ndarray]:
    """The conditional metrics of the fixations at (rows, cols), all scored on the density ``log_p``."""
    at = log_p[rows, cols]
    if not np.isfinite(at).all():
        r, c = np.asarray(rows)[~np.isfinite(at)][0], np.asarray(cols)[~np.isfinite(at)][0]
        raise _fail(source, ctx, i, f"is −inf at a human fixation (pixel x={c}, y={r})")
    mean, std, ordered = stats
    p_at = np.exp(at)
    below = np.searchsorted(ordered, p_at, "left")
    ties = np.searchsorted(ordered, p_at, "right") - below
    return {
        "LL": at / math.log(2) + math.log2(log_p.size),
        "IG_cond": (at - log_centre[rows, cols]) / math.log(2),
        "NSS_cond": (p_at - mean) / std if std > 0 else np.zeros_like(at),
        "AUC_cond": (below + 0.5 * ties) / ordered.size,
    }


def map_statistics(log_p: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean, standard deviation (ddof 0, as NSS) and the sorted values of p = exp(log_p)."""
    p = np.exp(log_p).ravel()
    std = float(p.std())
    return float(p.mean()), std if std > CONSTANT * p.mean() else 0.0, np.sort(p)
