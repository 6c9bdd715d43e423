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

from attnlab.metrics.auc import ShuffledNegatives, auc_borji, auc_judd, auc_shuffled, shuffled_nonfixations
from attnlab.metrics.maps import MIT_EPS, as_batch, constant, fixated, flat, match_size, mean_over_images, minmax, reuse, row_sums, shared_inputs, to_density, value_range

__all__ = [
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "shuffled_nonfixations",
    "ShuffledNegatives",
    "nss",
    "cc",
    "kld",
    "sim",
    "information_gain",
    "saliency_metrics",
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
    empty = reuse("empty", t, lambda: _empty(t))
    if bool(empty.any()):
        t = torch.where(empty[:, None, None], torch.zeros_like(t), t)
    t = as_batch(t, what)
    p = match_size(as_batch(pred), t.shape[-2:])
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} {what}s")
    return flat(p), flat(t), ~empty


def _empty(t: torch.Tensor) -> torch.Tensor:
    """Targets without data: all zero (no fixations; counts and densities are non-negative) or all NaN."""
    sums = row_sums(t.reshape(t.shape[0], -1))
    empty = sums == 0
    for i in torch.isnan(sums).nonzero().flatten().tolist():
        if bool(torch.isnan(t[i]).all()):
            empty[i] = True
    return empty


def _at_fixations(values: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (Σ count · value over fixated pixels, Σ count)."""
    b, n, w = fixated(f)
    total = torch.zeros(f.shape[0], dtype=values.dtype, device=values.device).index_add_(0, b, w * values[b, n])
    count = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device).index_add_(0, b, w)
    return total, count


def _sums(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map Σp and Σp² (a BLAS dot product: no temporary map)."""
    return reuse("sums", p, lambda: (row_sums(p), torch.einsum("bn,bn->b", p, p)))


def _moments(p: torch.Tensor, correction: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, mean) per map from raw sums; the exact two-pass formula where that would lose digits."""

    def compute():
        n = p.shape[1]
        total, squares = _sums(p)
        mean = total / n
        var = (squares / n - mean * mean).clamp_min(0)
        if bool((var <= 1e-8 * mean * mean).any()):  # mean ≫ std: raw moments cancel
            return torch.std_mean(p, dim=1, correction=correction)
        return (var * n / (n - correction)).sqrt(), mean

    return reuse(f"moments{correction}", p, compute)


def _density_at(x: torch.Tensor, b: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``to_density(x)[b, n]`` without building the whole density map."""
    shift = value_range(x)[0].clamp_max(0)
    total = _sums(x)[0] - shift * x.shape[1]
    ok = total > 0
    return torch.where(ok[b], (x[b, n] - shift[b]) / total.clamp_min(torch.finfo(x.dtype).tiny)[b], torch.full_like(x[b, n], 1.0 / x.shape[1]))


def nss(pred: torch.Tensor, fixations: torch.Tensor, variant: Variant = "pysaliency") -> torch.Tensor:
    """Normalised scanpath saliency: mean z-scored prediction at the fixations."""
    _check_variant(variant)
    p, f, _ = _pair(pred, fixations, "fixation map")
    if variant == "mit":
        f = reuse("binary", f, lambda: (f > 0).to(p.dtype))
    std, mean = _moments(p, 1 if variant == "mit" else 0)
    flat_map = constant(p) | (std == 0)  # a constant map has std 0 only up to rounding: exactly 0
    total, n = _at_fixations(p, f)
    value = (total - n * mean) / torch.where(flat_map, torch.ones_like(std), std) / n.clamp_min(1)
    value = torch.where(flat_map, torch.zeros_like(value), value)
    return torch.where(n > 0, value, torch.full_like(value, float("nan")))


def cc(pred: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between prediction and human density (0 when either is constant)."""
    p, q, ok = _pair(pred, density, "density map")
    sp, mp = _moments(p, 0)
    sq, mq = _moments(q, 0)
    flat_map = constant(p) | constant(q) | (sp == 0) | (sq == 0)
    cov = torch.einsum("bn,bn->b", p, q) / p.shape[1] - mp * mq
    # raw moments lose ~eps·|mp·mq| / (sp·sq) of CC: centre first where that could reach 1e-10
    if bool(((mp * mq).abs() > 1e6 * sp * sq).any()):
        cov = ((p - mp[:, None]) * (q - mq[:, None])).mean(1)
    value = torch.where(flat_map, torch.zeros_like(cov), cov / (sp * sq).clamp_min(torch.finfo(p.dtype).tiny))
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def kld(pred: torch.Tensor, density: torch.Tensor, eps: float = MIT_EPS) -> torch.Tensor:
    """KL divergence of the human density from the prediction (MIT ε; lower is better)."""
    p, q, ok = _pair(pred, density, "density map")
    p, q = to_density(p), to_density(q)
    work = p + eps
    torch.div(q, work, out=work)
    value = work.add_(eps).log_().mul_(q).sum(1)
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
    b = flat(match_size(as_batch(baseline, "baseline map"), fixations.shape[-2:]))
    if b.shape[0] not in (1, p.shape[0]):
        raise ValueError(f"{b.shape[0]} baseline maps for {p.shape[0]} predictions; give one or one per prediction")
    if variant == "mit":
        p, b, f = minmax(p), minmax(b), reuse("binary", f, lambda: (f > 0).to(p.dtype))
    bi, n, w = fixated(f)
    gain = torch.log2(eps + _density_at(p, bi, n)) - torch.log2(eps + _density_at(b, bi if b.shape[0] > 1 else torch.zeros_like(bi), n))
    total = torch.zeros(f.shape[0], dtype=p.dtype, device=p.device).index_add_(0, bi, w * gain)
    count = torch.zeros(f.shape[0], dtype=p.dtype, device=p.device).index_add_(0, bi, w)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(count, float("nan")))


DEFAULT_METRICS = ("AUC_Judd", "sAUC", "NSS", "CC", "KLD", "SIM", "IG")
ALL_METRICS = ("AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "IG")


def saliency_metrics(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    density: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
    nonfixations: torch.Tensor | None = None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    seed: int = 0,
    jitter: bool = True,
) -> dict[str, torch.Tensor]:
    """Several metrics at once (default conventions), validating each map once and sharing work.

    Returns {name: B per-image values}; equal to calling each function on its own. Metrics whose
    target is not given (density, baseline, nonfixations) are left out.
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
    with shared_inputs():
        f = as_batch(fixations, "fixation map")
        p = match_size(as_batch(pred), f.shape[-2:])
        out: dict[str, torch.Tensor] = {}
        if "AUC_Judd" in metrics:
            out["AUC_Judd"] = auc_judd(p, f, jitter=jitter, seed=seed)
        if "AUC_Borji" in metrics:
            out["AUC_Borji"] = auc_borji(p, f, seed=seed)
        if "sAUC" in metrics and nonfixations is not None:
            out["sAUC"] = auc_shuffled(p, f, nonfixations)
        if "NSS" in metrics:
            out["NSS"] = nss(p, f)
        if density is not None:
            q = torch.as_tensor(density)
            q = (q.unsqueeze(0) if q.dim() == 2 else q).to(torch.float64)
            for name, fn in (("CC", cc), ("KLD", kld), ("SIM", sim)):
                if name in metrics:
                    out[name] = fn(p, q)
        if "IG" in metrics and baseline is not None:
            out["IG"] = information_gain(p, f, baseline)
    return out
