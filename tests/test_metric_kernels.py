"""The compiled metric kernels (attnlab.metrics.kernels) against the plain definitions
(attnlab.metrics.saliency_reference) on the maps that break fast code: ties between pixels and
thresholds, negative values, offsets far above the span, values spread over many octaves, constant
maps; and their logarithm against NumPy's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.metrics import kernels
from attnlab.metrics import saliency as S
from attnlab.metrics import saliency_reference as R
from attnlab.metrics.auc import SupportCounts
from attnlab.metrics.maps import InvalidMapError

SIZE = (24, 32)


def test_the_logarithm_equals_numpys_over_the_whole_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 5000)), 1 + rng.uniform(-1e-6, 1e-6, 1000), [1.0, 2.0]])
    got = x.copy()
    bits, exponent = np.empty(x.size, np.int64), np.empty(x.size)
    kernels._log_chunk(got, bits, exponent, x.size)
    np.testing.assert_allclose(got, np.log(x), rtol=1e-13, atol=1e-13)  # the documented bound


def _map(rng, kind: str) -> np.ndarray:
    m = rng.random(SIZE)
    if kind == "ties":
        return np.round(m * 6) / 6  # seven values: most thresholds are shared by many pixels
    if kind == "negative":
        return m - 0.7
    if kind == "offset":
        return 1e3 + m * 1e-3  # span 1e-6 of the values
    if kind == "octaves":
        return np.exp(rng.uniform(-60, 0, SIZE)) * (rng.random(SIZE) > 0.3)  # zeros and 26 decades
    if kind == "constant":
        return np.full(SIZE, 0.25)
    return m**3


KINDS = ["cubed", "ties", "negative", "offset", "octaves", "constant"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kinds=st.lists(st.sampled_from(KINDS), min_size=3, max_size=3))
def test_compiled_metrics_equal_the_plain_definitions(seed, kinds):
    rng = np.random.default_rng(seed)
    maps = np.stack([_map(rng, k) for k in kinds])
    counts = np.zeros((3, *SIZE))
    for c in counts:
        np.add.at(c, (rng.integers(0, SIZE[0], 25), rng.integers(0, SIZE[1], 25)), 1)  # repeats included
    counts[:, 0, 0] += 1  # a fixation on a pixel every map shares
    dens = rng.random((3, *SIZE)) ** 4
    baseline = rng.random(SIZE) + 0.1
    negatives = np.stack([counts.sum(0) - c for c in counts])
    support = np.flatnonzero(negatives.sum(0))
    shared = SupportCounts(torch.from_numpy(support), torch.from_numpy(negatives.reshape(3, -1)[:, support]), SIZE)
    t = torch.as_tensor
    for nonfixations in (t(negatives), shared):
        fast = S.saliency_metrics(t(maps), t(counts), t(dens), t(baseline), nonfixations, jitter=False)
        targets = {"fixations": (counts,), "density": (dens,), "fixations+baseline": (counts, [baseline] * 3),
                   "fixations+negatives": (counts, negatives)}  # fmt: skip
        for name, (definition, target) in R.METRICS.items():
            plain = [definition(m, *(x[k] for x in targets[target])) for k, m in enumerate(maps)]
            exact = name in ("AUC_Judd", "sAUC")  # counts: no rounding but the final division
            tol = dict(rtol=1e-12, atol=1e-14) if exact else dict(rtol=1e-7, atol=1e-8)  # moments of offset maps
            np.testing.assert_allclose(fast[name].numpy(), plain, **tol, err_msg=f"{name} {kinds}")


def test_a_map_with_nan_is_left_to_the_checks_that_name_it():
    maps = torch.rand(2, *SIZE, dtype=torch.float64)
    maps[1, 3, 4] = float("nan")
    counts = torch.zeros(2, *SIZE, dtype=torch.float64)
    counts[:, 5, 6] = 1
    with pytest.raises(InvalidMapError) as raised:
        S.saliency_metrics(maps, counts, torch.rand(2, *SIZE, dtype=torch.float64), jitter=False)
    assert raised.value.index == 1
