"""Scanpath metrics against multimatch_gaze, nltk (FixaTons' edit distance) and literal definitions."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from attnlab.baselines import leave_one_subject_out
from attnlab.data.fixations import Scanpath
from attnlab.metrics import scanpath as M

SIZE = (600, 800)


def random_path(rng, n, durations=True):
    cols = [rng.uniform(0, 800, n), rng.uniform(0, 600, n)]
    if durations:
        cols.append(rng.uniform(40, 500, n))
    return np.stack(cols, 1)


def test_multimatch_equals_multimatch_gaze():
    mg = pytest.importorskip("multimatch_gaze")
    rng = np.random.default_rng(0)
    compared = 0
    for trial in range(120):
        a, b = random_path(rng, rng.integers(3, 14)), random_path(rng, rng.integers(3, 14))
        simplify = trial % 2 == 1
        t = (
            dict(TDir=float(rng.uniform(0, 90)), TDur=float(rng.uniform(50, 500)), TAmp=float(rng.uniform(0, 300)))
            if simplify
            else {}
        )
        rec = lambda s: np.rec.fromarrays(s.T, names=["start_x", "start_y", "duration"])  # noqa: E731
        try:
            ref = mg.docomparison(rec(a), rec(b), screensize=[800, 600], grouping=simplify, **t)
        except IndexError:  # the reference fails when a single saccade is left to merge
            continue
        ours = M.multimatch(a, b, SIZE, simplify, t.get("TAmp", 0), t.get("TDir", 0), t.get("TDur", 0))
        np.testing.assert_allclose(list(ours.values()), ref, rtol=1e-9, atol=1e-12)
        compared += 1
    assert compared > 100
    short = M.multimatch(random_path(rng, 2), random_path(rng, 5), SIZE)
    assert all(math.isnan(v) for v in short.values())


def test_multimatch_identical_scanpaths_score_one():
    p = Scanpath([10, 400, 700, 100], [20, 300, 50, 500], duration=[200, 300, 250, 100])
    assert all(v == pytest.approx(1.0) for v in M.multimatch(p, p, SIZE).values())


def test_multimatch_duration_is_not_available_without_durations():
    """One scanpath without durations: duration NaN (not a score of made-up unit durations), the
    other dimensions as with durations; the batched version agrees."""
    from attnlab.metrics.scanpath_batch import multimatch_batch

    rng = np.random.default_rng(4)
    a, b = random_path(rng, 7), random_path(rng, 9)
    timed, untimed = M.multimatch(a, b, SIZE), M.multimatch(a[:, :2], b, SIZE)
    assert 0 < timed["duration"] <= 1 and math.isnan(untimed["duration"])
    assert {k: v for k, v in untimed.items() if k != "duration"} == pytest.approx(
        {k: v for k, v in timed.items() if k != "duration"}, rel=1e-12
    )
    batch = multimatch_batch([a, a[:, :2]], [b, b], [SIZE, SIZE])
    assert batch["duration"][0] == pytest.approx(timed["duration"], rel=1e-12) and math.isnan(batch["duration"][1])
    assert batch["vector"][1] == pytest.approx(untimed["vector"], rel=1e-12)


def test_edit_distance_equals_nltk_damerau():
    nltk_metrics = pytest.importorskip("nltk.metrics")
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b = rng.integers(0, 5, rng.integers(0, 9)).tolist(), rng.integers(0, 5, rng.integers(0, 9)).tolist()
        ref = nltk_metrics.edit_distance(
            "".join(chr(97 + c) for c in a), "".join(chr(97 + c) for c in b), transpositions=True
        )
        assert M.damerau_levenshtein(a, b) == ref


def test_string_edit_similarity_on_a_grid():
    # cells of a 4×4 grid on 800×600: (x // 200) + 4·(y // 150)
    a = np.array([[10, 10], [790, 10], [10, 590], [450, 300]])
    assert M.grid_string(a, SIZE) == [0, 3, 12, 10]
    swapped = a[[1, 0, 2, 3]]
    assert M.string_edit_distance(a, swapped, SIZE) == 1  # one transposition
    assert M.string_edit_similarity(a, swapped, SIZE) == pytest.approx(0.75)
    assert M.string_edit_similarity(a, a, SIZE) == 1.0
    assert M.string_edit_similarity(a, a[:2], SIZE) == pytest.approx(0.5)


def scanmatch_reference(a, b, xres=800, yres=600, xbin=14, ybin=8, threshold=3.5, tempbin=50.0):
    """ScanMatch as Cristino et al. describe it (FixaTons' port): binning mask, NW, max F / scale."""
    mask = np.zeros((yres, xres), dtype=int)
    xi = (np.arange(xres) * xbin / xres).astype(int)
    for y in range(yres):
        mask[y, :] = int(y * ybin / yres) * xbin + xi

    def seq(s):
        d = s.copy()
        d[d < 0] = 0
        d[d[:, 0] >= xres, 0] = xres - 1
        d[d[:, 1] >= yres, 1] = yres - 1
        d = d.astype(int)
        out = mask[d[:, 1], d[:, 0]]
        if tempbin and d.shape[1] > 2:
            out = np.repeat(out, np.round(d[:, 2] / tempbin).astype(int))
        return out

    sa, sb = seq(a), seq(b)
    cells = [(i % xbin, i // xbin) for i in range(xbin * ybin)]
    dist = np.array([[math.dist(p, q) for q in cells] for p in cells])
    sub = np.abs(dist - dist.max()) - (dist.max() - threshold)
    f = np.zeros((len(sa) + 1, len(sb) + 1))
    for i in range(1, len(sa) + 1):
        for j in range(1, len(sb) + 1):
            f[i, j] = max(f[i - 1, j - 1] + sub[sa[i - 1], sb[j - 1]], f[i - 1, j], f[i, j - 1])
    return f.max() / (sub.max() * max(len(sa), len(sb)))


@pytest.mark.parametrize("durations", [False, True])
def test_scanmatch_equals_the_published_algorithm(durations):
    rng = np.random.default_rng(2)
    for _ in range(15):
        a, b = random_path(rng, rng.integers(2, 10), durations), random_path(rng, rng.integers(2, 10), durations)
        ref = scanmatch_reference(a, b, tempbin=50.0 if durations else 0)
        assert M.scanmatch(a, b, SIZE) == pytest.approx(ref, rel=1e-12)
    p = random_path(rng, 6, durations)
    assert M.scanmatch(p, p, SIZE) == pytest.approx(1.0)


def test_dtw_equals_minimum_over_all_alignments():
    rng = np.random.default_rng(3)
    a, b = random_path(rng, 5, False), random_path(rng, 4, False)

    @functools.lru_cache(None)
    def best(i, j):  # every monotone alignment, by recursion
        d = math.dist(a[i], b[j])
        if i == 0 and j == 0:
            return d
        prev = [
            best(i - 1, j) if i else math.inf,
            best(i, j - 1) if j else math.inf,
            best(i - 1, j - 1) if i and j else math.inf,
        ]
        return d + min(prev)

    assert M.dtw(a, b) == pytest.approx(best(4, 3))
    assert M.dtw(a, b, SIZE) == pytest.approx(best(4, 3) / 1000.0)
    assert M.dtw(a, a) == 0.0


def test_time_delay_embedding():
    rng = np.random.default_rng(4)
    pred, human = random_path(rng, 6, False), random_path(rng, 5, False)
    k = 3
    expected = []
    for i in range(len(pred) - k + 1):
        window = pred[i : i + k]
        expected.append(
            min(
                np.linalg.norm([math.dist(p, q) for p, q in zip(window, human[j : j + k])])
                for j in range(len(human) - k + 1)
            )
            / k
        )
    assert M.time_delay_embedding(pred, human, k) == pytest.approx(np.mean(expected))
    assert M.time_delay_embedding(pred, human, k, mode="hausdorff") == pytest.approx(np.max(expected))
    assert M.time_delay_embedding(pred, pred, k) == 0.0
    assert M.scaled_time_delay_embedding(pred, pred, SIZE) == pytest.approx(1.0)
    assert 0 < M.scaled_time_delay_embedding(pred, human, SIZE) < 1
    assert math.isnan(M.time_delay_embedding(pred[:2], human, k))


def test_sequence_score():
    rng = np.random.default_rng(5)
    centres = np.array([[100, 100], [400, 300], [700, 500]])
    humans = [centres[rng.integers(0, 3, 6)] + rng.normal(0, 10, (6, 2)) for _ in range(5)]
    clusters = M.fit_fixation_clusters(np.concatenate(humans), bandwidth=60)
    assert len(clusters.centres) == 3
    assert M.sequence_score(humans[0], humans[0], clusters) == 1.0
    # labels a c b vs a b: the longest common subsequence has 2 symbols, / max length 3
    a = centres[[0, 2, 1]]
    b = centres[[0, 1]]
    assert M.sequence_score(a, b, clusters) == pytest.approx(2 / 3)


def test_leave_one_subject_out_averages_every_ordered_pair():
    rng = np.random.default_rng(6)
    paths = [random_path(rng, 5) for _ in range(4)]
    expected = np.mean([M.scanmatch(a, b, SIZE) for a, b in itertools.permutations(paths, 2)])
    assert leave_one_subject_out(paths, M.scanmatch, image_size=SIZE) == pytest.approx(expected)
