"""Bootstrap intervals over images and paired comparisons, against NumPy/SciPy computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from attnlab.metrics.statistics import bootstrap_indices, mean_interval, paired_comparison, percentile_interval


def reference_interval(values: np.ndarray, samples: int, seed: int, level: float) -> tuple[float, float]:
    """The documented scheme written out with a loop over the draws."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(values), size=(samples, len(values)))
    means = [float(np.mean([values[i] for i in row])) for row in rows]
    tail = 100 * (1 - level) / 2
    return tuple(np.percentile(means, [tail, 100 - tail]))


def test_interval_agrees_with_scipy_bootstrap():
    values = np.random.default_rng(2).exponential(1.0, size=80)
    ours = mean_interval(values, samples=20_000, seed=0)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=20_000, method="percentile", random_state=0)
    ci = theirs.confidence_interval
    assert ours.low == pytest.approx(ci.low, abs=0.02) and ours.high == pytest.approx(ci.high, abs=0.02)
    assert ours.n == 80 and ours.mean == pytest.approx(values.mean()) and ours.low < ours.mean < ours.high


def test_nan_images_are_left_out_and_degenerate_inputs_say_so():
    values = np.array([1.0, np.nan, 3.0, 2.0])
    assert mean_interval(values, samples=200).n == 3 and mean_interval(values, samples=200).mean == pytest.approx(2.0)
    one = mean_interval([5.0])
    assert one.mean == 5.0 and np.isnan(one.low) and np.isnan(one.high)
    assert np.isnan(mean_interval([np.nan]).mean)
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])


def test_paired_comparison_hand_checked_and_against_scipy():
    # every image 0.1 better: the difference is exactly 0.1, its interval [0.1, 0.1], which excludes 0
    b = np.linspace(0.2, 0.8, 20)
    same_shift = paired_comparison(b + 0.1, b, samples=300)
    assert same_shift.difference.mean == pytest.approx(0.1)
    assert same_shift.difference.low == pytest.approx(0.1) and same_shift.difference.high == pytest.approx(0.1)
    assert same_shift.significant
    rng = np.random.default_rng(4)
    a, c = rng.normal(0, 1, 40), rng.normal(0, 1, 40)
    noisy = paired_comparison(a, c, samples=2000, seed=1)
    assert noisy.p_value == pytest.approx(stats.wilcoxon(a - c).pvalue)
    assert noisy.difference.mean == pytest.approx(np.mean(a - c))
    assert (noisy.difference.low, noisy.difference.high) == pytest.approx(reference_interval(a - c, 2000, 1, 0.95))
    # a NaN in either source drops that image from both
    a[3] = np.nan
    assert paired_comparison(a, c, samples=100).difference.n == 39
    with pytest.raises(ValueError, match="same images"):
        paired_comparison([1, 2], [1, 2, 3])


def test_bootstrap_indices_are_seeded():
    assert np.array_equal(bootstrap_indices(10, 5, 7), bootstrap_indices(10, 5, 7))
    assert not np.array_equal(bootstrap_indices(10, 5, 7), bootstrap_indices(10, 5, 8))
    assert bootstrap_indices(10, 5, 7).shape == (5, 10) and bootstrap_indices(10, 5, 7).max() < 10
