"""scripts/browser_check.py in headless Chromium (Debian's package): skipped where /usr/bin/chromium is absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/usr/bin/chromium").is_file(), reason="no /usr/bin/chromium (apt-get install chromium)")
def test_leaderboard_page_and_docs_render_and_fetch_nothing():
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "browser_check.py"), "--no-screenshots"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.strip().endswith("browser_check: ok")
