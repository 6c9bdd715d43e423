"""CAM attention sources: ``python -m attnlab.benchmark attention=cam:gradcam,cam:gradcam+prior``.

``cam:<method>`` scores the class activation map of the classifier's top-1 class (methods:
:data:`attnlab.models.cam.maps.METHODS`, computed by grad-cam) as a saliency map;
``cam:<method>+prior`` multiplies it by the fitted centre bias (:func:`attnlab.baselines.fitted_centre_bias`),
since a raw CAM carries no centre bias and the saliency models it is compared with learn one.
Settings: :class:`attnlab.models.cam.CamSettings` (``cam.layer=...`` etc. on the command line).

Found by the benchmark through the ``attnlab.sources`` entry point ``cam`` (pyproject.toml).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import astuple
from typing import Optional

import numpy as np
import torch

from attnlab.baselines import fitted_centre_bias
from attnlab.metrics.maps import match_size
from attnlab.models.cam.classifier import Classifier, load_classifier, target_layer
from attnlab.models.cam.maps import METHODS, cam_maps
from attnlab.models.cam.settings import CamSettings
from attnlab.sources import AttentionSource, BenchmarkContext, image_batch, register_source
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["CamSource", "CamMaps", "parse_method"]

PRIOR = "+prior"
KEEP = 64  # maps kept per method: more than the benchmark's chunk of images plus a batch, so that
# cam:<m> and cam:<m>+prior (scored one after the other on each chunk) compute each CAM once


def parse_method(argument: Optional[str]) -> tuple[str, bool]:
    """(method, with prior) of the argument of ``cam:<method>[+prior]``."""
    methods = ", ".join(METHODS)
    if not argument:
        raise UserError(f"attention=cam needs a method: attention=cam:<method>[+prior] with a method of {methods}")
    method, prior = (argument[: -len(PRIOR)], True) if argument.endswith(PRIOR) else (argument, False)
    if method not in METHODS:
        raise UserError(
            f"attention=cam:{argument}: unknown CAM method {method!r}; use one of: {methods} "
            f"(add {PRIOR} for the centre-bias prior, e.g. cam:gradcam{PRIOR})"
        )
    return method, prior


class CamMaps:
    """The CAMs of one method and settings for the images of ``ctx.data``, computed ``batch_size``
    images at a time on first request and kept for the last :data:`KEEP` images."""

    def __init__(self, classifier: Classifier, method: str, settings: CamSettings) -> None:
        self.classifier, self.method, self.settings = classifier, method, settings
        self.layer_name, self.layer = target_layer(classifier.net, settings.layer, settings.input_size, settings.model)
        self.maps: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        """H×W (``input_size``) CAM of image ``i`` in [0, 1]; all zero when the CAM is constant."""
        if i not in self.maps:
            batch = [k for k in range(i, min(i + self.settings.batch_size, len(ctx.data))) if k not in self.maps]
            self._compute(ctx, batch)
        self.maps.move_to_end(i)
        return self.maps[i]

    def _compute(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        net = self.classifier.net
        device = next(net.parameters()).device
        x = image_batch([ctx.data.load_image(k) for k in indices], self.settings.input_size).to(device)
        maps = cam_maps(net, self.layer, self.method, self.classifier.normalize(x))
        for k, m in zip(indices, maps):
            if not np.isfinite(m).all() or m.max() <= 0:
                log.warning(
                    "cam:%s: the CAM of stimulus %r is constant at layer %s; scored as uniform",
                    self.method,
                    ctx.data.stimuli[k].id,
                    self.layer_name,
                )
                m = np.zeros_like(m)
            self.maps[k] = m
        while len(self.maps) > max(KEEP, len(indices)):
            self.maps.popitem(last=False)


def _shared(ctx: BenchmarkContext, key: tuple, build):
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


@register_source("cam")
class CamSource(AttentionSource):
    """Class activation maps (``cam:<method>``), optionally times the fitted centre bias
    (``cam:<method>+prior``). Maps come at ``input_size``; the benchmark resizes them to the image
    (the ``+prior`` map is made at the image's size: the CAM resized as the benchmark resizes maps,
    plus ``floor``, times the centre bias, normalised to sum 1). A constant CAM is scored as uniform."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        self.method, self.prior = parse_method(argument)
        settings = ctx.options.get("cam")
        if settings is None:
            settings = CamSettings()
        elif isinstance(settings, dict):
            settings = CamSettings(**settings)
        self.settings = settings
        s = settings
        classifier = _shared(
            ctx, ("cam.model", s.model, s.weights, s.device), lambda: load_classifier(s.model, s.weights, s.device)
        )
        self.cams = _shared(ctx, ("cam.maps", self.method, *astuple(s)), lambda: CamMaps(classifier, self.method, s))
        self.name = f"cam:{argument}"

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        cam = self.cams(ctx, i)
        if not self.prior:
            return np.full(cam.shape, 1.0 / cam.size) if cam.max() <= 0 else cam
        size = ctx.data.stimuli[i].size
        up = match_size(torch.from_numpy(cam).double()[None], size)[0].clamp_(min=0).numpy()
        prior = fitted_centre_bias(ctx).map(size)
        m = (up + self.settings.floor) * prior
        total = m.sum()
        return m / total if total > 0 else prior  # floor=0 and a constant CAM: the prior alone
