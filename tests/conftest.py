"""Shared test fixtures: paths to ../shared data, and running the Hydra entry points in tmp folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# pysaliency 0.2.22 calls np.trapz, which NumPy 2.4 removed
if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTNLAB_SHARED", REPO.parent / "shared"))


ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # for entry points run in a subprocess on tiny inputs


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny batches: intra-op threads cost more than they save, and stall on a loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set ATTNLAB_SHARED)")
    return path


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m <module> <overrides>`` with outputs under tmp_path; returns CompletedProcess."""

    def run(module: str, *overrides: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        full_env = os.environ.copy()
        full_env.update({"ATTNLAB_ROOT": str(tmp_path), "WANDB_MODE": full_env.get("WANDB_MODE", "offline")})
        full_env.pop("HYDRA_FULL_ERROR", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", module, *overrides],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def osie_benchmark(tmp_path, monkeypatch):
    """``score(*overrides)``: :func:`attnlab.benchmark.run_benchmark` on the first 2 test images of the
    OSIE subset (ATTNLAB_OSIE_ROOT or shared/data/osie_subset), outputs in tmp_path; returns its result."""
    root = os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))
    if not os.path.isdir(root):
        pytest.skip(f"OSIE subset not found at {root} (set ATTNLAB_OSIE_ROOT)")
    monkeypatch.setenv("ATTNLAB_OSIE_ROOT", root)

    def score(*overrides: str) -> dict:
        from attnlab.benchmark import run_benchmark
        from attnlab.utils.compose import compose_config

        common = ["data=osie", "max_images=2", "figure_images=1", "progress=false", f"paths.output_dir={tmp_path}"]
        return run_benchmark(compose_config("benchmark", [*common, *overrides]))

    return score
