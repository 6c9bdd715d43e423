"""Timing and memory measurement for benchmarks: warm-up, repeats, median and spread, peak memory."""

from __future__ import annotations

import gc
import resource
import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

__all__ = ["Measurement", "measure", "peak_rss_mib"]


@dataclass
class Measurement:
    """Seconds per call over ``repeats`` calls after ``warmup`` calls, and memory."""

    name: str
    seconds: list[float]
    median_s: float
    iqr_s: float
    min_s: float
    max_s: float
    peak_python_mib: float | None
    peak_rss_mib: float
    peak_cuda_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def per_second(self, items: float) -> float:
        """Throughput for ``items`` processed per call, at the median time."""
        return items / self.median_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(name: str, fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, **extra: Any) -> Measurement:
    """Time ``fn`` ``repeats`` times after ``warmup`` untimed calls.

    Python's peak allocation is traced during the last warm-up call only (tracemalloc slows every
    allocation, so it never runs while the clock does); it is None when ``warmup`` is 0.
    """
    peak_py = None
    for i in range(warmup):
        if i == warmup - 1:
            tracemalloc.start()
        fn()
        if i == warmup - 1:
            peak_py = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    _sync()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        seconds.append(time.perf_counter() - t0)
    q = statistics.quantiles(seconds, n=4) if len(seconds) >= 2 else [seconds[0]] * 3
    return Measurement(
        name=name,
        seconds=seconds,
        median_s=statistics.median(seconds),
        iqr_s=q[2] - q[0],
        min_s=min(seconds),
        max_s=max(seconds),
        peak_python_mib=peak_py,
        peak_rss_mib=peak_rss_mib(),
        peak_cuda_mib=torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        extra=dict(extra),
    )
