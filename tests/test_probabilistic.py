"""Probabilistic sources scored as the Tübingen benchmark does: metric-specific maps and fixation-conditional
metrics, against pysaliency (its reference code) on OSIE images, a closed-form case and the bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path

from attnlab.sources import AttentionSource
from attnlab.utils.config import UserError

pysaliency = pytest.importorskip("pysaliency")


@pytest.fixture(scope="module")
def osie():
    from attnlab.data.osie import load_osie

    return load_osie(shared_path("data", "osie_subset"))


def context(osie, images=2, **flags):
    from attnlab.benchmark import BenchmarkContext
    from attnlab.metrics.saliency import ShuffledNegatives

    data = osie.subset(range(images))
    ctx = BenchmarkContext(data, osie, 24.0, 3, data.filtered(drop_first=True).scanpaths, **flags)
    negatives = ShuffledNegatives(
        [(f.x, f.y) for f in (data.fixations(i) for i in range(len(data)))], [s.size for s in data.stimuli]
    )
    return ctx, negatives


def smooth_log_density(size, seed):
    """A positive, smooth, normalised density: a few Gaussian bumps on a floor."""
    rng = np.random.default_rng(seed)
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w]
    p = np.full(size, 0.05)
    for _ in range(4):
        cx, cy, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(30, 120)
        p += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s**2))
    return np.log(p / p.sum())


class DensitySource(AttentionSource):
    """Fixed densities per image (history-free)."""

    name = "density"

    def __init__(self, log_densities):
        self.log_densities = log_densities

    def saliency_map(self, ctx, i):
        return np.exp(self.log_densities[i])

    def log_density(self, ctx, i):
        return self.log_densities[i]


class NearLastFixation(DensitySource):
    """A scanpath model: a mixture of the image density and a Gaussian around the last fixation."""

    name = "near_last"

    def conditional_log_density(self, ctx, i, history_x, history_y):
        log_p = self.log_densities[i]
        if not len(history_x):
            return log_p
        h, w = log_p.shape
        ys, xs = np.mgrid[0:h, 0:w]
        near = np.exp(-((xs + 0.5 - history_x[-1]) ** 2 + (ys + 0.5 - history_y[-1]) ** 2) / (2 * 60.0**2))
        mix = 0.5 * np.exp(log_p) + 0.5 * near / near.sum()
        return np.log(mix)


class ArrayModel(pysaliency.Model):
    """pysaliency's view of the same densities, by stimulus index."""

    def __init__(self, stimuli, log_densities):
        super().__init__(caching=False)
        self.ids = [s.stimulus_id for s in stimuli.stimulus_objects]
        self.log_densities = log_densities

    def _log_density(self, stimulus):  # pragma: no cover - log_density is overridden
        raise NotImplementedError

    def log_density(self, stimulus):
        from pysaliency.models import handle_stimulus

        return self.log_densities[self.ids.index(handle_stimulus(stimulus).stimulus_id)]


class ArrayScanpathModel(pysaliency.ScanpathModel):
    def __init__(self, stimuli, source):
        super().__init__()
        self.ids = [s.stimulus_id for s in stimuli.stimulus_objects]
        self.source = source

    def conditional_log_density(self, stimulus, x_hist, y_hist, t_hist, attributes=None, out=None):
        from pysaliency.models import handle_stimulus

        i = self.ids.index(handle_stimulus(stimulus).stimulus_id)
        return self.source.conditional_log_density(None, i, np.asarray(x_hist), np.asarray(y_hist))


def pysaliency_inputs(ctx):
    data = ctx.data
    stimuli = pysaliency.Stimuli([data.load_image(i) for i in range(len(data))])
    every = [data.fixations(i) for i in range(len(data))]
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([f.x for f in every]),
        np.concatenate([f.y for f in every]),
        np.concatenate([np.full(len(f.x), i) for i, f in enumerate(every)]),
    )
    trains = [(i, p) for i, paths in enumerate(ctx.human_scanpaths) for p in paths if len(p.x)]
    scanpaths = pysaliency.FixationTrains.from_fixation_trains(
        [p.x for _, p in trains],
        [p.y for _, p in trains],
        [np.arange(len(p.x), dtype=float) for _, p in trains],
        [i for i, _ in trains],
        [0 for _ in trains],
    )
    return stimuli, fixations, scanpaths


def per_image(values, ns, count):
    return np.array([values[ns == i].mean() for i in range(count)])


def scored(ctx, negatives, source):
    """The fast path's rows and the plain reference's, which must agree."""
    from attnlab.benchmark.reference import reference_targets, score_image_reference
    from attnlab.benchmark.scoring import score_chunk

    indices = list(range(len(ctx.data)))
    fast = score_chunk([source], ctx, indices, negatives)[0][source.name]
    for i in indices:
        ref, _ = score_image_reference(source, ctx, i, reference_targets(ctx, i, negatives))
        for metric, v in ref.items():
            assert fast[i][metric] == pytest.approx(v, rel=1e-6, abs=1e-9), (metric, i)
    return fast


def test_metric_specific_maps_and_conditional_metrics_equal_pysaliency(osie, one_torch_thread):
    from attnlab.baselines import fitted_centre_bias

    ctx, negatives = context(osie)
    sizes = [s.size for s in ctx.data.stimuli]
    log_p = [smooth_log_density(size, seed) for seed, size in enumerate(sizes)]
    rows = scored(ctx, negatives, DensitySource(log_p))
    stimuli, fixations, scanpaths = pysaliency_inputs(ctx)
    model = ArrayModel(stimuli, log_p)
    centre = ArrayModel(stimuli, [np.log(fitted_centre_bias(ctx).map(s)) for s in sizes])
    ours = lambda metric: np.array([r[metric] for r in rows])  # noqa: E731
    # shuffled AUC on log p − log p_centre (pysaliency's ShuffledAUCSaliencyMapModel)
    shuffled = pysaliency.models.ShuffledAUCSaliencyMapModel(model, centre)
    expected = shuffled.AUCs(stimuli, fixations, nonfixations="shuffled")
    np.testing.assert_allclose(ours("sAUC"), per_image(expected, fixations.n, 2), rtol=1e-6)
    # IG and NSS on the density itself
    np.testing.assert_allclose(
        ours("IG"), per_image(model.information_gains(stimuli, fixations, centre), fixations.n, 2), rtol=1e-6
    )
    saliency = pysaliency.saliency_map_models.DensitySaliencyMapModel(model)
    np.testing.assert_allclose(ours("NSS"), per_image(saliency.NSSs(stimuli, fixations), fixations.n, 2), rtol=1e-6)
    # conditional: log-likelihood over uniform and IG over the centre bias of every scanpath fixation
    uniform_ig = model.information_gains(stimuli, scanpaths, pysaliency.UniformModel())
    np.testing.assert_allclose(ours("LL"), per_image(uniform_ig, scanpaths.n, 2), rtol=1e-6)
    np.testing.assert_allclose(
        ours("IG_cond"), per_image(model.information_gains(stimuli, scanpaths, centre), scanpaths.n, 2), rtol=1e-6
    )


def test_a_scanpath_model_conditions_on_the_true_history_as_pysaliency_does(osie, one_torch_thread):
    from attnlab.baselines import fitted_centre_bias

    ctx, negatives = context(osie, metric_specific=False)
    sizes = [s.size for s in ctx.data.stimuli]
    log_p = [smooth_log_density(size, seed) for seed, size in enumerate(sizes)]
    source = NearLastFixation(log_p)
    assert source.conditional and not DensitySource(log_p).conditional
    rows = scored(ctx, negatives, source)
    stimuli, _, scanpaths = pysaliency_inputs(ctx)
    model = ArrayScanpathModel(stimuli, source)
    centre = ArrayModel(stimuli, [np.log(fitted_centre_bias(ctx).map(s)) for s in sizes])
    lls = model.log_likelihoods(stimuli, scanpaths) / math.log(2) + np.log2(
        [sizes[n][0] * sizes[n][1] for n in scanpaths.n]
    )
    np.testing.assert_allclose([r["LL"] for r in rows], per_image(lls, scanpaths.n, 2), rtol=1e-6)
    gains = model.information_gains(stimuli, scanpaths, centre)
    np.testing.assert_allclose([r["IG_cond"] for r in rows], per_image(gains, scanpaths.n, 2), rtol=1e-6)
    # the history helps this model: near the last fixation is where people look next
    free = scored(ctx, negatives, DensitySource(log_p))
    assert all(r["LL"] > f["LL"] for r, f in zip(rows, free))


def test_the_empirical_distribution_blurred_is_the_human_density(osie, one_torch_thread):
    """Closed form: a density that puts the image's fixations' mass on their pixels, blurred as the human
    density is, IS the human density: CC 1, KLD 0 under metric-specific maps (not on the raw map). (SIM is
    scored on the map of the highest EXPECTED SIM, which is not this one realisation of it.)"""
    from attnlab.data.fixation_maps import fixation_map

    ctx, negatives = context(osie)
    log_p = []
    for i, s in enumerate(ctx.data.stimuli):
        counts, _ = fixation_map(ctx.data.fixations(i).x, ctx.data.fixations(i).y, s.size)
        with np.errstate(divide="ignore"):
            log_p.append(np.log(counts / counts.sum()))
    ctx.conditional_metrics = False  # a fixation of the scanpaths may fall where no fixation of the map is
    for row in scored(ctx, negatives, DensitySource(log_p)):
        assert row["CC"] == pytest.approx(1.0, abs=1e-9) and 0 < row["SIM"] < 1
        assert row["KLD"] == pytest.approx(0.0, abs=1e-6)
    ctx.metric_specific = False
    for row in scored(ctx, negatives, DensitySource(log_p)):
        assert row["CC"] < 0.5  # the raw counts against the blurred density


def _expected_sim(saliency: np.ndarray, p: np.ndarray, sigma: float, fixations: int, samples: int = 3000) -> float:
    """Mean SIM of ``saliency`` against fresh empirical maps of ``p`` (the human density's blur)."""
    from scipy.ndimage import gaussian_filter

    h, w = p.shape
    drawn = np.random.default_rng(12345).choice(h * w, size=(samples, fixations), p=p.ravel())
    counts = np.zeros((samples, h * w))
    np.add.at(counts, (np.repeat(np.arange(samples), fixations), drawn.ravel()), 1.0)
    empirical = gaussian_filter(counts.reshape(samples, h, w), (0, sigma, sigma), mode="reflect", truncate=4.0)
    empirical /= empirical.sum((1, 2), keepdims=True)
    return float(np.minimum(empirical, saliency[None] / saliency.sum()).sum((1, 2)).mean())


def _peaked_density(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:h, 0:w]
    p = np.zeros((h, w))
    for _ in range(3):
        cy, cx, s = rng.uniform(5, h - 5), rng.uniform(5, w - 5), rng.uniform(2, 6)
        p += np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * s * s))
    p += 0.01 * p.max()
    return p / p.sum()


@pytest.mark.parametrize("shape, gain", [("peaked", 1e-3), ("nearly-flat", -1e-4)])
def test_the_sim_map_has_a_higher_expected_sim_than_the_blur_and_pysaliencys_optimiser(shape, gain):
    """SIM's metric-specific map against new samples: above the blurred density (pysaliency's starting
    point; clearly for a peaked density, never below it for a nearly flat one, where the ranks are mostly
    noise) and above the map pysaliency's ``maximize_expected_sim`` reaches by gradient ascent (torch
    backend), on the human density's blur."""
    from pysaliency.metric_optimization_torch import maximize_expected_sim

    from attnlab.benchmark.probabilistic import blurred, sim_map

    h, w, sigma, n = 30, 40, 2.0, 40
    p = _peaked_density(h, w) if shape == "peaked" else np.exp(smooth_log_density((h, w), 3))
    ours = sim_map(p, sigma, n, seed=0)
    theirs, _ = maximize_expected_sim(np.log(p), kernel_size=sigma, train_samples_per_epoch=500, val_samples=500,
                                      fixation_count=n, max_iter=60, verbose=False)  # fmt: skip
    assert ours.shape == p.shape and ours.min() >= 0 and ours.sum() == pytest.approx(1.0)
    mine, blur, pysal = (_expected_sim(m, p, sigma, n) for m in (ours, blurred(p, sigma), theirs))
    assert mine > blur + gain and mine > pysal, (mine, blur, pysal)


def test_the_sim_map_is_coarsened_within_its_limits_and_seeded():
    from attnlab.benchmark.probabilistic import SIM_MAX_CELLS, sim_map

    p = np.exp(smooth_log_density((600, 800), 1))
    a, b = sim_map(p, 24.0, 120, seed=5), sim_map(p, 24.0, 120, seed=5)
    np.testing.assert_array_equal(a, b)  # the same seed, the same map (a density shared by images: one map)
    assert a.shape == (600, 800) and a.sum() == pytest.approx(1.0) and 600 * 800 / 64 <= SIM_MAX_CELLS < 600 * 800
    small = sim_map(p, 2.0, 120, seed=5)  # a narrow blur on a big image: capped at SIM_MAX_CELLS cells
    assert small.shape == (600, 800) and np.isfinite(small).all()


def test_metric_specific_maps_change_the_centre_bias_as_the_convention_says(osie, one_torch_thread):
    from attnlab.benchmark import resolve_source

    ctx, negatives = context(osie)
    centre = resolve_source("centre_bias", ctx)
    specific = scored(ctx, negatives, centre)
    ctx.metric_specific = False
    plain = scored(ctx, negatives, centre)
    for a, b in zip(specific, plain):
        assert a["sAUC"] == 0.5 and b["sAUC"] != 0.5  # the centre bias over itself says nothing
        # the density is its map (exp(log p) rounds in the last bit)
        assert a["NSS"] == pytest.approx(b["NSS"], rel=1e-12) and a["AUC_Judd"] == pytest.approx(b["AUC_Judd"])
        assert a["CC"] != b["CC"] and a["IG_cond"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "broken, message",
    [
        (lambda lp: lp + 0.1, "does not sum to 1"),
        (lambda lp: np.where(lp > np.median(lp), np.nan, lp), "NaN"),
        (lambda lp: np.full_like(lp, -np.inf), "does not sum to 1"),
    ],
)
def test_a_bad_density_is_one_line(osie, broken, message):
    from attnlab.benchmark.scoring import score_chunk

    ctx, negatives = context(osie, 1)
    log_p = [broken(smooth_log_density(ctx.data.stimuli[0].size, 0))]
    with pytest.raises(UserError, match=message) as error:
        score_chunk([DensitySource(log_p)], ctx, [0], negatives)
    assert "\n" not in str(error.value) and "density" in str(error.value)


def test_minus_infinity_at_a_human_fixation_is_one_line(osie):
    from attnlab.benchmark.scoring import score_chunk

    ctx, negatives = context(osie, 1)
    size = ctx.data.stimuli[0].size
    first = ctx.human_scanpaths[0][0]
    p = np.ones(size)
    p[int(first.y[0]), int(first.x[0])] = 0.0
    with np.errstate(divide="ignore"):
        log_p = [np.log(p / p.sum())]
    with pytest.raises(UserError, match="−inf at a human fixation"):
        score_chunk([DensitySource(log_p)], ctx, [0], negatives)


def test_the_benchmark_marks_probabilistic_rows_and_leaves_map_sources_without_conditional_metrics(
    tmp_path, osie_benchmark
):
    out = osie_benchmark("attention=[centre_bias,inter_observer]", "max_images=2")
    assert out["probabilistic"] == ["centre_bias"]
    assert out["metrics"]["centre_bias"]["IG_cond"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(out["metrics"]["inter_observer"]["LL"])  # "—" in the table


def test_calibration_recovers_the_transform_and_the_mixture_it_was_sampled_from():
    from attnlab.benchmark.calibration import _log_mixture, fit_calibration

    rng = np.random.default_rng(0)
    size, beta, alpha = (40, 50), 8.0, 0.3
    images = []
    for seed in range(12):
        z = np.exp(smooth_log_density(size, seed))
        z = (z - z.min()) / (z.max() - z.min())
        log_centre = np.log(np.full(size, 1.0 / (size[0] * size[1])))
        p = np.exp(_log_mixture(z, log_centre, beta, alpha)).ravel()
        images.append((z, log_centre, rng.choice(p.size, 400, p=p / p.sum())))
    fitted_beta, fitted_alpha = fit_calibration(images)
    assert fitted_beta == pytest.approx(beta, rel=0.15) and fitted_alpha == pytest.approx(alpha, abs=0.08)


def test_a_calibrated_map_folder_is_a_density_row_with_a_finite_information_gain(tmp_path, osie_benchmark):
    from attnlab.data.osie import load_osie

    osie = load_osie(shared_path("data", "osie_subset"))
    folder = tmp_path / "maps"
    folder.mkdir()
    for s in osie.stimuli:  # a CAM-like map: one blob, zero elsewhere
        m = np.zeros((60, 80))
        m[20:40, 30:50] = 1.0
        np.save(folder / f"{s.id}.npy", m)
    out = osie_benchmark(f"attention=['maps={folder}','calibrated:{folder}']", "calibrated.train_images=5")
    raw, calibrated = out["metrics"]["maps"], out["metrics"][f"calibrated:{folder.name}"]
    assert out["probabilistic"] == [f"calibrated:{folder.name}"]
    assert raw["IG"] < -5  # the zeros: almost no probability where people also look
    assert np.isfinite(calibrated["IG"]) and calibrated["IG"] > raw["IG"] + 5
    assert np.isfinite(calibrated["LL"]) and math.isnan(raw["LL"])
