"""Input handling shared by the saliency metrics: shapes, sizes, bad values, normalisations.

Rules (the same for every metric in :mod:`attnlab.metrics.saliency` and :mod:`attnlab.metrics.auc`):

- Maps are B×H×W (an H×W map is treated as B = 1), any float dtype, any device. Reductions and
  comparisons are done in float64, so values match the NumPy references to ~1e-12; the elementwise
  passes of KLD and SIM run in float32 after an exact float64 shift (~1e-7 relative). Fixation
  counts may also be a sparse COO tensor (``torch.sparse_coo_tensor`` with indices (image, row,
  column)): a few hundred fixations then cost nothing per pixel.
- Whole-map work runs one map at a time (reductions, and elementwise passes into a reused buffer):
  a B×H×W temporary would be allocated fresh for every operation, and that costs more than the
  arithmetic.
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

import glob
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from attnlab.metrics import kernels
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "InvalidMapError",
    "as_batch",
    "match_size",
    "minmax",
    "scaled_to_unit",
    "mean_over_images",
    "shared_inputs",
    "reuse",
    "fixated",
    "per_row",
    "row_dots",
    "row_stats",
    "single_row_stats",
    "pair_stats",
    "row_dot",
    "store",
    "binary",
    "RowBuffers",
    "free_cpus",
    "threads_for_free_cpus",
    "for_each_row",
    "flat_nonzero",
    "log_",
    "sorted_",
    "as_float32",
    "DTYPE",
]

DTYPE = torch.float64
# MATLAB's eps: the regulariser of the MIT benchmark code (KLdiv.m, IG.m) and pysaliency's MIT_KLDiv
MIT_EPS = 2.2204e-16


_SHARED: ContextVar[dict | None] = ContextVar("attnlab_metric_intermediates", default=None)


@contextmanager
def shared_inputs():
    """Inside this block every map is validated once and per-map intermediates (normalised maps,
    moments, fixated pixels) are computed once and reused by all metrics (:func:`saliency_metrics`).
    A block inside another joins it: what the inner one computed stays for the outer one's later calls
    (intermediates are keyed by storage, so no map may change in place inside a block)."""
    if _SHARED.get() is not None:
        yield
        return
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def reuse(name: str, tensors: torch.Tensor | tuple[torch.Tensor, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, memoised per (name, tensor storages) inside :func:`shared_inputs`."""
    memo = _SHARED.get()
    if memo is None:
        return compute()
    tensors = tensors if isinstance(tensors, tuple) else (tensors,)
    key = (name, *((_storage(t), tuple(t.shape), None if t.is_sparse else tuple(t.stride()), t.dtype) for t in tensors))
    if key not in memo:
        memo[key] = (tensors, compute())  # keeps the tensors alive so their storage is not reused
    return memo[key][1]


def _storage(t: torch.Tensor) -> int:
    return t._values().data_ptr() if t.is_sparse else t.data_ptr()


class InvalidMapError(UserError):
    """A map with NaN or inf values; ``index`` is its position in the batch."""

    def __init__(self, what: str, index: int) -> None:
        super().__init__(
            f"{what} {index} of the batch contains NaN or inf values; fix the map (metrics never guess a "
            "value for them)"
        )
        self.what, self.index = what, index


def as_batch(x: torch.Tensor, what: str = "saliency map", check: bool = True) -> torch.Tensor:
    """B×H×W float64 view of ``x`` (H×W → 1×H×W); raises :class:`InvalidMapError` on NaN/inf.

    A sparse COO tensor stays sparse (coalesced): fixation counts.
    """
    x = torch.as_tensor(x).detach()  # metrics are not differentiable; a model's output may still carry a graph
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise UserError(f"{what}s must be B×H×W (or H×W); got shape {tuple(x.shape)}")
    x = x.to(DTYPE)
    if x.is_sparse:
        x = x.coalesce()
    if check:
        index = reuse("invalid", x, lambda: first_invalid(x))
        if index is not None:
            raise InvalidMapError(what, index)
    return x


def store(name: str, tensors: torch.Tensor | tuple[torch.Tensor, ...], value: Any) -> None:
    """Put a value computed elsewhere (a fused pass over several maps) where :func:`reuse` finds it."""
    reuse(name, tensors, lambda: value)


def row_stats(x: torch.Tensor) -> torch.Tensor:
    """B×4 (min, max, Σ, Σ²) of each dense B×N map, one map at a time."""
    return reuse("stats", x, lambda: per_row(single_row_stats, x))


def single_row_stats(r: torch.Tensor) -> torch.Tensor:
    """(min, max, Σ, Σ²) of one flat map: four reductions, no temporary map."""
    return pair_stats(r)[0]


def pair_stats(
    p: torch.Tensor, q: torch.Tensor | None = None, q32: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(min, max, Σ, Σ²) of the flat map ``p``, the same of ``q`` (same size) and Σ p·q, if given.
    ``q32``: a float32 buffer that also receives ``q`` cast to float32.

    On CPU one compiled pass reads both maps once (:func:`attnlab.metrics.kernels.stats`, also
    what the fused metric kernel computes: every caller gets the same bits). A NaN makes all four
    statistics NaN, as torch's reductions do.
    """
    if p.device.type != "cpu" or p.numel() == 0 or p.dtype != torch.float64:
        low, high = torch.aminmax(p)
        ps = torch.stack([low, high, p.sum(), torch.dot(p, p)])
        if q is None:
            return ps, None, None
        low, high = torch.aminmax(q)
        if q32 is not None:
            q32.copy_(q)
        return ps, torch.stack([low, high, q.sum(), torch.dot(q, q)]), torch.dot(p, q)
    pn = np.ascontiguousarray(p.numpy())
    qn = pn if q is None else np.ascontiguousarray(q.to(p.dtype).numpy())
    out = np.empty(9)
    kernels.stats(pn, qn, q is not None, out)
    for k in (0, 4):
        if math.isnan(out[k + 2]):
            out[k : k + 2] = np.nan  # the compiled min/max skip NaN; the sum carries it
    if q32 is not None:
        np.copyto(q32.numpy(), qn, casting="same_kind")  # rounds as torch's copy_ does (to nearest)
    stats = torch.from_numpy(out)
    if q is None:
        return stats[:4], None, None
    return stats[:4], stats[4:8], stats[8]


def row_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ x·y of two flat maps, as :func:`pair_stats` computes it (same bits)."""
    return pair_stats(x, y)[2]


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Σ of each map of a B×… tensor, dense or sparse (shared by validation, normalisation, moments)."""
    if x.is_sparse:

        def compute():
            c = x.coalesce()
            return torch.zeros(x.shape[0], dtype=c.dtype, device=c.device).index_add_(0, c.indices()[0], c.values())

        return reuse("rowsum", x, compute)
    return row_stats(x.reshape(x.shape[0], -1))[:, 2]


def per_row(fn: Callable[..., torch.Tensor], *xs: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to row i of every tensor in ``xs``, stacked: a reduction over one map at a time."""
    return torch.stack([fn(*(x[i] for x in xs)) for i in range(xs[0].shape[0])])


class RowBuffers:
    """Scratch tensors reused from one map to the next: fresh memory for every map would cost a page
    fault per 4 KiB, which on small machines takes longer than the arithmetic."""

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}

    def __call__(
        self, name: str, like: torch.Tensor, dtype: torch.dtype | None = None, size: int | None = None
    ) -> torch.Tensor:
        """The buffer ``name``: shaped like the flat map ``like`` (or ``size`` long), of ``dtype``."""
        t = self._tensors.get(name)
        if t is None:
            shape = like.shape if size is None else (size,)
            t = self._tensors[name] = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
        return t


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a 1-D mask (NumPy's flatnonzero on CPU: several times faster)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(mask.numpy().nonzero()[0])
    return mask.nonzero().squeeze(1)


# Whether torch runs its AVX-512 kernels here (torch's own choice from the CPU's instruction set).
# Its float32 log is then SLEEF's AVX-512 one: 0.11 vs 0.23 ms per 600×800 map for NumPy 2.4's on a
# Sapphire-Rapids-class Xeon (torch 2.14, 1 thread); on the AMD EPYC of BENCHMARKS.md NumPy's was
# ~3× torch's (0.18 vs 0.55 ms, session 3; torch's capability there was not recorded). The two
# agree to ~1 ulp (≤ 1.2e-7 relative).
_TORCH_AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def log_(x: torch.Tensor) -> torch.Tensor:
    """``x`` replaced by its natural logarithm: on CPU the faster SIMD log of torch's and NumPy's
    for float32 (see :data:`_TORCH_AVX512`)."""
    if x.device.type == "cpu" and not (_TORCH_AVX512 and x.dtype == torch.float32):
        np.log(x.numpy(), out=x.numpy())
        return x
    return x.log_()


def sorted_(x: torch.Tensor) -> torch.Tensor:
    """The 1-D tensor ``x`` sorted in place (NumPy's SIMD sort on CPU: 2-3× torch's from ~10⁴ values)."""
    if x.device.type == "cpu":
        x.numpy().sort()
        return x
    return x.copy_(x.sort().values)


def as_float32(x: torch.Tensor, buffers: RowBuffers, name: str) -> torch.Tensor:
    """A float32 copy of the flat map ``x`` in buffer ``name`` (``x`` itself when already float32)."""
    return x if x.dtype == torch.float32 else buffers(name, x, torch.float32).copy_(x)


def free_cpus() -> int:
    """CPUs this process may use minus the other processes' tasks that are runnable right now
    (Linux: /proc/loadavg's count of runnable tasks less this process's), at least 1; elsewhere
    the CPUs it may use.

    Worker threads beyond that hurt: the per-map work is many short calls, each taking the GIL,
    and when another process preempts the thread holding it, the other worker waits for a whole
    time slice. On the 2-core Xeon busy with other jobs, 100 maps took 0.58-0.94 s on one thread
    against 0.82-1.51 s on two (three A/Bs in one process each, BENCHMARKS.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])  # "1.0 0.9 0.8 3/120 4242": 3 runnable now
    except (OSError, ValueError, IndexError):
        return cpus
    own = 0  # this process's runnable threads (the calling one, OpenMP workers still spinning)
    for stat in glob.glob("/proc/self/task/*/stat"):
        try:
            with open(stat) as f:
                own += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return max(1, min(cpus, cpus - (running - max(own, 1))))


_ROW_WORKERS: ContextVar[int | None] = ContextVar("attnlab_row_workers", default=None)


@contextmanager
def threads_for_free_cpus():
    """Inside the block torch uses no more threads than :func:`free_cpus` (checked once, at the
    start); :func:`for_each_row` spreads maps over up to the threads torch had, as free CPUs allow
    when it starts (:func:`attnlab.metrics.saliency.saliency_metrics` runs inside the block).
    With another process on a core, every parallel OpenMP region waits at its barrier for the
    thread that process preempted: on the busy 2-core Xeon, 0.68-1.20 s per metric call with two
    threads against 0.56-0.95 s with one, and AUC-Borji alone 1.6-8.9 s against 0.74-1.38 s."""
    threads = torch.get_num_threads()
    token = _ROW_WORKERS.set(_ROW_WORKERS.get() or threads)
    try:
        torch.set_num_threads(max(1, min(threads, free_cpus())))
        yield
    finally:
        torch.set_num_threads(threads)
        _ROW_WORKERS.reset(token)


def for_each_row(fn: Callable[[int, RowBuffers], None], rows: int, device: torch.device) -> None:
    """``fn(i, buffers)`` for every map i. On CPU the maps are shared among torch's intra-op
    threads, each running torch single-threaded: the per-map work is many small operations (and
    bincount, nonzero, searchsorted use one core anyway), so whole maps in parallel use the cores
    better than each operation split across them. Each thread takes the next map not yet taken, so
    a core slowed by other load does less of the work instead of holding up the end. No more
    threads than cores that no other task is running on (:func:`free_cpus`). Maps are
    independent; results do not depend on the number of threads or the order."""
    workers = min(_ROW_WORKERS.get() or torch.get_num_threads(), rows, free_cpus()) if device.type == "cpu" else 1
    threads = torch.get_num_threads()
    if workers <= 1:
        buffers = RowBuffers()
        try:
            torch.set_num_threads(1)  # as on the worker threads (the same sums; no OpenMP per call)
            for i in range(rows):
                fn(i, buffers)
        finally:
            torch.set_num_threads(threads)
        return
    untaken, lock, failed = iter(range(rows)), threading.Lock(), threading.Event()

    def work() -> None:
        torch.set_num_threads(1)
        buffers = RowBuffers()
        while not failed.is_set():
            with lock:
                i = next(untaken, None)
            if i is None:
                return
            try:
                fn(i, buffers)
            except BaseException:
                failed.set()  # the other threads stop at their next map
                raise

    try:
        with ThreadPoolExecutor(workers - 1) as pool:
            helpers = [pool.submit(work) for _ in range(workers - 1)]
            work()  # this thread is one of the workers
            for done in helpers:
                done.result()
    finally:
        torch.set_num_threads(threads)


def row_dots(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ x·y of each pair of rows of two B×N tensors (a BLAS dot per row: no temporary map)."""
    if x.data_ptr() == y.data_ptr() and x.shape == y.shape and x.stride() == y.stride():
        return row_stats(x)[:, 3]
    return reuse("dot", (x, y), lambda: per_row(row_dot, x, y))


def first_invalid(x: torch.Tensor) -> int | None:
    """Batch index of the first map with NaN/inf, or None.

    One reduction per map (a sum is finite iff every term is, barring overflow, which the exact
    check below then clears), so validation costs a fraction of any metric. A sparse tensor's
    stored values are checked directly.
    """
    if x.is_sparse:
        c = x.coalesce()
        bad = ~torch.isfinite(c.values())
        return int(c.indices()[0][bad].min()) if bool(bad.any()) else None
    sums = row_sums(x)
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
    return F.interpolate(pred.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)[
        :, 0
    ]


def flat(x: torch.Tensor) -> torch.Tensor:
    """B×H×W → B×(H·W); a sparse tensor stays sparse."""
    if x.is_sparse and x.dim() == 3:
        c = x.coalesce()
        b, r, col = c.indices()
        return torch.sparse_coo_tensor(
            torch.stack([b, r * x.shape[2] + col]),
            c.values(),
            (x.shape[0], x.shape[1] * x.shape[2]),
            is_coalesced=True,
            check_invariants=False,
        )
    return x.reshape(x.shape[0], -1)


def value_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map (min, max) of B×N maps."""
    stats = row_stats(x)
    return stats[:, 0], stats[:, 1]


def constant(x: torch.Tensor) -> torch.Tensor:
    low, high = value_range(flat(x))
    return low == high


def fixated(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch index, pixel index, count) of every non-zero pixel of B×N count maps (dense or sparse)."""

    def compute():
        if counts.is_sparse:
            c = counts.coalesce()
            index, values = c.indices(), c.values()
            if not bool((values > 0).all()):  # stored zeros (or negative counts) are not fixations
                index, values = index[:, values > 0], values[values > 0]
            return index[0], index[1], values
        b, n = (counts > 0).nonzero(as_tuple=True)
        return b, n, counts[b, n]

    return reuse("fixated", counts, compute)


def binary(counts: torch.Tensor) -> torch.Tensor:
    """1 where a count map (dense or sparse) is positive: each fixated pixel once (the MIT convention)."""

    def compute():
        if counts.is_sparse:
            c = counts.coalesce()
            return torch.sparse_coo_tensor(
                c.indices(), (c.values() > 0).to(c.dtype), c.shape, is_coalesced=True, check_invariants=False
            )
        return (counts > 0).to(counts.dtype)

    return reuse("binary", counts, compute)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]; constant maps become all zeros."""
    x = flat(x)
    return reuse("minmax", x, lambda: _minmax(x))


def _minmax(x: torch.Tensor) -> torch.Tensor:
    return scaled_to_unit(x, *value_range(x))


def scaled_to_unit(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (values of B maps) as :func:`minmax` scales their maps with (min, max) = (``low``,
    ``high``): sampled values can be scaled without the whole map."""
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
