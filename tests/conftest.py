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
