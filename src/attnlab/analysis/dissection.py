"""Semantic dissection of saliency bases: how well each basis's "on" region matches each concept.

For image i, basis k and concept c present in i: B_k = [p_k > τ_k] and M_c = the concept's mask,
both on the feature grid, and IoU_kc(i) = |B_k ∧ M_c| / |B_k ∨ M_c|. Two scores per (k, c):

- ``image_mean`` (the reference): the mean of IoU_kc(i) over the images containing c;
- ``dataset`` (Network Dissection): Σ_i |B_k ∧ M_c| / Σ_i |B_k ∨ M_c| over all images (where c is
  absent, M_c is empty and the union is |B_k|), which also penalises firing on images without c.

All pairs of a batch are computed at once: intersections are one batched matrix product
B (n×K×hw) · Mᵀ (n×hw×C_i) over the concepts present in each image, unions follow from the areas,
and the results are scattered into K×C accumulators. :func:`iou_python_loop` is the reference's
image × concept × basis loop, kept as the oracle for tests and the speed comparison.

Run it with ``python -m attnlab.analyze analysis=dissection analysis.checkpoint=<saliency .ckpt>
analysis.scene_graphs=<train_sceneGraphs.json> analysis.image_dir=<images/>``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor

from attnlab.analysis.thresholds import basis_thresholds
from attnlab.data.base import INPUT_SIZE
from attnlab.data.coco_concepts import CocoConceptMaskDataset, load_coco_concepts
from attnlab.data.scene_graphs import ConceptMaskDataset, build_vocabulary, collate_concepts, load_scene_graphs
from attnlab.models.saliency.module import load_saliency_model
from attnlab.utils.config import Check, Fraction, NonNegativeInt, PositiveInt, Size2, UserError, resolve_device
from attnlab.utils.io import write_json

log = logging.getLogger(__name__)

__all__ = [
    "DissectionAnalysis",
    "IoUAccumulator",
    "threshold_maps",
    "iou_python_loop",
    "dissect",
    "run_dissection",
    "top_concepts",
    "THRESHOLD_SOURCES",
]

THRESHOLD_SOURCES = ("val", "dissection", "file", "fixed")


class IoUAccumulator:
    """Sums over images of per-image IoU and of intersections/unions, K bases × C concepts.

    Args:
        num_bases: K. num_concepts: C.
        keep_images: also keep each image's intersections and areas (:meth:`per_image`), for
            bootstrap intervals over images; costs K floats per (image, present concept).
    """

    def __init__(self, num_bases: int, num_concepts: int, device: Any = "cpu", keep_images: bool = False) -> None:
        K, C = int(num_bases), int(num_concepts)
        self.num_bases, self.num_concepts = K, C
        # per concept, four K-vectors summed over the images containing it: IoU, |B∧M|, |B∨M|, |B|
        self._sums = torch.zeros(C, 4, K, dtype=torch.float64, device=device)
        self.on_total = torch.zeros(K, dtype=torch.float64, device=device)  # Σ|B_k| over all images
        self.images = torch.zeros(C, dtype=torch.long, device=device)
        self.num_images = 0
        self.keep_images = keep_images
        self._on_sum: Tensor | None = None  # Σ_i B_k^i, K×hw, and Σ_i M_c^i, C×hw: for chance_dataset
        self._mask_sum: Tensor | None = None
        self._rows: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # image, concept, |B∧M| n×K, |M|
        self._basis_area: list[Tensor] = []
        self._on: Tensor | None = None  # scratch buffers, found by name in _buffer
        self._masks: Tensor | None = None

    @property
    def iou_sum(self) -> Tensor:
        """Σ over images containing c of IoU_kc, K×C."""
        return self._sums[:, 0].T

    @property
    def inter_sum(self) -> Tensor:
        return self._sums[:, 1].T

    @property
    def union_sum(self) -> Tensor:
        return self._sums[:, 2].T

    @property
    def on_with(self) -> Tensor:
        """Σ|B_k| over the images containing c, K×C."""
        return self._sums[:, 3].T

    def _buffer(self, name: str, shape: tuple[int, ...], device: Any) -> Tensor:
        """A float32 scratch tensor reused across batches (fresh large tensors cost page faults)."""
        buf = getattr(self, name)
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.device != torch.device(device):
            buf = torch.empty(shape, dtype=torch.float32, device=device)
            setattr(self, name, buf)
        return buf[: shape[0]]

    def update(self, on: Tensor, concepts: Tensor, masks: Tensor) -> None:
        """Add a batch.

        Args:
            on: B×K×h×w, the thresholded basis maps: bool, or float32 0/1 (faster, see
                :func:`threshold_maps`).
            concepts: B×n concept ids, −1 for padding.
            masks: B×n×h×w bool, the concepts' masks (empty for padding).
        """
        dev = self._sums.device
        B, n = concepts.shape
        K = on.shape[1]
        b = on.flatten(2)
        if b.dtype != torch.float32 or b.device != torch.device(dev):
            b = self._buffer("_on", tuple(b.shape), dev).copy_(b)
        # the masks plus one all-ones row: one product gives every |B_k ∧ M_c| and |B_k|
        m = self._buffer("_masks", (B, n + 1, b.shape[2]), dev)
        m[:, :n].copy_(masks.flatten(2))
        m[:, n].fill_(1.0)
        both = torch.bmm(m, b.transpose(1, 2))  # B×(n+1)×K
        inter, b_area = both[:, :n], both[:, n]
        m_area = m[:, :n].sum(2)  # B×n
        union = m_area[:, :, None] + b_area[:, None, :] - inter
        iou = inter / union.clamp(min=1)
        stats = torch.stack([iou, inter, union, b_area[:, None, :].expand_as(inter)], dim=2)  # B×n×4×K
        concepts = concepts.to(dev)
        valid = ((concepts >= 0) & (m_area > 0)).flatten().nonzero().squeeze(1)
        ids = concepts.flatten()[valid]
        self._sums.index_add_(0, ids, stats.reshape(B * n, 4, K).index_select(0, valid).double())
        self.on_total += b_area.sum(0).double()
        self.images.index_add_(0, ids, torch.ones_like(ids))
        if self._on_sum is None:
            self._on_sum = torch.zeros(K, b.shape[2], dtype=torch.float64, device=dev)
            self._mask_sum = torch.zeros(self.num_concepts, b.shape[2], dtype=torch.float64, device=dev)
        self._on_sum += b.sum(0).double()
        self._mask_sum.index_add_(0, ids, m[:, :n].reshape(B * n, -1).index_select(0, valid).double())
        if self.keep_images:
            image = torch.arange(B, device=dev).repeat_interleave(n)[valid] + self.num_images
            self._rows.append(
                (image.cpu(), ids.cpu(), inter.reshape(B * n, K)[valid].cpu(), m_area.flatten()[valid].cpu())
            )
            self._basis_area.append(b_area.cpu())
        self.num_images += B

    def per_image(self) -> dict[str, Tensor]:
        """The kept per-image numbers: for each (image, present concept) row its ``image`` index,
        ``concept`` id, ``inter`` |B_k ∧ M_c| (rows×K) and ``mask_area`` |M_c|; ``basis_area``
        |B_k| per image (N×K)."""
        if not self.keep_images:
            raise RuntimeError("IoUAccumulator(keep_images=False) kept no per-image numbers")
        empty = (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0, self.num_bases), torch.zeros(0))
        rows = self._rows or [empty]
        image, concept, inter, mask_area = (torch.cat(part) for part in zip(*rows))
        return {
            "image": image,
            "concept": concept,
            "inter": inter,
            "mask_area": mask_area,
            "basis_area": torch.cat(self._basis_area) if self._basis_area else torch.zeros(0, self.num_bases),
        }

    def image_mean(self) -> Tensor:
        """Mean per-image IoU over the images containing each concept, K×C (NaN: never present)."""
        images = self.images.double()[None, :]
        return torch.where(images > 0, self.iou_sum / images.clamp(min=1), torch.full_like(self.iou_sum, float("nan")))

    def dataset(self) -> Tensor:
        """Σ∩ / Σ∪ over all images, K×C."""
        union = self.union_sum + (self.on_total[:, None] - self.on_with)
        return torch.where(union > 0, self.inter_sum / union.clamp(min=1e-12), torch.zeros_like(union))

    def chance_dataset(self) -> Tensor:
        """:meth:`dataset` expected when each image's masks meet the basis maps of another image
        drawn at random (K×C): what a basis reaches from where it usually fires and where
        objects usually are, without seeing the objects.

        E Σ∩ = Σ_i M_c^i · (Σ_j B_k^j − B_k^i) / (N − 1), exactly; the union follows from the areas.
        """
        if self._on_sum is None or self.num_images < 2:
            return torch.zeros(self.num_bases, self.num_concepts, dtype=torch.float64, device=self._sums.device)
        inter = (self._on_sum @ self._mask_sum.T - self.inter_sum) / (self.num_images - 1)
        union = self._mask_sum.sum(1)[None, :] - inter + self.on_total[:, None]
        return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def threshold_maps(p: Tensor, thresholds: Tensor, out: Tensor | None = None) -> Tensor:
    """[p_k > τ_k] as float32 0/1 maps (B×K×h×w), made without a bool intermediate.

    ``out``: a float32 buffer of at least B×K×h×w reused across batches (large fresh tensors cost
    page faults on every batch).
    """
    tau = thresholds.to(p.device, p.dtype).view(1, -1, 1, 1)
    if out is None or out.numel() < p.numel() or out.device != p.device:
        out = torch.empty(p.numel(), dtype=torch.float32, device=p.device)
    return torch.gt(p, tau, out=out.view(-1)[: p.numel()].view(p.shape))


def bootstrap_weights(num_images: int, resamples: int, seed: int = 0) -> Tensor:
    """How often each image is drawn in each bootstrap resample (R×N counts summing to N per row)."""
    g = torch.Generator().manual_seed(int(seed))
    draws = torch.randint(num_images, (int(resamples), num_images), generator=g)
    return torch.zeros(int(resamples), num_images, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones_like(draws, dtype=torch.float64)
    )


def weighted_scores(per_image: dict[str, Tensor], num_concepts: int, weights: Tensor, score: str) -> Tensor:
    """Both dissection scores with image i counted ``weights[r, i]`` times: R×K×C.

    Weights of ones give :meth:`IoUAccumulator.image_mean` / :meth:`IoUAccumulator.dataset`
    (``score`` = "image_mean" | "dataset"); bootstrap counts (:func:`bootstrap_weights`) give the
    resampled statistic. Concepts absent from a resample are NaN (image_mean) or 0 (dataset).
    """
    image, concept = per_image["image"].long(), per_image["concept"].long()
    inter = per_image["inter"].double()
    mask_area = per_image["mask_area"].double()
    basis_area = per_image["basis_area"].double()
    w = weights.double()
    R, K = w.shape[0], inter.shape[1]
    num = torch.zeros(R, K, num_concepts, dtype=torch.float64)
    den = torch.zeros(R, K, num_concepts, dtype=torch.float64)
    if score == "dataset":
        # Σ∪ = Σ over images with c of (|M| − |B∧M|) + Σ over all images of |B| (absent c: ∪ = B)
        den += (w @ basis_area)[:, :, None]
    for c in concept.unique().tolist():
        rows = (concept == c).nonzero().squeeze(1)
        wr = w[:, image[rows]]  # R×rows
        if score == "image_mean":
            union = mask_area[rows, None] + basis_area[image[rows]] - inter[rows]
            num[:, :, c] = wr @ (inter[rows] / union.clamp(min=1))
            den[:, :, c] = wr.sum(1, keepdim=True)
        else:
            num[:, :, c] = wr @ inter[rows]
            den[:, :, c] += wr @ (mask_area[rows, None] - inter[rows])
    if score == "image_mean":
        return torch.where(den > 0, num / den.clamp(min=1e-12), torch.full_like(num, float("nan")))
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def aligned_bases(dataset_iou: Tensor, min_iou: float) -> Tensor:
    """Per basis (…×K×C → …×K bool): whether some concept has dataset-level IoU above ``min_iou``."""
    return torch.nan_to_num(dataset_iou, nan=0.0).amax(-1) > min_iou


def iou_python_loop(on: Tensor, concepts: Tensor, masks: Tensor, num_concepts: int) -> tuple[Tensor, Tensor]:
    """The reference's loop (image × present concept × basis): (Σ IoU K×C, images per concept C)."""
    K = on.shape[1]
    total = torch.zeros(K, num_concepts, dtype=torch.float64)
    images = torch.zeros(num_concepts, dtype=torch.long)
    for i in range(on.shape[0]):
        for j in range(concepts.shape[1]):
            c = int(concepts[i, j])
            mask = masks[i, j]
            if c < 0 or not bool(mask.any()):
                continue
            images[c] += 1
            for k in range(K):
                basis = on[i, k]
                inter = float((basis & mask).sum())
                union = float((basis | mask).sum())
                total[k, c] += inter / union if union else 0.0
    return total, images


def dissect(
    probabilities,
    loader: Iterable[dict[str, Any]],
    thresholds: Tensor,
    num_concepts: int,
    device: Any = "cpu",
    progress: bool = True,
    keep_images: bool = False,
) -> IoUAccumulator:
    """Run the model over the concept-mask batches and accumulate the IoUs.

    Args:
        probabilities: image batch B×3×H×W → P B×K×h×w.
        loader: batches from :func:`attnlab.data.scene_graphs.collate_concepts` (or the COCO reader's
            items, collated the same way).
        thresholds: τ, K.
        keep_images: keep per-image numbers for bootstrap intervals (``IoUAccumulator.per_image``).
    """
    from rich.progress import track

    acc = IoUAccumulator(len(thresholds), num_concepts, device, keep_images=keep_images)
    buffer = None
    with torch.no_grad():
        for batch in track(loader, description="dissection", disable=not progress, transient=True):
            p = probabilities(batch["image"].to(device))
            if p.shape[-2:] != batch["masks"].shape[-2:]:
                raise RuntimeError(
                    f"basis maps are {tuple(p.shape[-2:])} but concept masks {tuple(batch['masks'].shape[-2:])}"
                )
            if buffer is None or buffer.numel() < p.numel():
                buffer = torch.empty(p.numel(), dtype=torch.float32, device=p.device)
            acc.update(threshold_maps(p, thresholds, buffer), batch["concepts"], batch["masks"])
    return acc


def top_concepts(scores: Tensor, names: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
    """Per basis, its ``n`` best concepts (descending, NaN skipped) as (name, score)."""
    out = []
    s = torch.nan_to_num(scores, nan=-1.0)
    n = min(n, s.shape[1])
    values, index = s.topk(n, dim=1)
    for k in range(s.shape[0]):
        out.append([(names[int(c)], float(v)) for v, c in zip(values[k], index[k]) if v >= 0])
    return out


def _round(t: Tensor) -> list:
    return [[None if math.isnan(v) else round(v, 6) for v in row] for row in t.tolist()]


def _thresholds(
    source: str,
    model,
    cfg,
    q: float,
    bins: int,
    refine: bool,
    file: str | None,
    fixed: float,
    dissection_images,
    device: Any,
    progress: bool,
) -> tuple[Tensor, dict[str, Any]]:
    """τ per basis from the chosen source, and a description of how it was made."""

    K = model.net.num_bases
    info: dict[str, Any] = {"source": source}
    if source == "fixed":
        return torch.full((K,), float(fixed)), info | {"value": float(fixed)}
    if source == "file":
        import json

        path = Path(str(file or "")).expanduser()
        if not path.is_file():
            raise UserError(
                f"thresholds file not found: {path}; set analysis.thresholds.file or another thresholds.source"
            )
        values = json.loads(path.read_text())
        values = values.get("values", values) if isinstance(values, dict) else values
        if len(values) != K:
            raise UserError(f"{path} has {len(values)} thresholds but the model has K={K} bases")
        return torch.tensor(values, dtype=torch.float32), info | {"file": str(path)}
    if source == "val":
        import hydra

        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        datamodule.setup("validate")
        loader = datamodule.val_dataloader()
        batches = lambda: (b["image"].to(device) for b in loader)
    elif source == "dissection":
        batches = lambda: (b["image"].to(device) for b in dissection_images())
    else:
        raise UserError(
            f"analysis.thresholds.source={source!r} is not allowed; choose one of: {', '.join(THRESHOLD_SOURCES)}"
        )
    tau, n = basis_thresholds(model.net.probabilities, batches, K, q=q, bins=bins, refine=refine, progress=progress)
    return tau, info | {"method": "quantile", "q": q, "values_per_basis": n, "exact": refine}


def _concept_images(
    scene_graphs: str | None,
    annotations: str | Sequence[str] | None,
    image_dir: str | Sequence[str] | None,
    vocabulary: dict[str, Any],
    size: tuple[int, int],
    grid: tuple[int, int],
    mask_coverage: float,
    max_images: int | None,
) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """(dataset of concept-mask items, concept records, reader info) from either reader."""
    if annotations:
        opts = {"level": "category", "min_images": 1} | {
            k: v for k, v in vocabulary.items() if k in ("level", "min_images")
        }
        coco = load_coco_concepts(annotations, image_dir, opts["level"], int(opts["min_images"]), max_images)
        images = CocoConceptMaskDataset(coco, size, grid, mask_coverage)
        vocab = coco.vocabulary
        records = [
            {"name": n, "kind": k, "group": g, "graph_images": c}
            for n, k, g, c in zip(vocab.names, vocab.kinds, coco.groups, vocab.image_counts)
        ]
        return images, records, {"format": "coco", "annotations": annotations, "skipped": coco.skipped}

    if not scene_graphs:
        raise UserError("analysis=dissection needs analysis.annotations=<COCO instances.json> or analysis.scene_graphs")
    v_opts = {"include_attributes": True, "min_images": 1, "max_concepts": None} | {
        k: v for k, v in vocabulary.items() if k != "level"
    }
    graphs = load_scene_graphs(scene_graphs, limit=max_images)
    include_attributes = bool(v_opts.pop("include_attributes"))
    vocab = build_vocabulary(graphs, include_attributes=include_attributes, **v_opts)
    folder = image_dir or Path(str(scene_graphs)).expanduser().parent / "images"  # GQA's layout
    images = ConceptMaskDataset(graphs, vocab, folder, size, grid, include_attributes, mask_coverage)
    records = [
        {"name": n, "kind": k, "group": None, "graph_images": c}
        for n, k, c in zip(vocab.names, vocab.kinds, vocab.image_counts)
    ]
    return images, records, {"format": "scene_graphs", "scene_graphs": scene_graphs}


def _interval(values: Tensor) -> list[float]:
    """The 95% percentile interval of bootstrap values (NaN resamples ignored)."""
    v = values[~torch.isnan(values)].double()
    if not len(v):
        return [float("nan"), float("nan")]
    return [round(float(q), 6) for q in torch.quantile(v, torch.tensor([0.025, 0.975], dtype=torch.float64))]


def run_dissection(
    checkpoint: str,
    scene_graphs: str | None,
    image_dir: str | Sequence[str] | None,
    output_dir: str,
    thresholds: dict[str, Any] | None = None,
    vocabulary: dict[str, Any] | None = None,
    mask_coverage: float = 0.5,
    image_size: Sequence[int] | None = None,
    max_images: int | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    top_n: int = 10,
    device: str = "cpu",
    progress: bool = True,
    annotations: str | Sequence[str] | None = None,
    aligned_iou: float = 0.04,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Dissect the bases of a trained factorised saliency model.

    Args:
        checkpoint: a phase-1 or phase-2 checkpoint (their P maps are identical: phase 2 freezes them).
        scene_graphs: GQA ``train_sceneGraphs.json``; image_dir: its ``<imageId>.jpg`` images
            (None: ``images/`` beside the file, GQA's layout).
        annotations: instead, COCO instances file(s) (:mod:`attnlab.data.coco_concepts`: concepts
            are categories, or supercategories with ``vocabulary.level``); image_dir: one folder per
            file (None: COCO's layout).
        thresholds: ``source`` (val | dissection | file | fixed), ``q``, ``bins``, ``refine``,
            ``file``, ``value``.
        vocabulary: scene graphs: options of :func:`attnlab.data.scene_graphs.build_vocabulary` plus
            ``include_attributes``; COCO: ``level`` and ``min_images``.
        mask_coverage: a feature cell is in a concept's mask when its boxes (masks) cover this fraction.
        image_size: network input (default: the training data's ``image_size``).
        max_images: use only the first N scene graphs (photos).
        aligned_iou: a basis is aligned to a concept when their dataset-level IoU exceeds this
            (Network Dissection's 0.04, Bau et al. 2017).
        bootstrap: resamples of the images for 95% intervals (0: none); keeps K floats per
            (image, present concept) and writes them to ``dissection_images.pt`` for contributions.

    Returns:
        Every number (``python -m attnlab.analyze`` writes it to ``dissection.json``): thresholds,
        concepts, the K×C ``iou_image_mean``, ``iou_dataset`` and ``iou_chance`` matrices
        (:meth:`IoUAccumulator.chance_dataset`), each basis's top concepts, and a ``summary``.
        ``thresholds.json`` is written to ``output_dir`` for reuse (``thresholds.source=file``).
    """
    from torch.utils.data import DataLoader

    t_opts = {"source": "val", "q": 0.8, "bins": 4096, "refine": True, "file": None, "value": 0.8} | dict(
        thresholds or {}
    )
    model, cfg = load_saliency_model(checkpoint, device)
    if model.net.bases is None:
        raise UserError(f"{checkpoint} is an unfactorised baseline (bases=0); dissection needs model.bases > 0")
    size = tuple(image_size or cfg.data.get("image_size") or INPUT_SIZE)
    with torch.no_grad():
        grid = tuple(model.net.probabilities(torch.zeros(1, 3, *size, device=device)).shape[-2:])

    images, concepts, reader = _concept_images(
        scene_graphs, annotations, image_dir, dict(vocabulary or {}), size, grid, mask_coverage, max_images
    )
    names = [c["name"] for c in concepts]
    make_loader = lambda: DataLoader(
        images, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_concepts
    )
    K = model.net.num_bases
    log.info("dissection: %d images, %d concepts, K=%d bases, grid %s", len(images), len(names), K, grid)

    tau, t_info = _thresholds(
        t_opts["source"],
        model,
        cfg,
        float(t_opts["q"]),
        int(t_opts["bins"]),
        bool(t_opts["refine"]),
        t_opts["file"],
        float(t_opts["value"]),
        make_loader,
        device,
        progress,
    )
    acc = dissect(model.net.probabilities, make_loader(), tau, len(names), device, progress, bootstrap > 0)
    image_mean, dataset, chance = acc.image_mean().cpu(), acc.dataset().cpu(), acc.chance_dataset().cpu()
    best = top_concepts(image_mean, names, top_n)
    best_dataset = top_concepts(dataset, names, 1)
    aligned = aligned_bases(dataset, aligned_iou)
    aligned_chance = aligned_bases(chance, aligned_iou)
    out = Path(output_dir)
    bases = [
        {
            "basis": k,
            "threshold": round(float(tau[k]), 6),
            "top": [{"concept": n, "iou": round(v, 6)} for n, v in best[k]],
            "top_dataset": [{"concept": n, "iou": round(v, 6)} for n, v in best_dataset[k]],
            "aligned": bool(aligned[k]),
        }
        for k in range(K)
    ]
    summary: dict[str, Any] = {
        "images": acc.num_images,
        "concepts": len(names),
        "bases": K,
        "bases_with_a_concept": int(sum(1 for b in best if b and b[0][1] > 0)),
        "aligned_iou": aligned_iou,
        "bases_aligned": int(aligned.sum()),
        "bases_aligned_chance": int(aligned_chance.sum()),
        "best_iou": float(torch.nan_to_num(image_mean, nan=0.0).max()),
    }
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "reader": reader,
        "num_bases": K,
        "num_images": acc.num_images,
        "image_size": list(size),
        "grid": list(grid),
        "mask_coverage": mask_coverage,
        "thresholds": t_info | {"values": [round(float(v), 6) for v in tau]},
        "concepts": [r | {"mask_images": int(m)} for r, m in zip(concepts, acc.images.cpu())],
        "iou_image_mean": _round(image_mean),
        "iou_dataset": _round(dataset),
        "iou_chance": _round(chance),
        "bases": bases,
    }
    if bootstrap > 0:
        per_image = acc.per_image()
        torch.save(per_image, out / "dissection_images.pt")
        result["per_image"] = str(out / "dissection_images.pt")
        weights = bootstrap_weights(acc.num_images, bootstrap, seed)
        resampled = torch.cat(
            [weighted_scores(per_image, len(names), chunk, "dataset").float() for chunk in weights.split(100)]
        )  # R×K×C
        share = aligned_bases(resampled, aligned_iou).double().mean(1)
        # beyond chance: the lower end of the pair's interval above what the spatial prior gives
        low = torch.quantile(resampled, 0.025, dim=0).double()
        beyond = ((low > chance) & (dataset > aligned_iou)).any(1)
        summary["bases_aligned_share_interval"] = _interval(share)
        summary["bases_aligned_beyond_chance"] = int(beyond.sum())
        summary["bootstrap"] = {"resamples": bootstrap, "seed": seed}
        top = dataset.argmax(1)
        for k, b in enumerate(bases):
            b["top_dataset"][0]["interval"] = _interval(resampled[:, k, top[k]])
            b["top_dataset"][0]["chance"] = round(float(chance[k, top[k]]), 6)
            b["aligned_beyond_chance"] = bool(beyond[k])
    write_json(out / "thresholds.json", t_info | {"values": [float(v) for v in tau]})
    result["summary"] = summary
    return result


def _thresholds_ok(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, dict) or set(v) - {"source", "q", "bins", "refine", "file", "value"}:
        return False
    return (
        v.get("source", "val") in THRESHOLD_SOURCES
        and 0 <= float(v.get("q", 0.8)) <= 1
        and int(v.get("bins", 4096)) >= 2
    )


ThresholdOptions = Check(
    _thresholds_ok,
    "source in val|dissection|file|fixed, q in [0, 1], bins >= 2 (keys: source, q, bins, refine, file, value)",
)


@dataclass
class DissectionAnalysis:
    """``analysis=dissection``: IoU of every basis with every concept of scene graphs or COCO annotations.

    Args: see :func:`run_dissection`; ``checkpoint`` is the top-level ``ckpt_path``; ``annotations``
    (a COCO instances file or a list of them) wins over ``scene_graphs``.
    """

    checkpoint: str | None = None
    scene_graphs: Optional[str] = None
    annotations: Optional[Union[str, list[str]]] = None
    image_dir: Optional[Union[str, list[Optional[str]]]] = None
    thresholds: Optional[Annotated[dict[str, Any], ThresholdOptions]] = field(default_factory=dict)
    vocabulary: Optional[dict[str, Any]] = field(default_factory=dict)
    mask_coverage: Fraction = 0.5
    image_size: Optional[Size2] = None
    max_images: Optional[PositiveInt] = None
    batch_size: PositiveInt = 16
    num_workers: NonNegativeInt = 0
    top_n: PositiveInt = 10
    aligned_iou: Fraction = 0.04
    bootstrap: NonNegativeInt = 1000
    seed: int = 0
    device: str = "cpu"
    name: str = field(default="dissection", init=False)
    needs_model: bool = field(default=False, init=False)

    def run(self, out_dir: Path, **_: Any) -> dict[str, Any]:
        if not self.checkpoint:
            raise UserError("analysis=dissection needs ckpt_path=<checkpoint of a saliency model with bases>")
        return run_dissection(
            self.checkpoint,
            self.scene_graphs,
            self.image_dir,
            str(out_dir),
            thresholds=self.thresholds,
            vocabulary=self.vocabulary,
            mask_coverage=self.mask_coverage,
            image_size=self.image_size,
            max_images=self.max_images,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            top_n=self.top_n,
            device=resolve_device(self.device, "analysis.device"),
            annotations=self.annotations,
            aligned_iou=self.aligned_iou,
            bootstrap=self.bootstrap,
            seed=self.seed,
        )

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        s = results["summary"]
        share = s.get("bases_aligned_share_interval")
        interval = f" [{share[0]:.0%}, {share[1]:.0%}]" if share else ""
        lines = [
            f"{s['images']} images, {s['concepts']} concepts, {s['bases']} bases; "
            f"{s['bases_aligned']} aligned (dataset IoU > {s['aligned_iou']}){interval}, "
            f"{s['bases_aligned_chance']} by the spatial prior alone (chance), "
            f"{s.get('bases_aligned_beyond_chance', '?')} beyond it; best mean IoU {s['best_iou']:.3f}",
        ]
        ranked = sorted(results["bases"], key=lambda b: -(b["top"][0]["iou"] if b["top"] else 0))
        for b in ranked[:5]:
            top = ", ".join(f"{t['concept']} {t['iou']:.2f}" for t in b["top"][:3])
            lines.append(f"  basis {b['basis']}: {top}")
        return lines
