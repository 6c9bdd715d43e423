"""Training curves across the runs of a sweep, from the metrics each run logged (CSV logger).

Every run folder below ``runs`` holding ``csv/metrics.csv`` is one run; runs are grouped by their
Hydra overrides (``.hydra/overrides.yaml``) minus the seed, so the trials of one setting form one
group (mean ± SD band). Train accuracy is the per-step value smoothed by a running mean; validation
accuracy is the per-epoch value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.utils.config import PositiveInt, UserError

__all__ = ["Run", "TrainingCurveAnalysis", "find_runs", "read_metrics"]

IGNORED_OVERRIDES = ("seed",)


@dataclass
class Run:
    """One run: its folder, group label and metric series as (steps, values)."""

    folder: Path
    overrides: list[str]
    series: dict[str, tuple[np.ndarray, np.ndarray]]
    group: str = ""


def read_metrics(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Non-empty values of every column of a Lightning CSV log, as (step, value) arrays per column."""
    columns: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row.get("step") or "nan")
            except ValueError:
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                if math.isfinite(step) and math.isfinite(v):
                    columns.setdefault(key, []).append((step, v))
    return {k: (np.array([s for s, _ in pts]), np.array([v for _, v in pts])) for k, pts in columns.items()}


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def find_runs(root: str | Path) -> list[Run]:
    """Runs under ``root`` (a run folder, a multirun folder, or any folder of them), sorted by path."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"runs folder not found: analysis.runs={root}")
    runs = []
    for metrics in sorted(root.rglob("metrics.csv")):
        if metrics.parent.name != "csv":
            continue
        folder = metrics.parent.parent
        runs.append(Run(folder, _overrides(folder), read_metrics(metrics)))
    if not runs:
        raise UserError(f"no logged runs (csv/metrics.csv) under analysis.runs={root}; train with logger=csv")
    varying = _varying(runs)
    for run in runs:
        label = [o for o in run.overrides if o.split("=", 1)[0].lstrip("+~") in varying]
        run.group = ", ".join(label) or "all runs"
    return runs


def _varying(runs: list[Run]) -> set[str]:
    """Override keys whose value differs between runs (the seed excluded: trials of one setting)."""
    values: dict[str, set[str]] = {}
    for run in runs:
        for o in run.overrides:
            key, _, value = o.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    keys_everywhere = {
        k for k in values if all(any(o.partition("=")[0].lstrip("+~") == k for o in r.overrides) for r in runs)
    }
    return {k for k, v in values.items() if k not in IGNORED_OVERRIDES and (len(v) > 1 or k not in keys_everywhere)}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over the last ``window`` values (shorter at the start)."""
    if window <= 1 or len(values) == 0:
        return values
    c = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _series(run: Run, candidates: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    for name in candidates:
        if name in run.series:
            return run.series[name]
    return None


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and SD over runs at the steps all of them logged."""
    common = curves[0][0]
    for steps, _ in curves[1:]:
        common = np.intersect1d(common, steps)
    stacked = np.stack([np.interp(common, s, v) for s, v in curves]) if len(common) else np.zeros((len(curves), 0))
    return common, stacked.mean(0), stacked.std(0)


@dataclass
class TrainingCurveAnalysis:
    """``analysis=training_curves``: accuracy vs step across the runs of a sweep.

    Args:
        runs: a multirun folder (or any folder containing run folders with ``csv/metrics.csv``).
        metric: metric name as logged without stage prefix (``acc``, ``bacc``, ``loss_g1`` ...).
        smoothing: running-mean window of the per-step training values.
    """

    runs: str = ""
    metric: str = "acc"
    smoothing: PositiveInt = 20
    name: str = field(default="training_curves", init=False)
    needs_model: bool = field(default=False, init=False)

    def run(self, out_dir: Path, **_: Any) -> dict[str, Any]:
        from attnlab.viz.training_curves import plot_final_values, plot_training_curves

        if not self.runs:
            raise UserError("analysis=training_curves needs analysis.runs=<multirun or runs folder>")
        runs = find_runs(self.runs)
        m = self.metric
        train_keys, val_keys = (f"train/{m}_step", f"train/{m}"), (f"val/{m}", f"val/{m}_epoch")
        per_run, groups = [], {}
        for run in runs:
            train, val = _series(run, train_keys), _series(run, val_keys)
            if train is not None:
                train = (train[0], smooth(train[1], self.smoothing))
            record = {
                "folder": str(run.folder),
                "group": run.group,
                "overrides": run.overrides,
                "final_train": float(train[1][-1]) if train is not None and len(train[1]) else None,
                "final_val": float(val[1][-1]) if val is not None and len(val[1]) else None,
                "best_val": float(val[1].max()) if val is not None and len(val[1]) else None,
                "last_step": float(max([s[0][-1] for s in (train, val) if s is not None and len(s[0])], default=0)),
            }
            per_run.append(record)
            g = groups.setdefault(run.group, {"train": [], "val": [], "final_val": [], "final_train": []})
            if train is not None and len(train[0]):
                g["train"].append(train)
                g["final_train"].append(record["final_train"])
            if val is not None and len(val[0]):
                g["val"].append(val)
                g["final_val"].append(record["final_val"])
        if not any(g["train"] or g["val"] for g in groups.values()):
            raise UserError(f"no run under {self.runs} logged train/{m} or val/{m}")
        curves = {
            name: {stage: mean_curve(g[stage]) for stage in ("train", "val") if g[stage]} for name, g in groups.items()
        }
        out_dir = Path(out_dir)
        figures = [str(plot_training_curves(curves, m, out_dir / "training_curves.png"))]
        finals = {name: g["final_val"] for name, g in groups.items() if g["final_val"]}
        if finals:
            figures.append(str(plot_final_values(finals, f"final val/{m}", out_dir / "final_val.png")))
        summary = {
            name: {
                "runs": len(g["train"]) or len(g["val"]),
                "final_val_mean": float(np.mean(g["final_val"])) if g["final_val"] else None,
                "final_val_sd": float(np.std(g["final_val"], ddof=1)) if len(g["final_val"]) > 1 else None,
                "final_train_mean": float(np.mean(g["final_train"])) if g["final_train"] else None,
            }
            for name, g in groups.items()
        }
        return {"metric": m, "runs": per_run, "groups": summary, "figures": figures}

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        lines = [f"{len(results['runs'])} runs, {len(results['groups'])} groups ({results['metric']})"]
        for name, g in results["groups"].items():
            val = "n/a" if g["final_val_mean"] is None else f"{g['final_val_mean']:.4f}"
            lines.append(f"  {name}: {g['runs']} run(s), final val {val}")
        return lines
