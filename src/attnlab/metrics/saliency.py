"""Saliency-map metrics in torch, batched over B×H×W on any device.

API (each returns a float64 tensor of B per-image values; average them with
:func:`attnlab.metrics.maps.mean_over_images`, which skips NaN = images without fixations)::

    auc_judd(pred, fixations, jitter=True, seed=0, variant="pysaliency")
    auc_borji(pred, fixations, splits=100, step=0.1, seed=0)
    auc_shuffled(pred, fixations, nonfixations, variant="pysaliency" | "mit", ...)
    nss(pred, fixations, variant="pysaliency" | "mit")
    cc(pred, density)
    kld(pred, density, eps=2.2204e-16)
    sim(pred, density, variant="pysaliency" | "mit")
    information_gain(pred, fixations, baseline, eps=2.2204e-16, variant="pysaliency" | "mit")

``pred``: predicted maps; ``fixations``: fixation COUNTS per pixel (B×H×W, e.g. from
:func:`attnlab.data.fixations.fixation_map`); ``density``: the human fixation density (blurred
fixations, :func:`attnlab.data.fixations.gaussian_density`); ``baseline``: the baseline model's map
(centre bias, :mod:`attnlab.baselines`); ``nonfixations``: counts of the negative locations for sAUC
(:func:`attnlab.metrics.auc.shuffled_nonfixations`).

Conventions (P = prediction, Q = human density; "pysaliency" is what the MIT/Tuebingen benchmark
computes today, "mit" is the cvzoya/saliency MATLAB code; the default is marked *):

============  =================================================================  ==============================
metric        variant="pysaliency" *                                             variant="mit"
============  =================================================================  ==============================
NSS           every fixation counts, std with ddof=0 (``NSS``)                   binary fixation map, ddof=1
CC            Pearson(P, Q) (identical in both)                                  —
KLD           Σ Q log(ε + Q/(P+ε)), ε = 2.2204e-16 on sum-normalised maps        same (= pysaliency MIT_KLDiv)
SIM           Σ min(P, Q) after shifting negatives and sum-normalising           min-max, then sum-normalise
IG            mean over fixations of log2(ε+p) − log2(ε+p_baseline), densities   min-max + sum-normalise,
              = shifted, sum-normalised maps; baseline = centre bias (not the    binary fixation map (IG.m)
              uniform default of pysaliency); ε = 2.2204e-16 (pysaliency: none)
AUC-Judd      see :mod:`attnlab.metrics.auc`
============  =================================================================  ==============================

Defined values for degenerate inputs: constant prediction → NSS 0, CC 0, AUCs 0.5; all-zero
prediction → uniform density (KLD, SIM, IG); image without fixations → NaN (skipped and counted);
target density all zero or all NaN → NaN (skipped). NaN/inf inside a prediction → InvalidMapError.
"""

from __future__ import annotations

from typing import Literal

import torch

from attnlab.metrics.auc import auc_borji, auc_judd, auc_shuffled, shuffled_nonfixations
from attnlab.metrics.maps import MIT_EPS, as_batch, flat, match_size, mean_over_images, minmax, to_density

__all__ = [
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "shuffled_nonfixations",
    "nss",
    "cc",
    "kld",
    "sim",
    "information_gain",
    "mean_over_images",
    "MIT_EPS",
]

Variant = Literal["pysaliency", "mit"]


def _check_variant(variant: str) -> None:
    if variant not in ("pysaliency", "mit"):
        raise ValueError(f"variant={variant!r}; choose 'pysaliency' or 'mit'")


def _pair(pred: torch.Tensor, target: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened (pred, target) at the target's size, and a mask of images whose target has data."""
    t = torch.as_tensor(target)
    t = t.unsqueeze(0) if t.dim() == 2 else t
    t = t.to(torch.float64)
    sums = t.reshape(t.shape[0], -1).sum(1)
    empty = sums == 0  # no fixations (counts and densities are non-negative)
    for i in torch.isnan(sums).nonzero().flatten().tolist():
        if bool(torch.isnan(t[i]).all()):  # an all-NaN density: an image without fixations
            empty[i] = True
    if bool(empty.any()):
        t = torch.where(empty[:, None, None], torch.zeros_like(t), t)
    t = as_batch(t, what)
    p = match_size(as_batch(pred), t.shape[-2:])
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} {what}s")
    return flat(p), flat(t), ~empty


def nss(pred: torch.Tensor, fixations: torch.Tensor, variant: Variant = "pysaliency") -> torch.Tensor:
    """Normalised scanpath saliency: mean z-scored prediction at the fixations."""
    _check_variant(variant)
    p, f, _ = _pair(pred, fixations, "fixation map")
    if variant == "mit":
        f = (f > 0).to(p.dtype)
    std = p.std(1, correction=1 if variant == "mit" else 0, keepdim=True)
    # a constant map has std 0 up to rounding: give it exactly 0
    constant = (p.amax(1) == p.amin(1))[:, None]
    std = torch.where(constant | (std == 0), torch.ones_like(std), std)
    n = f.sum(1)
    value = ((p - p.mean(1, keepdim=True)) * f).sum(1) / std[:, 0] / n.clamp_min(1)
    value = torch.where(constant[:, 0], torch.zeros_like(value), value)
    return torch.where(n > 0, value, torch.full_like(n, float("nan")))


def cc(pred: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between prediction and human density (0 when either is constant)."""
    p, q, ok = _pair(pred, density, "density map")
    constant = (p.amax(1) == p.amin(1)) | (q.amax(1) == q.amin(1))
    p = p - p.mean(1, keepdim=True)
    q = q - q.mean(1, keepdim=True)
    den = (p.square().sum(1) * q.square().sum(1)).sqrt()
    value = torch.where(constant | (den == 0), torch.zeros_like(den), (p * q).sum(1) / den.clamp_min(torch.finfo(p.dtype).tiny))
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def kld(pred: torch.Tensor, density: torch.Tensor, eps: float = MIT_EPS) -> torch.Tensor:
    """KL divergence of the human density from the prediction (MIT ε; lower is better)."""
    p, q, ok = _pair(pred, density, "density map")
    p, q = to_density(p), to_density(q)
    value = (q * torch.log(eps + q / (p + eps))).sum(1)
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def sim(pred: torch.Tensor, density: torch.Tensor, variant: Variant = "pysaliency") -> torch.Tensor:
    """Histogram intersection of the two maps as distributions."""
    _check_variant(variant)
    p, q, ok = _pair(pred, density, "density map")
    if variant == "mit":
        p, q = minmax(p), minmax(q)
    value = torch.minimum(to_density(p), to_density(q)).sum(1)
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def information_gain(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    baseline: torch.Tensor,
    eps: float = MIT_EPS,
    variant: Variant = "pysaliency",
) -> torch.Tensor:
    """Bits per fixation gained over ``baseline`` (the centre bias in every attnlab table)."""
    _check_variant(variant)
    p, f, _ = _pair(pred, fixations, "fixation map")
    b = as_batch(baseline, "baseline map")
    if b.shape[0] == 1 and p.shape[0] > 1:
        b = b.expand(p.shape[0], -1, -1)
    b = flat(match_size(b, fixations.shape[-2:]))
    if variant == "mit":
        p, b, f = minmax(p), minmax(b), (f > 0).to(p.dtype)
    gain = torch.log2(eps + to_density(p)) - torch.log2(eps + to_density(b))
    n = f.sum(1)
    return torch.where(n > 0, (gain * f).sum(1) / n.clamp_min(1), torch.full_like(n, float("nan")))
