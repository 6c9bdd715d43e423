"""COCO objects for object-based attention: the LightningDataModule (layouts, splits, class order).

The jobs live in small modules: annotation reading and object selection in
:mod:`attnlab.data.coco_selection`, the selection cache in :mod:`attnlab.data.coco_cache`, the Dataset
and its transforms in :mod:`attnlab.data.coco_dataset`. Their public names are re-exported here, and
configs keep ``_target_: attnlab.data.coco_objects.COCOObjectsDataModule``.

Layouts under ``root``: COCO 2017 (``annotations/instances_{train,val}2017.json`` with ``train2017/``
and ``val2017/``; train2017 is split into train/val, val2017 is the test set), or a COCO-format export
with one ``annotations.json`` whose ``file_name``s are relative to ``root`` (split into train/val/test).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Sequence

import numpy as np
from annotated_types import Ge, Interval
from torch.utils.data import Dataset

from attnlab.data.base import SplitDataModule
from attnlab.data.coco_cache import load_metadata
from attnlab.data.coco_dataset import COCOObjects, check_images, inverse_frequency_weights
from attnlab.data.coco_selection import DROP_REASONS, build_metadata, select_objects, selection_outcome
from attnlab.utils.config import Fraction, NonNegativeInt, PositiveInt, UserError

log = logging.getLogger(__name__)

__all__ = [
    "COCOObjects",
    "COCOObjectsDataModule",
    "DROP_REASONS",
    "build_metadata",
    "inverse_frequency_weights",
    "load_metadata",
    "select_objects",
    "selection_outcome",
]

SINGLE_FILE = "annotations.json"
# photos dropped after the selection rule, by the datamodule
_LATER_DROPS = {
    "labels_outside_classes": "an object's label is not in data.classes",
    "corrupt_image": "the image file does not open (data.strict=false skips it)",
}


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
        image_size: Annotated[int, Ge(16)] = 100,
        num_objects: PositiveInt = 2,
        num_classes: PositiveInt = 12,
        classes: Sequence[str] | None = None,
        strength: Fraction = 0.3,
        use_supercategory: bool = True,
        min_area: Fraction = 0.05,
        max_overlap: Fraction = 0.01,
        val_fraction: Annotated[float, Interval(ge=0, le=0.9)] = 0.3,
        test_fraction: Annotated[float, Interval(ge=0, le=0.9)] = 0.15,
        strict: bool = False,
        seed: int = 100,
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.datasets: dict[str, COCOObjects] = {}
        self.class_names: list[str] = []
        self.stats: dict[str, Any] = {}  # selection report, filled by setup()

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
                raise UserError(
                    f"COCO test annotation file not found: {test_ann} (data.test_annotations=null "
                    "splits the test set off the training file)"
                )
            test_dir = root / hp.test_images if test_ann is not None else None
            return train_ann, root / hp.train_images, test_ann, test_dir
        if (root / SINGLE_FILE).is_file():
            return root / SINGLE_FILE, root, None, None
        raise UserError(
            f"COCO annotation file not found: {train_ann} (nor {root / SINGLE_FILE}); "
            "set data.root to a COCO 2017 folder or a COCO-format export"
        )

    def _metadata(self, annotation_file: Path) -> dict:
        hp = self.hparams
        return load_metadata(
            annotation_file, hp.cache_dir, hp.min_area, hp.max_overlap, hp.num_objects, hp.use_supercategory
        )

    def _usable(
        self, annotation_file: Path, image_dir: Path, class_index: dict[str, int], meta: dict | None = None
    ) -> tuple[list, dict]:
        """Selected items of one annotation file whose labels are known and whose image opens, and a
        report: images, kept photos/objects/pairs and the dropped photos per reason."""
        hp = self.hparams
        meta = self._metadata(annotation_file) if meta is None else meta
        known = _known_labels(meta["images"], class_index, annotation_file)
        items, corrupt = check_images(known, image_dir, hp.strict)
        counts = meta["counts"]
        dropped = dict(
            counts.get("excluded") or {"unknown (cache from an older version)": counts["excluded_fewer_than_two"]}
        )
        dropped |= {"labels_outside_classes": len(meta["images"]) - len(known), "corrupt_image": len(corrupt)}
        pairs_per_image = hp.num_objects * (hp.num_objects - 1) // 2
        report = {
            "file": str(annotation_file),
            "images": counts["images"],
            "kept_images": len(items),
            "kept_objects": len(items) * hp.num_objects,
            "object_pairs": len(items) * pairs_per_image,
            "dropped": dropped,
        }
        log.info(
            "COCO objects %s at min_area=%g, max_overlap=%g: %d of %d photos kept (%d objects); dropped: %s",
            annotation_file.name,
            hp.min_area,
            hp.max_overlap,
            len(items),
            counts["images"],
            report["kept_objects"],
            ", ".join(f"{k} {v}" for k, v in dropped.items()),
        )
        return items, report

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        train_ann, train_dir, test_ann, test_dir = self._layout()
        meta = self._metadata(train_ann)
        self.class_names = list(hp.classes) if hp.classes else list(meta["classes"])
        if len(self.class_names) > hp.num_classes:
            raise UserError(
                f"{train_ann} has {len(self.class_names)} labels but data.num_classes="
                f"{hp.num_classes}; set data.num_classes={len(self.class_names)}"
            )
        class_index = {name: i for i, name in enumerate(self.class_names)}
        items, train_report = self._usable(train_ann, train_dir, class_index, meta)
        reports = {"train_file": train_report}

        order = np.random.default_rng(hp.seed).permutation(len(items))
        items = [items[i] for i in order]
        held = _split_sizes(len(items), [hp.val_fraction, 0.0 if test_ann else hp.test_fraction])
        val_items, test_items = items[: held[0]], items[held[0] : held[0] + held[1]]
        train_items = items[held[0] + held[1] :]
        splits = {"train": (train_items, train_dir), "val": (val_items, train_dir), "test": (test_items, train_dir)}
        if test_ann is not None:
            test_items, reports["test_file"] = self._usable(test_ann, test_dir, class_index)
            splits["test"] = (test_items, test_dir)
        for name, (split_items, _) in splits.items():
            if not split_items:
                raise UserError(
                    f"no images left for the {name} split of {train_ann} ({len(items)} usable images "
                    f"with {hp.num_objects} objects over data.min_area={hp.min_area}); "
                    "use more images or lower data.min_area"
                )
        self.datasets = {
            name: COCOObjects(split_items, image_dir, class_index, hp.image_size, hp.strength, hp.strict)
            for name, (split_items, image_dir) in splits.items()
        }
        files = list(reports.values())
        # excluded_fewer_than_two: photos the selection rule dropped (any reason), as before the per-reason counts
        self.stats = {
            "excluded_fewer_than_two": sum(
                r["images"] - r["kept_images"] - r["dropped"]["labels_outside_classes"] - r["dropped"]["corrupt_image"]
                for r in files
            ),
            "corrupt_images": sum(r["dropped"]["corrupt_image"] for r in files),
            "selection": {
                "min_area": float(hp.min_area),
                "max_overlap": float(hp.max_overlap),
                "num_objects": int(hp.num_objects),
                "reasons": DROP_REASONS | _LATER_DROPS,
                **reports,
            },
            "splits": {name: len(ds) for name, ds in self.datasets.items()},
        }
        log.info(
            "COCO objects splits: train/val/test = %d/%d/%d images, %d labels: %s",
            *(len(self.datasets[s]) for s in ("train", "val", "test")),
            len(self.class_names),
            ", ".join(self.class_names),
        )

    def class_weights(self) -> list[float]:
        """Inverse-frequency CE weights from both objects of every training image."""
        self.setup("fit")
        return inverse_frequency_weights(self.datasets["train"].labels(), self.hparams.num_classes)

    def split_dataset(self, split: str) -> Dataset:
        return self.datasets["test" if split == "predict" else split]
