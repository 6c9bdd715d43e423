"""Scanpath overlays: numbered fixations joined by saccade lines, drawn on the image."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["draw_scanpath", "save_scanpath_overlay"]


def draw_scanpath(
    ax,
    fixations: np.ndarray,
    color: str = "#ffcc00",
    label: str | None = None,
    numbered: bool = True,
    radius: float | None = None,
) -> None:
    """Draw one scanpath on a matplotlib axis.

    Args:
        ax: the axis (already showing the image, pixel coordinates).
        fixations: L×2 pixel (x, y), in viewing order.
        color: line and marker colour. label: legend entry.
        numbered: write the fixation index (1-based) in each marker.
        radius: marker size in points (default: scales with the image).
    """
    fixations = np.asarray(fixations, dtype=float).reshape(-1, 2)
    if len(fixations) == 0:
        return
    size = radius or 14
    ax.plot(
        fixations[:, 0], fixations[:, 1], "-", color=color, linewidth=2, alpha=0.85, zorder=2, solid_capstyle="round"
    )
    ax.scatter(
        fixations[:, 0],
        fixations[:, 1],
        s=size**2,
        facecolors=color,
        edgecolors="black",
        linewidths=1.2,
        alpha=0.9,
        zorder=3,
        label=label,
    )
    if numbered:
        for i, (x, y) in enumerate(fixations):
            ax.text(
                x,
                y,
                str(i + 1),
                ha="center",
                va="center",
                fontsize=max(6, size * 0.6),
                color="black",
                fontweight="bold",
                zorder=4,
            )


def save_scanpath_overlay(
    image: np.ndarray,
    fixations: np.ndarray,
    path: str | Path,
    title: str | None = None,
    others: Sequence[tuple[str, np.ndarray, str]] = (),
    dpi: int = 100,
) -> Path:
    """Save a PNG of ``image`` with the scanpath on top (atomically: temp file, then rename).

    Args:
        image: H×W×3 uint8 or float in [0, 1], the ORIGINAL image (fixations are its pixels).
        fixations: L×2 pixel (x, y), numbered 1..L.
        path: output PNG.
        title: figure title (e.g. image name, target class).
        others: extra scanpaths (label, L'×2 fixations, colour), drawn unnumbered and thinner, e.g. humans.
    """
    from attnlab.viz.save import plt, save_figure

    image = np.asarray(image)
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(w / dpi, h / dpi), dpi=dpi)
    try:
        ax.imshow(image, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        for label, fix, color in others:
            fix = np.asarray(fix, dtype=float).reshape(-1, 2)
            ax.plot(
                fix[:, 0], fix[:, 1], "-o", color=color, linewidth=1, markersize=4, alpha=0.6, label=label, zorder=1
            )
        draw_scanpath(ax, fixations, label="model" if others else None, radius=max(10.0, min(h, w) / 25))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
        if others:
            ax.legend(loc="lower right", fontsize=7, framealpha=0.7, markerscale=0.4)
        fig.tight_layout(pad=0.2)
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, path, dpi=dpi)
