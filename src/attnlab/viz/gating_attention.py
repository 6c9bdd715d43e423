"""Where the gating model attends: per test photo and glimpse, the input gate and the attended object.

One row per photo: the photo, then for every glimpse the input gate the last step used (a gate is an
inhibition map: dark = let through, bright = suppressed; the white contour is the attended region,
gate < 0.5) and the photo with the attended object's mask (the object the glimpse was scored on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from attnlab.viz.save import plt, save_figure

__all__ = ["save_attention_figure"]


def _rgb(image) -> np.ndarray:
    """C×H×W tensor in [0, 1] -> H×W×3 array (grey images repeated)."""
    a = np.asarray(image, dtype=np.float32).transpose(1, 2, 0)
    return np.clip(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a, 0, 1)


def _name(names: Sequence[str] | None, index: int) -> str:
    return names[index] if names is not None and 0 <= index < len(names) else str(index)


def save_attention_figure(
    batch: dict[str, Any],
    path: str | Path,
    class_names: Sequence[str] | None = None,
    threshold: float = 0.5,
    dpi: int = 80,
) -> Path:
    """Save the grid of ``batch`` (from :func:`attnlab.models.gating.module.attention_figure_batch`).

    Args:
        batch: ``image`` n×C×H×W; per glimpse lists of ``gate`` n×H×W, ``mask`` n×H×W, ``target``/``pred`` n.
        path: output file (PNG/JPEG from the suffix).
        class_names: label of each class index (titles).
        threshold: gate value below which a pixel counts as attended (the contour).
    """
    images = batch["image"]
    n, glimpses = images.shape[0], len(batch["gate"])
    cols = 1 + 2 * glimpses
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.8 * n), squeeze=False)
    for i in range(n):
        photo = _rgb(images[i])
        axes[i, 0].imshow(photo)
        axes[i, 0].set_title("photo", fontsize=7)
        for k in range(glimpses):
            gate = np.asarray(batch["gate"][k][i], dtype=np.float32)
            mask = np.asarray(batch["mask"][k][i], dtype=bool)
            t, p = int(batch["target"][k][i]), int(batch["pred"][k][i])
            ax = axes[i, 1 + 2 * k]
            ax.imshow(gate, cmap="magma", vmin=-1, vmax=1)
            if (gate < threshold).any() and (gate >= threshold).any():
                ax.contour(gate, levels=[threshold], colors="white", linewidths=0.6)
            ax.set_title(f"g{k + 1} gate → {_name(class_names, p)}", fontsize=7)
            ax = axes[i, 2 + 2 * k]
            ax.imshow(np.where(mask[..., None], photo, 0.25 * photo))  # the object bright, the rest dimmed
            ax.set_title(f"g{k + 1} attended: {_name(class_names, t)}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return save_figure(fig, path, dpi=dpi)
