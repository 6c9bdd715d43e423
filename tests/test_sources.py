"""The source template ``BatchedMapSource``: a network's maps from one ``predict`` hook, on OSIE images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from attnlab.sources import BatchedMapSource, BenchmarkContext

SIZE = (30, 40)


@pytest.fixture(scope="module")
def osie():
    from attnlab.data.osie import load_osie

    return load_osie(shared_path("data", "osie_subset"))


class Brightness(BatchedMapSource):
    """The mean of the colour channels: a 'network' whose map is known without the template."""

    input_size, batch_size, keep = SIZE, 3, 4

    def __init__(self):
        self.batches: list[int] = []

    def predict(self, x):
        self.batches.append(len(x))
        return x.mean(1)


def brightness(image: np.ndarray) -> np.ndarray:
    resized = np.asarray(Image.fromarray(image).resize(SIZE[::-1], Image.BILINEAR), dtype=np.float32) / 255.0
    return resized.mean(2, dtype=np.float32).astype(np.float64)


def test_maps_come_batch_by_batch_and_the_last_ones_are_kept(osie):
    ctx = BenchmarkContext(osie.subset(range(7)), osie, 24.0, 0)
    source = Brightness()
    first = source.saliency_map(ctx, 0)
    assert first.dtype == np.float64 and first.shape == SIZE
    np.testing.assert_allclose(first, brightness(ctx.data.load_image(0)), rtol=1e-6)
    for i in range(7):
        np.testing.assert_allclose(source.saliency_map(ctx, i), brightness(ctx.data.load_image(i)), rtol=1e-6)
    assert source.batches == [3, 3, 1]  # images 0-2, 3-5, then the last one: each predicted once
    source.saliency_map(ctx, 3)  # still kept (the last 4: 3..6)
    assert source.batches == [3, 3, 1]
    source.saliency_map(ctx, 0)  # evicted: predicted again, with the next images not kept
    assert source.batches == [3, 3, 1, 3]


def test_sources_with_one_cache_key_predict_once(osie):
    ctx = BenchmarkContext(osie.subset(range(2)), osie, 24.0, 0)
    a, b = Brightness(), Brightness()
    a.cache_key = b.cache_key = lambda: ("brightness",)
    np.testing.assert_array_equal(a.saliency_map(ctx, 1), b.saliency_map(ctx, 1))
    assert (a.batches, b.batches) == ([1], [])


def test_the_input_is_the_resized_image_in_zero_one(osie):
    ctx = BenchmarkContext(osie.subset(range(2)), osie, 24.0, 0)
    x = Brightness().to_input(ctx, [0, 1])
    assert x.shape == (2, 3, *SIZE) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
