"""How much each concept pushes saliency up or down: phase-2 head weights × dissection IoUs.

1. w_k = the sum of basis k's 3×3 kernel in the phase-2 head (its weight on saliency).
2. For each basis, its top-``top_k`` concepts by IoU get α_kc = IoU_kc / Σ_top IoU (bases whose
   top IoUs sum to 0 are skipped).
3. I_c = Σ_k α_kc · w_k over the bases whose top list contains c.
4. Positives are divided by the largest positive, negatives by the largest |negative|.
5. Categories: each concept's normalised importance is summed per category (concepts without a
   category go to "other"), then positive totals are divided by the largest and negative totals by
   the largest |total|. A concept's category is its ``group`` in the dissection when it has one
   (COCO's supercategories), else its entry in ``categories``.
6. Intervals: when the dissection kept its per-image numbers (``bootstrap`` > 0), steps 2–5 are
   repeated on each bootstrap resample of the images, giving 95% intervals of every number.

Run it with ``python -m attnlab.analyze analysis=contributions ckpt_path=<phase-2 .ckpt>
analysis.dissection=<dissection.json>``; it writes ``contributions.csv``, ``categories.csv``, the
figures ``concepts.png`` and ``categories.png``, and ``contributions.json`` with every number.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import torch
from torch import Tensor

from attnlab.analysis.dissection import bootstrap_weights, weighted_scores
from attnlab.utils.checkpoint import read_checkpoint
from attnlab.utils.config import NonNegativeInt, PositiveInt, UserError
from attnlab.utils.io import open_atomic

log = logging.getLogger(__name__)

__all__ = [
    "ContributionAnalysis",
    "basis_weights",
    "category_totals",
    "concept_importance",
    "normalise_by_sign",
]

OTHER = "other"


def basis_weights(checkpoint: dict[str, Any], source: str = "checkpoint") -> Tensor:
    """w_k = Σ of basis k's 3×3 kernel in a phase-2 checkpoint's head (``net.basis_head.weight``)."""
    state = checkpoint.get("state_dict", checkpoint)
    weight = state.get("net.basis_head.weight")
    if weight is None:
        raise UserError(
            f"{source} has no net.basis_head.weight: contributions need a phase-2 checkpoint (model.phase=2)"
        )
    return weight.detach().double().sum(dim=(0, 2, 3)).cpu()


def concept_importance(iou: Tensor, weights: Tensor, top_k: int = 5) -> tuple[Tensor, Tensor]:
    """(I_c for every concept C, number of bases whose top list contains c C).

    Args:
        iou: K×C alignment scores (NaN: concept never seen, treated as 0).
        weights: K basis weights w_k.
    """
    if iou.shape[0] != weights.shape[0]:
        raise UserError(f"the dissection has {iou.shape[0]} bases but the phase-2 head has {weights.shape[0]}")
    scores = torch.nan_to_num(iou.double(), nan=0.0).clamp(min=0)
    k = min(int(top_k), scores.shape[1])
    values, index = scores.topk(k, dim=1)
    total = values.sum(1, keepdim=True)
    keep = (total > 0).expand_as(values) & (values > 0)
    alpha = values / total.clamp(min=1e-12)
    contrib = alpha * weights.double()[:, None]
    importance = torch.zeros(scores.shape[1], dtype=torch.float64)
    count = torch.zeros(scores.shape[1], dtype=torch.long)
    importance.index_add_(0, index[keep], contrib[keep])
    count.index_add_(0, index[keep], torch.ones_like(index[keep]))
    return importance, count


def normalise_by_sign(values: Tensor) -> Tensor:
    """Positives ÷ the largest positive, negatives ÷ the largest |negative| (zeros stay 0)."""
    v = values.double()
    pos_max = v.clamp(min=0).max()
    neg_max = (-v).clamp(min=0).max()
    out = torch.zeros_like(v)
    if pos_max > 0:
        out = torch.where(v > 0, v / pos_max, out)
    if neg_max > 0:
        out = torch.where(v < 0, v / neg_max, out)
    return out


def category_of(categories: dict[str, Sequence[str]]) -> dict[str, str]:
    """concept name → category (names compared lower-case, '_' and ' ' alike)."""
    out: dict[str, str] = {}
    for cat, names in (categories or {}).items():
        for n in names:
            out[_key(n)] = str(cat)
    return out


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", " ")


def category_totals(
    names: Sequence[str], normalised: Tensor, categories: dict[str, Sequence[str]]
) -> dict[str, dict[str, float]]:
    """Per category: the raw sum of normalised importances and that total normalised by sign."""
    lookup = category_of(categories)
    totals: dict[str, float] = {cat: 0.0 for cat in (categories or {})}
    totals.setdefault(OTHER, 0.0)
    for n, v in zip(names, normalised.tolist()):
        totals[lookup.get(_key(n), OTHER)] = totals.get(lookup.get(_key(n), OTHER), 0.0) + v
    cats = list(totals)
    scaled = normalise_by_sign(torch.tensor([totals[c] for c in cats], dtype=torch.float64)).tolist()
    return {c: {"total": totals[c], "normalised": s} for c, s in zip(cats, scaled)}


def _palette(categories: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # distinct hues first, their light shades after
    return {c: cmap(order[i % 20]) for i, c in enumerate(categories)}


def plot_concepts(rows: list[dict[str, Any]], path: Path, title: str, palette: dict[str, Any]) -> Path:
    """Bars of the top positive (descending) then negative (strongest at the right) concepts."""
    from matplotlib.patches import Patch

    from attnlab.viz.save import plt, save_figure

    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(rows) + 2), 4.5))
    ax.bar(range(len(rows)), [r["normalised"] for r in rows], color=[palette[r["category"]] for r in rows])
    ax.set_xticks(range(len(rows)), [r["concept"] for r in rows], rotation=90, fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("normalised contribution")
    ax.set_title(title)
    used = list(dict.fromkeys(r["category"] for r in rows))
    ax.legend(handles=[Patch(color=palette[c], label=c) for c in used], fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_categories(totals: dict[str, dict[str, float]], path: Path, title: str, palette: dict[str, Any]) -> Path:
    """One bar per category: its normalised total contribution, sorted descending."""
    from attnlab.viz.save import plt, save_figure

    order = sorted(totals, key=lambda c: -totals[c]["normalised"])
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(order) + 2), 4))
    ax.bar(range(len(order)), [totals[c]["normalised"] for c in order], color=[palette[c] for c in order])
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("normalised total contribution")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open_atomic(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["concept"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class ContributionAnalysis:
    """``analysis=contributions``: concept and category contributions to saliency.

    Args:
        checkpoint: the phase-2 checkpoint (``ckpt_path``).
        dissection: ``dissection.json`` from ``analysis=dissection``.
        iou: which dissection score to use: "image_mean" (the reference) or "dataset".
        top_k: concepts per basis that share its weight.
        top_n: positive and negative concepts shown in the figure.
        categories: category → concept names, for concepts without a group in the dissection;
            anything unlisted is "other".
        bootstrap: resamples of the dissection's images for intervals (0: none; needs the
            dissection's ``dissection_images.pt``).
        seed: of the resampling.
    """

    checkpoint: str | None = None
    dissection: str = ""
    iou: Literal["image_mean", "dataset"] = "image_mean"
    top_k: PositiveInt = 5
    top_n: PositiveInt = 30
    categories: Optional[dict[str, list[str]]] = field(default_factory=dict)
    bootstrap: NonNegativeInt = 1000
    seed: int = 0
    name: str = field(default="contributions", init=False)
    needs_model: bool = field(default=False, init=False)

    def run(self, out_dir: Path, **_: Any) -> dict[str, Any]:
        if not self.checkpoint:
            raise UserError("analysis=contributions needs ckpt_path=<phase-2 checkpoint>")
        path = Path(str(self.dissection)).expanduser()
        if not path.is_file():
            raise UserError(
                f"dissection results not found: {path}; run analysis=dissection first and pass "
                "analysis.dissection=<its dissection.json>"
            )
        dissection = json.loads(path.read_text())
        key = {"image_mean": "iou_image_mean", "dataset": "iou_dataset"}[self.iou]
        names = [c["name"] for c in dissection["concepts"]]
        iou = torch.tensor(
            [[float("nan") if v is None else v for v in row] for row in dissection[key]], dtype=torch.float64
        )
        weights = basis_weights(read_checkpoint(self.checkpoint), str(self.checkpoint))
        importance, count = concept_importance(iou, weights, self.top_k)
        normalised = normalise_by_sign(importance)
        lookup = category_of(self.categories)
        groups = {n: c.get("group") or lookup.get(_key(n), OTHER) for n, c in zip(names, dissection["concepts"])}
        categories = self.categories
        if any(c.get("group") for c in dissection["concepts"]):  # COCO: the supercategories
            categories = {g: [n for n in names if groups[n] == g] for g in dict.fromkeys(groups.values()) if g != OTHER}
        rows = [
            {
                "concept": n,
                "category": groups[n],
                "importance": float(v),
                "normalised": float(z),
                "bases": int(b),
            }
            for n, v, z, b in zip(names, importance.tolist(), normalised.tolist(), count.tolist())
        ]
        totals = category_totals(names, normalised, categories)
        intervals = self._intervals(dissection, path, names, key, weights, categories)
        if intervals:
            for r in rows:
                r |= intervals["concepts"][r["concept"]]
            for c, v in totals.items():
                v |= intervals["categories"][c]
        rows.sort(key=lambda r: -r["importance"])
        positives = [r for r in rows if r["importance"] > 0][: self.top_n]
        negatives = [r for r in rows if r["importance"] < 0][::-1][: self.top_n][::-1]
        out_dir = Path(out_dir)
        palette = _palette(list(dict.fromkeys([*categories, OTHER])))
        title = Path(str(self.checkpoint)).name
        figures = [
            str(
                plot_concepts(
                    positives + negatives, out_dir / "concepts.png", f"concept contributions ({title})", palette
                )
            ),
            str(plot_categories(totals, out_dir / "categories.png", f"category contributions ({title})", palette)),
        ]
        _write_csv(out_dir / "contributions.csv", rows)
        _write_csv(out_dir / "categories.csv", [{"category": c, **v} for c, v in totals.items()])
        return {
            "checkpoint": str(self.checkpoint),
            "dissection": str(path),
            "iou": self.iou,
            "top_k": self.top_k,
            "bootstrap": {"resamples": self.bootstrap, "seed": self.seed} if intervals else None,
            "basis_weights": [float(w) for w in weights],
            "concepts": rows,
            "top_positive": [r["concept"] for r in positives],
            "top_negative": [r["concept"] for r in negatives],
            "categories": totals,
            "figures": figures,
            "tables": [str(out_dir / "contributions.csv"), str(out_dir / "categories.csv")],
        }

    def _intervals(
        self,
        dissection: dict[str, Any],
        path: Path,
        names: list[str],
        key: str,
        weights: Tensor,
        categories: dict[str, list[str]],
    ) -> dict[str, Any] | None:
        """95% bootstrap intervals of importance, normalised importance and category totals."""

        stored = dissection.get("per_image")
        if not self.bootstrap or not stored:
            return None
        file = Path(stored) if Path(stored).is_file() else path.parent / Path(stored).name
        if not file.is_file():
            log.warning("per-image dissection numbers %s not found: contributions without intervals", stored)
            return None
        per_image = torch.load(file, map_location="cpu", weights_only=True)
        n_images = len(per_image["basis_area"])
        score = key.removeprefix("iou_")
        raw, scaled, cats = [], [], []
        for chunk in bootstrap_weights(n_images, self.bootstrap, self.seed).split(100):
            for iou in weighted_scores(per_image, len(names), chunk, score):
                importance, _ = concept_importance(iou, weights, self.top_k)
                z = normalise_by_sign(importance)
                raw.append(importance)
                scaled.append(z)
                t = category_totals(names, z, categories)
                cats.append(torch.tensor([t[c]["normalised"] for c in t], dtype=torch.float64))
        raw_t, scaled_t, cats_t = torch.stack(raw), torch.stack(scaled), torch.stack(cats)
        q = torch.tensor([0.025, 0.975], dtype=torch.float64)
        lo_hi = lambda v: [float(x) for x in torch.quantile(v, q)]
        order = list(category_totals(names, scaled_t[0], categories))
        interval = lambda prefix, v: dict(zip((f"{prefix}_low", f"{prefix}_high"), lo_hi(v)))
        return {
            "concepts": {
                n: interval("importance", raw_t[:, j]) | interval("normalised", scaled_t[:, j])
                for j, n in enumerate(names)
            },
            "categories": {c: interval("normalised", cats_t[:, j]) for j, c in enumerate(order)},
        }

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        pos = ", ".join(results["top_positive"][:5]) or "none"
        neg = ", ".join(results["top_negative"][-5:][::-1]) or "none"
        cats = sorted(results["categories"].items(), key=lambda kv: -kv[1]["normalised"])
        return [
            f"most positive concepts: {pos}",
            f"most negative concepts: {neg}",
            "categories: " + ", ".join(f"{c} {v['normalised']:+.2f}" for c, v in cats),
            "figures: " + ", ".join(results["figures"]),
        ]
