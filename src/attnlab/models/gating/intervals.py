"""Bootstrap intervals and chance levels of the gating model's test scores, from per-image records.

A test set of a few dozen photos gives scores with wide sampling error, so every score comes with a
percentile bootstrap interval. The unit resampled is the *image* (all its glimpses together), not the
object: the two objects of one photo share the photo and the network's state, so they are not
independent draws.

Records are arrays of shape G×N (G glimpses, N images): the attended object's class, the predicted
class, the object-attention IoU (NaN where undefined) and the attended object's share of the image.

Resampling scheme: that of :mod:`attnlab.metrics.statistics` (``bootstrap_indices``, then the
percentile interval of the draws), with each draw scored as the original images weighted by how often
they were drawn.

Chance levels: for acc, bacc and f1 the mean score of a guess drawn uniformly from the C classes for
every glimpse, over ``chance_draws`` seeded draws on the same targets (acc and bacc ≈ 1/C; macro F1
depends on the class mix); for IoU, a gate that lets the whole image through (IoU = object share).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.metrics.statistics import bootstrap_indices, percentile_interval

__all__ = ["METRICS", "bootstrap_intervals", "chance_levels", "scores", "summarize"]

METRICS = ("acc", "bacc", "f1", "iou")


def _confmat(target: np.ndarray, pred: np.ndarray, weight: np.ndarray, num_classes: int) -> np.ndarray:
    """C×C confusion matrix (rows = true) of flat ``target``/``pred``, each pair counted ``weight`` times."""
    index = target.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(index, weights=weight, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _class_scores(cm: np.ndarray) -> dict[str, float]:
    """acc, bacc (mean recall over true classes present), macro F1 (classes in targets or predictions)."""
    total = cm.sum()
    support, predicted, tp = cm.sum(1), cm.sum(0), np.diagonal(cm)
    if total == 0:
        return {"acc": float("nan"), "bacc": float("nan"), "f1": float("nan")}
    present = support > 0
    seen = (support + predicted) > 0
    f1 = 2 * tp[seen] / (support[seen] + predicted[seen])
    return {
        "acc": float(tp.sum() / total),
        "bacc": float((tp[present] / support[present]).mean()),
        "f1": float(f1.mean()),
    }


def _mean_iou(iou: np.ndarray, weight: np.ndarray) -> float:
    valid = np.isfinite(iou)
    w = weight * valid
    return float((np.where(valid, iou, 0.0) * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


def scores(
    target: np.ndarray, pred: np.ndarray, iou: np.ndarray, num_classes: int, weight: np.ndarray | None = None
) -> dict[str, float]:
    """acc, bacc, f1, iou over all glimpses and per glimpse (suffix ``_g{k}``).

    Args:
        target, pred, iou: G×N records. weight: N, times each image counts (a bootstrap draw); None = 1.
    """
    g, n = target.shape
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    out: dict[str, float] = {}
    for k in range(g):
        out |= {f"{m}_g{k + 1}": v for m, v in _class_scores(_confmat(target[k], pred[k], weight, num_classes)).items()}
        out[f"iou_g{k + 1}"] = _mean_iou(iou[k], weight)
    wide = np.tile(weight, g)
    out |= _class_scores(_confmat(target.ravel(), pred.ravel(), wide, num_classes))
    out["iou"] = _mean_iou(iou.ravel(), wide)
    return out


def bootstrap_intervals(
    target: np.ndarray,
    pred: np.ndarray,
    iou: np.ndarray,
    num_classes: int,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every score of :func:`scores`, resampling images.

    Returns:
        metric name -> (low, high); (nan, nan) when fewer than two images.
    """
    n = target.shape[1]
    keys = list(scores(target, pred, iou, num_classes))
    if n < 2 or samples < 1:
        return {k: (float("nan"), float("nan")) for k in keys}
    draws = {k: np.empty(samples) for k in keys}
    for b, idx in enumerate(bootstrap_indices(n, samples, seed)):
        # a draw = the original images, each counted as often as it was drawn
        for k, v in scores(target, pred, iou, num_classes, weight=np.bincount(idx, minlength=n)).items():
            draws[k][b] = v
    return {k: percentile_interval(values, level) for k, values in draws.items()}


def chance_levels(
    target: np.ndarray, mask_fraction: np.ndarray, num_classes: int, draws: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Scores of uniform class guesses (mean over ``draws``) and of a gate attending the whole image.

    Args:
        target: G×N attended classes. mask_fraction: G×N share of the image the attended object covers.
    """
    rng = np.random.default_rng(seed)
    guesses = [
        scores(target, rng.integers(0, num_classes, size=target.shape), np.full(target.shape, np.nan), num_classes)
        for _ in range(draws)
    ]
    out = {k: float(np.mean([s[k] for s in guesses])) for k in guesses[0] if not k.startswith("iou")}
    # IoU of "everything attended" with the object mask is the mask's share of the image
    out |= {k: v for k, v in scores(target, target, mask_fraction, num_classes).items() if k.startswith("iou")}
    return out


def summarize(
    target: np.ndarray,
    pred: np.ndarray,
    iou: np.ndarray,
    mask_fraction: np.ndarray,
    num_classes: int,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Point estimates, intervals and chance levels: ``{metric: {"value", "low", "high", "chance"}}``
    plus ``images``, ``glimpses``, ``bootstrap_samples``, ``seed``, ``level``."""
    point = scores(target, pred, iou, num_classes)
    ci = bootstrap_intervals(target, pred, iou, num_classes, samples, seed, level)
    chance = chance_levels(target, mask_fraction, num_classes, seed=seed)
    out: dict[str, Any] = {
        k: {"value": point[k], "low": ci[k][0], "high": ci[k][1], "chance": chance[k]} for k in point
    }
    return out | {
        "images": int(target.shape[1]),
        "glimpses": int(target.shape[0]),
        "bootstrap_samples": int(samples),
        "seed": int(seed),
        "level": float(level),
    }
