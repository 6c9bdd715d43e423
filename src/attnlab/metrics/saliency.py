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

Speed and precision: on CPU, :func:`saliency_metrics` (AUC-Judd without jitter) reads each map and
its human density twice in one compiled kernel (:mod:`attnlab.metrics.kernels`, numba), maps on
torch's intra-op threads; everything there is float64 (KLD's logarithm to ~1e-13). The torch path
— every whole-map pass of a map before the next map, AUC-Judd's counts from a histogram plus exact
comparisons, KLD and SIM in float32 (~1e-7 relative) — serves GPU tensors, jittered AUC-Judd and
the single functions. Fixations may be a sparse COO tensor of counts
(:func:`attnlab.data.fixations.sparse_fixation_maps`); shuffled AUC's negatives are smallest as
:meth:`ShuffledNegatives.support_counts`. Set :data:`COMPILED` to False for the torch path on CPU.

Defined values for degenerate inputs: constant prediction → NSS 0, CC 0, AUCs 0.5; all-zero
prediction → uniform density (KLD, SIM, IG); image without fixations → NaN (skipped and counted);
target density all zero or all NaN → NaN (skipped). NaN/inf inside a prediction → InvalidMapError.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

import attnlab.metrics.registry as R
from attnlab.metrics import kernels
from attnlab.metrics.auc import (
    JuddPass,
    ShuffledNegatives,
    ShuffledPass,
    SupportCounts,
    auc_borji,
    auc_judd,
    auc_shuffled,
    nonfixation_counts,
    shuffled_nonfixations,
)
from attnlab.metrics.maps import (
    MIT_EPS,
    RowBuffers,
    as_batch,
    binary,
    constant,
    fixated,
    flat,
    for_each_row,
    log_,
    match_size,
    mean_over_images,
    minmax,
    pair_stats,
    reuse,
    row_dots,
    row_stats,
    row_sums,
    shared_inputs,
    store,
    threads_for_free_cpus,
    value_range,
)

__all__ = [
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "shuffled_nonfixations",
    "ShuffledNegatives",
    "SupportCounts",
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
    t = t.coalesce() if t.is_sparse else t
    empty = reuse("empty", t, lambda: _empty(t))
    if bool(empty.any()) and not t.is_sparse:
        t = torch.where(empty[:, None, None], torch.zeros_like(t), t)
    t = as_batch(t, what)
    p = match_size(as_batch(pred), t.shape[-2:])
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} {what}s")
    return flat(p), flat(t), ~empty


def _empty(t: torch.Tensor) -> torch.Tensor:
    """Targets without data: all zero (no fixations; counts and densities are non-negative) or all NaN."""
    sums = row_sums(t)
    empty = sums == 0
    for i in torch.isnan(sums).nonzero().flatten().tolist():
        if bool(torch.isnan(t[i].to_dense() if t.is_sparse else t[i]).all()):
            empty[i] = True
    return empty


def _at_fixations(values: torch.Tensor, f: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (Σ count · (value − centre) over fixated pixels, Σ count). Centred per fixation:
    Σ count · value − n · centre would cancel away the digits of maps whose mean dwarfs their spread."""
    b, n, w = fixated(f)
    total = torch.zeros(f.shape[0], dtype=values.dtype, device=values.device).index_add_(
        0, b, w * (_values_at_fixations(values, f) - centre[b])
    )
    count = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device).index_add_(0, b, w)
    return total, count


def _values_at_fixations(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """x[b, n] at every fixated pixel (b, n) of the count maps ``f``, in :func:`fixated`'s order;
    shared by NSS and IG, and filled by :func:`_fused_passes` (read while each map was in cache:
    gathered from all maps at once, every value would be a cache miss)."""

    def compute():
        b, n, _ = fixated(f)
        return x[b, n]

    return reuse("at_fixations", (x, f), compute)


def _moments(p: torch.Tensor, correction: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, mean) per map from raw sums; the exact two-pass formula where that would lose digits."""

    def compute():
        n = p.shape[1]
        mean = row_sums(p) / n
        var = (row_dots(p, p) / n - mean * mean).clamp_min(0)
        std = (var * n / (n - correction)).sqrt()
        # mean ≫ std: raw moments cancel; two passes over those maps alone (a constant map is
        # treated as constant by every metric whatever its std, so it needs none)
        for i in ((var <= 1e-8 * mean * mean) & ~constant(p)).nonzero().flatten().tolist():
            std[i], mean[i] = torch.std_mean(p[i], correction=correction)
        return std, mean

    return reuse(f"moments{correction}", p, compute)


def _density32(
    x: torch.Tensor, stats: list[float], buffers: RowBuffers, name: str, writable: bool = True, copied: bool = False
) -> torch.Tensor:
    """pysaliency's density of the flat map ``x`` (negatives shifted by the minimum, divided by the
    sum; all-zero → uniform) in a float32 buffer, from its (min, max, Σ, Σ²); non-decreasing in
    ``x``. Without ``writable`` a map that already is a density is not divided. The shift is
    subtracted in ``x``'s precision on the way to float32: values just above the minimum keep their
    digits (KLD magnifies errors where the density is near 0) and the minimum becomes exactly 0.
    ``copied``: the buffer already holds ``x`` in float32 (:func:`pair_stats` wrote it)."""
    shift, total = _shift_and_total(stats, x.numel())
    out = buffers(f"{name}_density", x, torch.float32)
    if total <= 0:
        return out.fill_(1.0 / x.numel())
    if shift < 0 and x.device.type == "cpu":
        # NumPy casts chunk by chunk as it subtracts; torch would subtract into a temporary map first
        np.subtract(x.numpy(), shift, out=out.numpy(), casting="unsafe")
        return out.div_(total)
    if shift < 0:
        return torch.sub(x, shift, out=out).div_(total)
    if not copied:
        out.copy_(x)
    return (
        out if not writable and abs(total - 1) < 1e-13 else out.div_(total)
    )  # ÷ (1 ± 1e-13) changes nothing that matters


def _shift_and_total(stats: list[float], n: int) -> tuple[float, float]:
    """(shift, sum after the shift) of pysaliency's density of an n-pixel map with (min, max, Σ, Σ²) ``stats``."""
    shift = min(stats[0], 0.0)
    return shift, stats[2] - shift * n


def _density_range(stats: list[float], n: int) -> tuple[float, float] | None:
    """(min, max) of :func:`_density32` of a map with (min, max, Σ, Σ²) ``stats`` (None: uniform)."""
    shift, total = _shift_and_total(stats, n)
    return ((stats[0] - shift) / total, (stats[1] - shift) / total) if total > 0 else None


def _density_at(x: torch.Tensor, b: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """pysaliency's density of ``x`` (shifted, sum-normalised) at pixels of maps ``b`` whose values
    are ``values``, without the whole map."""
    shift = value_range(x)[0].clamp_max(0)
    total = row_sums(x) - shift * x.shape[1]
    ok = total > 0
    return torch.where(
        ok[b],
        (values - shift[b]) / total.clamp_min(torch.finfo(x.dtype).tiny)[b],
        torch.full_like(values, 1.0 / x.shape[1]),
    )


def nss(pred: torch.Tensor, fixations: torch.Tensor, variant: Variant = "pysaliency") -> torch.Tensor:
    """Normalised scanpath saliency: mean z-scored prediction at the fixations."""
    _check_variant(variant)
    p, f, _ = _pair(pred, fixations, "fixation map")
    if variant == "mit":
        f = binary(f)
    std, mean = _moments(p, 1 if variant == "mit" else 0)
    flat_map = constant(p) | (std == 0)  # a constant map has std 0 only up to rounding: exactly 0
    total, n = _at_fixations(p, f, mean)
    value = total / torch.where(flat_map, torch.ones_like(std), std) / n.clamp_min(1)
    value = torch.where(flat_map, torch.zeros_like(value), value)
    return torch.where(n > 0, value, torch.full_like(value, float("nan")))


def cc(pred: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between prediction and human density (0 when either is constant)."""
    p, q, ok = _pair(pred, density, "density map")
    sp, mp = _moments(p, 0)
    sq, mq = _moments(q, 0)
    flat_map = constant(p) | constant(q) | (sp == 0) | (sq == 0)
    cov = row_dots(p, q) / p.shape[1] - mp * mq
    # raw moments lose ~eps·|mp·mq| / (sp·sq) of CC: centre first where that could reach 1e-10
    for i in (((mp * mq).abs() > 1e6 * sp * sq) & ~flat_map).nonzero().flatten().tolist():
        cov[i] = ((p[i] - mp[i]) * (q[i] - mq[i])).mean()
    value = torch.where(flat_map, torch.zeros_like(cov), cov / (sp * sq).clamp_min(torch.finfo(p.dtype).tiny))
    return torch.where(ok, value, torch.full_like(value, float("nan")))


class DensityPass:
    """KLD and/or SIM between the densities of predictions and human densities, one map at a time.

    Densities (:func:`_density32`) are written into reused float32 buffers; SIM = Σ min(P, Q)
    and KLD = Σ Q log(ε + Q / (P + ε)) are in-place passes and a sum. float32 halves the memory
    traffic and the logarithm's cost; the sums stay accurate to ~1e-7 relative (pairwise summation).
    """

    def __init__(self, rows: int, kld_eps: float | None, with_sim: bool, device: torch.device) -> None:
        self.with_sim = with_sim
        self.eps = None if kld_eps is None else torch.tensor(kld_eps, dtype=torch.float32, device=device)
        self.names = (["KLD"] if kld_eps is not None else []) + (["SIM"] if with_sim else [])
        self.values: dict[str, list] = {k: [None] * rows for k in self.names}

    def run_row(self, i: int, pd: torch.Tensor, qd: torch.Tensor, buffers: RowBuffers) -> None:
        """Map pair i: ``pd`` and ``qd`` = :func:`_density32` of the prediction (overwritten) and of
        the human density."""
        if self.with_sim:
            # into AUC-Judd's keys (dead by now): one map-sized buffer less in the cache
            scratch = buffers("keys", pd, torch.int32).view(torch.float32)
            self.values["SIM"][i] = torch.minimum(pd, qd, out=scratch).sum()
        if self.eps is not None:
            ratio = torch.addcdiv(self.eps, qd, pd.add_(self.eps), out=pd)  # ε + Q / (P + ε)
            self.values["KLD"][i] = log_(ratio).mul_(qd).sum()

    def result(self, ok: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: B values}, NaN where ``ok`` is False (no human density)."""
        return {
            k: torch.where(ok, torch.stack(v).double(), torch.full_like(ok, float("nan"), dtype=torch.float64))
            for k, v in self.values.items()
        }


def _compare_densities(
    p: torch.Tensor, q: torch.Tensor, ok: torch.Tensor, kld_eps: float | None, with_sim: bool
) -> dict[str, torch.Tensor]:
    """KLD and/or SIM of B×N maps (see :class:`DensityPass`)."""
    densities = DensityPass(p.shape[0], kld_eps, with_sim, p.device)
    p_stats, q_stats = row_stats(p).tolist(), row_stats(q).tolist()
    for_each_row(
        lambda i, buffers: densities.run_row(
            i,
            _density32(p[i], p_stats[i], buffers, "p"),
            _density32(q[i], q_stats[i], buffers, "q", writable=False),
            buffers,
        ),
        p.shape[0],
        p.device,
    )
    return densities.result(ok)


def kld(pred: torch.Tensor, density: torch.Tensor, eps: float = MIT_EPS) -> torch.Tensor:
    """KL divergence of the human density from the prediction (MIT ε; lower is better)."""
    p, q, ok = _pair(pred, density, "density map")
    return _compare_densities(p, q, ok, eps, with_sim=False)["KLD"]


def sim(pred: torch.Tensor, density: torch.Tensor, variant: Variant = "pysaliency") -> torch.Tensor:
    """Histogram intersection of the two maps as distributions."""
    _check_variant(variant)
    p, q, ok = _pair(pred, density, "density map")
    if variant == "mit":
        p, q = minmax(p), minmax(q)
    return _compare_densities(p, q, ok, None, with_sim=True)["SIM"]


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
        p, b, f = minmax(p), minmax(b), binary(f)
    bi, n, w = fixated(f)
    bb = bi if b.shape[0] > 1 else torch.zeros_like(bi)
    gain = torch.log2(eps + _density_at(p, bi, _values_at_fixations(p, f))) - torch.log2(
        eps + _density_at(b, bb, b[bb, n])
    )
    total = torch.zeros(f.shape[0], dtype=p.dtype, device=p.device).index_add_(0, bi, w * gain)
    count = torch.zeros(f.shape[0], dtype=p.dtype, device=p.device).index_add_(0, bi, w)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(count, float("nan")))


# CPU maps go through the compiled kernel (attnlab.metrics.kernels); False: the torch path everywhere
COMPILED = True
ALL_METRICS = R.names("fixations", "density")
DEFAULT_METRICS = tuple(m for m in ALL_METRICS if m != "AUC_Borji")  # pysaliency's set (AUC-Borji is random)


def saliency_metrics(
    pred: torch.Tensor,
    fixations: torch.Tensor,
    density: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
    nonfixations: torch.Tensor | SupportCounts | None = None,
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
    with shared_inputs(), threads_for_free_cpus():  # no more threads than free CPUs (a busy host)
        f = as_batch(fixations, "fixation map")
        p = match_size(as_batch(pred, check=False), f.shape[-2:])
        q = None if density is None else as_batch(density, "density map", check=False)
        nf = None if nonfixations is None or "sAUC" not in metrics else nonfixation_counts(nonfixations, f)
        out = _fused_passes(p, f, q, nf, metrics, seed, jitter)
        if "AUC_Judd" in metrics and "AUC_Judd" not in out:
            out["AUC_Judd"] = auc_judd(p, f, jitter=jitter, seed=seed)
        if "AUC_Borji" in metrics:
            out["AUC_Borji"] = auc_borji(p, f, seed=seed)
        if nf is not None and "sAUC" not in out:
            out["sAUC"] = auc_shuffled(p, f, nf)
        if "NSS" in metrics:
            out["NSS"] = nss(p, f)
        if q is not None:
            if "CC" in metrics:
                out["CC"] = cc(p, q)
            if ("KLD" in metrics or "SIM" in metrics) and "KLD" not in out and "SIM" not in out:
                pf, qf, ok = _pair(p, q, "density map")
                out |= _compare_densities(pf, qf, ok, MIT_EPS if "KLD" in metrics else None, "SIM" in metrics)
        if "IG" in metrics and baseline is not None:
            out["IG"] = information_gain(p, f, baseline)
    return {name: out[name] for name in ALL_METRICS if name in out}


def _fused_passes(
    p: torch.Tensor,
    f: torch.Tensor,
    q: torch.Tensor | None,
    nf: torch.Tensor | None,
    metrics: tuple[str, ...],
    seed: int,
    jitter: bool,
) -> dict[str, torch.Tensor]:
    """Every whole-map pass of every metric for map i before the next map, so that each map is read
    from memory once and its later passes hit the cache (maps on worker threads: :func:`for_each_row`).
    Fills the shared intermediates (statistics, p·q) and returns AUC-Judd, shuffled AUC, KLD and SIM;
    returns nothing when a map has NaN/inf values or a density map has no data (or another size),
    leaving those cases to the single functions' checks and rules.
    """
    if q is not None and q.shape != p.shape:
        return {}
    pf, qf, ff = flat(p), None if q is None else flat(q), flat(f)
    jittered = "AUC_Judd" in metrics and jitter
    if COMPILED and pf.device.type == "cpu" and (qf is None or not qf.is_sparse) and not jittered:
        return _compiled_passes(p, f, q, nf, metrics)
    rows = pf.shape[0]
    judd = JuddPass(pf, ff, jitter, seed, binary=False) if "AUC_Judd" in metrics else None
    shuffled = ShuffledPass(ff, nf) if nf is not None else None
    densities = (
        DensityPass(rows, MIT_EPS if "KLD" in metrics else None, "SIM" in metrics, pf.device)
        if q is not None and ("KLD" in metrics or "SIM" in metrics)
        else None
    )
    p_stats, q_stats, cross = [None] * rows, [None] * rows, [None] * rows
    unusable = []

    def row(i: int, buffers: RowBuffers) -> None:
        if unusable:
            return
        pi, qi = pf[i], None if qf is None else qf[i]
        # both maps' statistics in one chunked pass, which also casts the human density to float32
        q32 = buffers("q_density", qi, torch.float32) if densities is not None else None
        p_stats[i], q_stats[i], cross[i] = pair_stats(pi, qi, q32)
        ps = p_stats[i].tolist()
        if not math.isfinite(ps[2]):
            unusable.append(i)
            return
        if qi is not None:
            qs = q_stats[i].tolist()
            if not math.isfinite(qs[2]) or qs[2] == 0:
                unusable.append(i)
                return
            # the human density while the map is still in cache
            qd = _density32(qi, qs, buffers, "q", writable=False, copied=True) if densities is not None else None
        # the prediction's density, read by KLD/SIM; also AUC-Judd's histogram keys (same order as p)
        pd = _density32(pi, ps, buffers, "p") if densities is not None else None
        keys = None  # AUC-Judd's histogram keys, which also place shuffled AUC's negatives
        if judd is not None:
            pd_range = _density_range(ps, pf.shape[1]) if pd is not None else None
            keys = judd.run_row(i, pi, ps[0], ps[1], buffers, None if pd_range is None else (pd, *pd_range))
        if shuffled is not None:
            shuffled.run_row(i, pi, keys)
        if densities is not None:
            densities.run_row(i, pd, qd, buffers)

    for_each_row(row, rows, pf.device)
    if unusable:
        return {}
    store("invalid", p, None)
    store("stats", pf, torch.stack(p_stats))
    out = {}
    if judd is not None and not jitter:  # the thresholds are the maps' values at the fixations
        store("at_fixations", (pf, ff), torch.cat(judd.thresholds))
    if judd is not None:
        out["AUC_Judd"] = judd.auc(constant(pf))
    if shuffled is not None:
        out["sAUC"] = shuffled.auc(constant(pf))
    if qf is not None:
        store("invalid", q, None)
        store("stats", qf, torch.stack(q_stats))
        store("dot", (pf, qf), torch.stack(cross))
        if densities is not None:
            out |= densities.result(torch.ones(rows, dtype=torch.bool, device=pf.device))
    return out


def _rows_of(counts: torch.Tensor | SupportCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """CSR form of B count maps for the kernels: (start of row i's entries, pixel indices, counts,
    whether all rows share the indices: :class:`SupportCounts`, whose rows are its B×S counts)."""
    if isinstance(counts, SupportCounts):
        s = counts.support.numel()
        starts = np.arange(counts.counts.shape[0] + 1, dtype=np.int64) * s
        return starts, counts.support.numpy().astype(np.int64), counts.counts.numpy().reshape(-1), True
    b, n, w = fixated(counts)
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(b.numpy(), minlength=counts.shape[0]), out=starts[1:])
    return starts, n.numpy(), w.numpy().astype(np.float64), False


def _compiled_passes(
    p3: torch.Tensor,
    f3: torch.Tensor,
    q3: torch.Tensor | None,
    nf: torch.Tensor | SupportCounts | None,
    metrics: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """:func:`_fused_passes` on CPU through the compiled two-pass kernel
    (:func:`attnlab.metrics.kernels.fused_row`), maps on :func:`for_each_row`'s threads."""
    pf, qf, ff = flat(p3), None if q3 is None else flat(q3), flat(f3)
    rows = pf.shape[0]
    p = pf.contiguous().numpy()
    q = p if qf is None else qf.contiguous().numpy()
    fix_start, fix_idx, fix_w, _ = _rows_of(ff)
    no_negatives = np.zeros(0, dtype=np.int64), np.zeros(0)
    if nf is not None:
        neg_start, neg_idx, neg_w, shared = _rows_of(nf)
    stats, out = np.empty((rows, 9)), np.empty((rows, 3))
    ge = np.empty(fix_idx.size, dtype=np.int64)
    ok = np.zeros(rows, dtype=bool)
    want = ("KLD" in metrics, "SIM" in metrics, "AUC_Judd" in metrics)

    def row(i: int, _buffers: RowBuffers) -> None:
        fix = slice(fix_start[i], fix_start[i + 1])
        if nf is None:
            negatives = no_negatives
        else:
            weights = neg_w[neg_start[i] : neg_start[i + 1]]
            negatives = (neg_idx if shared else neg_idx[neg_start[i] : neg_start[i + 1]]), weights
        ok[i] = kernels.fused_row(
            p[i], q[i], qf is not None, fix_idx[fix], fix_w[fix], *negatives, MIT_EPS, *want, stats[i], out[i], ge[fix]
        )

    for_each_row(row, rows, pf.device)
    if not ok.all():
        return {}
    flat_map = torch.from_numpy(stats[:, 0] == stats[:, 1])
    store("invalid", p3, None)
    store("stats", pf, torch.from_numpy(stats[:, :4]))
    b, n, _ = fixated(ff)
    thresholds = torch.from_numpy(p[b.numpy(), n.numpy()])
    store("at_fixations", (pf, ff), thresholds)
    result = {}
    if want[2]:
        judd = JuddPass(pf, ff, jitter=False, seed=0, binary=False)
        sizes = np.diff(fix_start).tolist()
        judd.thresholds = list(thresholds.split(sizes))
        judd.at_or_above = list(torch.from_numpy(ge).split(sizes))
        result["AUC_Judd"] = judd.auc(flat_map)
    if nf is not None:
        auc = torch.from_numpy(out[:, 2].copy())
        result["sAUC"] = torch.where(flat_map & ~torch.isnan(auc), torch.full_like(auc, 0.5), auc)
    if qf is not None:
        store("invalid", q3, None)
        store("stats", qf, torch.from_numpy(stats[:, 4:8]))
        store("dot", (pf, qf), torch.from_numpy(stats[:, 8]))
        result |= {k: torch.from_numpy(out[:, j].copy()) for j, k in enumerate(("KLD", "SIM")) if want[j]}
    return result
