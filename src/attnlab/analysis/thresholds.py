"""Per-basis activation thresholds τ_k: the q-quantile of p_k over every location of a dataset.

A basis counts as "on" where p_k > τ_k (the top 1−q of its activations). The quantile is computed
streaming, without holding all activations: a first pass fills a fine histogram per basis
(K × ``bins`` counts over [0, 1]); a second pass (``refine=True``) keeps only the values that fall
in the bins holding the quantile's order statistics and reads the exact quantile off them. The
result equals ``torch.quantile(values, q)`` (linear interpolation) up to float rounding; without
the second pass the error is at most one bin width.

``repo_compat_thresholds`` reproduces the reference's τ (a 100-bin histogram whose masses are
divided by the number of images × K, and τ = the *cumulative mass* at the first bin where it
reaches 0.8) for comparison with its released JSON files only; it is not a quantile.

Usage::

    tau = basis_thresholds(model.net.probabilities, loader, q=0.8)        # K thresholds
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

import torch
from torch import Tensor

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["StreamingQuantile", "basis_thresholds", "repo_compat_thresholds", "repo_histogram"]


def _channels_first(values: Tensor, channels: int) -> Tensor:
    """B×K×h×w or K×n → K×n (float32)."""
    if values.dim() == 2:
        out = values
    elif values.dim() >= 3:
        out = values.transpose(0, 1).reshape(values.shape[1], -1)
    else:
        raise ValueError(f"expected K×n or B×K×... values, got shape {tuple(values.shape)}")
    if out.shape[0] != channels:
        raise ValueError(f"expected {channels} channels, got {out.shape[0]}")
    return out.float()


class StreamingQuantile:
    """q-quantile per channel of values in [lo, hi], fed batch by batch.

    Pass 1: :meth:`update` with every batch, then :meth:`estimate` (histogram, interpolated within
    the bin). For the exact value, call :meth:`start_refine`, feed the same batches again to
    :meth:`refine`, then :meth:`compute`.

    Args:
        channels: K.
        q: quantile in [0, 1].
        bins: histogram bins over [lo, hi].
        max_refine_values: per channel, the most values kept in pass 2; a channel whose quantile
            bins hold more (a saturated basis) keeps the histogram estimate, which is logged.
    """

    def __init__(
        self,
        channels: int,
        q: float = 0.8,
        bins: int = 4096,
        lo: float = 0.0,
        hi: float = 1.0,
        max_refine_values: int = 2_000_000,
    ) -> None:
        if not 0.0 <= q <= 1.0:
            raise UserError(f"quantile q={q} is not allowed; expected a number in [0, 1]")
        self.channels, self.q, self.bins, self.lo, self.hi = int(channels), float(q), int(bins), float(lo), float(hi)
        self.max_refine_values = int(max_refine_values)
        self.counts = torch.zeros(self.channels, self.bins, dtype=torch.long)
        self._ranges: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        self._kept: list[list[Tensor]] = []

    @property
    def total(self) -> int:
        """Values seen per channel (the same for every channel)."""
        return int(self.counts[0].sum()) if self.channels else 0

    def _bin(self, v: Tensor) -> Tensor:
        scaled = (v - self.lo) * (self.bins / (self.hi - self.lo))
        return scaled.floor().clamp_(0, self.bins - 1).long()  # hi itself falls in the last bin

    def update(self, values: Tensor) -> None:
        """Add a batch: B×K×h×w or K×n."""
        v = _channels_first(values.detach(), self.channels)
        idx = self._bin(v) + torch.arange(self.channels, device=v.device)[:, None] * self.bins
        self.counts += (
            torch.bincount(idx.flatten(), minlength=self.channels * self.bins).view(self.channels, self.bins).cpu()
        )

    def _ranks(self) -> tuple[Tensor, Tensor, Tensor]:
        """0-based ranks below/above the quantile position and the interpolation weight."""
        n = self.total
        if n == 0:
            raise UserError("no values were given to the quantile (empty dataset?)")
        pos = torch.tensor(self.q * (n - 1), dtype=torch.float64)
        below = pos.floor().long()
        return below, torch.minimum(below + 1, torch.tensor(n - 1)), pos - below

    def estimate(self) -> Tensor:
        """Histogram estimate, K (linear within the bin holding the quantile position)."""
        below, _, frac = self._ranks()
        target = below.double() + frac  # fractional rank
        cum = self.counts.cumsum(1)
        b = torch.searchsorted(cum, torch.full((self.channels, 1), int(below), dtype=torch.long), right=True).squeeze(1)
        b = b.clamp(max=self.bins - 1)
        before = torch.where(b > 0, cum.gather(1, (b - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(b))
        in_bin = self.counts.gather(1, b[:, None]).squeeze(1).clamp(min=1)
        width = (self.hi - self.lo) / self.bins
        within = ((target - before.double()) / in_bin.double()).clamp(0, 1)
        return (self.lo + (b.double() + within) * width).float()

    def start_refine(self) -> None:
        """Find the bins holding the two order statistics; pass 2 keeps only their values."""
        below, above, frac = self._ranks()
        cum = self.counts.cumsum(1)
        first = torch.searchsorted(
            cum, torch.full((self.channels, 1), int(below), dtype=torch.long), right=True
        ).squeeze(1)
        last = torch.searchsorted(
            cum, torch.full((self.channels, 1), int(above), dtype=torch.long), right=True
        ).squeeze(1)
        before = torch.where(
            first > 0, cum.gather(1, (first - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(first)
        )
        self._ranges = (first, last, before, frac)
        held = cum.gather(1, last[:, None]).squeeze(1) - before
        self._skip = held > self.max_refine_values
        if self._skip.any():
            log.info(
                "%d of %d bases have more than %d values in their quantile bin; they keep the histogram estimate",
                int(self._skip.sum()),
                self.channels,
                self.max_refine_values,
            )
        self._kept = [[] for _ in range(self.channels)]

    def refine(self, values: Tensor) -> None:
        """Pass 2: the same batches as pass 1, in any order."""
        if self._ranges is None:
            raise RuntimeError("call start_refine() after the first pass")
        first, last, _, _ = self._ranges
        v = _channels_first(values.detach(), self.channels)
        idx = self._bin(v)
        keep = (idx >= first.to(v.device)[:, None]) & (idx <= last.to(v.device)[:, None])
        keep &= ~self._skip.to(v.device)[:, None]
        rows = keep.any(1).nonzero().flatten().tolist()
        for k in rows:
            self._kept[k].append(v[k][keep[k]].cpu())

    def compute(self) -> Tensor:
        """Exact quantile per channel (histogram estimate where refinement was skipped), K."""
        if self._ranges is None:
            return self.estimate()
        first, last, before, frac = self._ranges
        below, above, _ = self._ranks()
        out = self.estimate()
        for k in range(self.channels):
            if self._skip[k] or not self._kept[k]:
                continue
            vals = torch.cat(self._kept[k]).double().sort().values
            i, j = int(below - before[k]), int(above - before[k])
            if not (0 <= i < len(vals) and 0 <= j < len(vals)):
                raise RuntimeError("pass 2 saw different values than pass 1; feed the same data twice")
            out[k] = float(vals[i] + float(frac) * (vals[j] - vals[i]))
        return out


def basis_thresholds(
    probabilities: Callable[[Tensor], Tensor],
    batches: Callable[[], Iterable[Tensor]],
    num_bases: int,
    q: float = 0.8,
    bins: int = 4096,
    refine: bool = True,
    progress: bool = True,
) -> tuple[Tensor, int]:
    """τ_k = q-quantile of p_k over all locations of all images; returns (τ K, values per basis).

    Args:
        probabilities: image batch B×3×H×W → P B×K×h×w (e.g. ``net.probabilities`` in eval mode).
        batches: a function returning a fresh iterable of image batches (called once per pass).
        refine: make the second pass for the exact quantile.
    """
    from rich.progress import track

    acc = StreamingQuantile(num_bases, q, bins)
    passes = [("thresholds: histogram", acc.update)]
    if refine:
        passes.append(("thresholds: exact quantile", acc.refine))
    with torch.no_grad():
        for n, (label, consume) in enumerate(passes):
            if n == 1:
                acc.start_refine()
            for images in track(batches(), description=label, disable=not progress, transient=True):
                consume(probabilities(images))
    return acc.compute(), acc.total


def repo_histogram(p: Tensor) -> Tensor:
    """The reference's 100-bin counts per basis ([0, .01], (.01, .02], …, (.99, 1]), K×100."""
    v = _channels_first(p.detach(), p.shape[1] if p.dim() > 2 else p.shape[0])
    edges = torch.linspace(0.01, 0.99, 99, device=v.device, dtype=v.dtype)
    idx = torch.bucketize(v, edges, right=False) + torch.arange(v.shape[0], device=v.device)[:, None] * 100
    return torch.bincount(idx.flatten(), minlength=v.shape[0] * 100).view(v.shape[0], 100).cpu()


def repo_compat_thresholds(counts: Tensor, num_images: int, target: float = 0.8) -> Tensor:
    """τ as saliency_analysis computes it from its 100-bin histogram (not a quantile).

    Masses are counts / (num_images · K), so each basis's masses sum to h·w/K; τ_k is the
    cumulative mass at the first bin where it reaches ``target``, or at the 99th bin. It can exceed
    1, in which case the basis never fires.
    """
    k = counts.shape[0]
    cum = (counts.double() / (num_images * k)).cumsum(1)
    reached = cum >= target
    first = torch.where(reached.any(1), reached.double().argmax(1), torch.full((k,), 98, dtype=torch.long))
    first = first.clamp(max=98)
    return cum.gather(1, first[:, None]).squeeze(1).float()
