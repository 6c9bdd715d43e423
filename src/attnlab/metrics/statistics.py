"""Uncertainty of scores over images: percentile bootstrap intervals and paired comparisons.

Human-likeness numbers are means over a few dozen test images; these say how far such a mean could
move with other images from the same population. The unit resampled is the image. Images whose value
is NaN (a metric that does not apply to them) are left out before resampling, pairwise for paired
comparisons.

Resampling scheme (so that an independent implementation reproduces the draws exactly):
``np.random.default_rng(seed).integers(0, n, size=(samples, n))``, one row of image indices per draw;
an interval is ``np.percentile(draw_means, [2.5, 97.5])`` (linear interpolation) for level 0.95.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "Comparison", "bootstrap_indices", "percentile_interval", "mean_interval", "paired_comparison"]

SAMPLES = 10_000  # bootstrap resamples of the images (the leaderboard's bootstrap.samples default)
LEVEL = 0.95  # coverage of every interval


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` images and its bootstrap interval [low, high] at ``level``."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside the interval (for a difference: a real one at this level)."""
        return bool(self.low > value or self.high < value)


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two sources on the same images: the mean difference a − b with its bootstrap
    interval, and the two-sided p-value of the Wilcoxon signed-rank test of the differences."""

    difference: Interval
    p_value: float

    @property
    def significant(self) -> bool:
        return self.difference.excludes(0.0)


def bootstrap_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """samples×n image indices drawn with replacement (the documented scheme)."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite ``draws`` (NaN, NaN when there are none)."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values, samples: int = SAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """Mean of per-image ``values`` and its percentile bootstrap interval over images."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level)
    if v.size == 1 or samples < 1:
        return Interval(float(v.mean()), float("nan"), float("nan"), int(v.size), level)
    draws = v[bootstrap_indices(v.size, samples, seed)].mean(axis=1)
    return Interval(float(v.mean()), *percentile_interval(draws, level), n=int(v.size), level=level)


def paired_comparison(a, b, samples: int = SAMPLES, seed: int = 0, level: float = LEVEL) -> Comparison:
    """``a`` vs ``b`` scored on the same images (per-image values in the same order)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images: {a.size} vs {b.size}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    interval = mean_interval(d, samples, seed, level)
    p = float("nan")
    if d.size >= 2 and np.any(d != 0):
        p = float(stats.wilcoxon(d).pvalue)
    return Comparison(interval, p)
