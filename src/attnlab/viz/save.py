"""Saving matplotlib figures: Agg backend, atomic write, figure always closed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: str | Path, dpi: int = 120, close: bool = True) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) via a temp file, then close it.

    ``close=False`` keeps it open for redrawing (the caller must close it, e.g. in a ``finally``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")  # keeps the suffix matplotlib reads the format from
    try:
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(path)
    finally:
        if close:
            plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
