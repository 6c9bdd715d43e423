"""Fixations as maps: per-pixel counts and Gaussian densities (the targets every saliency metric reads).

- :func:`fixation_map` ``(x, y, image_size, size=None)`` → ``(counts H×W, dropped)``: fixation counts
  per pixel. A fixation at ``x`` falls in column ``floor(x · W / W_image)`` (pixel j covers
  [j, j+1)); fixations outside the image are dropped and counted.
- :func:`sparse_fixation_maps` ``(points, image_sizes, size=None)`` → the same counts for several
  images as one sparse B×H×W tensor, which the saliency metrics take without a per-pixel cost.
- :func:`gaussian_density` ``(x, y, image_size, sigma_px, size=None)`` → H×W density summing to 1:
  the fixation map blurred with a Gaussian exactly as ``scipy.ndimage.gaussian_filter(mode="reflect",
  truncate=4)`` does (which is what pysaliency's ``FixationMap(kernel_size=sigma)`` uses).
- :func:`blur` ``(maps B×H×W, sigma_px)`` — the same Gaussian for dense maps, in torch.
- :func:`sigma_in_pixels` ``(sigma_deg, pixels_per_degree)``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from attnlab.utils.config import UserError

__all__ = [
    "fixation_map",
    "sparse_fixation_maps",
    "gaussian_density",
    "blur",
    "gaussian_operator",
    "sigma_in_pixels",
    "pixel_indices",
]

# scipy.ndimage.gaussian_filter's default: the kernel reaches 4 sigma on each side
TRUNCATE = 4.0


def sigma_in_pixels(sigma_deg: float, pixels_per_degree: float) -> float:
    """A Gaussian width given in degrees of visual angle, in pixels."""
    if pixels_per_degree is None or pixels_per_degree <= 0:
        raise UserError(
            f"pixels_per_degree={pixels_per_degree!r} is needed to give sigma in degrees; set it to a number > 0"
        )
    return float(sigma_deg) * float(pixels_per_degree)


def pixel_indices(x: np.ndarray, y: np.ndarray, image_size: tuple[int, int], size: tuple[int, int] | None):
    """Row/column of each fixation on a ``size`` map of an ``image_size`` image; mask of those inside."""
    h0, w0 = image_size
    h, w = size or image_size
    cols = np.floor(np.asarray(x, dtype=np.float64) * (w / w0))
    rows = np.floor(np.asarray(y, dtype=np.float64) * (h / h0))
    inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    return rows[inside].astype(np.int64), cols[inside].astype(np.int64), inside


def fixation_map(
    x: np.ndarray, y: np.ndarray, image_size: tuple[int, int], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, int]:
    """Fixation counts per pixel (H×W float64) and the number of fixations dropped outside the image.

    ``x``/``y`` are in pixels of an image of ``image_size`` = (H0, W0); the map has ``size`` (default
    ``image_size``) and fixation (x, y) lands in column floor(x·W/W0), row floor(y·H/H0).
    """
    h, w = size or image_size
    rows, cols, inside = pixel_indices(x, y, image_size, size)
    counts = np.bincount(rows * w + cols, minlength=h * w).astype(np.float64).reshape(h, w)
    return counts, int((~inside).sum())


def sparse_fixation_maps(
    points: Sequence[tuple[np.ndarray, np.ndarray]],
    image_sizes: Sequence[tuple[int, int]],
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """:func:`fixation_map` of several images as one sparse B×H×W count tensor (float64).

    ``points[i]`` = (x, y) of image i in pixels of ``image_sizes[i]``; every map has ``size``
    (default: the first image's size). The saliency metrics take it in place of dense counts.
    """
    size = tuple(size or image_sizes[0])
    pixels = size[0] * size[1]
    keys = []  # one per fixation, image-major (b·H·W + row·W + column): one sort for all images
    for b, ((x, y), image_size) in enumerate(zip(points, image_sizes)):
        rows, cols, _ = pixel_indices(x, y, image_size, size)
        keys.append(b * pixels + rows * size[1] + cols)
    key, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64), return_counts=True)
    b, pixel = np.divmod(key, pixels)
    index = torch.from_numpy(np.stack([b, pixel // size[1], pixel % size[1]]))
    return torch.sparse_coo_tensor(
        index,
        torch.from_numpy(counts.astype(np.float64)),
        (len(points), *size),
        is_coalesced=True,
        check_invariants=False,
    )  # np.unique sorts


@lru_cache(maxsize=32)
def _kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: radius int(4σ + 0.5), normalised to sum 1."""
    radius = int(TRUNCATE * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (sigma * sigma) * t * t)
    return k / k.sum()


def _reflect(p: np.ndarray, n: int) -> np.ndarray:
    """scipy's 'reflect' boundary (d c b a | a b c d | d c b a) for any integer index."""
    p = np.mod(p, 2 * n)
    return np.where(p < n, p, 2 * n - 1 - p)


@lru_cache(maxsize=16)
def gaussian_operator(n: int, sigma: float) -> np.ndarray:
    """n×n matrix of the 1-D Gaussian filter with reflect boundary: ``out = M @ signal``."""
    k = _kernel(float(sigma))
    radius = len(k) // 2
    out = np.zeros((n, n))
    rows = np.arange(n)
    for t in range(-radius, radius + 1):
        np.add.at(out, (rows, _reflect(rows + t, n)), k[t + radius])
    return out


def gaussian_density(
    x: np.ndarray,
    y: np.ndarray,
    image_size: tuple[int, int],
    sigma_px: float,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Fixations blurred by a Gaussian (σ in pixels of the ORIGINAL image), normalised to sum 1.

    Equals ``gaussian_filter(fixation_map, σ', mode="reflect")`` / sum with σ' = σ scaled to ``size``,
    computed as a sparse product (rows of the blur operator at the fixated pixels), so it costs
    O(H·W·#fixations) instead of a dense convolution. No fixations → NaN map (nothing to blur).
    """
    h0, w0 = image_size
    h, w = size or image_size
    rows, cols, _ = pixel_indices(x, y, image_size, size)
    if len(rows) == 0:
        return np.full((h, w), np.nan)
    sy = sigma_px * h / h0
    sx = sigma_px * w / w0
    if sy <= 0 or sx <= 0:
        counts, _ = fixation_map(x, y, image_size, size)
        return counts / counts.sum()
    a = gaussian_operator(h, round(sy, 9))[:, rows]  # H×K: vertical spread of each fixation
    b = gaussian_operator(w, round(sx, 9))[:, cols]  # W×K
    density = a @ b.T
    return density / density.sum()


def blur(maps: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of B×H×W (or H×W) maps, scipy 'reflect' boundary, on the maps' device."""
    squeeze = maps.dim() == 2
    m = maps.unsqueeze(0) if squeeze else maps
    if sigma_px <= 0:
        return maps
    h, w = m.shape[-2:]
    dtype = m.dtype if m.dtype in (torch.float32, torch.float64) else torch.float64
    my = torch.as_tensor(gaussian_operator(h, float(sigma_px)), dtype=dtype, device=m.device)
    mx = torch.as_tensor(gaussian_operator(w, float(sigma_px)), dtype=dtype, device=m.device)
    out = my @ m.to(dtype) @ mx.T
    return out[0] if squeeze else out
