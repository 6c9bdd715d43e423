"""Paired comparisons of chosen leaderboard rows against every baseline, from a ``leaderboard.json``:

    python scripts/target_check.py <run>/leaderboard.json --models NeVA-tuned,alpha \
        --baselines CB,uniform,centre,WTA-CB --metrics ScanMatch,SED,MM_position [--out docs/neva/target.md]

The leaderboard compares every source with the centre bias only; a target such as "beats every
map-free scanpath baseline" needs each model against each baseline on the same images. Each cell is
the mean difference model − baseline with its 95% percentile bootstrap interval over images
(:func:`attnlab.metrics.statistics.paired_comparison`, the leaderboard's own statistics) and ✓ when
the interval lies above 0 (below 0 for metrics where lower is better), ✗ otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from attnlab.metrics.statistics import paired_comparison

LOWER_IS_BETTER = {"KLD", "DTW"}


def compare(doc: dict, models: list[str], baselines: list[str], metrics: list[str], samples: int) -> list[str]:
    per_image = doc["per_image"]
    missing = [n for n in models + baselines if n not in per_image]
    if missing:
        raise SystemExit(f"not in the leaderboard: {', '.join(missing)}; it has {', '.join(per_image)}")
    lines = [
        f"| model | metric | {' | '.join(f'− {b}' for b in baselines)} |",
        "|---|---|" + "---:|" * len(baselines),
    ]
    for model in models:
        for metric in metrics:
            cells = []
            for baseline in baselines:
                a = np.array([r[metric] for r in per_image[model]], dtype=float)
                b = np.array([r[metric] for r in per_image[baseline]], dtype=float)
                d = paired_comparison(a, b, samples=samples, seed=int(doc.get("seed", 0))).difference
                better = d.low > 0 if metric not in LOWER_IS_BETTER else d.high < 0
                cells.append(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] {'✓' if better else '✗'}")
            lines.append(f"| {model} | {metric} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("leaderboard", type=Path)
    parser.add_argument("--models", required=True)
    parser.add_argument("--baselines", required=True)
    parser.add_argument("--metrics", default="ScanMatch,SED,MM_position")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    doc = json.loads(args.leaderboard.read_text())
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    text = "\n".join(compare(doc, split(args.models), split(args.baselines), split(args.metrics), args.samples))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
