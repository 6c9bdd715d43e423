"""The command ``python -m attnlab.leaderboard data=<dataset> attention=[<label>=]<source>[,...]``.

Every source of ``attention`` (anything the benchmark scores: see :mod:`attnlab.benchmark.sources`)
is scored in one pass over the images by :func:`attnlab.benchmark.run.run_benchmark`; from its
per-image values the leaderboard gives every mean a percentile bootstrap interval over images and
every source a paired comparison with the centre bias (the mean difference with its bootstrap
interval, same resampled images, and the Wilcoxon signed-rank p-value:
:mod:`attnlab.metrics.statistics`). A difference is real when its interval excludes 0; it is better
or worse according to the metric's direction (``LOWER_IS_BETTER``). The centre bias is added to
the sources when ``attention`` lacks it.

Run folder: ``leaderboard.md`` (printed), ``leaderboard.csv`` (one row per source and metric),
``leaderboard.json`` (the table, the per-image values, the settings; ``null`` where a metric does not
apply), ``leaderboard.png`` (per image: photo, human density, every source's map, the humans' and each
scanpath source's scanpath on the photo) and ``leaderboard.html`` (both tables and the figure, in one
self-contained file).

``label=spec`` names a source (``attention=[CB=centre_bias,"DINet=saliency:/runs/x/dinet.ckpt"]``); the
shell removes the double quotes and :func:`attnlab.benchmark.__main__.quote_attention` quotes each
entry for Hydra, so ``attention=CB=centre_bias,DINet=saliency:/runs/x.ckpt`` works as well.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from attnlab.benchmark.__main__ import quote_attention
from attnlab.benchmark.leaderboard import run_leaderboard
from attnlab.benchmark.settings import LeaderboardSettings
from attnlab.utils.cli import entry_point

__all__ = ["main", "run_leaderboard"]


def _task(cfg: DictConfig) -> None:
    run_leaderboard(cfg)


def main() -> Any:
    sys.argv = [sys.argv[0], *quote_attention(sys.argv[1:])]
    return entry_point("leaderboard", LeaderboardSettings)(_task)()


if __name__ == "__main__":
    main()
