"""The documentation site builds strictly (a broken link, a missing page or include fails), and the generated
reference pages list every command, config group option and constructor setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mkdocs_builds_strictly_with_the_generated_reference(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    cli = (tmp_path / "cli.html").read_text()
    assert "python -m attnlab.leaderboard" in cli and "max_images" in cli
    config = (tmp_path / "configuration.html").read_text()
    for option in ("saliency_dinet", "neva_osie_optuna", "fixation_folder"):
        assert option in config
    assert "attnlab.models.cam.CamSettings" in config and "ior_sigma" in config
    assert (tmp_path / "neva" / "osie.html").is_file()  # the NeVA page, or its stub before it is written
    assert "attnlab.api.score" in (tmp_path / "api.html").read_text()


def test_readme_is_short_and_states_the_ci_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    ci = (REPO / ".ci" / "run").read_text()
    for line in ('pip install -e ".[dev]"', "ruff check . && ruff format --check . && lint-imports && pytest"):
        assert line in readme and line in ci
    assert "## NeVA on OSIE" in readme and "docs/neva/osie.md" in readme
