"""Open leaderboard.html and the docs' front page in headless Chromium; check they render and fetch nothing.

    python scripts/browser_check.py [--no-screenshots] [--chromium /usr/bin/chromium]

1. a tiny leaderboard run on the OSIE subset (``ATTNLAB_OSIE_ROOT``): ``python -m attnlab.leaderboard data=osie
   max_images=2 figure_images=1``; its ``leaderboard.html`` must show two tables with a column per source and the
   figure (colour pixels in the screenshot: the photos), and request nothing outside the file;
2. ``mkdocs build`` into a temporary folder; its ``index.html`` must show the title and the leaderboard figure and
   request only ``file:``/``data:`` URLs.

Requests are read from Chromium's NetLog: any http(s)/ws URL that a page initiated is an outside fetch (the
browser's own background requests carry no page origin and are ignored; DNS is mapped to nothing anyway).
Screenshots go to docs/images/browser_{leaderboard,docs}.png. Exit code 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
]


def chromium(binary: str, work: Path, url: str, *args: str) -> tuple[str, list[str]]:
    """(stdout, outside URLs the page requested) of one headless run with a fresh profile."""
    profile = Path(tempfile.mkdtemp(dir=work, prefix="profile-"))
    netlog = profile / "net.json"
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}", *args, url]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise SystemExit(f"chromium failed ({run.returncode}): {run.stderr[-2000:]}")
    text = netlog.read_text()
    try:
        events = json.loads(text)["events"]
    except json.JSONDecodeError:  # a log cut short at exit
        events = json.loads(text.rstrip().rstrip(",") + "]}")["events"]
    outside = sorted(
        {
            e["params"]["url"]
            for e in events
            if isinstance(e.get("params"), dict)
            and str(e["params"].get("url", "")).split(":", 1)[0] in ("http", "https", "ws", "wss")
            and e["params"].get("initiator", "not an origin") != "not an origin"
        }
    )
    return run.stdout, outside


def colour_fraction(png: Path) -> float:
    """Share of clearly coloured pixels (photos and maps; the tables are black on white and grey)."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        hsv = np.asarray(im.convert("RGB").convert("HSV"), dtype=np.float64) / 255
    return float(((hsv[..., 1] > 0.25) & (hsv[..., 2] > 0.15)).mean())


def check_page(binary, work, page: Path, shot: Path, size: str, needles: list[str]) -> list[str]:
    problems = []
    dom, outside = chromium(binary, work, page.as_uri(), "--dump-dom", "--virtual-time-budget=3000")
    problems += [f"{page.name}: requested {u}" for u in outside]
    problems += [f"{page.name}: {n!r} not in the rendered DOM" for n in needles if n not in dom]
    _, outside = chromium(binary, work, page.as_uri(), f"--screenshot={shot}", f"--window-size={size}")
    problems += [f"{page.name} (screenshot): requested {u}" for u in outside]
    if not shot.is_file():
        problems.append(f"{page.name}: no screenshot")
    elif colour_fraction(shot) < 0.01:
        problems.append(f"{page.name}: the screenshot shows no figure ({colour_fraction(shot):.4f} coloured)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-screenshots", action="store_true", help="check only; leave docs/images alone")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"browser_check: no Chromium at {args.chromium} (apt-get install chromium)")
        return 2
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        board = work / "leaderboard"
        subprocess.run(
            [sys.executable, "-m", "attnlab.leaderboard", "data=osie", "max_images=2", "figure_images=1",
             "progress=false", f"hydra.run.dir={board}"],
            check=True, cwd=work, env=env, capture_output=True, timeout=600,
        )  # fmt: skip
        result = json.loads((board / "leaderboard.json").read_text())
        site = work / "site"
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)],
            check=True, cwd=ROOT, env={**env, "NO_MKDOCS_2_WARNING": "1"}, timeout=600,
        )  # fmt: skip
        shots = work if args.no_screenshots else args.images
        shots.mkdir(parents=True, exist_ok=True)
        problems = check_page(
            args.chromium,
            work,
            board / "leaderboard.html",
            shots / "browser_leaderboard.png",
            "1300,2600",
            ["Mean over images", "Difference with the centre bias", "data:image/png;base64,"]
            + [f"<th>{s}</th>" for s in result["sources"]],
        )
        if "<table>" in (dom := (board / "leaderboard.html").read_text()) and dom.count("<table>") != 2:
            problems.append("leaderboard.html: expected 2 tables")
        problems += check_page(
            args.chromium,
            work,
            site / "index.html",
            shots / "browser_docs.png",
            "1300,1400",
            ["attnlab", "leaderboard_osie_test.jpg", "md-nav"],
        )
    for p in problems:
        print("browser_check:", p)
    print("browser_check:", "ok" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
