"""The attention-source protocol: what a model implements to be scored by ``attnlab.benchmark``.

A source produces, for image ``i`` of :attr:`BenchmarkContext.data`, a saliency map (H×W, any
size: the benchmark resizes it) and/or scanpaths; a probabilistic source also gives its log density
(``log_density``), and a scanpath model the density of the next fixation given the earlier ones
(``conditional_log_density``). Sources are found by name:

- built in (the benchmark registers ``uniform``, ``centre_bias``, ``inter_observer``);
- registered in this process with :func:`register_source`;
- declared by an installed package in the entry-point group ``attnlab.sources``, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."attnlab.sources"]
      saliency = "attnlab.models.saliency.source:SaliencyModelSource"

  Entry points are loaded only when their name is asked for (:func:`lookup_source`), so scoring
  ``attention=centre_bias`` never imports a model package.

This module sits below models and the benchmark: it imports only utils, data and metrics.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Optional

import numpy as np
import torch

from attnlab.data.fixations import FixationDataset, Scanpath

__all__ = [
    "image_batch",
    "AttentionSource",
    "BatchedMapSource",
    "BenchmarkContext",
    "SourceFactory",
    "SOURCES",
    "ENTRY_POINT_GROUP",
    "register_source",
    "lookup_source",
    "source_names",
]

ENTRY_POINT_GROUP = "attnlab.sources"


@dataclass
class BenchmarkContext:
    """What sources may use: the evaluated images, the training split, the blur and the seed."""

    data: FixationDataset
    train: FixationDataset
    sigma_px: float
    seed: int
    human_scanpaths: list[list[Scanpath]] = field(default_factory=list)
    # a source's settings, by source name: the command's config node of that name, instantiated
    # (``cam.layer=...`` builds the node ``cam: {_target_: ...}``); absent: the source's defaults
    options: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    # probabilistic sources: each saliency metric on the map it rewards, and the fixation-conditional
    # metrics (the command's ``metric_specific=`` / ``conditional_metrics=``; attnlab.benchmark.probabilistic)
    metric_specific: bool = True
    conditional_metrics: bool = True


class AttentionSource:
    """A producer of saliency maps and/or scanpaths for the benchmark's images.

    Subclasses are built as ``factory(argument, context)`` (``attention=name:argument``) and
    override one or both methods; ``None`` means "this source has no such output".
    """

    name: str = "source"
    leave_one_out: bool = False  # scored subject by subject (the inter-observer baseline)
    parallel_safe: bool = False  # may be used from forked worker processes (no GPU, threads or open handles)

    def prepare(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        """Called once before the images ``indices`` are scored, in the main process (e.g. to check
        inputs or predict in batches; workers forked later see what it stored)."""

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> Optional[np.ndarray]:
        return None

    def scanpaths(self, ctx: BenchmarkContext, i: int) -> Optional[list[Scanpath]]:
        return None

    def log_density(self, ctx: BenchmarkContext, i: int) -> Optional[np.ndarray]:
        """A probabilistic source's density of fixations on image ``i``: natural log, H×W at any size,
        summing to 1 (``exp``) at its own size; the benchmark resizes it and then scores each saliency
        metric on the map that metric rewards (``metric_specific``). ``None``: a map source."""
        return None

    def conditional_log_density(
        self, ctx: BenchmarkContext, i: int, history_x: np.ndarray, history_y: np.ndarray
    ) -> Optional[np.ndarray]:
        """The density of the next fixation given the earlier ones (pixels of image ``i``), as
        :meth:`log_density`; the conditional metrics call it with each human's true history. The
        default ignores the history: a history-free density source, p(x_t | h) = p(x_t)."""
        return self.log_density(ctx, i)

    @property
    def conditional(self) -> bool:
        """Whether the source's next-fixation density uses the history (it overrides the method)."""
        return type(self).conditional_log_density is not AttentionSource.conditional_log_density


class BatchedMapSource(AttentionSource):
    """The template of a network's maps (as grad-cam's ``BaseCAM``): a subclass gives the one hook
    :meth:`predict`; the images go to it ``batch_size`` at a time, on the first request of one of them,
    and the last ``keep`` predictions are kept (in ``ctx.cache`` under :meth:`cache_key`, so sources
    that share a key, e.g. ``cam:gradcam`` and ``cam:gradcam+prior``, predict each image once).

    :meth:`to_input` (images -> network input) and :meth:`to_map` (prediction -> the image's map)
    are the other places a subclass may change; their defaults resize the image to ``input_size`` and
    return the prediction as it is (the benchmark resizes maps to each image)."""

    input_size: tuple[int, int]
    batch_size: int = 8
    keep: int = 64  # more than the benchmark's chunk of images plus a batch

    def predict(self, x: torch.Tensor) -> torch.Tensor | np.ndarray:
        """B×3×H×W float32 in [0, 1] (:meth:`to_input`, on ``device``) -> B×h×w maps."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to_input(self, ctx: BenchmarkContext, indices: list[int]) -> torch.Tensor:
        return image_batch([ctx.data.load_image(k) for k in indices], self.input_size)

    def to_map(self, ctx: BenchmarkContext, i: int, predicted: np.ndarray) -> np.ndarray:
        return predicted

    def cache_key(self) -> tuple:
        return ("maps", id(self))

    def predicted(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        """:meth:`predict`'s float64 map of image ``i``, and of the next images of its batch."""
        kept: OrderedDict[int, np.ndarray] = ctx.cache.setdefault(self.cache_key(), OrderedDict())
        if i not in kept:
            batch = [k for k in range(i, min(i + self.batch_size, len(ctx.data))) if k not in kept]
            maps = self.predict(self.to_input(ctx, batch).to(self.device))
            for k, m in zip(batch, maps):
                kept[k] = (
                    m.detach().double().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m, np.float64)
                )
            while len(kept) > max(self.keep, len(batch)):
                kept.popitem(last=False)
        kept.move_to_end(i)
        return kept[i]

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        return self.to_map(ctx, i, self.predicted(ctx, i))


SourceFactory = Callable[[Optional[str], BenchmarkContext], AttentionSource]
SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str):
    """Decorator: ``factory(argument, context) -> AttentionSource`` answers ``attention=name[:argument]``."""

    def wrap(factory):
        SOURCES[name] = factory
        return factory

    return wrap


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def lookup_source(name: str) -> Optional[SourceFactory]:
    """The factory registered under ``name``; loads the entry point of that name (only) if needed."""
    if name not in SOURCES:
        ep = _entry_points().get(name)
        if ep is None:
            return None
        factory = ep.load()  # imports the model package, which may also register itself
        SOURCES.setdefault(name, factory)
    return SOURCES[name]


def source_names() -> list[str]:
    """Every name ``attention=`` accepts: registered here or declared as an entry point (not loaded)."""
    return sorted(set(SOURCES) | set(_entry_points()))


def image_batch(images: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """B×3×H×W float32 in [0, 1]: H×W×3 uint8 images (``ctx.data.load_image``) resized to ``size`` (bilinear),
    the input every model source gives its network."""
    from PIL import Image

    resized = [np.asarray(Image.fromarray(im).resize(size[::-1], Image.BILINEAR), dtype=np.float32) for im in images]
    return torch.from_numpy(np.stack(resized) / 255.0).permute(0, 3, 1, 2).contiguous()
