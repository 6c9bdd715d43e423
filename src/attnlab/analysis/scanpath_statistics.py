"""How model scanpaths differ from people's: ``python -m attnlab.analyze analysis=scanpath_statistics``.

Scanpath metrics (ScanMatch, MultiMatch, ...) say *how much* a model's scanpaths differ from the
humans'; these statistics say *how*. Per scanpath, in degrees of visual angle (the dataset's
``pixels_per_degree``):

- saccade amplitude: the distance between consecutive fixations;
- distance from the image centre of the k-th fixation (k = 1 ... ``max_fixations``);
- spread: the mean distance of the fixations from their own centroid;
- return fixations: the fraction of fixations (from the third on) that land within
  ``return_radius_deg`` of a fixation before the previous one (a refixation, not a small step).

Each is averaged over a stimulus's scanpaths, then over the stimuli with a 95% bootstrap interval
(:func:`attnlab.metrics.statistics.mean_interval`); the humans are the split's, first (central
start) fixation dropped as in the benchmark, so that both sides start where the task begins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from attnlab.data.fixations import Scanpath
from attnlab.data.folder import read_scanpaths
from attnlab.metrics.statistics import mean_interval
from attnlab.utils.config import NonNegativeInt, PositiveFloat, PositiveInt, UserError

__all__ = ["scanpath_statistics", "ScanpathStatisticsAnalysis", "STATISTICS"]

# name: (column title, unit)
STATISTICS = {
    "amplitude": ("saccade amplitude", "deg"),
    "centre_distance": ("distance from centre", "deg"),
    "spread": ("fixation spread", "deg"),
    "returns": ("return fixations", "fraction"),
    "fixations": ("fixations", "count"),
}


def scanpath_statistics(
    xy: np.ndarray, size: tuple[int, int], pixels_per_degree: float, return_radius_deg: float = 1.0
) -> dict[str, Any]:
    """The statistics of one scanpath (``xy``: n×2 pixel (x, y) on an image of ``size`` (H, W)):
    ``amplitudes`` (n−1), ``centre_distances`` (n), ``spread``, ``returns`` (NaN below 3 fixations)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2) / float(pixels_per_degree)
    h, w = size
    centre = np.array([w / 2.0, h / 2.0]) / float(pixels_per_degree)
    n = len(xy)
    amplitudes = np.linalg.norm(np.diff(xy, axis=0), axis=1) if n > 1 else np.zeros(0)
    spread = float(np.linalg.norm(xy - xy.mean(0), axis=1).mean()) if n else float("nan")
    if n >= 3:
        returned = [bool((np.linalg.norm(xy[: t - 1] - xy[t], axis=1) <= return_radius_deg).any()) for t in range(2, n)]
        returns = float(np.mean(returned))
    else:
        returns = float("nan")
    return {
        "amplitudes": amplitudes,
        "centre_distances": np.linalg.norm(xy - centre, axis=1),
        "spread": spread,
        "returns": returns,
        "fixations": n,
    }


def _per_image(paths: list[Scanpath], size, ppd: float, radius: float, max_fixations: int) -> dict[str, Any]:
    """The statistics of one stimulus's scanpaths: means over its scanpaths (amplitudes pooled)."""
    stats = [scanpath_statistics(p.xy, size, ppd, radius) for p in paths]
    amplitudes = np.concatenate([s["amplitudes"] for s in stats]) if stats else np.zeros(0)
    by_index = np.full((len(stats), max_fixations), np.nan)
    for k, s in enumerate(stats):
        d = s["centre_distances"][:max_fixations]
        by_index[k, : len(d)] = d
    with np.errstate(all="ignore"):
        return {
            "amplitude": float(amplitudes.mean()) if amplitudes.size else float("nan"),
            "amplitudes": amplitudes,
            "centre_distance": float(np.nanmean(by_index)) if np.isfinite(by_index).any() else float("nan"),
            "by_index": np.nanmean(by_index, axis=0) if len(stats) else by_index[0:0].mean(0),
            "spread": float(np.nanmean([s["spread"] for s in stats])) if stats else float("nan"),
            "returns": float(np.nanmean([s["returns"] for s in stats])) if stats else float("nan"),
            "fixations": float(np.mean([s["fixations"] for s in stats])) if stats else float("nan"),
        }


@dataclass
class ScanpathStatisticsAnalysis:
    """``analysis=scanpath_statistics``: each scanpath file's statistics next to the humans'.

    Args:
        scanpaths: {label: scanpath file (JSON/CSV, e.g. a ``benchmark_sources/<name>.json`` of
            ``python -m attnlab.scanpaths``)}; only the stimuli of ``split`` are read.
        data: the fixation dataset (the command's ``data=``, instantiated).
        split: train | val | test | all. drop_first_human: drop each human's first fixation.
        max_fixations: fixation indices shown by the centre-distance curve.
        return_radius_deg: how close a refixation lands (degrees). bootstrap: resamples of the images.
    """

    scanpaths: dict[str, str] = field(default_factory=dict)
    data: Any = None
    split: str = "test"
    drop_first_human: bool = True
    max_fixations: PositiveInt = 10
    return_radius_deg: PositiveFloat = 1.0
    bootstrap: NonNegativeInt = 10_000
    seed: int = 0
    name: str = field(default="scanpath_statistics", init=False)
    needs_model: bool = field(default=False, init=False)

    def groups(self, split_data) -> dict[str, dict[str, list[Scanpath]]]:
        ids = {s.id for s in split_data.stimuli}
        humans = split_data.filtered(drop_first=True) if self.drop_first_human else split_data
        out = {"humans": {s.id: list(p) for s, p in zip(humans.stimuli, humans.scanpaths)}}
        for label, path in self.scanpaths.items():
            found = {k: v for k, v in read_scanpaths(path).items() if k in ids}
            if not found:
                raise UserError(f"analysis.scanpaths.{label}={path} has no scanpath of a {self.split} stimulus")
            out[str(label)] = found
        return out

    def run(self, out_dir: Path, **_: Any) -> dict[str, Any]:
        if not self.scanpaths:
            raise UserError("analysis=scanpath_statistics needs analysis.scanpaths={label: file, ...}")
        if self.data is None or not hasattr(self.data, "splits"):
            raise UserError("analysis=scanpath_statistics needs a fixation dataset: data=osie, mit1003, ...")
        self.data.setup("test")
        split_data = self.data.dataset if self.split == "all" else self.data.splits.get(self.split)
        if split_data is None:
            raise UserError(f"split={self.split}: the dataset has the splits {', '.join(self.data.splits)} and all")
        ppd = split_data.pixels_per_degree or 1.0
        sizes = {s.id: s.size for s in split_data.stimuli}
        per_group = {}
        for label, by_image in self.groups(split_data).items():
            per_group[label] = {
                k: _per_image(paths, sizes[k], ppd, self.return_radius_deg, self.max_fixations)
                for k, paths in by_image.items()
                if paths
            }
        table = {
            label: {
                stat: mean_interval([r[stat] for r in rows.values()], self.bootstrap, self.seed).__dict__
                for stat in STATISTICS
            }
            for label, rows in per_group.items()
        }
        curves = {
            label: np.nanmean(np.stack([r["by_index"] for r in rows.values()]), axis=0).tolist()
            for label, rows in per_group.items()
        }
        amplitudes = {
            label: np.concatenate([r["amplitudes"] for r in rows.values()]) for label, rows in per_group.items()
        }
        out_dir = Path(out_dir)
        figure = plot_statistics(amplitudes, curves, table, out_dir / "scanpath_statistics.png")
        (out_dir / "scanpath_statistics.md").write_text(markdown_table(table) + "\n")
        return {
            "split": self.split,
            "pixels_per_degree": ppd,
            "images": {label: len(rows) for label, rows in per_group.items()},
            "table": table,
            "centre_distance_by_fixation": curves,
            "figure": str(figure),
        }

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        return [markdown_table(results["table"])]


def _cell(interval: dict, digits: int = 2) -> str:
    if interval["mean"] != interval["mean"]:
        return "—"
    return f"{interval['mean']:.{digits}f} [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"


def markdown_table(table: dict[str, dict[str, dict]]) -> str:
    head = "| scanpaths | " + " | ".join(f"{t} ({u})" for t, u in STATISTICS.values()) + " |"
    rows = [head, "|---|" + "---:|" * len(STATISTICS)]
    for label, row in table.items():
        rows.append(f"| {label} | " + " | ".join(_cell(row[s]) for s in STATISTICS) + " |")
    return "\n".join(rows)


def plot_statistics(amplitudes: dict, curves: dict, table: dict, path: Path, show: Optional[list] = None) -> Path:
    """Three panels: saccade amplitude distributions, distance from centre by fixation index, and
    spread / return fixations per group (mean and 95% interval over images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    labels = show or list(curves)
    colours = {label: ("black" if label == "humans" else f"C{k}") for k, label in enumerate(labels)}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    top = max((float(np.percentile(a, 99)) for a in amplitudes.values() if a.size), default=1.0)
    bins = np.linspace(0, top, 30)
    for label in labels:
        lw = 2.2 if label == "humans" else 1.3
        axes[0].hist(amplitudes[label], bins, density=True, histtype="step", lw=lw, color=colours[label], label=label)
        axes[1].plot(np.arange(1, len(curves[label]) + 1), curves[label], "o-", ms=3, lw=lw, color=colours[label])
    axes[0].set(xlabel="saccade amplitude (deg)", ylabel="density", title="saccade amplitudes")
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].set(xlabel="fixation index", ylabel="distance from centre (deg)", title="distance from centre")
    x = np.arange(len(labels))
    for k, (stat, ax_title) in enumerate((("spread", "spread (deg)"), ("returns", "return fixations"))):
        means = [table[label][stat]["mean"] for label in labels]
        err = [
            [m - table[label][stat]["low"] for m, label in zip(means, labels)],
            [table[label][stat]["high"] - m for m, label in zip(means, labels)],
        ]
        ax = axes[2] if k == 0 else axes[2].twinx()
        offset = -0.2 if k == 0 else 0.2
        ax.bar(x + offset, means, 0.4, yerr=np.nan_to_num(err), color="#7aa" if k == 0 else "#c96", label=ax_title)
        ax.set_ylabel(ax_title)
    axes[2].set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    axes[2].set_title("spread (left bars) and return fixations (right bars)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
