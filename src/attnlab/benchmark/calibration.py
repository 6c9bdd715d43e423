"""``calibrated:<source>``: any map source made probabilistic, as its own labelled row.

A map (a CAM, winner-take-all's map, a folder of maps) says where attention goes but not how much
probability each place gets, so its information gain is dominated by the pixels it rates zero. The
calibrated source fits, on the TRAINING split's fixations, a monotone transform of the map and a
mixture with the centre bias (the pattern of DeepGaze's readout):

    p(x) = (1 − α) · exp(β z(x)) / Σ_x' exp(β z(x')) + α · p_centre(x),

with z the map min-max normalised to [0, 1] at the image's size, β ≥ 0 (the monotone transform) and
α ∈ (0, 1), chosen by maximum likelihood of the training fixations (L-BFGS-B). It is then a density
source: metric-specific maps and conditional metrics apply (:mod:`attnlab.benchmark.probabilistic`).
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch

from attnlab.baselines import fitted_centre_bias
from attnlab.benchmark.sources import resolve_source
from attnlab.data.fixation_maps import pixel_indices
from attnlab.metrics.maps import match_size
from attnlab.sources import AttentionSource, BenchmarkContext, register_source
from attnlab.utils.config import PositiveInt, UserError, check_arguments

log = logging.getLogger(__name__)

__all__ = ["CalibrationSettings", "CalibratedSource", "fit_calibration"]

BINS = 2048  # z histogram for the normalisers while fitting (the scored density is exact)
MAX_BETA = 60.0


class CalibrationSettings:
    """Settings of ``calibrated:<source>`` (the config node ``calibrated:``).

    Args:
        train_images: training images the transform is fitted on (the first N of the training split;
            each costs one map of the inner source).
    """

    def __init__(self, train_images: PositiveInt = 40) -> None:
        check_arguments(CalibrationSettings, {"train_images": train_images})
        self.train_images = int(train_images)


def _unit(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map at the image's size, min-max normalised to [0, 1] (a constant map: all zeros)."""
    m = np.asarray(m, dtype=np.float64)
    if not np.isfinite(m).all():
        raise UserError("a map to calibrate contains NaN or inf values")
    if m.shape != tuple(size):
        m = match_size(torch.from_numpy(m)[None], tuple(size))[0].numpy()
    low, high = m.min(), m.max()
    return (m - low) / (high - low) if high > low else np.zeros_like(m)


def _log_mixture(z: np.ndarray, log_centre: np.ndarray, beta: float, alpha: float) -> np.ndarray:
    top = beta * z.max()
    log_map = beta * z - (top + math.log(np.exp(beta * z - top).sum()))
    return np.logaddexp(math.log1p(-alpha) + log_map, math.log(alpha) + log_centre)


def fit_calibration(images: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """(β, α) maximising Σ log p over ``images`` = [(z map, log centre map, fixated flat indices)]."""
    from scipy.optimize import minimize

    edges = np.linspace(0.0, 1.0, BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    parts = []
    for z, log_centre, at in images:
        counts = np.histogram(z, edges)[0]
        parts.append((counts, z.ravel()[at], log_centre.ravel()[at]))
    fixations = sum(len(zf) for _, zf, _ in parts)
    if fixations == 0:
        raise UserError("calibrated: the training images have no fixations to fit on")

    def loss(params: np.ndarray) -> float:
        beta, alpha = params[0], 1.0 / (1.0 + math.exp(-params[1]))
        total = 0.0
        for counts, zf, lcf in parts:
            log_norm = beta + math.log(np.dot(counts, np.exp(beta * (centres - 1.0))))
            total += np.logaddexp(math.log1p(-alpha) + beta * zf - log_norm, math.log(alpha) + lcf).sum()
        return -total / fixations

    best = minimize(loss, np.array([5.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, MAX_BETA), (-12.0, 12.0)])
    return float(best.x[0]), float(1.0 / (1.0 + math.exp(-best.x[1])))


@register_source("calibrated")
class CalibratedSource(AttentionSource):
    """``calibrated:<source>``: the inner source's maps turned into a density fitted on the training split."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError(
                "attention=calibrated needs a map source: attention=calibrated:<source>, e.g. calibrated:cam"
            )
        self.inner = resolve_source(argument, ctx)
        if self.inner.leave_one_out:
            raise UserError(f"attention=calibrated:{argument}: {argument} is scored subject by subject and has no map")
        self.settings = ctx.options.get("calibrated") or CalibrationSettings()
        self.parallel_safe = self.inner.parallel_safe
        self.params: Optional[tuple[float, float]] = None
        self._last: tuple = (None, None)  # (context, image) and its log density: saliency_map asks next

    def prepare(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        self.params = self._fit(ctx)
        log.info("%s: β = %.3f, centre-bias weight α = %.3f (fitted on the training split)", self.name, *self.params)
        self.inner.prepare(ctx, indices)

    def _fit(self, ctx: BenchmarkContext) -> tuple[float, float]:
        train = ctx.train.subset(range(min(self.settings.train_images, len(ctx.train))))
        train_ctx = BenchmarkContext(train, ctx.train, ctx.sigma_px, ctx.seed, [], ctx.options)
        train_ctx.cache["centre_bias"] = fitted_centre_bias(ctx)
        indices = [j for j in range(len(train)) if train.fixations(j).x.size]
        try:
            self.inner.prepare(train_ctx, indices)
        except UserError as ex:
            raise UserError(f"attention={self.name} needs {self.inner.name}'s maps of training images: {ex}") from None
        images = []
        for j in indices:
            size = train.stimuli[j].size
            m = self.inner.saliency_map(train_ctx, j)
            if m is None:
                raise UserError(f"attention={self.name}: source {self.inner.name} has no saliency map to calibrate")
            f = train.fixations(j)
            rows, cols, _ = pixel_indices(f.x, f.y, size, None)
            log_centre = np.log(fitted_centre_bias(ctx).map(size))
            images.append((_unit(m, size), log_centre, rows * size[1] + cols))
        return fit_calibration(images)

    def log_density(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        if self._last[0] == (id(ctx), i):
            return self._last[1]
        if self.params is None:
            self.prepare(ctx, [i])
        size = tuple(ctx.data.stimuli[i].size)
        m = self.inner.saliency_map(ctx, i)
        if m is None:
            raise UserError(f"attention={self.name}: source {self.inner.name} has no saliency map to calibrate")
        log_p = _log_mixture(_unit(m, size), np.log(fitted_centre_bias(ctx).map(size)), *self.params)
        self._last = ((id(ctx), i), log_p)
        return log_p

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        return np.exp(self.log_density(ctx, i))
