"""The leaderboard's tables, files and page (``python -m attnlab.leaderboard``, :mod:`attnlab.leaderboard`).

:func:`run_leaderboard` scores the sources once (:func:`attnlab.benchmark.run.run_benchmark`), gives every
mean a percentile bootstrap interval over images and every source a paired comparison with the centre
bias (:func:`leaderboard_table`), and writes ``leaderboard.md``, ``.csv``, ``.json``, ``.png`` and ``.html``.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, open_dict

import attnlab.metrics.statistics as stats
from attnlab.benchmark.report import summary_table
from attnlab.benchmark.run import run_benchmark, source_list
from attnlab.benchmark.scoring import LOWER_IS_BETTER
from attnlab.benchmark.sources import CentreBiasSource, split_label
from attnlab.metrics.statistics import mean_interval, paired_comparison
from attnlab.sources import AttentionSource, lookup_source
from attnlab.utils.io import write_csv, write_json, write_text

log = logging.getLogger(__name__)

__all__ = ["run_leaderboard", "leaderboard_table", "markdown", "html_page", "CSP"]

BETTER, WORSE = "▲", "▼"  # the difference with the centre bias is real (its interval excludes 0)
MISSING = "—"
CSV_FIELDS = (
    "source",
    "metric",
    "lower_is_better",
    "n",
    "mean",
    "low",
    "high",
    "difference",
    "difference_low",
    "difference_high",
    "p_value",
    "verdict",
)


def _is_centre_bias(spec: str) -> bool:
    name = split_label(spec)[1].partition(":")[0]
    return lookup_source(name) is CentreBiasSource


def _values(rows: list[dict[str, Any]], metric: str) -> np.ndarray:
    return np.array([r.get(metric, np.nan) for r in rows], dtype=np.float64)


def leaderboard_table(
    per_image: dict[str, list[dict[str, Any]]],
    columns: list[str],
    reference: str,
    samples: int = stats.SAMPLES,
    level: float = stats.LEVEL,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{source: {metric: entry}}: ``n``, ``mean``, ``low``, ``high`` (bootstrap interval over images) and, for
    every source but ``reference``, ``difference`` (source − reference, same images), ``difference_low``,
    ``difference_high``, ``p_value`` (Wilcoxon) and ``verdict`` ("better", "worse" or None: no real difference,
    or not comparable). NaN where a metric does not apply."""
    ref_rows = per_image[reference]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, rows in per_image.items():
        if [r.get("stimulus") for r in rows] != [r.get("stimulus") for r in ref_rows]:
            raise ValueError(f"source {name} was scored on other images than {reference}")
        table[name] = {}
        for metric in columns:
            v = _values(rows, metric)
            iv = mean_interval(v, samples, seed, level)
            entry: dict[str, Any] = {"n": iv.n, "mean": iv.mean, "low": iv.low, "high": iv.high}
            if name != reference:
                c = paired_comparison(v, _values(ref_rows, metric), samples, seed, level)
                d = c.difference
                verdict = None
                if c.significant:
                    verdict = "better" if (d.mean > 0) != (metric in LOWER_IS_BETTER) else "worse"
                entry |= {
                    "difference": d.mean,
                    "difference_low": d.low,
                    "difference_high": d.high,
                    "p_value": c.p_value,
                    "verdict": verdict,
                }
            table[name][metric] = entry
    return table


# --- text --------------------------------------------------------------------------------------------


def _num(v: Optional[float], signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return MISSING
    text = f"{v:+.3f}" if signed else f"{v:.3f}"
    return text.replace("-", "−")


def _interval(low: float, high: float, signed: bool = False) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f" [{_num(low, signed)}, {_num(high, signed)}]"


def _p(p: Optional[float]) -> str:
    if p is None or not math.isfinite(p):
        return ""
    return " p<0.001" if p < 0.001 else f" p={p:.3f}"


def _mark(entry: dict[str, Any]) -> str:
    return {"better": " " + BETTER, "worse": " " + WORSE}.get(entry.get("verdict"), "")


def mean_cell(entry: dict[str, Any]) -> str:
    """``0.812 [0.790, 0.833] ▲``; ``—`` when the metric does not apply."""
    if not math.isfinite(entry["mean"]):
        return MISSING
    return _num(entry["mean"]) + _interval(entry["low"], entry["high"]) + _mark(entry)


def difference_cell(entry: dict[str, Any]) -> str:
    """``+0.101 [+0.090, +0.113] p=0.002 ▲`` (source − centre bias); ``—`` when not comparable."""
    d = entry.get("difference")
    if d is None or not math.isfinite(d):
        return MISSING
    return _num(d, True) + _interval(entry["difference_low"], entry["difference_high"], True) + _p(entry["p_value"])


def _grid(table: dict, columns: list[str], cell, sources: list[str]) -> list[list[str]]:
    """Rows of metrics (``↓``: lower is better), one column per source."""
    return [[f"{m} ↓" if m in LOWER_IS_BETTER else m, *[cell(table[s][m]) for s in sources]] for m in columns]


def _legend(result: dict[str, Any]) -> list[str]:
    level = round(100 * result["level"])
    return [
        f"{result['images']} {result['split']} images of {result['dataset']}; mean over images "
        f"[{level}% percentile bootstrap interval over images, {result['samples']} resamples].",
        f"{BETTER} better / {WORSE} worse than the centre bias ({result['reference']}): the {level}% interval of the "
        "paired difference (same images) excludes 0; ↓ marks metrics where lower is better. "
        f"{MISSING}: the metric does not apply to the source (e.g. scanpath metrics of a map).",
    ] + (
        [
            f"Probabilistic sources ({', '.join(result['probabilistic'])}) are scored on metric-specific maps "
            "(Kümmerer et al. 2018) and get the conditional metrics (LL, IG_cond, NSS_cond, AUC_cond: each human "
            "fixation given its true history); the others are scored on their maps."
        ]
        if result.get("probabilistic")
        else []
    )


def markdown(result: dict[str, Any]) -> str:
    """The two tables (means; differences with the centre bias) and their legend, as markdown."""
    table, columns, sources = result["table"], result["metrics"], result["sources"]
    others = [s for s in sources if s != result["reference"]]

    def md(head: list[str], rows: list[list[str]]) -> list[str]:
        return [
            "| " + " | ".join(head) + " |",
            "|---|" + "---:|" * (len(head) - 1),
            *["| " + " | ".join(r) + " |" for r in rows],
        ]

    lines = ["# Leaderboard", "", *_legend(result), "", "## Mean over images", ""]
    lines += md(["metric", *sources], _grid(table, columns, mean_cell, sources))
    lines += ["", f"## Difference with the centre bias ({result['reference']}), Wilcoxon signed-rank p", ""]
    lines += md(["metric", *others], _grid(table, columns, difference_cell, others))
    return "\n".join(lines) + "\n"


def html_page(result: dict[str, Any], figure_png: Optional[bytes]) -> str:
    """One self-contained page: the legend, both tables and the figure as a base64 data URI."""
    table, columns, sources = result["table"], result["metrics"], result["sources"]
    others = [s for s in sources if s != result["reference"]]
    esc = html.escape

    def tab(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{esc(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + f"<th>{esc(r[0])}</th>" + "".join(f"<td>{esc(c)}</td>" for c in r[1:]) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # the page loads nothing from outside: inline style and data: images only, no scripts
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        "<title>attnlab leaderboard</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}"
        "thead th{background:#f2f2f2}tbody th{text-align:left}img{max-width:100%}</style></head><body>",
        "<h1>Leaderboard</h1>",
        *[f"<p>{esc(line)}</p>" for line in _legend(result)],
        "<h2>Mean over images</h2>",
        tab(["metric", *sources], _grid(table, columns, mean_cell, sources)),
        f"<h2>Difference with the centre bias ({esc(result['reference'])}), Wilcoxon signed-rank p</h2>",
        tab(["metric", *others], _grid(table, columns, difference_cell, others)),
    ]
    if figure_png:
        data = base64.b64encode(figure_png).decode("ascii")
        parts += [
            "<h2>Maps and scanpaths</h2>",
            f'<img alt="photo, human density, maps and scanpaths" src="data:image/png;base64,{data}">',
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _finite_or_none(value: Any) -> Any:
    """JSON without NaN: a metric that does not apply is ``null``."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def csv_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per source and metric (:data:`CSV_FIELDS`; empty cells where a value does not apply)."""
    rows = []
    for source in result["sources"]:
        for metric in result["metrics"]:
            entry = {"source": source, "metric": metric, "lower_is_better": metric in LOWER_IS_BETTER}
            entry |= result["table"][source][metric]
            rows.append(["" if (v := _finite_or_none(entry.get(f))) is None else v for f in CSV_FIELDS])
    return rows


def _summary(result: dict[str, Any]) -> str:
    """One line: per source, how many metrics are really better / worse / not really different."""
    counts = []
    for source in result["sources"]:
        if source == result["reference"]:
            continue
        entries = [e for e in result["table"][source].values() if math.isfinite(e["difference"])]
        better = sum(e["verdict"] == "better" for e in entries)
        worse = sum(e["verdict"] == "worse" for e in entries)
        counts.append(f"{source} {better}/{worse}/{len(entries) - better - worse}")
    return (
        f"leaderboard: {len(result['sources'])} sources on {result['images']} {result['split']} images of "
        f"{result['dataset']}; metrics better/worse/not different from {result['reference']} "
        f"({round(100 * result['level'])}% bootstrap interval of the difference): " + ", ".join(counts)
    )


def run_leaderboard(cfg: DictConfig, sources: Sequence[AttentionSource] = ()) -> dict[str, Any]:
    """Score ``sources`` (already built, e.g. by :func:`attnlab.api.score` from a callable) and
    ``cfg.attention`` (plus the centre bias) on ``cfg.data`` once; write the five files into
    ``cfg.paths.output_dir``; return the result (``table``: :func:`leaderboard_table`)."""
    specs = source_list(cfg.attention, required=not sources)
    reference = next((k for k, s in enumerate(specs) if _is_centre_bias(s)), None)
    if reference is None:
        log.info("centre_bias added to the sources: every source is compared with it")
        specs, reference = ["centre_bias", *specs], 0
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.attention = specs
    result = run_benchmark(cfg, sources, reports=False)
    figure = result.pop("figure")
    _, columns = summary_table(result["per_image"])
    result |= {
        "attention": [s.name for s in sources] + specs,
        "reference": result["sources"][len(sources) + reference],
        "samples": int(cfg.bootstrap.samples),
        "level": float(cfg.bootstrap.level),
        "seed": int(cfg.seed),
        "metrics": columns,
    }
    result["table"] = leaderboard_table(
        result["per_image"], columns, result["reference"], result["samples"], result["level"], result["seed"]
    )
    out = Path(cfg.paths.output_dir)
    text = markdown(result)
    write_text(out / "leaderboard.md", text)
    write_csv(out / "leaderboard.csv", CSV_FIELDS, csv_rows(result))
    write_json(out / "leaderboard.json", _finite_or_none(result))
    png = None
    if figure:
        from attnlab.viz.leaderboard import leaderboard_figure

        png = leaderboard_figure(figure, out / "leaderboard.png").read_bytes()
    write_text(out / "leaderboard.html", html_page(result, png))
    print(text)
    print(_summary(result))
    return result
