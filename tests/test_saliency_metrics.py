"""Saliency metrics against pysaliency (the MIT/Tuebingen benchmark code) and the MIT definitions."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

pysaliency = pytest.importorskip("pysaliency")
from conftest import shared_path  # noqa: E402
from pysaliency.saliency_map_models import handle_stimulus  # noqa: E402

from attnlab.baselines import CentreBias  # noqa: E402
from attnlab.data.fixations import fixation_map, gaussian_density  # noqa: E402
from attnlab.metrics import saliency as S  # noqa: E402
from attnlab.metrics.maps import InvalidMapError, mean_over_images  # noqa: E402


class ArrayModel(pysaliency.SaliencyMapModel):
    """A pysaliency model that returns given maps for given stimuli."""

    def __init__(self, stimuli, maps):
        super().__init__(caching=False)
        self.ids = [s.stimulus_id for s in stimuli.stimulus_objects]
        self.maps = list(maps)

    def _saliency_map(self, stimulus):  # pragma: no cover - saliency_map is overridden
        raise NotImplementedError

    def saliency_map(self, stimulus):
        return self.maps[self.ids.index(handle_stimulus(stimulus).stimulus_id)]


class Case:
    """Maps, fixations and densities as both attnlab tensors and pysaliency objects."""

    def __init__(self, preds, xs, ys, size, sigma, baseline, seed=0):
        rng = np.random.default_rng(seed)
        self.preds, self.xs, self.ys, self.size = np.asarray(preds, float), xs, ys, size
        b = len(xs)
        self.fix = np.stack([fixation_map(x, y, size)[0] for x, y in zip(xs, ys)])
        self.dens = np.stack([gaussian_density(x, y, size, sigma) for x, y in zip(xs, ys)])
        self.baseline = baseline
        self.stimuli = pysaliency.Stimuli([rng.integers(0, 255, (*size, 3)).astype(np.uint8) for _ in range(b)])
        ns = np.concatenate([np.full(len(x), i) for i, x in enumerate(xs)])
        self.ns = ns
        self.fixations = pysaliency.Fixations.create_without_history(np.concatenate(xs), np.concatenate(ys), ns)
        self.model = ArrayModel(self.stimuli, self.preds)

    def t(self, a):
        return torch.as_tensor(np.asarray(a))

    def per_image(self, per_fixation):
        return np.array([per_fixation[self.ns == i].mean() for i in range(len(self.xs))])


def random_case(seed=0, b=4, size=(30, 40), n=25):
    rng = np.random.default_rng(seed)
    h, w = size
    preds = rng.random((b, h, w)) ** 3
    xs = [rng.uniform(0, w, n) for _ in range(b)]
    ys = [rng.uniform(0, h, n) for _ in range(b)]
    xs[0][1], ys[0][1] = xs[0][0], ys[0][0]  # a repeated fixation: counted twice by pysaliency
    baseline = CentreBias.isotropic(0.3).map(size)
    return Case(preds, xs, ys, size, 3.0, baseline, seed)


@pytest.fixture(scope="module")
def osie_case():
    """5 OSIE images at full size: luminance-contrast maps vs the real fixations."""
    root = os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))
    if not os.path.isdir(root):
        pytest.skip(f"OSIE subset not found at {root} (set ATTNLAB_OSIE_ROOT)")
    from scipy.ndimage import gaussian_filter

    from attnlab.data.osie import load_osie

    data = load_osie(root).subset(range(5))
    preds, xs, ys = [], [], []
    for i in range(len(data)):
        gray = data.load_image(i).mean(2)
        preds.append(gaussian_filter(np.abs(gray - gaussian_filter(gray, 20)), 10))
        f = data.fixations(i)
        xs.append(f.x)
        ys.append(f.y)
    return Case(
        preds,
        xs,
        ys,
        data.stimuli[0].size,
        24.0,
        CentreBias.fit(load_osie(root).subset(range(5, 60))).map(data.stimuli[0].size),
    )


@pytest.fixture(scope="module", params=["random", "osie"])
def case(request):
    return random_case() if request.param == "random" else request.getfixturevalue("osie_case")


def test_auc_judd_equals_pysaliency(case):
    ref = case.model.AUC_per_image(case.stimuli, case.fixations, nonfixations="unfixated", thresholds="fixations")
    ours = S.auc_judd(case.t(case.preds), case.t(case.fix), jitter=False)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9)


def test_auc_judd_jitter_matches_pysaliency_within_sampling_error():
    """With ties, both break them at random: the same distribution (attnlab jitters after min-max)."""
    from pysaliency.saliency_map_models import RandomNoiseSaliencyMapModel

    c = random_case(3)
    quantised = np.round(c.preds * 4) / 4  # values in {0, .25, .5, .75, 1}: many ties
    model = ArrayModel(c.stimuli, quantised)
    ref = np.stack(
        [
            RandomNoiseSaliencyMapModel(model, random_seed=s).AUC_per_image(
                c.stimuli, c.fixations, nonfixations="unfixated", thresholds="fixations"
            )
            for s in range(30)
        ]
    )
    ours = np.stack([S.auc_judd(c.t(quantised), c.t(c.fix), seed=s).numpy() for s in range(30)])
    assert ours.std(0).min() > 0  # ties really are broken at random
    sem = np.sqrt(ours.var(0) / len(ours) + ref.var(0) / len(ref))
    assert np.all(np.abs(ours.mean(0) - ref.mean(0)) < 4 * sem)
    # without ties the jitter changes nothing beyond 1e-5
    np.testing.assert_allclose(
        S.auc_judd(c.t(c.preds), c.t(c.fix)).numpy(),
        S.auc_judd(c.t(c.preds), c.t(c.fix), jitter=False).numpy(),
        atol=1e-5,
    )


def test_shuffled_auc_equals_pysaliency(case):
    ref = case.model.AUC_per_image(case.stimuli, case.fixations, nonfixations="shuffled")
    xy = list(zip(case.xs, case.ys))
    nonfix = np.stack([S.shuffled_nonfixations(xy, [case.size] * len(xy), i) for i in range(len(xy))])
    ours = S.auc_shuffled(case.t(case.preds), case.t(case.fix), case.t(nonfix))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9)


def test_nss_equals_pysaliency(case):
    ref = case.per_image(case.model.NSSs(case.stimuli, case.fixations))
    np.testing.assert_allclose(S.nss(case.t(case.preds), case.t(case.fix)).numpy(), ref, rtol=1e-9)


# KLD and SIM run their whole-map passes in float32 (sums accumulate pairwise): ~1e-7 relative
DENSITY_RTOL = 1e-6


def test_cc_kld_sim_equal_pysaliency(case):
    p, q = case.preds, case.dens
    np.testing.assert_allclose(
        S.cc(case.t(p), case.t(q)).numpy(), [pysaliency.metrics.CC(a, b) for a, b in zip(p, q)], rtol=1e-9
    )
    np.testing.assert_allclose(
        S.kld(case.t(p), case.t(q)).numpy(),
        [pysaliency.metrics.MIT_KLDiv(a, b) for a, b in zip(p, q)],
        rtol=DENSITY_RTOL,
    )
    np.testing.assert_allclose(
        S.sim(case.t(p), case.t(q)).numpy(), [pysaliency.metrics.SIM(a, b) for a, b in zip(p, q)], rtol=DENSITY_RTOL
    )


def test_kld_sim_of_offset_maps_keep_their_digits(case):
    """Maps far from 0 (logits, negative maps) are shifted in float64 before the float32 passes:
    KLD magnifies any error near the minimum, where the density is ~0."""
    for offset in (-50.0, 1e3):
        p, q = case.preds + offset, case.dens
        np.testing.assert_allclose(
            S.kld(case.t(p), case.t(q)).numpy(),
            [pysaliency.metrics.MIT_KLDiv(a, b) for a, b in zip(p, q)],
            rtol=DENSITY_RTOL,
        )
        np.testing.assert_allclose(
            S.sim(case.t(p), case.t(q)).numpy(), [pysaliency.metrics.SIM(a, b) for a, b in zip(p, q)], rtol=DENSITY_RTOL
        )


def test_nss_cc_of_maps_far_from_zero_next_to_a_constant_map():
    """A map whose mean dwarfs its spread (raw moments would cancel) gets the two-pass moments
    whether or not a constant map shares the batch, and the constant map scores 0."""
    c = random_case(1, size=(30, 40), n=25)
    far = c.preds + 1e6
    batch = np.stack([far[0], np.full_like(far[0], 3.0), far[1]])
    fix, dens = c.t(c.fix[[0, 0, 1]]), c.t(c.dens[[0, 0, 1]])
    nss, cc = S.nss(c.t(batch), fix).numpy(), S.cc(c.t(batch), dens).numpy()
    for k in (0, 2):
        m, f, q = batch[k], c.fix[[0, 0, 1]][k], c.dens[[0, 0, 1]][k]
        z = (m - m.mean()) / m.std()
        assert nss[k] == pytest.approx((z * f).sum() / f.sum(), rel=1e-6)  # Σ value − n·mean still cancels
        assert cc[k] == pytest.approx(np.corrcoef(m.ravel(), q.ravel())[0, 1], rel=1e-9)
    assert nss[1] == 0 and cc[1] == 0
    alone = S.nss(c.t(batch[[0, 2]]), fix[[0, 2]]).numpy()
    assert np.array_equal(alone, nss[[0, 2]])
    # an ordinary map's scores do not depend on a constant map sharing its batch
    plain = np.stack([c.preds[2], np.full_like(c.preds[2], 3.0)])
    f2, q2 = c.t(c.fix[[2, 2]]), c.t(c.dens[[2, 2]])
    assert S.nss(c.t(plain), f2)[0] == S.nss(c.t(plain[:1]), f2[:1])[0]
    assert S.cc(c.t(plain), q2)[0] == S.cc(c.t(plain[:1]), q2[:1])[0]


def test_sim_mit_variant_is_pysaliency_on_minmax_maps(case):
    mm = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    ref = [pysaliency.metrics.SIM(mm(a), mm(b)) for a, b in zip(case.preds, case.dens)]
    np.testing.assert_allclose(
        S.sim(case.t(case.preds), case.t(case.dens), variant="mit").numpy(), ref, rtol=DENSITY_RTOL
    )


def test_information_gain_equals_pysaliency_with_centre_bias_baseline(case):
    model = pysaliency.models.SaliencyMapNormalizingModel(case.model)
    baseline = pysaliency.models.SaliencyMapNormalizingModel(ArrayModel(case.stimuli, [case.baseline] * len(case.xs)))
    ref = case.per_image(model.information_gains(case.stimuli, case.fixations, baseline_model=baseline))
    ours = S.information_gain(case.t(case.preds), case.t(case.fix), case.t(case.baseline))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)


def test_mit_variants_follow_the_matlab_definitions():
    c = random_case(1)
    for p, f in zip(c.preds, c.fix):
        binary = f > 0
        z = (p - p.mean()) / p.std(ddof=1)
        assert S.nss(c.t(p), c.t(f), variant="mit").item() == pytest.approx(z[binary].mean(), rel=1e-9)
        # AUC_Judd.m on a binary fixation map, without its jitter
        s, th = p.ravel(), np.sort(p[binary])[::-1]
        tp = np.r_[0, np.arange(1, len(th) + 1) / len(th), 1]
        fp = np.r_[0, [((s >= t).sum() - i) / (s.size - len(th)) for i, t in enumerate(th, 1)], 1]
        assert S.auc_judd(c.t(p), c.t(f), jitter=False, variant="mit").item() == pytest.approx(
            np.trapezoid(tp, fp), rel=1e-9
        )


def borji_reference(p, f, rng, splits=100, step=0.1):
    """AUC_Borji.m, literally: per-split AUCs."""
    s = (p.ravel() - p.min()) / (p.max() - p.min())
    sth = s[f.ravel() > 0]
    aucs = []
    for _ in range(splits):
        cur = s[rng.integers(0, s.size, len(sth))]
        th = np.arange(0, max(sth.max(), cur.max()) + 1e-12, step)[::-1]
        tp = np.r_[0, [(sth >= t).mean() for t in th], 1]
        fp = np.r_[0, [(cur >= t).mean() for t in th], 1]
        aucs.append(np.trapezoid(tp, fp))
    return np.array(aucs)


def test_auc_borji_scales_its_samples_as_the_whole_map():
    """AUC-Borji min-max scales only the values it samples: the same draws and bits as scaling the
    map first (AUC_Borji.m's first step), including a constant map and one without fixations."""
    c = random_case(4, size=(40, 50), n=40)
    p = c.t(c.preds) * 7 - 3
    p[1] = 2.0
    f = c.t(c.fix)
    f[2] = 0
    scaled = torch.stack([(m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else m * 0 for m in p])
    ours, first_scaled = S.auc_borji(p, f, seed=5), S.auc_borji(scaled, f, seed=5)
    assert torch.equal(ours.nan_to_num(9.0), first_scaled.nan_to_num(9.0))
    assert ours[1] == 0.5 and torch.isnan(ours[2])


@pytest.mark.parametrize("variant", ["borji", "shuffled_mit"])
def test_random_negative_aucs_agree_with_matlab_within_sampling_error(variant):
    c = random_case(2, size=(40, 50), n=40)
    rng = np.random.default_rng(0)
    if variant == "borji":
        ours = S.auc_borji(c.t(c.preds), c.t(c.fix)).numpy()
        refs = [borji_reference(p, f, rng) for p, f in zip(c.preds, c.fix)]
    else:
        xy = list(zip(c.xs, c.ys))
        other = np.stack([S.shuffled_nonfixations(xy, [c.size] * 4, i, variant="mit") for i in range(4)])
        ours = S.auc_shuffled(c.t(c.preds), c.t(c.fix), c.t(other), variant="mit").numpy()
        refs = []
        for p, f, o in zip(c.preds, c.fix, other):  # AUC_shuffled.m with the same otherMap
            s = ((p - p.min()) / (p.max() - p.min())).ravel()
            sth, oth = s[f.ravel() > 0], s[o.ravel() > 0]
            k = min(len(sth), len(oth))
            split_aucs = []
            for _ in range(100):
                cur = rng.permutation(oth)[:k]
                th = np.arange(0, max(sth.max(), cur.max()) + 1e-12, 0.1)[::-1]
                split_aucs.append(
                    np.trapezoid(
                        np.r_[0, [(sth >= t).mean() for t in th], 1], np.r_[0, [(cur >= t).mean() for t in th], 1]
                    )
                )
            refs.append(np.array(split_aucs))
    for value, ref in zip(ours, refs):
        # two independent means of 100 splits differ by N(0, 2σ²/100)
        assert abs(value - ref.mean()) < 4 * np.sqrt(2) * ref.std() / 10 + 1e-9


def test_batched_on_any_device_and_dtype():
    c = random_case(4)
    ref = S.nss(c.t(c.preds), c.t(c.fix))
    single = torch.cat([S.nss(c.t(c.preds[i]), c.t(c.fix[i])) for i in range(4)])
    torch.testing.assert_close(ref, single)
    as_float32 = S.auc_judd(c.t(c.preds).float(), c.t(c.fix).float(), jitter=False)
    torch.testing.assert_close(as_float32, S.auc_judd(c.t(c.preds).float().double(), c.t(c.fix), jitter=False))
    if torch.cuda.is_available():
        on_gpu = S.cc(c.t(c.preds).cuda(), c.t(c.dens).cuda()).cpu()
        torch.testing.assert_close(on_gpu, S.cc(c.t(c.preds), c.t(c.dens)))


def test_maps_that_require_grad_score_like_detached_maps():
    """A model's output straight from the forward pass (autograd graph attached) is scored as is."""
    c = random_case(4)
    p, f, q, b = c.t(c.preds), c.t(c.fix), c.t(c.dens), c.t(c.baseline)
    with_graph = p.clone().requires_grad_() * 1.0
    together = S.saliency_metrics(with_graph, f, q, b.clone().requires_grad_(), metrics=S.ALL_METRICS)
    for name, value in S.saliency_metrics(p, f, q, b, metrics=S.ALL_METRICS).items():
        torch.testing.assert_close(together[name], value, msg=name)
    torch.testing.assert_close(S.sim(with_graph, q, variant="mit"), S.sim(p, q, variant="mit"))


def test_degenerate_inputs_have_defined_values():
    c = random_case(5)
    const = torch.ones(4, *c.size)
    fix, dens = c.t(c.fix), c.t(c.dens)
    assert torch.all(S.auc_judd(const, fix) == 0.5) and torch.all(S.auc_borji(const, fix) == 0.5)
    assert torch.all(S.nss(const, fix) == 0) and torch.all(S.cc(const, dens) == 0)
    # negative maps are shifted by their minimum
    negative = c.t(c.preds) - 5
    shifted = negative - negative.amin((1, 2), keepdim=True)
    torch.testing.assert_close(S.kld(negative, dens), S.kld(shifted, dens))
    torch.testing.assert_close(S.sim(negative, dens), S.sim(shifted, dens))
    assert not torch.allclose(S.kld(shifted, dens), S.kld(c.t(c.preds), dens))
    # an image without fixations is skipped (NaN) and counted
    fix[2] = 0
    values = S.nss(c.t(c.preds), fix)
    assert torch.isnan(values[2]) and not torch.isnan(values[[0, 1, 3]]).any()
    mean, skipped = mean_over_images(values)
    assert skipped == 1 and mean == pytest.approx(values[[0, 1, 3]].mean().item())
    assert torch.isnan(S.auc_judd(c.t(c.preds), fix)[2])


def test_nan_in_a_map_names_the_image():
    c = random_case(6)
    bad = c.t(c.preds).clone()
    bad[3, 1, 1] = float("inf")
    with pytest.raises(InvalidMapError, match="saliency map 3 of the batch") as info:
        S.auc_judd(bad, c.t(c.fix))
    assert info.value.index == 3
    sparse = c.t(c.fix).to_sparse().coalesce()  # a sparse count map: its stored values are checked
    values = sparse.values().clone()
    values[(sparse.indices()[0] == 2).nonzero()[0]] = float("nan")
    with pytest.raises(InvalidMapError, match="fixation map 2 of the batch"):
        S.nss(c.t(c.preds), torch.sparse_coo_tensor(sparse.indices(), values, sparse.shape))


def test_predictions_of_another_size_are_resized_bilinearly():
    c = random_case(7, size=(30, 40))
    small = torch.nn.functional.interpolate(
        c.t(c.preds)[:, None], size=(15, 20), mode="bilinear", align_corners=False, antialias=True
    )[:, 0]
    back = torch.nn.functional.interpolate(small[:, None], size=(30, 40), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(S.cc(small, c.t(c.dens)), S.cc(back, c.t(c.dens)))


def test_uniform_density_map_counts_as_constant():
    c = random_case(8)
    uniform = torch.full((4, *c.size), 1.0 / (c.size[0] * c.size[1]), dtype=torch.float64)
    assert torch.all(S.nss(uniform, c.t(c.fix)) == 0) and torch.all(S.cc(uniform, c.t(c.dens)) == 0)
    assert torch.all(S.auc_judd(uniform, c.t(c.fix)) == 0.5)


def test_torchmetrics_wrappers_average_over_images_across_batches():
    from attnlab.metrics.torchmetrics import saliency_metric_collection

    c = random_case(9, b=6)
    collection = saliency_metric_collection(prefix="val/", information_gain=True)
    fix = c.t(c.fix).clone()
    fix[5] = 0  # skipped, not counted as a zero
    for part in (slice(0, 4), slice(4, 6)):
        collection.update(
            c.t(c.preds[part]).float(), fixations=fix[part], density=c.t(c.dens[part]), baseline=c.t(c.baseline)
        )
    out = collection.compute()
    expected_nss = S.nss(c.t(c.preds), fix)[:5].mean()
    assert out["val/nss"].item() == pytest.approx(expected_nss.item(), rel=1e-5)
    assert out["val/cc"].item() == pytest.approx(S.cc(c.t(c.preds), c.t(c.dens)).mean().item(), rel=1e-5)
    assert out["val/ig"].item() == pytest.approx(
        S.information_gain(c.t(c.preds), fix, c.t(c.baseline))[:5].mean().item(), rel=1e-5
    )
    assert set(out) == {"val/auc_judd", "val/sauc", "val/nss", "val/cc", "val/kld", "val/sim", "val/ig"}
    with pytest.raises(ValueError, match="density"):
        saliency_metric_collection().update(c.t(c.preds), fixations=fix)


@pytest.mark.parametrize("jitter", [True, False])  # without jitter sAUC reuses AUC-Judd's histogram keys
def test_all_metrics_at_once_equal_the_single_functions(jitter):
    c = random_case(10)
    xy = list(zip(c.xs, c.ys))
    nonfix = c.t(np.stack([S.shuffled_nonfixations(xy, [c.size] * 4, i) for i in range(4)]))
    p, f, q, b = c.t(c.preds), c.t(c.fix), c.t(c.dens), c.t(c.baseline)
    together = S.saliency_metrics(p, f, q, b, nonfix, metrics=S.ALL_METRICS, seed=3, jitter=jitter)
    single = {
        "AUC_Judd": S.auc_judd(p, f, seed=3, jitter=jitter),
        "AUC_Borji": S.auc_borji(p, f, seed=3),
        "sAUC": S.auc_shuffled(p, f, nonfix),
        "NSS": S.nss(p, f),
        "CC": S.cc(p, q),
        "KLD": S.kld(p, q),
        "SIM": S.sim(p, q),
        "IG": S.information_gain(p, f, b),
    }
    assert set(together) == set(single)
    for name in single:
        torch.testing.assert_close(together[name], single[name], msg=name)


def test_pixel_counts_of_auc_judd_and_sauc_are_exact_on_ties_plateaus_and_tiny_ranges():
    """The histogram counts behind AUC-Judd (pixels at or above each threshold) and shuffled AUC
    (weighted negatives below and equal to each) equal brute-force counts, also where many values
    share a value or a bin with a threshold, on a constant map and on a range of 1e-300."""
    from attnlab.metrics.auc import OrderKeys, samples_below
    from attnlab.metrics.maps import RowBuffers

    rng = np.random.default_rng(0)
    maps = [
        rng.random(5000),
        np.round(rng.random(5000), 2),  # 101 distinct values: every threshold has ties
        np.r_[np.zeros(4000), rng.random(1000) * 1e-9],  # a plateau and values inside one bin
        1e-300 * rng.random(5000),  # (hi − lo)·bins overflows the scale
        np.linspace(8410.311, 8410.311 * 1.00101, 5000),  # float32 rounding puts the top 5 bins past the last
        np.full(5000, 3.0),
        np.r_[np.linspace(0, 2 / 3, 4990), np.full(10, 2 / 3)],  # minimum 0 (one-pass keys); float32 rounds the top up
    ]
    placed, expected_below, expected_equal = [], [], []
    for j, v in enumerate(maps):
        v = torch.as_tensor(v)
        positions = torch.as_tensor(
            rng.choice(v.numel(), 60 - 5 * j, replace=False)
        )  # maps with different threshold counts
        lo, hi = float(v.min()), float(v.max())
        keys = OrderKeys(v, positions, lo, hi, RowBuffers())
        assert 0 <= int(keys.keys.min()) and int(keys.keys.max()) <= keys.bins
        expected = (v[None, :] >= v[positions][:, None]).sum(1)
        torch.testing.assert_close(keys.pixels_at_or_above(), expected, rtol=0, atol=0)
        # shuffled AUC's count of weighted samples below and equal to each threshold
        samples = torch.as_tensor(np.r_[rng.choice(v.numel(), 700), positions[:20].numpy()])  # some equal a threshold
        weights = torch.as_tensor(rng.integers(1, 4, samples.numel()).astype(np.float64))
        placed.append(keys.place(samples, weights))
        t, u = v[positions][:, None], v[samples][None, :]
        expected_below.append(((u < t) * weights).sum(1))
        expected_equal.append(((u == t) * weights).sum(1))
    below, equal = samples_below(placed)  # all maps at once, as shuffled AUC finishes them
    for j in range(len(maps)):
        k = expected_below[j].numel()
        torch.testing.assert_close(below[j, :k], expected_below[j], rtol=0, atol=0)
        torch.testing.assert_close(equal[j, :k], expected_equal[j], rtol=0, atol=0)


def test_sparse_fixations_and_thread_count_give_the_same_values():
    from attnlab.data.fixations import sparse_fixation_maps

    c = random_case(11, b=5)
    xy = list(zip(c.xs, c.ys))
    negatives = S.ShuffledNegatives(xy, [c.size] * 5)
    dense_nonfix = c.t(np.stack([negatives.counts(i) for i in range(5)]))
    sparse_nonfix = negatives.sparse_counts(range(5))
    torch.testing.assert_close(sparse_nonfix.to_dense(), dense_nonfix)
    support_nonfix = negatives.support_counts(range(5))
    assert support_nonfix.shape == (5, *c.size) and support_nonfix.counts.shape[1] == np.count_nonzero(
        c.fix.sum(0)
    )  # stored: pixels fixated in any image
    sparse_fix = sparse_fixation_maps(xy, [c.size] * 5)
    torch.testing.assert_close(sparse_fix.to_dense(), c.t(c.fix))
    p, q, b = c.t(c.preds), c.t(c.dens), c.t(c.baseline)
    dense = S.saliency_metrics(p, c.t(c.fix), q, b, dense_nonfix, metrics=S.ALL_METRICS)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sparse = S.saliency_metrics(p, sparse_fix, q, b, sparse_nonfix, metrics=S.ALL_METRICS)
        compact = S.saliency_metrics(p, sparse_fix, q, b, support_nonfix, metrics=S.ALL_METRICS)
    finally:
        torch.set_num_threads(threads)
    for name in dense:
        torch.testing.assert_close(sparse[name], dense[name], rtol=0, atol=0, msg=name)
        torch.testing.assert_close(compact[name], dense[name], rtol=0, atol=0, msg=name)
    for variant in ("pysaliency", "mit"):
        torch.testing.assert_close(
            S.auc_shuffled(p, sparse_fix, support_nonfix, variant=variant),
            S.auc_shuffled(p, sparse_fix, dense_nonfix, variant=variant),
            rtol=0,
            atol=0,
        )


def test_maps_are_shared_among_threads_once_each_and_an_error_stops_them():
    from attnlab.metrics.maps import for_each_row

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        seen = []
        for_each_row(lambda i, buffers: seen.append(i), 50, torch.device("cpu"))
        assert sorted(seen) == list(range(50))
        assert torch.get_num_threads() == 3  # restored after the workers ran single-threaded

        def fail_on_7(i, buffers):
            seen.append(i)
            if i == 7:
                raise InvalidMapError("saliency map", 7)
            time.sleep(0.01)

        seen.clear()
        with pytest.raises(InvalidMapError, match="saliency map 7"):
            for_each_row(fail_on_7, 1000, torch.device("cpu"))
        assert len(seen) < 50  # not every map: the other threads stopped
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def test_support_counts_are_checked():
    c = random_case(12, b=3)
    negatives = S.ShuffledNegatives(list(zip(c.xs, c.ys)), [c.size] * 3).support_counts(range(3))
    negatives.counts[1, 0] = float("nan")
    with pytest.raises(InvalidMapError, match="nonfixation map 1"):
        S.auc_shuffled(c.t(c.preds), c.t(c.fix), negatives)
    negatives.counts[1, 0] = 1.0
    with pytest.raises(ValueError, match="nonfixation maps have shape"):
        S.auc_shuffled(c.t(c.preds)[:2], c.t(c.fix)[:2], negatives)
    with pytest.raises(ValueError, match="B×S"):
        S.SupportCounts(negatives.support[:-1], negatives.counts, c.size)
    with pytest.raises(ValueError, match="≥ 0"):
        S.SupportCounts(negatives.support, -negatives.counts, c.size)
    alone = S.ShuffledNegatives(list(zip(c.xs, c.ys))[:1], [c.size]).support_counts([0])  # no other image: no negatives
    assert torch.isnan(S.auc_shuffled(c.t(c.preds)[:1], c.t(c.fix)[:1], alone)).all()


def test_worker_threads_never_outnumber_free_cpus(monkeypatch):
    """for_each_row runs no more worker threads than free_cpus() allows (all maps on the calling
    thread when it is 1), and inside threads_for_free_cpus torch uses no more threads either."""
    import threading

    from attnlab.metrics import maps

    assert 1 <= maps.free_cpus() <= (os.cpu_count() or 1)
    threads = torch.get_num_threads()
    idents = set()

    def note_thread(i, buffers):
        idents.add(threading.get_ident())
        time.sleep(0.005)  # long enough that a second worker takes maps too

    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(maps, "free_cpus", lambda: 1)
        with maps.threads_for_free_cpus():
            assert torch.get_num_threads() == 1
            maps.for_each_row(note_thread, 10, torch.device("cpu"))
        assert idents == {threading.get_ident()} and torch.get_num_threads() == 2
        monkeypatch.setattr(maps, "free_cpus", lambda: 2)
        idents.clear()
        with maps.threads_for_free_cpus():
            assert torch.get_num_threads() == 2
            maps.for_each_row(note_thread, 10, torch.device("cpu"))
        assert len(idents) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_an_inner_shared_inputs_block_leaves_its_intermediates_to_the_outer_one():
    from attnlab.metrics.maps import flat, reuse, shared_inputs

    rng = np.random.default_rng(3)
    pred = torch.from_numpy(rng.random((2, 30, 40)))
    fix = torch.zeros(2, 30, 40, dtype=torch.float64)
    fix[:, 5, 7] = 1
    with shared_inputs():
        alone = S.saliency_metrics(pred, fix, metrics=("NSS",))
        # the call's statistics are still there: asking again computes nothing
        stats = reuse("stats", flat(pred), lambda: pytest.fail("recomputed"))
        assert torch.equal(stats[:, 0], flat(pred).min(1).values)
    # outside any block nothing is kept
    assert reuse("stats", flat(pred), lambda: "fresh") == "fresh"
    assert torch.equal(alone["NSS"], S.nss(pred, fix))


def test_auc_keys_from_a_map_with_minimum_zero_give_the_same_auc_as_a_float32_copy(monkeypatch):
    import attnlab.metrics.auc as A

    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 80, 30), rng.uniform(0, 60, 30)
    pred = torch.from_numpy(np.stack([gaussian_density(x[:15], y[:15], (60, 80), 6.0)]))
    pred[pred < 1e-5] = 0.0  # minimum exactly 0, many ties at 0
    fix = torch.from_numpy(np.stack([fixation_map(x[15:], y[15:], (60, 80))[0]]))
    direct = S.auc_judd(pred, fix, jitter=False)
    monkeypatch.setattr(A, "_float32_resolves", lambda lo, hi: True)  # force the float32 copy path...
    calls = []
    real = A.as_float32
    monkeypatch.setattr(A, "as_float32", lambda *a: calls.append(1) or real(*a))
    assert torch.equal(S.auc_judd(pred, fix, jitter=False), direct)
    assert not calls  # ...which a map with minimum 0 no longer takes
    assert float(direct[0]) == pytest.approx(_reference_judd(pred[0].numpy(), fix[0].numpy()), abs=1e-12)


def _reference_judd(m: np.ndarray, counts: np.ndarray) -> float:
    """AUC-Judd (pysaliency convention, no jitter) by sorting, for one map."""
    ys, xs = np.nonzero(counts)
    thresholds = np.repeat(m[ys, xs], counts[ys, xs].astype(int))
    negatives = np.delete(m.ravel(), ys * m.shape[1] + xs)
    t = np.sort(np.unique(thresholds))[::-1]
    tpr = [0.0] + [(thresholds >= v).mean() for v in t] + [1.0]
    fpr = [0.0] + [(negatives >= v).mean() for v in t] + [1.0]
    return float(np.trapezoid(tpr, fpr))


def test_support_counts_computed_twice_equal_a_fresh_helper():
    rng = np.random.default_rng(5)
    xy = [(rng.uniform(0, 40, 9), rng.uniform(0, 30, 9)) for _ in range(4)]
    shared = S.ShuffledNegatives(xy, [(30, 40)] * 4)
    for indices in ([0, 1], [3, 2, 0], [1]):
        got, fresh = shared.support_counts(indices), S.ShuffledNegatives(xy, [(30, 40)] * 4).support_counts(indices)
        assert torch.equal(got.support, fresh.support) and torch.equal(got.counts, fresh.counts)
        dense = got.to_sparse().to_dense()
        for row, i in enumerate(indices):
            assert np.array_equal(dense[row].numpy(), shared.counts(i))  # every other image's fixations
