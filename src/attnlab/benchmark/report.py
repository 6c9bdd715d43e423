"""The benchmark's outputs: the score table as markdown, CSV and JSON, and the saliency grid figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnlab.benchmark.probabilistic import CONDITIONAL_METRICS
from attnlab.benchmark.scoring import LOWER_IS_BETTER, SALIENCY_METRICS, SCANPATH_METRICS
from attnlab.utils.io import write_csv, write_json, write_text

__all__ = ["summary_table", "markdown", "write_reports", "write_figure"]


def summary_table(per_image: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """({source: {metric: mean over images, NaN skipped}}, the metric columns any source has)."""
    known = SALIENCY_METRICS + CONDITIONAL_METRICS + SCANPATH_METRICS
    columns = [m for m in known if any(m in r for rows in per_image.values() for r in rows)]
    table = {}
    for name, rows in per_image.items():
        table[name] = {}
        for m in columns:
            vals = np.array([r.get(m, np.nan) for r in rows], dtype=float)
            table[name][m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return table, columns


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:.3f}"


def markdown(table: dict[str, dict[str, float]], columns: list[str]) -> str:
    head = "| source | " + " | ".join(f"{c} ↓" if c in LOWER_IS_BETTER else c for c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = ["| " + name + " | " + " | ".join(_fmt(row[c]) for c in columns) + " |" for name, row in table.items()]
    return "\n".join([head, rule, *body])


def write_reports(out: Path, result: dict[str, Any], columns: list[str]) -> str:
    """``benchmark.md``, ``benchmark.csv`` and ``benchmark.json`` in ``out`` (atomic); returns the markdown."""
    table = result["metrics"]
    text = markdown(table, columns)
    if result.get("probabilistic"):
        text += (
            "\n\nProbabilistic sources, scored on metric-specific maps (Kümmerer et al. 2018) with the conditional "
            f"metrics: {', '.join(result['probabilistic'])}; every other row is scored on its map."
        )
    write_text(out / "benchmark.md", text + "\n")
    write_csv(
        out / "benchmark.csv", ["source", *columns], [[name, *[row[c] for c in columns]] for name, row in table.items()]
    )
    write_json(out / "benchmark.json", result)
    return text


def write_figure(rows: list, path: Path) -> None:
    """``saliency_grid.png``: stimulus, human density and each source's map, one row per image."""
    if rows:
        from attnlab.viz.saliency_grid import saliency_grid

        saliency_grid(rows, path)
