"""The benchmark's batched scoring equals the plain per-image, per-pair reference, on OSIE images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_path

from attnlab.data.fixations import Scanpath
from attnlab.data.folder import write_scanpaths


@pytest.fixture(scope="module")
def osie():
    from attnlab.data.osie import load_osie

    return load_osie(shared_path("data", "osie_subset"))


def context(osie, images):
    from attnlab.benchmark import BenchmarkContext
    from attnlab.metrics.saliency import ShuffledNegatives

    data = osie.subset(range(images))
    ctx = BenchmarkContext(data, osie, 24.0, 3, data.filtered(drop_first=True).scanpaths)
    negatives = ShuffledNegatives(
        [(f.x, f.y) for f in (data.fixations(i) for i in range(len(data)))], [s.size for s in data.stimuli]
    )
    return ctx, negatives


def model_like_sources(tmp_path, ctx):
    """A folder of maps at another size, with plateaus (ties), and a scanpath file (some without durations)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "maps"
    folder.mkdir()
    paths = []
    for i, s in enumerate(ctx.data.stimuli):
        m = np.kron(rng.random((30, 40)), np.ones((10, 10)))  # 300×400, resized to 600×800
        np.save(folder / f"{s.id}.npy", np.round(m, 1))
        for k in range(3):
            n = int(rng.integers(2, 12))
            dur = rng.uniform(80, 600, n) if k else None
            paths.append(
                Scanpath(rng.uniform(0, s.width, n), rng.uniform(0, s.height, n), dur, subject=f"m{k}", stimulus=s.id)
            )
    write_scanpaths(tmp_path / "model.json", paths)
    return [str(folder), str(tmp_path / "model.json")]


def test_fast_scoring_equals_the_per_pair_reference(tmp_path, osie, one_torch_thread):
    from attnlab.benchmark import resolve_source
    from attnlab.benchmark.reference import reference_targets, score_image_reference
    from attnlab.benchmark.scoring import SALIENCY_METRICS, SCANPATH_METRICS, score_chunk

    ctx, negatives = context(osie, 2)
    specs = ["centre_bias", "uniform", "inter_observer", *model_like_sources(tmp_path, ctx)]
    sources = [resolve_source(s, ctx) for s in specs]
    fast, shown = score_chunk(sources, ctx, [0, 1], negatives, keep_maps=[0])
    assert set(shown[0]["maps"]) == {s.name for s in sources}
    checked = 0
    for source in sources:
        for i in range(2):
            ref, _ = score_image_reference(source, ctx, i, reference_targets(ctx, i, negatives))
            got = fast[source.name][i]
            # besides the metrics a row flags a constant map (the uniform baseline's; reported by the run)
            assert got.keys() - {"constant_map"} == {"stimulus", *ref.keys()}, source.name
            assert got.get("constant_map", False) == (source.name == "uniform"), source.name
            for metric, v in ref.items():
                assert (math.isnan(v) and math.isnan(got[metric])) or got[metric] == pytest.approx(
                    v, rel=1e-6, abs=1e-9
                ), (source.name, i, metric)
                checked += v == v
    # every source has every saliency metric, the scanpath sources every scanpath metric
    assert set(fast["inter_observer"][0]) >= set(SALIENCY_METRICS + SCANPATH_METRICS)
    assert set(fast["model"][0]) >= set(SALIENCY_METRICS + SCANPATH_METRICS) and "SED" not in fast["maps"][0]
    assert checked > 2 * (3 * 18 + 8 + 18) * 0.9


def test_worker_processes_give_the_rows_of_one_process(monkeypatch, osie):
    from attnlab.benchmark import resolve_source, run
    from attnlab.benchmark.run import score_images

    ctx, negatives = context(osie, 4)
    sources = [resolve_source(s, ctx) for s in ("centre_bias", "inter_observer")]
    monkeypatch.setattr(run, "CHUNK", 2)
    assert run.workers(sources, 4) == min(2, len(__import__("os").sched_getaffinity(0)))
    one = [rows for rows, _, _ in score_images(sources, ctx, [0, 1, 2, 3], negatives, [], processes=1)]
    two = [rows for rows, _, _ in score_images(sources, ctx, [0, 1, 2, 3], negatives, [], processes=2)]
    assert len(one) == 2 and one == two
