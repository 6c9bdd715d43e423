"""The benchmark harness: warm-up, repeats, and alternating two functions round by round."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # the harness lives with the benchmarks
from timing import measure, measure_interleaved  # noqa: E402


def test_interleaved_rounds_alternate_the_functions():
    calls = []
    timed = measure_interleaved(
        {"fast": (lambda: calls.append("f"), 3), "slow": (lambda: calls.append("s"), 1)}, rounds=2, warmup=1
    )
    assert calls == ["f", "s"] + ["f", "f", "f", "s"] * 2  # one warm-up each, then the rounds
    assert len(timed["fast"].seconds) == 6 and len(timed["slow"].seconds) == 2
    assert timed["fast"].peak_python_mib is not None and not tracemalloc.is_tracing()  # traced in the warm-up only
    assert timed["fast"].min_s <= timed["fast"].median_s <= timed["fast"].max_s


def test_measure_repeats_one_function():
    calls = []
    m = measure("one", lambda: calls.append(1), repeats=4, warmup=0)
    assert len(calls) == 4 and len(m.seconds) == 4 and m.peak_python_mib is None
