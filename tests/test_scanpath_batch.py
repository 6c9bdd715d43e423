"""The batched scanpath metrics equal the per-pair reference definitions (attnlab.metrics.scanpath)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path

from attnlab.data.fixations import Scanpath
from attnlab.metrics import scanpath as SP
from attnlab.metrics import scanpath_batch as B

SIZE = (600, 800)


def reference(p, h, size, clusters) -> dict[str, float]:
    mm = SP.multimatch(p, h, size)
    return {
        "SED": SP.string_edit_similarity(p, h, size),
        "ScanMatch": SP.scanmatch(p, h, size),
        **{f"MM_{k}": v for k, v in mm.items()},
        "DTW": SP.dtw(p, h, size),
        "TDE": SP.scaled_time_delay_embedding(p, h, size),
        "SS": SP.sequence_score(p, h, clusters) if clusters is not None else float("nan"),
    }


def assert_pairs_equal(pairs, sizes, clusters):
    fast = B.pairwise_scanpath_metrics(pairs, sizes, clusters)
    for k, (p, h) in enumerate(pairs):
        ref = reference(p, h, sizes[k], clusters[k])
        for name, v in ref.items():
            got = fast[name][k]
            assert (math.isnan(v) and math.isnan(got)) or got == pytest.approx(v, rel=1e-9, abs=1e-12), (
                name,
                k,
                got,
                v,
            )


def random_scanpath(rng, n, durations=True, size=SIZE):
    x, y = rng.uniform(0, size[1], n), rng.uniform(0, size[0], n)
    if rng.random() < 0.3 and n > 2:  # repeated cells and fixations: ties in every programme
        x[1], y[1] = x[0], y[0]
    return Scanpath(x, y, rng.uniform(60, 900, n) if durations else None, subject=str(rng.integers(1e9)))


def test_random_pairs_of_every_length_equal_the_reference():
    rng = np.random.default_rng(0)
    paths = [random_scanpath(rng, int(n), bool(rng.random() < 0.8)) for n in rng.integers(0, 14, 40)]
    centres = B.fit_fixation_clusters_fast(np.concatenate([p.xy for p in paths if len(p)]))
    pairs = [(paths[i], paths[j]) for i in range(len(paths)) for j in range(0, len(paths), 3)]
    sizes = [SIZE] * len(pairs)
    clusters = [centres if k % 5 else None for k in range(len(pairs))]
    assert_pairs_equal(pairs, sizes, clusters)


def test_long_recordings_and_other_image_sizes():
    # ScanMatch's 50 ms symbols make sequences of hundreds of symbols
    rng = np.random.default_rng(1)
    paths = [random_scanpath(rng, int(n), size=(300, 500)) for n in (30, 45, 2, 38)]
    pairs = [(a, b) for a in paths for b in paths]
    assert_pairs_equal(pairs, [(300, 500)] * len(pairs), [None] * len(pairs))


def test_osie_pairs_and_clusters_equal_the_reference():
    from attnlab.data.osie import load_osie

    data = load_osie(shared_path("data", "osie_subset")).filtered(drop_first=True)
    for i in range(3):
        humans = data.scanpaths[i]
        xy = np.concatenate([h.xy for h in humans])
        slow, fast = SP.fit_fixation_clusters(xy), B.fit_fixation_clusters_fast(xy)
        assert fast.bandwidth == pytest.approx(slow.bandwidth, rel=1e-12)
        np.testing.assert_allclose(fast.centres, slow.centres, rtol=1e-12)
        pairs = [(a, b) for k, a in enumerate(humans) for j, b in enumerate(humans) if j != k]
        assert_pairs_equal(pairs[:60], [data.stimuli[i].size] * 60, [fast] * 60)


def test_dynamic_programmes_on_hand_checked_cases():
    # edit distance: "abc" → "acb" is one transposition; NW with match 1: the common subsequence
    a, la = np.array([[0, 1, 2], [0, 1, 16]]), np.array([3, 2])
    b, lb = np.array([[0, 2, 1], [1, 0, 17]]), np.array([3, 2])
    assert B.damerau_levenshtein_batch(a, la, b, lb, 16).tolist() == [1, 1]
    final, best = B.needleman_wunsch_batch(a, la, b, lb, np.eye(18))
    assert final.tolist() == [2.0, 1.0] and best.tolist() == [2.0, 1.0]


@pytest.mark.parametrize("gap", [0.0, -0.5])
def test_needleman_wunsch_batch_equals_the_per_pair_table(gap):
    """F[n, m] and the table's maximum of padded random pairs of mixed lengths equal the per-pair
    matrix, with and without a gap penalty (with none the maximum is F[n, m] itself)."""
    rng = np.random.default_rng(3)
    table = rng.normal(size=(12, 12))
    la, lb = rng.integers(0, 9, 40), rng.integers(0, 9, 40)
    la[0] = lb[1] = 0  # empty sequences
    a = np.full((40, 8), 10)
    b = np.full((40, 8), 11)
    for k in range(40):
        a[k, : la[k]], b[k, : lb[k]] = rng.integers(0, 10, la[k]), rng.integers(0, 10, lb[k])
    final, best = B.needleman_wunsch_batch(a, la, b, lb, table, gap)
    for k in range(40):
        f = SP.needleman_wunsch(a[k, : la[k]], b[k, : lb[k]], table, gap)
        assert final[k] == pytest.approx(f[-1, -1], abs=1e-12)
        assert best[k] == pytest.approx(f.max(), abs=1e-12)
