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
from dataclasses import astuple
from typing import Optional

import numpy as np
import torch

from attnlab.baselines import fitted_centre_bias
from attnlab.metrics.maps import match_size
from attnlab.models.cam.classifier import load_classifier, target_layer
from attnlab.models.cam.maps import METHODS, cam_maps
from attnlab.models.cam.settings import CamSettings
from attnlab.sources import BatchedMapSource, BenchmarkContext, register_source
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["CamSource", "parse_method"]

PRIOR = "+prior"


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


def _shared(ctx: BenchmarkContext, key: tuple, build):
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


@register_source("cam")
class CamSource(BatchedMapSource):
    """Class activation maps (``cam:<method>``), optionally times the fitted centre bias
    (``cam:<method>+prior``). Maps come at ``input_size``; the benchmark resizes them to the image
    (the ``+prior`` map is made at the image's size: the CAM resized as the benchmark resizes maps,
    plus ``floor``, times the centre bias, normalised to sum 1). A constant CAM is scored as uniform.
    ``cam:<m>`` and ``cam:<m>+prior`` share their CAMs (one computation for both)."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        self.method, self.prior = parse_method(argument)
        settings = ctx.options.get("cam")
        if settings is None:
            settings = CamSettings()
        elif isinstance(settings, dict):
            settings = CamSettings(**settings)
        self.settings = s = settings
        self.input_size, self.batch_size = s.input_size, s.batch_size
        self.classifier = _shared(
            ctx, ("cam.model", s.model, s.weights, s.device), lambda: load_classifier(s.model, s.weights, s.device)
        )
        self.layer_name, self.layer = _shared(
            ctx,
            ("cam.layer", s.model, s.weights, s.device, s.layer, s.input_size),
            lambda: target_layer(self.classifier.net, s.layer, s.input_size, s.model),
        )
        self.name = f"cam:{argument}"

    @property
    def device(self) -> torch.device:
        return next(self.classifier.net.parameters()).device

    def cache_key(self) -> tuple:
        return ("cam.maps", self.method, *astuple(self.settings))

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return cam_maps(self.classifier.net, self.layer, self.method, self.classifier.normalize(x))

    def to_map(self, ctx: BenchmarkContext, i: int, cam: np.ndarray) -> np.ndarray:
        if not np.isfinite(cam).all() or cam.max() <= 0:
            said = _shared(ctx, ("cam.constant", self.cache_key()), set)
            if i not in said:  # once for cam:<m> and cam:<m>+prior
                said.add(i)
                log.warning(
                    "cam:%s: the CAM of stimulus %r is constant at layer %s; scored as uniform",
                    self.method,
                    ctx.data.stimuli[i].id,
                    self.layer_name,
                )
            cam = np.zeros_like(cam)
        if not self.prior:
            return np.full(cam.shape, 1.0 / cam.size) if cam.max() <= 0 else cam
        size = ctx.data.stimuli[i].size
        up = match_size(torch.from_numpy(cam).double()[None], size)[0].clamp_(min=0).numpy()
        prior = fitted_centre_bias(ctx).map(size)
        m = (up + self.settings.floor) * prior
        total = m.sum()
        return m / total if total > 0 else prior  # floor=0 and a constant CAM: the prior alone
