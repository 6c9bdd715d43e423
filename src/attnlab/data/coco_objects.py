"""COCO objects for object-based attention: two large, little-overlapping objects per photo.

Selection per image (the reference's rule, thresholds configurable): keep non-crowd objects larger
than ``min_area`` of the image, largest first; add their masks one by one and stop before the first
one that makes the pixels covered twice exceed ``max_overlap`` of the image; keep the first
``num_objects``; drop the image if fewer remain. Labels are COCO supercategories, or category names
when the dataset has none, sorted alphabetically.

The selection is cached as JSON (masks as compressed RLE) in ``cache_dir``, keyed by the annotation
file and the selection settings, rebuilt when the file's contents change and written atomically.

Items: the photo padded to a square with grey (127), resized (bilinear) to ``image_size`` and scaled
to [0, 1]; per object the target (1−s)·x + s·(x on the object, 0 elsewhere), which is what perfect
gating of strength s yields when it attends that object. Unlike the reference, targets are computed
in floating point (no uint8 truncation).

Layouts under ``root``: COCO 2017 (``annotations/instances_{train,val}2017.json`` with ``train2017/``
and ``val2017/``; train2017 is split into train/val, val2017 is the test set), or a COCO-format export
with one ``annotations.json`` whose ``file_name``s are relative to ``root`` (split into train/val/test).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from attnlab.data.base import SplitDataModule
from attnlab.utils.config import UserError, at_least, between, greater, register_schema

log = logging.getLogger(__name__)

__all__ = [
    "COCOObjects",
    "COCOObjectsDataModule",
    "build_metadata",
    "inverse_frequency_weights",
    "load_metadata",
    "select_objects",
]

CACHE_FORMAT = 1
PAD_FILL = 127  # grey padding of the input, as in the reference
SINGLE_FILE = "annotations.json"


# --- selection ---------------------------------------------------------------------------------


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


def select_objects(
    annotations: Sequence[dict],
    height: int,
    width: int,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
) -> list[tuple[dict, dict]]:
    """The ``num_objects`` largest, little-overlapping objects of one image, or ``[]``.

    Args:
        annotations: the image's COCO annotations (``segmentation``, ``area``, ``iscrowd``).
        height, width: image size.
        min_area: objects must cover more than this fraction of the image.
        max_overlap: stop once pixels covered by two or more kept masks exceed this fraction.
        num_objects: objects needed.

    Returns:
        (annotation, compressed RLE) pairs, largest first. Annotations whose segmentation cannot
        be read are ignored.
    """
    from pycocotools import mask as mask_utils

    image_area = float(height * width)
    large = []
    for ann in annotations:
        if ann.get("iscrowd", 0):
            continue
        area = ann.get("area")
        if area is None or area > min_area * image_area:  # cheap filter before decoding polygons
            try:
                rle = _rle(ann["segmentation"], height, width)
            except (KeyError, ValueError, TypeError, IndexError):
                continue
            area = float(area) if area is not None else float(mask_utils.area(rle))
            if area > min_area * image_area:
                large.append((area, ann, rle))
    if len(large) < num_objects:
        return []
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
            break
    return kept if len(kept) == num_objects else []


def category_labels(categories: Sequence[dict], use_supercategory: bool) -> dict[int, str]:
    """Category id -> label: the supercategory, or the name when any category lacks one."""
    has_super = all(c.get("supercategory") for c in categories)
    if use_supercategory and not has_super:
        log.warning("annotation categories have no supercategory: using category names as labels")
    use = use_supercategory and has_super
    return {int(c["id"]): str(c["supercategory"] if use else c["name"]) for c in categories}


# --- metadata cache ----------------------------------------------------------------------------


def _fingerprint(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_coco(path: Path):
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AssertionError) as ex:
        raise UserError(f"cannot read COCO annotations {path}: {type(ex).__name__}: {ex}") from ex


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
        "height", "width", "objects": [{"id", "label", "area", "rle"}]}], "counts": {...}}``.
    """
    from tqdm import tqdm

    path = Path(annotation_file)
    coco = _read_coco(path)
    labels = category_labels(list(coco.cats.values()), use_supercategory)
    annotated = {int(a["category_id"]) for a in coco.anns.values()}
    classes = sorted({labels[c] for c in annotated if c in labels})
    images, excluded = [], 0
    for image_id in tqdm(sorted(coco.imgs), desc=f"selecting objects ({path.name})", unit="img", disable=None):
        info = coco.imgs[image_id]
        anns = [a for a in coco.imgToAnns.get(image_id, []) if int(a["category_id"]) in labels]
        kept = select_objects(anns, int(info["height"]), int(info["width"]), min_area, max_overlap, num_objects)
        if not kept:
            excluded += 1
            continue
        objects = [
            {"id": a.get("id"), "label": labels[int(a["category_id"])], "area": float(a.get("area") or 0),
             "rle": rle["counts"].decode("ascii")}
            for a, rle in kept
        ]
        images.append({"id": image_id, "file_name": info["file_name"], "height": int(info["height"]),
                       "width": int(info["width"]), "objects": objects})
    counts = {"images": len(coco.imgs), "annotations": len(coco.anns), "selected": len(images),
              "excluded_fewer_than_two": excluded}
    return {"classes": classes, "images": images, "counts": counts}


def _write_atomic(path: Path, data: Any) -> None:
    """Compact JSON through a unique temp file in the same folder, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_metadata(
    annotation_file: str | Path,
    cache_dir: str | Path,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
    use_supercategory: bool = True,
) -> dict[str, Any]:
    """:func:`build_metadata`, from the cache when it matches the file's contents and the settings."""
    path = Path(annotation_file).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"COCO annotation file not found: {path}")
    params = {"min_area": float(min_area), "max_overlap": float(max_overlap), "num_objects": int(num_objects),
              "use_supercategory": bool(use_supercategory), "format": CACHE_FORMAT}
    key = hashlib.sha1(json.dumps([str(path), params], sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(cache_dir).expanduser() / f"coco_objects_{path.stem}_{key}.json"
    fingerprint = _fingerprint(path)
    if cache.is_file():
        try:
            with open(cache) as f:
                cached = json.load(f)
            if cached.get("fingerprint") == fingerprint and cached.get("params") == params:
                log.info("COCO objects metadata from cache %s", cache)
                return cached
            log.info("annotation file %s changed: rebuilding %s", path, cache)
        except (OSError, json.JSONDecodeError) as ex:
            log.warning("ignoring unreadable metadata cache %s (%s)", cache, ex)
    metadata = build_metadata(path, min_area, max_overlap, num_objects, use_supercategory)
    metadata |= {"annotation_file": str(path), "fingerprint": fingerprint, "params": params}
    _write_atomic(cache, metadata)
    log.info("COCO objects metadata written to %s", cache)
    return metadata


# --- dataset -----------------------------------------------------------------------------------


def inverse_frequency_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """w_c ∝ 1/count_c, normalised to sum to 1 over the classes seen (the reference's weights).

    A class absent from ``labels`` gets the largest weight of the classes seen (as rare as the
    rarest), so it neither crashes nor zeroes the loss of a batch containing only it.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes].astype(float)
    seen = counts > 0
    if not seen.any():
        return [1.0 / num_classes] * num_classes
    inverse = np.zeros(num_classes)
    inverse[seen] = 1.0 / counts[seen]
    inverse /= inverse.sum()
    inverse[~seen] = inverse[seen].max()
    return inverse.tolist()


def _square(image: np.ndarray, fill: int) -> np.ndarray:
    """H×W×C array centred on a square canvas of ``fill``."""
    h, w = image.shape[:2]
    side = max(h, w)
    out = np.full((side, side, image.shape[2]), fill, dtype=image.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def _resized_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """H×W×3 uint8 -> 3×size×size float in [0, 1] (PIL bilinear, as torchvision's Resize)."""
    resized = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@dataclass
class COCOObjects(Dataset):
    """Items ``(x 3×S×S, targets n×3×S×S, labels n)`` for selected images.

    Args:
        items: metadata image entries (see :func:`build_metadata`).
        image_dir: folder the ``file_name``s are relative to.
        class_index: label -> class index.
        image_size: side S of the square input.
        strength: gate strength s of the targets.
        strict: raise on an unreadable image instead of skipping it.
    """

    items: list[dict]
    image_dir: Path
    class_index: dict[str, int]
    image_size: int = 100
    strength: float = 0.3
    strict: bool = False
    unreadable: set = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> list[int]:
        """Class index of every object of every item."""
        return [self.class_index[o["label"]] for item in self.items for o in item["objects"]]

    def path(self, item: dict) -> Path:
        return self.image_dir / item["file_name"]

    def _masks(self, item: dict, height: int, width: int) -> list[np.ndarray]:
        from pycocotools import mask as mask_utils

        masks = []
        for obj in item["objects"]:
            m = mask_utils.decode({"size": [item["height"], item["width"]], "counts": obj["rle"].encode("ascii")})
            if m.shape != (height, width):  # annotation size disagrees with the file: follow the file
                m = np.asarray(Image.fromarray(m).resize((width, height), Image.NEAREST))
            masks.append(m)
        return masks

    def _make(self, item: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with Image.open(self.path(item)) as im:
            image = np.asarray(im.convert("RGB"))
        h, w = image.shape[:2]
        x = _resized_tensor(_square(image, PAD_FILL), self.image_size)
        s = self.strength
        targets = [
            (1 - s) * x + s * _resized_tensor(_square(image * m[..., None], 0), self.image_size)
            for m in self._masks(item, h, w)
        ]
        labels = torch.tensor([self.class_index[o["label"]] for o in item["objects"]], dtype=torch.long)
        return x, torch.stack(targets), labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for offset in range(len(self.items)):
            item = self.items[(index + offset) % len(self.items)]
            try:
                return self._make(item)
            except (OSError, ValueError, SyntaxError) as ex:  # truncated or undecodable image data
                if self.strict:
                    raise UserError(f"unreadable image {self.path(item)}: {ex} (data.strict=true)") from ex
                if item["file_name"] not in self.unreadable:
                    self.unreadable.add(item["file_name"])
                    log.warning("skipping unreadable image %s (%s); using the next item", self.path(item), ex)
        raise UserError(f"no readable image among {len(self.items)} in {self.image_dir}")


def check_images(items: list[dict], image_dir: Path, strict: bool) -> tuple[list[dict], list[Path]]:
    """Items whose image exists and opens; missing files are an error, corrupt ones are skipped.

    Returns:
        (readable items, corrupt paths). Raises :class:`UserError` naming the first missing file,
        or the first corrupt one when ``strict``.
    """
    missing = [image_dir / it["file_name"] for it in items if not (image_dir / it["file_name"]).is_file()]
    if missing:
        raise UserError(f"image file not found: {missing[0]} ({len(missing)} of {len(items)} images missing "
                        f"under {image_dir})")
    ok, corrupt = [], []
    for it in items:
        path = image_dir / it["file_name"]
        try:
            with Image.open(path) as im:
                im.verify()
            ok.append(it)
        except Exception as ex:  # PIL raises many types for bad files
            if strict:
                raise UserError(f"corrupt image {path}: {ex} (set data.strict=false to skip it)") from ex
            corrupt.append(path)
    if corrupt:
        log.warning("skipped %d corrupt image(s) in %s, e.g. %s", len(corrupt), image_dir, corrupt[0])
    return ok, corrupt


def _known_labels(items: list[dict], class_index: dict[str, int], source: Path) -> list[dict]:
    """Items whose objects all have a label in ``class_index``; the others are counted in the log."""
    known = [it for it in items if all(o["label"] in class_index for o in it["objects"])]
    if len(known) < len(items):
        log.warning("excluded %d images of %s with labels outside data.classes", len(items) - len(known), source.name)
    return known


def _split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes of held-out parts (rounded, at least 1 when the fraction is > 0 and images allow)."""
    sizes = []
    for f in fractions:
        size = int(round(f * n)) if f > 0 else 0
        sizes.append(max(size, 1) if f > 0 and n - sum(sizes) > 1 else size)
    return sizes


class COCOObjectsDataModule(SplitDataModule):
    """Train/val/test COCO objects (see the module docstring for the layouts).

    Args:
        root: dataset folder.
        train_annotations, train_images: training annotation file and image folder, relative to root.
        test_annotations, test_images: test set (``null``: split the test set off the training file).
        cache_dir: where the metadata cache is written.
        image_size: side of the square input (paper: 100).
        num_objects: objects per image (glimpses; paper: 2).
        num_classes: logits of the model; must be at least the number of labels.
        classes: fixed label order (e.g. the paper's 12 supercategories, to evaluate its checkpoint on a
            COCO subset); images with other labels are excluded. ``None``: sorted labels of the training file.
        strength: gate strength s of the targets (the model's).
        use_supercategory: label by supercategory (falls back to category names when absent).
        min_area, max_overlap: selection thresholds as fractions of the image (paper: 0.1, 0.01).
        val_fraction: fraction of the training file's images used for validation (paper: 0.3).
        test_fraction: fraction held out for testing when there is no test file.
        strict: unreadable images are errors instead of being skipped.
        seed: seeds the splits and the shuffling.
        batch_size, num_workers: loader settings.
    """

    def __init__(
        self,
        root: str = "data/coco",
        train_annotations: str = "annotations/instances_train2017.json",
        train_images: str = "train2017",
        test_annotations: str | None = "annotations/instances_val2017.json",
        test_images: str | None = "val2017",
        cache_dir: str = "outputs/cache",
        image_size: int = 100,
        num_objects: int = 2,
        num_classes: int = 12,
        classes: Sequence[str] | None = None,
        strength: float = 0.3,
        use_supercategory: bool = True,
        min_area: float = 0.05,
        max_overlap: float = 0.01,
        val_fraction: float = 0.3,
        test_fraction: float = 0.15,
        strict: bool = False,
        seed: int = 100,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.datasets: dict[str, COCOObjects] = {}
        self.class_names: list[str] = []
        self.stats: dict[str, int] = {}

    def _layout(self) -> tuple[Path, Path, Path | None, Path | None]:
        """(train annotations, train image dir, test annotations or None, test image dir or None)."""
        hp = self.hparams
        root = Path(hp.root).expanduser()
        if not root.is_dir():
            raise UserError(f"COCO data folder not found: data.root={root}")
        train_ann = root / hp.train_annotations
        if train_ann.is_file():
            test_ann = root / hp.test_annotations if hp.test_annotations else None
            if test_ann is not None and not test_ann.is_file():
                raise UserError(f"COCO test annotation file not found: {test_ann} (data.test_annotations=null "
                                "splits the test set off the training file)")
            test_dir = root / hp.test_images if test_ann is not None else None
            return train_ann, root / hp.train_images, test_ann, test_dir
        if (root / SINGLE_FILE).is_file():
            return root / SINGLE_FILE, root, None, None
        raise UserError(f"COCO annotation file not found: {train_ann} (nor {root / SINGLE_FILE}); "
                        "set data.root to a COCO 2017 folder or a COCO-format export")

    def _metadata(self, annotation_file: Path) -> dict:
        hp = self.hparams
        return load_metadata(annotation_file, hp.cache_dir, hp.min_area, hp.max_overlap, hp.num_objects,
                             hp.use_supercategory)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        train_ann, train_dir, test_ann, test_dir = self._layout()
        meta = self._metadata(train_ann)
        self.class_names = list(hp.classes) if hp.classes else list(meta["classes"])
        if len(self.class_names) > hp.num_classes:
            raise UserError(f"{train_ann} has {len(self.class_names)} labels but data.num_classes="
                            f"{hp.num_classes}; set data.num_classes={len(self.class_names)}")
        class_index = {name: i for i, name in enumerate(self.class_names)}
        log.info("COCO objects %s: %d of %d images have %d valid objects (%d excluded with fewer)",
                 train_ann.name, meta["counts"]["selected"], meta["counts"]["images"], hp.num_objects,
                 meta["counts"]["excluded_fewer_than_two"])
        items, corrupt = check_images(_known_labels(meta["images"], class_index, train_ann), train_dir, hp.strict)
        self.stats = {"excluded_fewer_than_two": meta["counts"]["excluded_fewer_than_two"],
                      "corrupt_images": len(corrupt)}

        order = np.random.default_rng(hp.seed).permutation(len(items))
        items = [items[i] for i in order]
        held = _split_sizes(len(items), [hp.val_fraction, 0.0 if test_ann else hp.test_fraction])
        val_items, test_items = items[: held[0]], items[held[0] : held[0] + held[1]]
        train_items = items[held[0] + held[1] :]
        splits = {"train": (train_items, train_dir), "val": (val_items, train_dir), "test": (test_items, train_dir)}
        if test_ann is not None:
            test_meta = self._metadata(test_ann)
            known = _known_labels(test_meta["images"], class_index, test_ann)
            test_items, corrupt_test = check_images(known, test_dir, hp.strict)
            self.stats["excluded_fewer_than_two"] += test_meta["counts"]["excluded_fewer_than_two"]
            self.stats["corrupt_images"] += len(corrupt_test)
            splits["test"] = (test_items, test_dir)
        for name, (split_items, _) in splits.items():
            if not split_items:
                raise UserError(f"no images left for the {name} split of {train_ann} ({len(items)} usable images "
                                f"with {hp.num_objects} objects over data.min_area={hp.min_area}); "
                                "use more images or lower data.min_area")
        self.datasets = {
            name: COCOObjects(split_items, image_dir, class_index, hp.image_size, hp.strength, hp.strict)
            for name, (split_items, image_dir) in splits.items()
        }
        log.info("COCO objects splits: train/val/test = %d/%d/%d images, %d labels: %s",
                 *(len(self.datasets[s]) for s in ("train", "val", "test")), len(self.class_names),
                 ", ".join(self.class_names))

    def class_weights(self) -> list[float]:
        """Inverse-frequency CE weights from both objects of every training image."""
        self.setup("fit")
        return inverse_frequency_weights(self.datasets["train"].labels(), self.hparams.num_classes)

    def split_dataset(self, split: str) -> Dataset:
        return self.datasets["test" if split == "predict" else split]


@register_schema("attnlab.data.coco_objects.COCOObjectsDataModule")
@dataclass
class COCOObjectsSchema:
    root: str = "data/coco"
    train_annotations: str = "annotations/instances_train2017.json"
    train_images: str = "train2017"
    test_annotations: Any = None
    test_images: Any = None
    cache_dir: str = "outputs/cache"
    image_size: int = field(default=100, metadata=at_least(16))
    num_objects: int = field(default=2, metadata=at_least(1))
    num_classes: int = field(default=12, metadata=at_least(1))
    classes: Any = None
    strength: float = field(default=0.3, metadata=between(0.0, 1.0))
    use_supercategory: bool = True
    min_area: float = field(default=0.05, metadata=between(0.0, 1.0))
    max_overlap: float = field(default=0.01, metadata=between(0.0, 1.0))
    val_fraction: float = field(default=0.3, metadata=between(0.0, 0.9))
    test_fraction: float = field(default=0.15, metadata=between(0.0, 0.9))
    strict: bool = False
    seed: int = 0
    batch_size: int = field(default=32, metadata=greater(0))
    num_workers: int = field(default=0, metadata=at_least(0))
