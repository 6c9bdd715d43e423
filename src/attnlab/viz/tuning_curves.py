"""Tuning-curve figures: one plot per unit, and the distributions of the attention statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from attnlab.viz.inhibition import ATTENDED_COLOR, NOT_ATTENDED_COLOR
from attnlab.viz.save import plt, save_figure

__all__ = ["plot_unit_curves", "plot_tuning_summary"]


def plot_unit_curves(
    orientations: np.ndarray, attended: np.ndarray, unattended: np.ndarray, folder: str | Path, suffix: str = "png"
) -> list[Path]:
    """``folder/<channel>.<suffix>``: response vs orientation, attended (blue) and not (red).

    Args:
        orientations: O degrees. attended, unattended: O×C responses of one unit per channel.
    """
    paths = []
    fig, ax = plt.subplots(figsize=(3.2, 2.4))  # one figure redrawn per channel: much faster than one each
    try:
        for ch in range(attended.shape[1]):
            ax.cla()
            ax.plot(orientations, attended[:, ch], color=ATTENDED_COLOR, marker="o", ms=3, label="attended")
            ax.plot(orientations, unattended[:, ch], color=NOT_ATTENDED_COLOR, marker="o", ms=3, label="not attended")
            ax.set_xlabel("orientation (°)")
            ax.set_ylabel("max response")
            ax.set_title(f"channel {ch}", fontsize=9)
            ax.legend(fontsize=6, frameon=False)
            fig.tight_layout()
            paths.append(save_figure(fig, Path(folder) / f"{ch}.{suffix}", dpi=90, close=False))
    finally:
        plt.close(fig)
    return paths


def plot_tuning_summary(stats_per_layer: dict[str, dict[str, np.ndarray]], path: str | Path) -> Path:
    """Per layer: histogram of tuning correlations r and of gains over the analysed units."""
    layers = list(stats_per_layer)
    fig, axes = plt.subplots(len(layers), 2, figsize=(8, 2.8 * len(layers)), squeeze=False)
    for row, name in enumerate(layers):
        s = stats_per_layer[name]
        v = s["valid"]
        r, gain = s["r"][v], s["gain"][v]
        ax = axes[row, 0]
        if len(r):
            ax.hist(r, bins=np.linspace(-1, 1, 41), color="0.4")
            ax.axvline(np.median(r), color="k", linestyle="--", linewidth=1, label=f"median {np.median(r):.3f}")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel("r (attended vs not, peak-normalised)")
        ax.set_ylabel(f"{name} units")
        ax.set_title(f"{name}: tuning shape ({v.sum()} units)", fontsize=9)
        ax = axes[row, 1]
        positive = gain[gain > 0]
        if len(positive):
            # log axis: gains are ratios, and a few weakly driven units have very large ones
            lo, hi = np.percentile(positive, [1, 99]) if len(positive) > 10 else (positive.min(), positive.max())
            lo, hi = min(lo, 0.9), max(hi, 1.1)
            ax.hist(np.clip(positive, lo, hi), bins=np.geomspace(lo, hi, 41), color="0.4")
            ax.set_xscale("log")
            candidates = (0.01, 0.1, 1, 10, 100, 1000) if hi / lo > 20 else (0.3, 0.5, 0.8, 1, 1.25, 1.5, 2, 3)
            ticks = [t for t in candidates if lo <= t <= hi]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.axvline(1.0, color="r", linewidth=1)
            ax.axvline(
                np.median(gain),
                color="k",
                linestyle="--",
                linewidth=1,
                label=f"median {np.median(gain):.3f}; >1: {100 * (gain > 1).mean():.0f}%",
            )
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel("gain, attended / not attended (log axis)")
        ax.set_title(f"{name}: response scaling", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
