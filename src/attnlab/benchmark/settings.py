"""The own settings of the benchmark, leaderboard and scanpaths commands (their defaults: the YAML).

How the benchmark scores (:class:`Scoring`, ``conf/scoring/benchmark.yaml``) is one set of keys: the
benchmark's and the leaderboard's top level, and the scanpaths command's ``scoring.*``, which hands
them to the benchmark as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import annotated_types as at

from attnlab.utils.config import NonNegativeInt, PositiveFloat, PositiveInt
from attnlab.utils.settings import Checkpoint, Seed, Sources

__all__ = ["Scoring", "BenchmarkSettings", "Bootstrap", "LeaderboardSettings", "ScanpathsScoring", "ScanpathsSettings"]

Split = Literal["train", "val", "test", "all"]


@dataclass
class Scoring:
    """How the benchmark scores: ``attention`` the sources (the scanpaths command: the baselines next to
    its model), ``sigma_px`` the blur of the human density, ``scanpath_drop_first`` the humans' central
    start fixation dropped, ``metric_specific`` and ``conditional_metrics`` of probabilistic sources,
    ``figure_images`` rows of ``saliency_grid.png``."""

    attention: Sources
    sigma_px: Optional[PositiveFloat]
    scanpath_drop_first: bool
    metric_specific: bool
    conditional_metrics: bool
    figure_images: NonNegativeInt
    progress: bool


@dataclass
class BenchmarkSettings(Scoring):
    """``python -m attnlab.benchmark``."""

    seed: Seed
    split: Split
    max_images: Optional[PositiveInt]


@dataclass
class Bootstrap:
    """``bootstrap.*`` of ``python -m attnlab.leaderboard`` (the resampled image indices are drawn with ``seed``)."""

    samples: PositiveInt
    level: Annotated[float, at.Interval(gt=0, lt=1)]


@dataclass
class LeaderboardSettings(BenchmarkSettings):
    """``python -m attnlab.leaderboard``: the benchmark's settings and the bootstrap's."""

    bootstrap: Bootstrap


@dataclass
class ScanpathsScoring(Scoring):
    """``scoring.*`` of ``python -m attnlab.scanpaths``: the benchmark's :class:`Scoring`, whether to
    score, the model's row name and whether a centre-fixation scanpath is scored beside it."""

    enabled: bool
    model_name: str
    centre_baseline: bool


@dataclass
class ScanpathsSettings:
    """``python -m attnlab.scanpaths``: ``ckpt_path`` a checkpoint of ``model=neva_amortised``;
    ``optimized_metric`` (a benchmark metric of the model's row, e.g. ``ScanMatch``) is returned to a
    sweep (``hparams_search=neva_osie_optuna``)."""

    seed: Seed
    split: Split
    batch_size: Optional[PositiveInt]
    max_images: Optional[PositiveInt]
    overlays: bool
    overlay_humans: NonNegativeInt
    ckpt_path: Optional[Checkpoint]
    optimized_metric: Optional[str]
    scoring: ScanpathsScoring
