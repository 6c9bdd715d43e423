"""The plain definitions (attnlab.metrics.saliency_reference) equal pysaliency, and the fast batched
metrics (attnlab.metrics.saliency) equal the plain definitions, on smooth random maps with real OSIE
fixations and on the degenerate maps the conventions name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.data.fixations import fixation_map, gaussian_density
from attnlab.metrics import saliency as S
from attnlab.metrics import saliency_reference as R

if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid  # pysaliency 0.2.22 calls np.trapz
pysaliency = pytest.importorskip("pysaliency")

SIZE = (48, 64)


def _maps(seed: int, n: int = 4):
    """(maps, fixation counts, human densities, the fixations' x and y): smooth random maps with a
    negative offset in one (pysaliency shifts those), fixations with repeats on some pixels."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random((n, 1, 6, 8)))
    maps = torch.nn.functional.interpolate(noise, size=SIZE, mode="bicubic", align_corners=False)[:, 0].numpy()
    maps[1:2] -= 0.5
    xy = []
    for _ in range(n):
        x, y = rng.uniform(0, SIZE[1], 30), rng.uniform(0, SIZE[0], 30)
        x[:5], y[:5] = x[5:10], y[5:10]  # five fixations twice on one pixel
        xy.append((x, y))
    counts = np.stack([fixation_map(x, y, SIZE)[0] for x, y in xy])
    dens = np.stack([gaussian_density(x, y, SIZE, 3.0) for x, y in xy])
    return maps, counts, dens, xy


class _Fixed(pysaliency.SaliencyMapModel):
    """One map for any stimulus."""

    def __init__(self, m):
        super().__init__(caching=False)
        self.m = m

    def _saliency_map(self, stimulus):
        return self.m


def test_plain_definitions_equal_pysaliency():
    maps, counts, dens, xy = _maps(0)
    baseline = np.exp(-((np.arange(SIZE[0])[:, None] - 24) ** 2 + (np.arange(SIZE[1]) - 32) ** 2) / 400.0)
    for s, c, q, (x, y) in zip(maps, counts, dens, xy):
        xi, yi = np.floor(x).astype(int), np.floor(y).astype(int)
        assert R.nss(s, c) == pytest.approx(np.mean(pysaliency.metrics.NSS(s, xi, yi)), rel=1e-9)
        assert R.cc(s, q) == pytest.approx(pysaliency.metrics.CC(s, q), rel=1e-9)
        assert R.kld(s, q) == pytest.approx(pysaliency.metrics.MIT_KLDiv(s, q), rel=1e-9)
        assert R.sim(s, q) == pytest.approx(pysaliency.metrics.SIM(s, q), rel=1e-9)
        fixated = s[yi, xi]
        others = s[c == 0]
        judd, _, _ = pysaliency.roc.general_roc(fixated, others, judd=1)
        assert R.auc_judd(s, c) == pytest.approx(judd, rel=1e-9)
        # IG against pysaliency's normalising model: log2 of each map's density at every fixation
        ours, theirs = (
            pysaliency.models.SaliencyMapNormalizingModel(_Fixed(m)).log_density(np.zeros((*SIZE, 3)))[yi, xi]
            for m in (s, baseline)
        )
        expected = np.mean(np.log2(np.exp(ours) + 2.2204e-16) - np.log2(np.exp(theirs) + 2.2204e-16))
        assert R.information_gain(s, c, baseline) == pytest.approx(expected, rel=1e-6)
        negatives = counts[(counts.sum((1, 2)) > 0)].sum(0) - c
        neg_values = np.repeat(s.ravel(), negatives.ravel().astype(int))
        shuffled, _, _ = pysaliency.roc.general_roc(fixated, neg_values)
        assert R.auc_shuffled(s, c, negatives) == pytest.approx(shuffled, rel=1e-9)


def test_the_fast_metrics_equal_the_plain_definitions():
    maps, counts, dens, _ = _maps(1)
    baseline = np.exp(-((np.arange(SIZE[0])[:, None] - 20) ** 2 + (np.arange(SIZE[1]) - 30) ** 2) / 300.0)
    negatives = np.stack([counts.sum(0) - c for c in counts])
    t = torch.as_tensor
    fast = S.saliency_metrics(t(maps), t(counts), t(dens), t(baseline), t(negatives), jitter=False)
    targets = {"fixations": (counts,), "density": (dens,), "fixations+baseline": (counts, [baseline] * len(maps)),
               "fixations+negatives": (counts, negatives)}  # fmt: skip
    for name, (definition, target) in R.METRICS.items():
        plain = [definition(m, *(x[k] for x in targets[target])) for k, m in enumerate(maps)]
        np.testing.assert_allclose(fast[name].numpy(), plain, rtol=1e-6, err_msg=name)


def test_degenerate_maps_score_as_the_conventions_say():
    _, counts, dens, _ = _maps(2, 1)
    flat = np.full(SIZE, 0.3)
    assert R.nss(flat, counts[0]) == 0 and R.cc(flat, dens[0]) == 0
    assert R.auc_judd(flat, counts[0]) == 0.5 and R.auc_shuffled(flat, counts[0], counts[0]) == 0.5
    zero = np.zeros(SIZE)
    assert R.sim(zero, dens[0]) == pytest.approx(R.sim(np.ones(SIZE), dens[0]))  # all zero → uniform density
    assert np.isnan(R.nss(dens[0], zero)) and np.isnan(R.cc(dens[0], zero)) and np.isnan(R.kld(dens[0], zero))
