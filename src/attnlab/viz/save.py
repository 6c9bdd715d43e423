"""Matplotlib for files: the Agg backend, and figures saved atomically (:mod:`attnlab.utils.io`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnlab.utils.io import save_figure  # noqa: E402

__all__ = ["plt", "save_figure"]
