"""Figure grid for the benchmark: per image, the stimulus, the human density and each source's map."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from attnlab.viz.save import plt, save_figure

__all__ = ["saliency_grid", "show_map"]


def show_map(ax, title: str, m: Optional[np.ndarray], cmap: Optional[str] = "magma") -> None:
    """One panel: ``m`` min-max normalised (a constant map mid-grey) in ``cmap``, or an image as it is
    when ``cmap`` is None; an empty panel for ``m=None``."""
    ax.set_axis_off()
    if m is None:
        return
    if cmap is not None:
        m = np.asarray(m, dtype=float)
        span = np.ptp(m)
        m = (m - m.min()) / span if span > 0 else np.full_like(m, 0.5)  # a flat map shows as flat
    ax.imshow(m, cmap=cmap, vmin=0, vmax=1) if cmap else ax.imshow(m)
    ax.set_title(title, fontsize=8)


def saliency_grid(
    rows: Sequence[tuple[str, Optional[np.ndarray], np.ndarray, dict[str, np.ndarray]]],
    path: str | Path,
    dpi: int = 100,
) -> Path:
    """Save a grid: one row per (stimulus id, image H×W×3 or None, human density, {source: map}).

    Maps are shown min-max normalised (each on its own scale; constant maps mid-grey); written
    atomically, figure closed.
    """
    names = list(dict.fromkeys(name for _, _, _, maps in rows for name in maps))
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 1.9 * len(rows)), squeeze=False)
    for r, (sid, image, density, maps) in enumerate(rows):
        panels = [("stimulus " + sid, image, None), ("human density", density, "magma")]
        panels += [(name, maps.get(name), "magma") for name in names]
        for c, (title, m, cmap) in enumerate(panels):
            show_map(axes[r, c], title, m, cmap)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
