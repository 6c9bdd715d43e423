"""The leaderboard's figure: per image, the photo, the human density, every source's map, and the
scanpaths drawn on the photo (the humans' and each scanpath source's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from attnlab.viz.saliency_grid import show_map
from attnlab.viz.save import plt, save_figure
from attnlab.viz.scanpath_overlay import draw_scanpath

__all__ = ["leaderboard_figure"]

HUMAN_COLOURS = ("#00e5ff", "#ff4fd8", "#7CFC00")  # the first humans' scanpaths, one colour each


def _photo(ax, title: str, image, size: tuple[int, int]) -> None:
    h, w = size
    ax.set_axis_off()
    ax.imshow(image if image is not None else np.full((h, w), 0.5), cmap=None if image is not None else "gray")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title, fontsize=8)


def leaderboard_figure(rows: Sequence[dict[str, Any]], path: str | Path, humans: int = 3, dpi: int = 100) -> Path:
    """Save the figure, one row per image.

    Args:
        rows: per image ``stimulus`` (id), ``image`` (H×W×3 or None: a grey photo), ``density`` (H×W human
            density), ``maps`` ({source: map}), ``scanpaths`` ({source: [Scanpath]}) and ``humans``
            ([Scanpath], pixels of the image), as :func:`attnlab.benchmark.run.run_benchmark` keeps them.
        humans: how many human scanpaths the humans' panel shows (unnumbered, one colour each).

    Each scanpath source's panel shows its first scanpath, numbered. Written atomically, figure closed.
    """
    maps = list(dict.fromkeys(n for r in rows for n in r["maps"]))
    paths = list(dict.fromkeys(n for r in rows for n, p in r["scanpaths"].items() if p))
    cols = 3 + len(maps) + len(paths)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 1.9 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        ax = axes[r]
        size = np.shape(row["density"])[:2]
        show_map(ax[0], "stimulus " + str(row["stimulus"]), row["image"], None)
        show_map(ax[1], "human density", row["density"])
        for c, name in enumerate(maps):
            show_map(ax[2 + c], name, row["maps"].get(name))
        _photo(ax[2 + len(maps)], "human scanpaths", row["image"], size)
        for s, colour in zip(row["humans"], HUMAN_COLOURS[:humans]):
            draw_scanpath(ax[2 + len(maps)], s.xy, color=colour, numbered=False, radius=4)
        for c, name in enumerate(paths):
            panel = ax[3 + len(maps) + c]
            scanpaths = row["scanpaths"].get(name)
            if not scanpaths:
                panel.set_axis_off()
                continue
            _photo(panel, f"{name} scanpath", row["image"], size)
            draw_scanpath(panel, scanpaths[0].xy, radius=8)  # marker size in points: the panels are small
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
