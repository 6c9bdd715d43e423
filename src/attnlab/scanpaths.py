"""Generate task-driven scanpaths: ``python -m attnlab.scanpaths model=neva_classifier [data=images|osie]``.

Writes into the run folder, per image: ``scanpaths/<name>.json`` and ``scanpaths/<name>.csv``
(fixation, x, y in pixels of the ORIGINAL image, best loss) and ``overlays/<name>.png`` (numbered
fixations joined by saccades); for all images: ``scanpaths.csv`` and ``summary.json``. When the
dataset has human fixations (``data=osie`` or any :class:`~attnlab.data.fixations.FixationDataModule`),
the scanpaths are scored against the humans by :mod:`attnlab.benchmark` (every scanpath metric of
:mod:`attnlab.metrics.scanpath`, and the saliency metrics of their fixation density), next to a
centre-fixation scanpath and the benchmark's centre-bias, uniform and inter-observer baselines:
``benchmark.md`` (printed), ``benchmark.csv``, ``benchmark.json``, ``saliency_grid.png``. The
scanpaths go to the benchmark in memory; the scored ones are also written to ``benchmark_sources/``
(and every file written here is readable by ``python -m attnlab.benchmark attention=<file>``).
"""

from __future__ import annotations

from omegaconf import DictConfig

from attnlab.benchmark.scanpaths import check_objective, generate, objective
from attnlab.benchmark.settings import ScanpathsSettings
from attnlab.utils.cli import entry_point

__all__ = ["main"]


@entry_point("scanpaths", ScanpathsSettings)
def main(cfg: DictConfig) -> float | None:
    check_objective(cfg)
    summary = generate(cfg)  # the benchmark prints the score table when there are humans
    print(f"{summary['images']} scanpaths written to {summary['output_dir']}")
    value = objective(cfg, summary)
    if value is not None:
        print(f"{cfg.split} {cfg.optimized_metric} of {cfg.scoring.model_name}: {value:.4f}")
    return value


if __name__ == "__main__":
    main()
