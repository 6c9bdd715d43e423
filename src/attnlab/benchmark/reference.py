"""The plain per-image, per-pair scoring the fast path (:mod:`attnlab.benchmark.scoring`) must equal.

One image at a time, one saliency-metric call per source and image, one call of each per-pair
scanpath function of :mod:`attnlab.metrics.scanpath` per pair, scikit-learn's mean shift per image.
Slow (seconds an image) and kept for the tests and ``scripts/bench.py``: it defines the values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

import attnlab.benchmark.probabilistic as P
from attnlab.baselines import fitted_centre_bias
from attnlab.benchmark.scoring import (
    DISTRIBUTION_METRICS,
    INTER_OBSERVER_SPLITS,
    LOCATION_METRICS,
    SCANPATH_METRICS,
    split_halves,
)
from attnlab.data.fixations import Scanpath
from attnlab.metrics import saliency as S
from attnlab.metrics import saliency_reference as R
from attnlab.metrics import scanpath as SP
from attnlab.metrics.maps import InvalidMapError, as_batch, match_size
from attnlab.sources import AttentionSource, BenchmarkContext
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["ImageTargets", "reference_targets", "score_image_reference"]


@dataclass
class ImageTargets:
    """Everything the metrics compare against on one image."""

    size: tuple[int, int]
    fixations: torch.Tensor  # H×W counts
    density: torch.Tensor  # H×W
    baseline: torch.Tensor  # centre bias
    nonfixations: torch.Tensor  # other images' fixations (pysaliency sAUC)
    subjects: list[str]
    subject_fixations: torch.Tensor  # S×H×W
    clusters: Optional[SP.FixationClusters]


def reference_targets(ctx: BenchmarkContext, i: int, negatives: S.ShuffledNegatives) -> ImageTargets:
    data = ctx.data
    size = data.stimuli[i].size
    fix, dropped = data.fixation_map(i)
    if dropped:
        log.warning("%s: %d fixations outside the image dropped", data.stimuli[i].id, dropped)
    subjects = sorted({p.subject for p in data.scanpaths[i]})
    sub_fix = np.stack([data.fixation_map(i, subjects={s})[0] for s in subjects]) if subjects else np.zeros((0, *size))
    humans = ctx.human_scanpaths[i]
    points = np.concatenate([np.stack([h.x, h.y], 1) for h in humans]) if humans else np.zeros((0, 2))
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    return ImageTargets(
        size,
        t(fix),
        t(data.density(i, sigma_px=ctx.sigma_px)),
        t(fitted_centre_bias(ctx).map(size)),
        t(negatives.counts(i)),
        subjects,
        t(sub_fix),
        SP.fit_fixation_clusters(points) if len(points) else None,
    )


def _map_metrics(
    pred: torch.Tensor, fixations: Optional[torch.Tensor], density: Optional[torch.Tensor], tg: ImageTargets, seed: int
) -> dict[str, float]:
    """Saliency metrics of B maps against B targets by their plain definitions
    (:mod:`attnlab.metrics.saliency_reference`; AUC-Borji, random, by its one function), averaged over the
    batch (NaN = skipped)."""
    size = tuple((fixations if fixations is not None else density).shape[-2:])
    maps = match_size(as_batch(pred), size).numpy()  # NaN/inf in a map: InvalidMapError, as the fast path
    names = (LOCATION_METRICS if fixations is not None else ()) + (DISTRIBUTION_METRICS if density is not None else ())
    given = {"fixations": fixations, "density": density, "baseline": tg.baseline, "negatives": tg.nonfixations}
    inputs = {k: v.to_dense().numpy() for k, v in given.items() if v is not None}  # B×H×W: one per map; H×W: shared
    values: dict[str, list[float]] = {}
    for name in names:
        if name == "AUC_Borji":
            values[name] = S.auc_borji(torch.from_numpy(maps), fixations, seed=seed).tolist()
            continue
        definition, target = R.METRICS[name]
        arrays = [inputs[t] for t in target.split("+")]
        values[name] = [definition(m, *(a[k] if a.ndim == 3 else a for a in arrays)) for k, m in enumerate(maps)]
    return {k: S.mean_over_images(torch.tensor(v, dtype=torch.float64))[0] for k, v in values.items()}


def _scanpath_metrics(
    preds: list[Scanpath], humans: list[Scanpath], size, clusters, exclude_self: bool
) -> dict[str, float]:
    """Every scanpath metric of each predicted scanpath against each human one (mean)."""
    pairs = [(p, h) for k, p in enumerate(preds) for j, h in enumerate(humans) if not (exclude_self and j == k)]
    if not pairs:
        return {k: float("nan") for k in SCANPATH_METRICS}
    rows = []
    for p, h in pairs:
        mm = SP.multimatch(p, h, size)
        rows.append(
            {
                "SED": SP.string_edit_similarity(p, h, size),
                "ScanMatch": SP.scanmatch(p, h, size),
                **{f"MM_{k}": v for k, v in mm.items()},
                "DTW": SP.dtw(p, h, size),
                "TDE": SP.scaled_time_delay_embedding(p, h, size),
                "SS": SP.sequence_score(p, h, clusters) if clusters is not None else float("nan"),
            }
        )
    return {
        k: float(np.nanmean([r[k] for r in rows])) if any(r[k] == r[k] for r in rows) else float("nan")
        for k in SCANPATH_METRICS
    }


def _probabilistic_metrics(
    source: AttentionSource, ctx: BenchmarkContext, i: int, tg: ImageTargets, log_p: np.ndarray
) -> dict[str, float]:
    """Every metric of a density source on image i, one map and one fixation at a time."""
    row: dict[str, float] = {"probabilistic": True}
    log_centre = np.log(tg.baseline.numpy())
    if ctx.metric_specific:
        for group, derived in P.metric_specific_maps(
            log_p, log_centre, ctx.sigma_px, P.fixations_per_image(ctx), ctx.seed
        ).items():
            values = _map_metrics(torch.as_tensor(derived)[None], tg.fixations[None], tg.density[None], tg, ctx.seed)
            row |= {m: values[m] for m, g in P.METRIC_MAPS.items() if g == group}
    else:
        smap = torch.as_tensor(np.asarray(source.saliency_map(ctx, i), dtype=np.float64))[None]
        row |= _map_metrics(smap, tg.fixations[None], tg.density[None], tg, ctx.seed)
    if not ctx.conditional_metrics:
        return row
    h, w = tg.size
    values: dict[str, list[float]] = {m: [] for m in P.CONDITIONAL_METRICS}
    for path in ctx.human_scanpaths[i]:
        for t in range(len(path.x)):
            x, y = path.x[t], path.y[t]
            if not (0 <= x < w and 0 <= y < h):
                continue
            lp = log_p
            if source.conditional:
                lp = P.density_at_size(
                    source.conditional_log_density(ctx, i, path.x[:t], path.y[:t]), tg.size, source, ctx, i
                )
            p = np.exp(lp)
            r, c = int(y), int(x)
            values["LL"].append(np.log2(p[r, c]) + np.log2(h * w))
            values["IG_cond"].append(np.log2(p[r, c]) - np.log2(np.exp(log_centre[r, c])))
            spread = p.std() > P.CONSTANT * p.mean()
            values["NSS_cond"].append((p[r, c] - p.mean()) / p.std() if spread else 0.0)
            values["AUC_cond"].append(float((p < p[r, c]).mean() + 0.5 * (p == p[r, c]).mean()))
    return row | {m: float(np.mean(v)) if v else float("nan") for m, v in values.items()}


def score_image_reference(
    source: AttentionSource, ctx: BenchmarkContext, i: int, tg: ImageTargets
) -> tuple[dict[str, float], Optional[np.ndarray]]:
    sid = ctx.data.stimuli[i].id
    row: dict[str, float] = {}
    shown = None
    try:
        if source.leave_one_out:
            if len(tg.subjects) >= 2:
                # fixation-based metrics: the other subjects' density against each left-out subject
                loo = np.stack(
                    [ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=set(tg.subjects) - {s}) for s in tg.subjects]
                )
                row |= _map_metrics(torch.as_tensor(loo), tg.subject_fixations, None, tg, ctx.seed)
                # distribution metrics: one half of the subjects' density against the other half's
                halves = split_halves(tg.subjects, INTER_OBSERVER_SPLITS, np.random.default_rng([ctx.seed, i]))
                pred = np.stack([ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=a) for a, _ in halves])
                target = np.stack([ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=b) for _, b in halves])
                row |= _map_metrics(torch.as_tensor(pred), None, torch.as_tensor(target), tg, ctx.seed)
            humans = ctx.human_scanpaths[i]
            row |= _scanpath_metrics(humans, humans, tg.size, tg.clusters, exclude_self=True)
            shown = source.saliency_map(ctx, i)
        else:
            smap = source.saliency_map(ctx, i)
            wanted = ctx.metric_specific or ctx.conditional_metrics
            log_p = source.log_density(ctx, i) if wanted else None
            if smap is not None:
                shown = np.asarray(smap, dtype=np.float64)
            if log_p is not None:
                row |= _probabilistic_metrics(source, ctx, i, tg, P.density_at_size(log_p, tg.size, source, ctx, i))
            elif smap is not None:
                pred = torch.as_tensor(shown)[None]
                row |= _map_metrics(pred, tg.fixations[None], tg.density[None], tg, ctx.seed)
            paths = source.scanpaths(ctx, i)
            if paths:
                row |= _scanpath_metrics(list(paths), ctx.human_scanpaths[i], tg.size, tg.clusters, exclude_self=False)
    except InvalidMapError as ex:
        raise UserError(
            f"source {source.name}: the saliency map of stimulus {sid!r} contains NaN or inf values"
        ) from ex
    return row, shown
