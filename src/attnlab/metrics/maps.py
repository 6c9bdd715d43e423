"""Input handling shared by the saliency metrics: shapes, sizes, bad values, normalisations.

Rules (the same for every metric in :mod:`attnlab.metrics.saliency` and :mod:`attnlab.metrics.auc`):

- Maps are B×H×W (an H×W map is treated as B = 1), any float dtype, any device. Work is done in
  float64 so values match the NumPy references to ~1e-12.
- A map containing NaN or ±inf raises :class:`InvalidMapError` naming its batch index (the benchmark
  re-raises it with the image name). Nothing is silently replaced.
- A prediction whose H×W differs from the target's is resized to the target's size with bilinear
  interpolation (``align_corners=False``, antialiasing when shrinking) — the rule of the MIT code
  (``imresize`` of the map to the fixation map) and of pysaliency's ``ResizingSaliencyMapModel``.
- Negative maps are shifted by their minimum wherever a metric needs a distribution (KLD, SIM, IG);
  rank- and z-score-based metrics (AUCs, NSS, CC) are unaffected by the shift anyway.
- Images without fixations get NaN for fixation-based metrics: they are skipped, and
  :func:`mean_over_images` reports how many were.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["InvalidMapError", "as_batch", "match_size", "to_density", "minmax", "mean_over_images", "DTYPE"]

DTYPE = torch.float64
# MATLAB's eps: the regulariser of the MIT benchmark code (KLdiv.m, IG.m) and pysaliency's MIT_KLDiv
MIT_EPS = 2.2204e-16


class InvalidMapError(UserError):
    """A map with NaN or inf values; ``index`` is its position in the batch."""

    def __init__(self, what: str, index: int) -> None:
        super().__init__(f"{what} {index} of the batch contains NaN or inf values; fix the map (metrics never guess a value for them)")
        self.what, self.index = what, index


def as_batch(x: torch.Tensor, what: str = "saliency map", check: bool = True) -> torch.Tensor:
    """B×H×W float64 view of ``x`` (H×W → 1×H×W); raises :class:`InvalidMapError` on NaN/inf."""
    x = torch.as_tensor(x)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise UserError(f"{what}s must be B×H×W (or H×W); got shape {tuple(x.shape)}")
    x = x.to(DTYPE)
    if check:
        index = first_invalid(x)
        if index is not None:
            raise InvalidMapError(what, index)
    return x


def first_invalid(x: torch.Tensor) -> int | None:
    """Batch index of the first map with NaN/inf, or None.

    One reduction per map (a sum is finite iff every term is, barring overflow, which the exact
    check below then clears), so validation costs a fraction of any metric.
    """
    sums = x.reshape(x.shape[0], -1).sum(1)
    suspects = (~torch.isfinite(sums)).nonzero().flatten().tolist()
    for i in suspects:
        if not bool(torch.isfinite(x[i]).all()):
            return int(i)
    return None


def match_size(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``pred`` (B×H×W) resized to ``size`` bilinearly when it differs (see the module rules)."""
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    shrink = pred.shape[-2] > size[0] or pred.shape[-1] > size[1]
    log.debug("resizing predictions %s -> %s", tuple(pred.shape[-2:]), tuple(size))
    return F.interpolate(pred.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)[:, 0]


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def to_density(x: torch.Tensor) -> torch.Tensor:
    """pysaliency's ``convert_saliency_map_to_density``: shift negatives, divide by the sum (all-zero → uniform)."""
    x = flat(x)
    low = x.min(1, keepdim=True).values
    x = torch.where(low < 0, x - low, x)
    total = x.sum(1, keepdim=True)
    uniform = torch.full_like(x, 1.0 / x.shape[1])
    return torch.where(total > 0, x / total.clamp_min(torch.finfo(x.dtype).tiny), uniform)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]; constant maps become all zeros."""
    x = flat(x)
    low = x.min(1, keepdim=True).values
    span = x.max(1, keepdim=True).values - low
    return torch.where(span > 0, (x - low) / span.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))


def mean_over_images(values: torch.Tensor) -> tuple[float, int]:
    """Mean of per-image values ignoring NaN (images without fixations) and how many were skipped."""
    values = torch.as_tensor(values, dtype=DTYPE)
    ok = ~torch.isnan(values)
    skipped = int((~ok).sum())
    return (float(values[ok].mean()) if bool(ok.any()) else float("nan")), skipped
