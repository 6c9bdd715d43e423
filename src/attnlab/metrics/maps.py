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
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable

import torch
import torch.nn.functional as F

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["InvalidMapError", "as_batch", "match_size", "to_density", "minmax", "mean_over_images", "shared_inputs", "reuse", "fixated", "DTYPE"]

DTYPE = torch.float64
# MATLAB's eps: the regulariser of the MIT benchmark code (KLdiv.m, IG.m) and pysaliency's MIT_KLDiv
MIT_EPS = 2.2204e-16


_SHARED: ContextVar[dict | None] = ContextVar("attnlab_metric_intermediates", default=None)


@contextmanager
def shared_inputs():
    """Inside this block every map is validated once and per-map intermediates (normalised maps,
    moments, fixated pixels) are computed once and reused by all metrics (:func:`saliency_metrics`)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def reuse(name: str, tensor: torch.Tensor, compute: Callable[[], Any]) -> Any:
    """``compute()``, memoised per (name, tensor storage) inside :func:`shared_inputs`."""
    memo = _SHARED.get()
    if memo is None:
        return compute()
    key = (name, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
    if key not in memo:
        memo[key] = (tensor, compute())  # keeps the tensor alive so its storage is not reused
    return memo[key][1]


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
        index = reuse("invalid", x, lambda: first_invalid(x))
        if index is not None:
            raise InvalidMapError(what, index)
    return x


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Σ of each row of a B×N tensor (shared by validation, normalisation and moments)."""
    return reuse("rowsum", x, lambda: x.sum(1))


def first_invalid(x: torch.Tensor) -> int | None:
    """Batch index of the first map with NaN/inf, or None.

    One reduction per map (a sum is finite iff every term is, barring overflow, which the exact
    check below then clears), so validation costs a fraction of any metric.
    """
    sums = row_sums(x.reshape(x.shape[0], -1))
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
    return reuse("density", x, lambda: _to_density(x))


def _to_density(x: torch.Tensor) -> torch.Tensor:
    shift = value_range(x)[0].clamp_max(0)[:, None]  # negative maps are shifted by their minimum
    total = row_sums(x)[:, None] - shift * x.shape[1]
    negative = bool((shift < 0).any())
    if not negative and bool(((total - 1).abs() < 1e-13).all()):
        return x  # already a density: dividing by 1 ± 1e-13 would change nothing that matters
    shifted = x - shift if negative else x
    if bool((total > 0).all()):
        return shifted / total
    uniform = torch.full_like(x, 1.0 / x.shape[1])
    return torch.where(total > 0, shifted / total.clamp_min(torch.finfo(x.dtype).tiny), uniform)


def value_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map (min, max) of B×N maps."""
    return reuse("range", x, lambda: torch.aminmax(x, dim=1))


def constant(x: torch.Tensor) -> torch.Tensor:
    low, high = value_range(flat(x))
    return low == high


def fixated(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch index, pixel index, count) of every non-zero pixel of B×N count maps."""

    def compute():
        b, n = (counts > 0).nonzero(as_tuple=True)
        return b, n, counts[b, n]

    return reuse("fixated", counts, compute)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]; constant maps become all zeros."""
    x = flat(x)
    return reuse("minmax", x, lambda: _minmax(x))


def _minmax(x: torch.Tensor) -> torch.Tensor:
    low, high = value_range(x)
    low, span = low[:, None], (high - low)[:, None]
    if bool((span > 0).all()):
        return (x - low) / span
    return torch.where(span > 0, (x - low) / span.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))


def mean_over_images(values: torch.Tensor) -> tuple[float, int]:
    """Mean of per-image values ignoring NaN (images without fixations) and how many were skipped."""
    values = torch.as_tensor(values, dtype=DTYPE)
    ok = ~torch.isnan(values)
    skipped = int((~ok).sum())
    return (float(values[ok].mean()) if bool(ok.any()) else float("nan")), skipped
