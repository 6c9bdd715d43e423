"""COCO instance annotations as dissection concepts: categories with their instance masks at a
model's feature resolution, supercategories as the coarse level.

The counterpart of :mod:`attnlab.data.scene_graphs` for COCO-format ``instances_*.json`` files: items
have the same layout (``image``, ``concepts``, ``masks``, ``image_id``), so the dissection computes
the same IoU with the same thresholds whichever reader made them. A concept's region is the union
of its instance masks (decoded by pycocotools; crowd regions included, since they mark where the
category is); a feature cell belongs to it when the masks cover at least ``coverage`` of the cell's
area (exact fractions), and every instance keeps at least its best-covered cell, as every box
keeps the cell of its centre in the scene-graph reader.

Usage::

    concepts = load_coco_concepts(["instances_train2017.json", "instances_val2017.json"])
    masks = CocoConceptMaskDataset(concepts, image_size=(168, 224), grid=(11, 14))
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from attnlab.data.coco_selection import read_coco
from attnlab.data.scene_graphs import Vocabulary
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["LEVELS", "CocoConcepts", "CocoConceptMaskDataset", "CocoImage", "grid_masks", "load_coco_concepts"]

LEVELS = ("category", "supercategory")


@dataclass
class CocoImage:
    """One photo: a unique id (``<file stem>:<COCO id>`` across files), its path, size, and the
    RLE of every instance per concept id."""

    image_id: str
    path: Path
    height: int
    width: int
    instances: dict[int, list[dict]]


@dataclass
class CocoConcepts:
    """What :func:`load_coco_concepts` read: the images, the vocabulary (index = concept id), each
    concept's coarse group (its supercategory; None at the supercategory level or when the file has
    none), and what was skipped, counted."""

    images: list[CocoImage]
    vocabulary: Vocabulary
    groups: list[str | None]
    skipped: dict[str, Any]


def _default_image_dir(annotation_file: Path) -> Path:
    """COCO's layout: ``annotations/instances_val2017.json`` → ``val2017/`` beside ``annotations/``;
    otherwise the annotation file's folder (``file_name`` may hold a subfolder, as labelme2coco writes)."""
    stem = annotation_file.stem
    if stem.startswith("instances_"):
        candidate = annotation_file.parent.parent / stem.removeprefix("instances_")
        if candidate.is_dir():
            return candidate
    return annotation_file.parent


def load_coco_concepts(
    annotation_files: str | Path | Sequence[str | Path],
    image_dirs: str | Path | Sequence[str | Path] | None = None,
    level: str = "category",
    min_images: int = 1,
    max_images: int | None = None,
) -> CocoConcepts:
    """Read one or more COCO instances files (e.g. train2017 and val2017) into dissection concepts.

    Args:
        image_dirs: one folder per annotation file that its ``file_name``s are relative to; None
            (or None for a file): COCO's layout, see :func:`_default_image_dir`.
        level: concepts are the categories (``category``) or the supercategories (``supercategory``,
            each the union of its categories' masks).
        min_images: keep concepts with instances in at least this many of the photos found.
        max_images: use only the first N photos (sorted by file, then id).

    Skipped and counted (``CocoConcepts.skipped``, logged): photos whose file is missing, photos
    without any instance (or only of concepts under ``min_images``), instances whose segmentation
    cannot be decoded or is empty, annotations of images or categories the file does not list, and
    categories with no instance in the photos kept.
    """
    from pycocotools import mask as mask_utils

    if level not in LEVELS:
        raise UserError(f"vocabulary.level={level!r} is not allowed; choose one of: {', '.join(LEVELS)}")
    files = [annotation_files] if isinstance(annotation_files, (str, Path)) else list(annotation_files)
    if not files:
        raise UserError("analysis.annotations is empty; give a COCO instances.json (or a list of them)")
    dirs = list(image_dirs) if isinstance(image_dirs, (list, tuple)) else [image_dirs] * len(files)
    if len(dirs) != len(files):
        raise UserError(f"{len(files)} annotation files but {len(dirs)} image folders; give one folder per file")

    names: dict[str, str | None] = {}  # concept name -> its supercategory, in first-seen order
    images: list[CocoImage] = []
    skipped: Counter[str] = Counter()
    for file, folder in zip(files, dirs):
        path = Path(str(file)).expanduser()
        if not path.is_file():
            raise UserError(f"COCO annotations not found: {path}")
        coco = read_coco(path)
        root = Path(str(folder)).expanduser() if folder else _default_image_dir(path)
        concept_of: dict[int, str] = {}
        for cat in sorted(coco.cats.values(), key=lambda c: int(c["id"])):
            name = str(cat["name"])
            sup = cat.get("supercategory") or None
            key = name if level == "category" else (sup or name)
            concept_of[int(cat["id"])] = key
            names.setdefault(key, str(sup) if sup and level == "category" else None)
        unlisted = sum(1 for a in coco.anns.values() if a["image_id"] not in coco.imgs)
        skipped["annotations_of_unlisted_images"] += unlisted
        for coco_id in sorted(coco.imgs):
            info = coco.imgs[coco_id]
            image_path = root / str(info["file_name"])
            if not image_path.is_file() and (root / Path(str(info["file_name"])).name).is_file():
                image_path = root / Path(str(info["file_name"])).name  # file_name with a folder the copy lacks
            anns = coco.imgToAnns.get(coco_id, [])
            if not image_path.is_file():
                skipped["missing_image_files"] += 1
                skipped["annotations_of_missing_images"] += len(anns)
                continue
            instances: dict[int, list[dict]] = {}
            for a in anns:
                concept = concept_of.get(int(a["category_id"]))
                if concept is None:
                    skipped["annotations_of_unlisted_categories"] += 1
                    continue
                try:
                    rle = coco.annToRLE(a)  # polygons, RLE and compressed RLE, at the listed size
                    empty = mask_utils.area(rle) == 0
                except (KeyError, ValueError, TypeError, IndexError):
                    skipped["unreadable_segmentations"] += 1
                    continue
                if empty:
                    skipped["empty_segmentations"] += 1
                    continue
                instances.setdefault(concept, []).append(rle)  # keyed by name until the vocabulary is fixed
            if not instances:
                skipped["images_without_instances"] += 1
                continue
            h, w = int(info["height"]), int(info["width"])
            images.append(CocoImage(f"{path.stem}:{coco_id}", image_path, h, w, instances))  # type: ignore[arg-type]
            if max_images is not None and len(images) >= max_images:
                break
        if max_images is not None and len(images) >= max_images:
            break
    if not images:
        raise UserError(
            f"no photo with an instance found for {', '.join(map(str, files))} "
            f"({skipped['missing_image_files']} listed photos missing; set analysis.image_dir to their folder)"
        )

    counts = Counter(name for im in images for name in im.instances)
    kept = [n for n in names if counts[n] >= max(1, min_images)]
    unused = [n for n in names if n not in kept]
    if not kept:
        raise UserError(f"no concept has instances in at least min_images={min_images} of the {len(images)} photos")
    vocab = Vocabulary(kept, [level] * len(kept), [counts[n] for n in kept])
    for im in images:
        im.instances = {vocab.index[n]: rles for n, rles in im.instances.items() if n in vocab.index}
    skipped["images_with_only_rarer_concepts"] = sum(1 for im in images if not im.instances)
    images = [im for im in images if im.instances]
    report = {k: v for k, v in skipped.items() if v} | {
        "concepts_without_instances": len(unused),
        "concepts_without_instances_names": unused,
    }
    for what, n in report.items():
        if n and what != "concepts_without_instances_names":
            log.warning("COCO concepts: %s: %d (skipped)", what.replace("_", " "), n)
    return CocoConcepts(images, vocab, [names[n] for n in kept], report)


def _cell_weights(pixels: int, cells: int) -> np.ndarray:
    """cells×pixels: the share of each cell's extent that each pixel covers (cell edges may fall
    inside pixels)."""
    edges = np.arange(cells + 1) * (pixels / cells)
    start = np.arange(pixels)
    overlap = np.minimum(edges[1:, None], start[None, :] + 1) - np.maximum(edges[:-1, None], start[None, :])
    return np.clip(overlap, 0, None) / (pixels / cells)


def grid_masks(rles: Sequence[dict], grid: tuple[int, int], coverage: float = 0.5) -> np.ndarray:
    """The union of instance masks on an h×w grid (bool).

    A cell is in the mask when the union covers at least ``coverage`` of its area (exact area
    fractions: Wy · mask · Wxᵀ with the pixels' overlaps with each cell); each instance also keeps
    its best-covered cell.
    """
    from pycocotools import mask as mask_utils

    h, w = grid
    decoded = [mask_utils.decode(rle).astype(np.float64) for rle in rles]
    if not decoded:
        return np.zeros((h, w), dtype=bool)
    wy, wx = _cell_weights(decoded[0].shape[0], h), _cell_weights(decoded[0].shape[1], w)
    union = wy @ np.max(decoded, axis=0) @ wx.T >= coverage - 1e-9
    for m in decoded:
        union.flat[int((wy @ m @ wx.T).argmax())] = True  # small objects do not vanish
    return union


class CocoConceptMaskDataset(Dataset):
    """Photos of :class:`CocoConcepts` with their concept masks at feature resolution.

    Items as :class:`attnlab.data.scene_graphs.ConceptMaskDataset`'s: ``image`` 3×H×W in [0, 1]
    (resized to ``image_size`` ignoring aspect ratio, like the models' training data), ``concepts``
    n, ``masks`` n×h×w bool, ``image_id``.
    """

    def __init__(
        self, concepts: CocoConcepts, image_size: Sequence[int], grid: Sequence[int], coverage: float = 0.5
    ) -> None:
        self.images = concepts.images
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.grid = (int(grid[0]), int(grid[1]))
        self.coverage = coverage

    def __len__(self) -> int:
        return len(self.images)

    def masks(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(concept ids n, masks n×h×w bool) of photo i."""
        im = self.images[i]
        ids = sorted(im.instances)
        masks = [grid_masks(im.instances[c], self.grid, self.coverage) for c in ids]
        keep = [j for j, m in enumerate(masks) if m.any()]
        return (
            torch.tensor([ids[j] for j in keep], dtype=torch.long),
            torch.from_numpy(np.stack([masks[j] for j in keep])) if keep else torch.zeros(0, *self.grid, dtype=bool),
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        im = self.images[i]
        with Image.open(im.path) as pil:
            pil = pil.convert("RGB").resize(self.image_size[::-1], Image.BILINEAR)
            x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
        ids, masks = self.masks(i)
        return {"image": x, "concepts": ids, "masks": masks, "image_id": im.image_id}
