"""Baselines every attnlab table carries: uniform, centre bias, and the human inter-observer score.

- :class:`CentreBias` — a 2-D Gaussian (mean and full covariance, maximum likelihood) fitted to the
  TRAINING fixations in image-normalised coordinates (x/W, y/H), so one fit serves every image
  size. ``map(size)`` is its density on the pixel centres, normalised to sum 1;
  ``sample_scanpath(...)`` draws fixations from it.
- :func:`uniform_map` / :func:`uniform_scanpath` — the uninformed baseline.
- Inter-observer ("gold standard"): for maps, :func:`leave_one_out_density` = the Gaussian density
  of the OTHER subjects' fixations, scored against the left-out subject (averaged over subjects;
  the benchmark uses split halves of the subjects for the density-vs-density metrics CC/KLD/SIM);
  for scanpaths, :func:`leave_one_subject_out` scores each subject's scanpath against the other
  subjects' scanpaths with a scanpath metric.
- :func:`winner_take_all` — scanpaths from any saliency map (Itti & Koch 1998): fixate the
  maximum, inhibit its surroundings (inhibition of return), repeat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from attnlab.data.fixations import FixationDataset, Scanpath
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "CentreBias",
    "fitted_centre_bias",
    "uniform_map",
    "uniform_scanpath",
    "leave_one_out_density",
    "leave_one_subject_out",
    "winner_take_all",
]

WTA_FLOOR = 1e-6  # added to the [0, 1]-normalised map: once the map is spent, the least inhibited place wins


def _pixel_centres(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    return (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h


@dataclass
class CentreBias:
    """Gaussian centre bias in normalised image coordinates: ``mean`` (2,), ``cov`` (2×2)."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, data: FixationDataset) -> "CentreBias":
        """Maximum-likelihood Gaussian of all fixations of ``data`` (use the training split)."""
        points = []
        for stimulus, paths in zip(data.stimuli, data.scanpaths):
            for p in paths:
                points.append(np.stack([p.x / stimulus.width, p.y / stimulus.height], 1))
        if not points or sum(len(p) for p in points) < 3:
            raise UserError(f"cannot fit a centre bias: {data.name} has fewer than 3 fixations")
        xy = np.concatenate(points)
        xy = xy[np.isfinite(xy).all(1)]
        return cls(xy.mean(0), np.cov(xy.T, bias=True) + 1e-9 * np.eye(2))

    @classmethod
    def isotropic(cls, width: float = 0.25) -> "CentreBias":
        """A fixed centred Gaussian (σ = ``width`` of the image side), when there is nothing to fit."""
        return cls(np.array([0.5, 0.5]), np.eye(2) * width**2)

    def map(self, size: tuple[int, int]) -> np.ndarray:
        """H×W density (sums to 1)."""
        xs, ys = _pixel_centres(size)
        inv = np.linalg.inv(self.cov)
        dx, dy = xs[None, :] - self.mean[0], ys[:, None] - self.mean[1]
        q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
        m = np.exp(-0.5 * (q - q.min()))
        return m / m.sum()

    def sample_scanpath(
        self, n: int, size: tuple[int, int], rng: np.random.Generator, duration: float | None = None
    ) -> Scanpath:
        """``n`` fixations drawn from the Gaussian (clipped to the image), in pixels of ``size``."""
        h, w = size
        xy = rng.multivariate_normal(self.mean, self.cov, size=n)
        x = np.clip(xy[:, 0], 0, 1 - 1e-9) * w
        y = np.clip(xy[:, 1], 0, 1 - 1e-9) * h
        return Scanpath(x, y, None if duration is None else np.full(n, duration), subject="centre_bias")

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist()}


def fitted_centre_bias(ctx: Any) -> CentreBias:
    """The centre bias fitted on ``ctx.train`` (a benchmark context), once per context (``ctx.cache``)."""
    if "centre_bias" not in ctx.cache:
        ctx.cache["centre_bias"] = CentreBias.fit(ctx.train)
        log.info("centre bias fitted on %d training images: %s", len(ctx.train), ctx.cache["centre_bias"].to_dict())
    return ctx.cache["centre_bias"]


def uniform_map(size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return np.full((h, w), 1.0 / (h * w))


def uniform_scanpath(
    n: int, size: tuple[int, int], rng: np.random.Generator, duration: float | None = None
) -> Scanpath:
    h, w = size
    return Scanpath(
        rng.uniform(0, w, n),
        rng.uniform(0, h, n),
        None if duration is None else np.full(n, duration),
        subject="uniform",
    )


def leave_one_out_density(
    data: FixationDataset, i: int, subject: str, sigma_px: float, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Density of every subject but ``subject`` on image i (NaN map if no one else looked)."""
    others = {p.subject for p in data.scanpaths[i] if p.subject != subject}
    return data.density(i, sigma_px=sigma_px, size=size, subjects=others)


def leave_one_subject_out(scanpaths: Sequence[Scanpath], metric: Callable[..., float], **kwargs) -> float:
    """Mean over subjects of the metric between their scanpath and each other subject's (NaN skipped)."""
    values = []
    for k, held_out in enumerate(scanpaths):
        for j, other in enumerate(scanpaths):
            if j != k:
                v = metric(held_out, other, **kwargs)
                if v == v:
                    values.append(v)
    return float(np.mean(values)) if values else float("nan")


def winner_take_all(
    saliency: np.ndarray, n: int, ior_sigma_px: float, smooth_sigma_px: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fixations on a saliency map by winner-take-all with inhibition of return (Itti & Koch 1998).

    The map is blurred (Gaussian, σ = ``smooth_sigma_px``; 0: not blurred) and scaled to [0, 1].
    Each fixation is the map's maximum (ties: the one nearest the centre, then the first in row-major
    order); the map is then multiplied by ``1 - exp(-d² / 2σ²)``, d the distance to that fixation and
    σ = ``ior_sigma_px``, so the fixated pixel drops to zero and its surroundings are suppressed.
    Deterministic; a flat map is fixated at its centre first.

    Args:
        saliency: H×W finite values (any scale; larger = more salient).
        n: number of fixations (≥ 0).
        ior_sigma_px: σ of the inhibition of return, in pixels of the map (> 0).
        smooth_sigma_px: σ of the blur before the selection, in pixels of the map (≥ 0).

    Returns:
        (x, y), each of shape (n,): pixel centres (column + 0.5, row + 0.5) in pixels of the map.
    """
    m = np.asarray(saliency, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise UserError(f"winner_take_all needs an H×W saliency map, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise UserError("winner_take_all: the saliency map contains NaN or inf values")
    if int(n) != n or n < 0:
        raise UserError(f"winner_take_all: n={n!r} must be a whole number ≥ 0")
    if not ior_sigma_px > 0:
        raise UserError(f"winner_take_all: ior_sigma_px={ior_sigma_px!r} must be > 0")
    if not smooth_sigma_px >= 0:
        raise UserError(f"winner_take_all: smooth_sigma_px={smooth_sigma_px!r} must be ≥ 0")
    if smooth_sigma_px > 0:
        from scipy.ndimage import gaussian_filter

        m = gaussian_filter(m, smooth_sigma_px, mode="nearest")
    lo, hi = m.min(), m.max()
    m = (m - lo) / (hi - lo) if hi > lo else np.ones_like(m)
    m += WTA_FLOOR
    h, w = m.shape
    cols, rows = np.arange(w) + 0.5, np.arange(h) + 0.5
    centre_distance = (cols[None, :] - w / 2) ** 2 + (rows[:, None] - h / 2) ** 2
    xs, ys = np.empty(int(n)), np.empty(int(n))
    for k in range(int(n)):
        winners = np.flatnonzero(m == m.max())
        best = winners[np.argmin(centre_distance.flat[winners])] if len(winners) > 1 else winners[0]
        r, c = divmod(int(best), w)
        xs[k], ys[k] = cols[c], rows[r]
        gx = np.exp(-((cols - xs[k]) ** 2) / (2 * ior_sigma_px**2))
        gy = np.exp(-((rows - ys[k]) ** 2) / (2 * ior_sigma_px**2))
        m *= 1 - gy[:, None] * gx[None, :]
    return xs, ys
