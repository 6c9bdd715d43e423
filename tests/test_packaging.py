"""The wheel carries the Hydra configs, and an installed (non-editable) copy composes its configs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("attnlab-*.whl")
    return path


def test_wheel_holds_every_config_and_the_console_scripts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml"))
    assert configs, "no configs found in conf/"
    missing = [c for c in configs if f"attnlab/conf/{c}" not in names]
    assert not missing, f"configs missing from the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command in ("train", "eval", "analyze", "scanpaths", "benchmark", "leaderboard"):
        assert f"attnlab-{command} = attnlab.{command}" in text


def test_installed_copy_composes_its_config(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a wheel unpacked is an installed copy (minus launchers)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    where = run("-c", "import attnlab, attnlab.utils.cli as c; print(attnlab.__file__); print(c.CONFIG_DIR)")
    assert where.returncode == 0, where.stderr
    module_file, config_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(site) and Path(config_dir).is_relative_to(site)
    composed = run("-m", "attnlab.train", "model.strength=0.3", "--cfg", "job")
    assert composed.returncode == 0, composed.stderr[-2000:]
    assert "attnlab.models.gating.GatingModule" in composed.stdout and "strength: 0.3" in composed.stdout
    bad = run("-m", "attnlab.train", "model.strength=1.5")
    assert bad.returncode == 2 and "model.strength=1.5" in bad.stderr
