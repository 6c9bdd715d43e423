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

__all__ = ["Measurement", "measure", "measure_interleaved", "peak_rss_mib"]


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
    return measure_interleaved({name: (fn, repeats)}, rounds=1, warmup=warmup, **extra)[name]


def measure_interleaved(
    fns: dict[str, tuple[Callable[[], Any], int]], rounds: int, warmup: int = 1, **extra: Any
) -> dict[str, Measurement]:
    """Time several functions in alternation: each of ``rounds`` rounds calls every ``fn`` its given
    number of times, so all of them meet the same stretches of machine load — on a shared host a
    busy second no longer falls on whichever side happened to be timed then. Warm-up and memory
    tracing as in :func:`measure`, per function."""
    peak_py: dict[str, float | None] = {}
    for name, (fn, _) in fns.items():
        peak_py[name] = None
        for i in range(warmup):
            if i == warmup - 1:
                tracemalloc.start()
            fn()
            if i == warmup - 1:
                peak_py[name] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
    _sync()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, calls) in fns.items():
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                _sync()
                seconds[name].append(time.perf_counter() - t0)
    return {name: _summary(name, seconds[name], peak_py[name], extra) for name in fns}


def _summary(name: str, seconds: list[float], peak_py: float | None, extra: dict[str, Any]) -> Measurement:
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
