"""A row-normalised confusion matrix saved as an image."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["save_confusion_matrix"]


def save_confusion_matrix(
    confmat: np.ndarray, class_names: Sequence[str] | None, path: str | Path, title: str = ""
) -> Path:
    """Save a C×C confusion matrix (rows = true class, columns = predicted) as a heat map.

    Each row is divided by its total (recall on the diagonal); rows of absent classes stay 0.
    Cells show the fraction and the axis labels the class names.
    """
    from attnlab.viz.save import plt, save_figure

    confmat = np.asarray(confmat, dtype=float)
    c = confmat.shape[0]
    names = list(class_names or [])[:c]
    names += [str(i) for i in range(len(names), c)]
    rows = confmat.sum(1, keepdims=True)
    norm = np.divide(confmat, rows, out=np.zeros_like(confmat), where=rows > 0)

    size = max(4.0, 0.45 * c + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("attended object's class")
    if c <= 25:
        for i in range(c):
            for j in range(c):
                if confmat[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
