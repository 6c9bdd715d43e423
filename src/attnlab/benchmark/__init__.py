"""Score attention against human fixations: ``python -m attnlab.benchmark data=osie attention=<sources>``.

``attention`` is a comma-separated list of sources (``attention=centre_bias,uniform,inter_observer``
works without quotes); what a source can be is in :mod:`attnlab.benchmark.sources`, the protocol a
model implements in :mod:`attnlab.sources`. Every source is scored on the ``split`` images (default
``test``) with every saliency metric and, when it produces scanpaths, every scanpath metric
(:mod:`attnlab.benchmark.scoring`). Baselines: ``uniform``, ``centre_bias`` (fitted on the training
split) and ``inter_observer`` — for AUCs, NSS and IG the other subjects' density scored against
each left-out subject's fixations; for CC, KLD and SIM one random half of the subjects' density
against the other half's (5 seeded halvings); for scanpaths leave-one-subject-out.

Output in the run folder (:mod:`attnlab.benchmark.report`): ``benchmark.md`` (printed),
``benchmark.csv``, ``benchmark.json`` (with per-image values and skipped counts) and
``saliency_grid.png`` (stimulus, human density, each source's map for the first images).

Modules: ``__main__`` (the command), ``run`` (:func:`run_benchmark`), ``sources``, ``scoring``,
``probabilistic`` (metric-specific maps, conditional metrics), ``calibration`` (``calibrated:<source>``),
``report``.
"""

from __future__ import annotations

from attnlab.baselines import fitted_centre_bias
from attnlab.benchmark import calibration  # noqa: F401 - registers calibrated:<source>
from attnlab.benchmark.run import run_benchmark, source_list
from attnlab.benchmark.scoring import INTER_OBSERVER_SPLITS, LOWER_IS_BETTER, SALIENCY_METRICS, SCANPATH_METRICS
from attnlab.benchmark.sources import MapFolderSource, ScanpathFileSource, ScanpathSource, resolve_source
from attnlab.sources import SOURCES, AttentionSource, BenchmarkContext, register_source

__all__ = [
    "AttentionSource",
    "BenchmarkContext",
    "register_source",
    "resolve_source",
    "SOURCES",
    "run_benchmark",
    "source_list",
    "fitted_centre_bias",
    "MapFolderSource",
    "ScanpathSource",
    "ScanpathFileSource",
    "SALIENCY_METRICS",
    "SCANPATH_METRICS",
    "LOWER_IS_BETTER",
    "INTER_OBSERVER_SPLITS",
]
