"""Winner-take-all scanpaths with inhibition of return: the algorithm and the ``wta:<source>`` benchmark source."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.baselines import winner_take_all
from attnlab.utils.config import UserError

SIZE = (120, 160)  # H, W
# (x, y, height) of three Gaussian bumps at pixel centres, listed out of height order
BUMPS = [(30.5, 90.5, 0.55), (130.5, 30.5, 1.0), (80.5, 60.5, 0.8)]


def bump_map(bumps=BUMPS, sigma=4.0, size=SIZE) -> np.ndarray:
    h, w = size
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    m = np.zeros(size)
    for x, y, height in bumps:
        m += height * np.exp(-((xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * sigma**2))
    return m


def test_fixations_land_on_the_peaks_in_decreasing_height_and_never_revisit():
    x, y = winner_take_all(bump_map(), 3, ior_sigma_px=10)
    by_height = sorted(BUMPS, key=lambda b: -b[2])
    np.testing.assert_array_equal(x, [b[0] for b in by_height])
    np.testing.assert_array_equal(y, [b[1] for b in by_height])
    # without inhibition of return the maximum would be fixated again and again
    assert len({(a, b) for a, b in zip(x, y)}) == 3


def test_more_fixations_than_peaks_keep_the_peak_order_and_go_to_new_places():
    m = bump_map()
    x3, y3 = winner_take_all(m, 3, ior_sigma_px=10)
    x, y = winner_take_all(m, 8, ior_sigma_px=10)
    assert len(x) == len(y) == 8
    np.testing.assert_array_equal(x[:3], x3)  # a longer scanpath extends a shorter one
    np.testing.assert_array_equal(y[:3], y3)
    assert len({(a, b) for a, b in zip(x, y)}) == 8  # no pixel fixated twice
    h, w = SIZE
    assert ((x > 0) & (x < w) & (y > 0) & (y < h)).all()
    peaks = np.array([(b[0], b[1]) for b in BUMPS])
    later = np.stack([x[3:], y[3:]], 1)
    assert (np.linalg.norm(later[:, None] - peaks[None], axis=-1) > 0).all()


def test_a_flat_map_is_fixated_at_its_centre_then_far_from_it():
    h, w = 40, 60
    x, y = winner_take_all(np.full((h, w), 3.0), 4, ior_sigma_px=5)
    assert abs(x[0] - w / 2) <= 0.5 and abs(y[0] - h / 2) <= 0.5
    steps = np.hypot(np.diff(x), np.diff(y))
    assert (steps >= 3 * 5).all()  # the inhibited neighbourhood is avoided
    assert len({(a, b) for a, b in zip(x, y)}) == 4


def test_scale_and_offset_do_not_matter_and_runs_repeat():
    rng = np.random.default_rng(0)
    m = rng.random((50, 70))
    x, y = winner_take_all(m, 12, ior_sigma_px=4)
    x2, y2 = winner_take_all(m, 12, ior_sigma_px=4)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, y3 = winner_take_all(5 * m - 2, 12, ior_sigma_px=4)
    np.testing.assert_array_equal(x, x3)
    np.testing.assert_array_equal(y, y3)


def test_smoothing_prefers_a_broad_bump_to_a_single_pixel_spike():
    m = bump_map([(40.5, 60.5, 0.8)], sigma=6)
    m[30, 120] = 1.0  # a one-pixel spike, higher than the bump
    assert winner_take_all(m, 1, ior_sigma_px=5)[0][0] == 120.5
    assert winner_take_all(m, 1, ior_sigma_px=5, smooth_sigma_px=3)[0][0] == 40.5


@pytest.mark.parametrize(
    "saliency, n, sigma, match",
    [
        (np.full((4, 4), np.nan), 2, 1.0, "NaN"),
        (np.ones((2, 3, 4)), 2, 1.0, "H×W"),
        (np.ones((4, 4)), -1, 1.0, "n=-1"),
        (np.ones((4, 4)), 2, 0.0, "ior_sigma_px=0.0"),
    ],
)
def test_bad_input_is_one_line(saliency, n, sigma, match):
    with pytest.raises(UserError, match=match) as ex:
        winner_take_all(saliency, n, sigma)
    assert "\n" not in str(ex.value)


# --- the benchmark source -------------------------------------------------------------------------


@pytest.fixture
def ctx():
    from attnlab.benchmark import BenchmarkContext
    from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus

    rng = np.random.default_rng(1)
    paths = [
        Scanpath(rng.uniform(20, 140, k), rng.uniform(20, 100, k), rng.uniform(100, 400, k), subject=f"s{k}")
        for k in (3, 5, 7)
    ]
    data = FixationDataset("d", [Stimulus("a", None, SIZE)], [paths])
    return BenchmarkContext(data, data, sigma_px=6.0, seed=0, human_scanpaths=data.scanpaths)


def test_wta_source_scores_the_inner_map_and_fixates_it(ctx):
    from attnlab.benchmark import resolve_source
    from attnlab.benchmark.sources import mean_training_duration

    source = resolve_source("wta:centre_bias", ctx)
    inner = resolve_source("centre_bias", ctx)
    np.testing.assert_array_equal(source.saliency_map(ctx, 0), inner.saliency_map(ctx, 0))
    paths = source.scanpaths(ctx, 0)
    assert [len(p) for p in paths] == [3, 5, 7]  # one per human scanpath, as long as it
    full = winner_take_all(inner.saliency_map(ctx, 0), 7, ior_sigma_px=ctx.sigma_px)
    for p in paths:
        np.testing.assert_array_equal(p.x, full[0][: len(p)])
        np.testing.assert_array_equal(p.y, full[1][: len(p)])
        np.testing.assert_allclose(p.duration, mean_training_duration(ctx))
    again = resolve_source("wta:centre_bias", ctx).scanpaths(ctx, 0)
    assert all((a.x == b.x).all() and (a.y == b.y).all() for a, b in zip(paths, again))


def test_wta_resizes_a_smaller_inner_map_to_the_image(ctx):
    from attnlab.benchmark import SOURCES, AttentionSource, register_source, resolve_source

    @register_source("test_small_bumps")
    class SmallBumps(AttentionSource):  # the bump map at half the image size
        def __init__(self, argument, ctx):
            pass

        def saliency_map(self, ctx, i):
            return bump_map([(x / 2, y / 2, h) for x, y, h in BUMPS], sigma=2, size=(SIZE[0] // 2, SIZE[1] // 2))

    try:
        x = np.concatenate([p.x for p in resolve_source("wta:test_small_bumps", ctx).scanpaths(ctx, 0)])
    finally:
        SOURCES.pop("test_small_bumps")
    peaks_x = [b[0] for b in sorted(BUMPS, key=lambda b: -b[2])]
    np.testing.assert_allclose(x[:3], peaks_x, atol=1.0)  # in pixels of the image, not of the map


def test_wta_settings_widen_the_inhibition(ctx):
    from attnlab.benchmark import resolve_source
    from attnlab.benchmark.sources import WtaSettings

    def first_step(**settings):
        ctx.options = {"wta": WtaSettings(**settings)} if settings else {}
        p = resolve_source("wta:centre_bias", ctx).scanpaths(ctx, 0)[-1]
        return np.hypot(p.x[1] - p.x[0], p.y[1] - p.y[0])

    assert first_step(ior_sigma=4) > first_step()
    with pytest.raises(UserError, match="ior_sigma"):
        WtaSettings(ior_sigma=0)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("wta:not_a_source", "unknown attention source 'not_a_source'"),
        ("wta", "needs a map source"),
        ("wta:inter_observer", "subject by subject"),
    ],
)
def test_bad_inner_source_is_one_line(ctx, spec, match):
    from attnlab.benchmark import resolve_source

    with pytest.raises(UserError, match=match) as ex:
        resolve_source(spec, ctx)
    assert "\n" not in str(ex.value)


def test_wta_centre_bias_through_the_benchmark(tmp_path, osie_benchmark):
    result = osie_benchmark("attention=[wta:centre_bias,centre_bias]", "wta.ior_sigma=1.5")
    rows, centre = result["per_image"]["wta:centre_bias"], result["per_image"]["centre_bias"]
    assert len(rows) == 2
    for row, c in zip(rows, centre):
        for metric in ("ScanMatch", "SED", "MM_position", "MM_duration", "DTW", "SS", "NSS", "CC"):
            assert np.isfinite(row[metric]), metric
        # the map is the centre bias itself: same NSS (the density is its own NSS map, up to exp(log p)
        # rounding); the centre bias row's CC is on its blurred density (metric-specific maps), WTA's on the map
        assert row["NSS"] == pytest.approx(c["NSS"], rel=1e-12) and row["CC"] != c["CC"]
    assert (tmp_path / "saliency_grid.png").is_file()
