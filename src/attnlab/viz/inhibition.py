"""Histogram of input-gate values on vs off the attended object (the reference's colours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.viz.save import plt, save_figure

__all__ = ["plot_inhibition", "ATTENDED_COLOR", "NOT_ATTENDED_COLOR"]

ATTENDED_COLOR = "#0e4db3"
NOT_ATTENDED_COLOR = "#d44e4e"


def plot_inhibition(attended: np.ndarray, not_attended: np.ndarray, path: str | Path, bins: int = 50) -> Path:
    """Overlaid histograms of per-image mean gate values; means marked by dashed lines."""
    attended = np.asarray(attended)[np.isfinite(attended)]
    not_attended = np.asarray(not_attended)[np.isfinite(not_attended)]
    values = np.concatenate([attended, not_attended])
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for data, color, label in (
        (not_attended, NOT_ATTENDED_COLOR, "not attended"),
        (attended, ATTENDED_COLOR, "attended"),
    ):
        if len(data):
            ax.hist(data, bins=edges, color=color, alpha=0.7, label=f"{label} (mean {data.mean():.3f})")
            ax.axvline(data.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("input gate g (1 = fully suppressed)")
    ax.set_ylabel("images")
    ax.set_title("Inhibition on vs off the attended object")
    ax.legend(frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)
