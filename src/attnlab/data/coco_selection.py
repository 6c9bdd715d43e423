"""Reading COCO instance annotations and selecting two large, little-overlapping objects per photo.

Selection per image (the reference's rule, thresholds configurable): keep non-crowd objects larger
than ``min_area`` of the image, largest first; add their masks one by one and stop before the first
one that makes the pixels covered twice exceed ``max_overlap`` of the image; keep the first
``num_objects``; drop the image if fewer remain. Every dropped image is counted under one reason
(:data:`DROP_REASONS`), so a user can see why a subset keeps so few photos.

Labels are COCO supercategories, or category names when the dataset has none.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["DROP_REASONS", "build_metadata", "category_labels", "read_coco", "select_objects", "selection_outcome"]

# Why an image keeps fewer than ``num_objects`` objects, checked in this order:
DROP_REASONS = {
    "no_annotations": "no object annotated (in the categories used)",
    "crowd": "too few objects over min_area because crowd annotations do not count",
    "too_few_over_min_area": "fewer than num_objects objects cover more than min_area of the image",
    "unreadable_segmentation": "enough objects, but some segmentations cannot be decoded",
    "overlap": "enough objects, but the overlap rule stops before num_objects",
}


def _rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE for a polygon list, an uncompressed RLE or a compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    if isinstance(segmentation, dict):
        counts = segmentation["counts"]
        return {"size": list(segmentation["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}
    raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")


def selection_outcome(
    annotations: Sequence[dict],
    height: int,
    width: int,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
) -> tuple[list[tuple[dict, dict]], str | None]:
    """The ``num_objects`` largest, little-overlapping objects of one image, and why there are none.

    Args:
        annotations: the image's COCO annotations (``segmentation``, ``area``, ``iscrowd``).
        height, width: image size in pixels.
        min_area: objects must cover more than this fraction of the image.
        max_overlap: stop once pixels covered by two or more kept masks exceed this fraction.
        num_objects: objects needed.

    Returns:
        ``(kept, reason)``: ``kept`` is ``num_objects`` (annotation, compressed RLE) pairs, largest
        first, and ``reason`` is None; or ``kept == []`` and ``reason`` a key of :data:`DROP_REASONS`.
    """
    from pycocotools import mask as mask_utils

    if not annotations:
        return [], "no_annotations"
    image_area = float(height * width)
    large, large_crowd, large_unreadable = [], 0, 0
    for ann in annotations:
        area = ann.get("area")
        if ann.get("iscrowd", 0):
            large_crowd += area is not None and area > min_area * image_area
            continue
        if area is None or area > min_area * image_area:  # cheap filter before decoding polygons
            try:
                rle = _rle(ann["segmentation"], height, width)
            except (KeyError, ValueError, TypeError, IndexError):
                large_unreadable += area is not None
                continue
            area = float(area) if area is not None else float(mask_utils.area(rle))
            if area > min_area * image_area:
                large.append((area, ann, rle))
    if len(large) < num_objects:
        if len(large) + large_unreadable >= num_objects:
            return [], "unreadable_segmentation"
        return [], "crowd" if len(large) + large_crowd >= num_objects else "too_few_over_min_area"
    large.sort(key=lambda item: -item[0])  # stable: ties keep file order

    kept: list[tuple[dict, dict]] = []
    union = twice = None  # pixels covered at least once / at least twice
    for _, ann, rle in large:
        if union is None:
            union = rle
        else:
            overlap = mask_utils.merge([union, rle], intersect=True)
            twice = overlap if twice is None else mask_utils.merge([twice, overlap])
            if mask_utils.area(twice) > max_overlap * image_area:
                break
            union = mask_utils.merge([union, rle])
        kept.append((ann, rle))
        if len(kept) == num_objects:
            return kept, None
    return [], "overlap"


def select_objects(
    annotations: Sequence[dict],
    height: int,
    width: int,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
) -> list[tuple[dict, dict]]:
    """:func:`selection_outcome` without the reason: the kept (annotation, RLE) pairs, or ``[]``."""
    return selection_outcome(annotations, height, width, min_area, max_overlap, num_objects)[0]


def category_labels(categories: Sequence[dict], use_supercategory: bool) -> dict[int, str]:
    """Category id -> label: the supercategory, or the name when any category lacks one."""
    has_super = all(c.get("supercategory") for c in categories)
    if use_supercategory and not has_super:
        log.warning("annotation categories have no supercategory: using category names as labels")
    use = use_supercategory and has_super
    return {int(c["id"]): str(c["supercategory"] if use else c["name"]) for c in categories}


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # not NaN


def _text(v) -> bool:
    return isinstance(v, str) and bool(v)


# What attnlab reads of each entry (field: (check, what is expected)); segmentations are each reader's
# to decode or skip and count.
_ENTRY_FIELDS = {
    "images": {"id": (_integer, "an integer"), "file_name": (_text, "a file name"),
               "height": (lambda v: _integer(v) and v > 0, "a positive integer"),
               "width": (lambda v: _integer(v) and v > 0, "a positive integer")},
    "annotations": {"id": (_integer, "an integer"), "image_id": (_integer, "an integer"),
                    "category_id": (_integer, "an integer"),
                    "area": (lambda v: v is None or _real(v) and v >= 0, "a non-negative number"),
                    "iscrowd": (lambda v: v in (None, 0, 1) and not isinstance(v, bool), "0 or 1")},
    "categories": {"id": (_integer, "an integer"), "name": (_text, "a name")},
}  # fmt: skip


def _instances_problem(raw: Any) -> str | None:
    """The first way ``raw`` is not a COCO instances document, or None."""
    missing = [k for k in _ENTRY_FIELDS if not isinstance(raw, dict) or k not in raw]
    if missing:
        return (
            f"not a COCO instances file: no {', '.join(missing)} "
            "(a GQA/Visual Genome scene-graph file goes to analysis.scene_graphs)"
        )
    for section, fields in _ENTRY_FIELDS.items():
        if not isinstance(raw[section], list):
            return f"{section} is a {type(raw[section]).__name__}, not a list"
        for k, entry in enumerate(raw[section]):
            if not isinstance(entry, dict):
                return f"{section}[{k}] is a {type(entry).__name__}, not an object"
            for name, (ok, expected) in fields.items():
                if not ok(entry.get(name)):
                    return f"{section}[{k}].{name} is {json.dumps(entry.get(name))[:40]}; expected {expected}"
            supercategory = entry.get("supercategory")
            if section == "categories" and supercategory is not None and not isinstance(supercategory, str):
                return f"categories[{k}].supercategory is {json.dumps(supercategory)[:40]}; expected a name"
    return None


def read_coco(path: Path):
    """A ``pycocotools.coco.COCO`` index of an instances file, its fields checked first (pycocotools
    itself would fail later with a KeyError or TypeError); :class:`UserError` when unreadable."""
    from pycocotools.coco import COCO

    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as ex:
        raise UserError(f"cannot read COCO annotations {path}: {type(ex).__name__}: {ex}") from None
    problem = _instances_problem(raw)
    if problem:
        raise UserError(f"{path}: {problem}")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
        coco = COCO()
        coco.dataset = raw
        coco.createIndex()
    return coco


def build_metadata(
    annotation_file: str | Path,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
    use_supercategory: bool = True,
) -> dict[str, Any]:
    """Select objects in every image of a COCO instances file.

    Returns:
        ``{"classes": sorted labels of annotated categories, "images": [{"id", "file_name",
        "height", "width", "objects": [{"id", "label", "area", "rle"}]}], "counts": {"images",
        "annotations", "selected", "excluded_fewer_than_two" (all dropped images, whatever the
        reason), "excluded": {reason: images} for every key of DROP_REASONS}}``.
    """
    from tqdm import tqdm

    path = Path(annotation_file)
    coco = read_coco(path)
    labels = category_labels(list(coco.cats.values()), use_supercategory)
    annotated = {int(a["category_id"]) for a in coco.anns.values()}
    classes = sorted({labels[c] for c in annotated if c in labels})
    images: list[dict] = []
    reasons: Counter = Counter()
    for image_id in tqdm(sorted(coco.imgs), desc=f"selecting objects ({path.name})", unit="img", disable=None):
        info = coco.imgs[image_id]
        anns = [a for a in coco.imgToAnns.get(image_id, []) if int(a["category_id"]) in labels]
        kept, reason = selection_outcome(
            anns, int(info["height"]), int(info["width"]), min_area, max_overlap, num_objects
        )
        if reason is not None:
            reasons[reason] += 1
            continue
        objects = [
            {
                "id": a.get("id"),
                "label": labels[int(a["category_id"])],
                "area": float(a.get("area") or 0),
                "rle": rle["counts"].decode("ascii"),
            }
            for a, rle in kept
        ]
        images.append(
            {
                "id": image_id,
                "file_name": info["file_name"],
                "height": int(info["height"]),
                "width": int(info["width"]),
                "objects": objects,
            }
        )
    counts = {
        "images": len(coco.imgs),
        "annotations": len(coco.anns),
        "selected": len(images),
        "excluded_fewer_than_two": sum(reasons.values()),
        "excluded": {reason: reasons.get(reason, 0) for reason in DROP_REASONS},
    }
    return {"classes": classes, "images": images, "counts": counts}
