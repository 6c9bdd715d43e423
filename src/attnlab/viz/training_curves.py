"""Training-curve figures: metric vs step per group of runs, and final values per group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.viz.save import plt, save_figure

__all__ = ["plot_training_curves", "plot_final_values"]


def plot_training_curves(
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], metric: str, path: str | Path
) -> Path:
    """Two panels (train, val): per group the mean over runs with a ± SD band.

    Args:
        curves: group -> stage ("train"/"val") -> (steps, mean, sd).
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (group, stages) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        for ax, stage in zip(axes, ("train", "val")):
            if stage not in stages:
                continue
            steps, mean, sd = stages[stage]
            ax.plot(
                steps, mean, color=color, label=group, marker="o" if stage == "val" and len(steps) < 30 else None, ms=3
            )
            if np.any(sd > 0):
                ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)
    for ax, stage in zip(axes, ("train (smoothed)", "validation")):
        ax.set_title(f"{stage} {metric}")
        ax.set_xlabel("step (optimiser steps)")
    axes[0].set_ylabel(metric)
    axes[1].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_final_values(finals: dict[str, list[float]], label: str, path: str | Path) -> Path:
    """Bar per group: mean final value, ± SD whiskers, individual runs as dots."""
    names = list(finals)
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 2), 3.6))
    for i, name in enumerate(names):
        values = np.asarray(finals[name], dtype=float)
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.bar(i, values.mean(), yerr=sd, color="0.75", capsize=4)
        ax.scatter(np.full(len(values), i), values, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(label)
    fig.tight_layout()
    return save_figure(fig, path)
