"""Any folder of images as a dataset (``data=images``): for NeVA scanpaths and autoencoder training.

Items are dicts: ``image`` 3×H×W float in [0, 1] resized to ``image_size``, ``size`` the original
(H, W), ``name`` the file stem, ``path`` the file, ``label`` (−1 without a labels file), ``index``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from attnlab.data.checks import ImageSkips
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2, Split3, UserError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "list_images", "load_image", "read_labels", "ImageFolder", "ImagesDataModule"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def list_images(root: str | Path, recursive: bool = False) -> list[Path]:
    """Image files under ``root`` (sorted); a clear error when there is no folder or no image."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder not found: {root} (set data.image_dir=PATH to a folder of images)")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return files


def load_image(path: str | Path) -> Image.Image:
    """An RGB PIL image; a clear error for unreadable files."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as ex:  # truncated or not an image
        raise UserError(
            f"cannot read image {path}: {str(ex).splitlines()[0] if str(ex) else type(ex).__name__}"
        ) from None


def read_labels(path: str | Path) -> dict[str, int]:
    """``name,label`` rows (a header row is skipped) → {file stem or name: class index}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"labels file not found: {path}")
    labels: dict[str, int] = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[1].strip().lstrip("-").isdigit():
                continue  # header or blank line
            labels[Path(row[0].strip()).stem] = int(row[1])
    return labels


class ImageFolder(Dataset):
    """Images of a folder, resized to a common size.

    Args:
        files: the image files. image_size: (H, W) to resize to (bilinear, antialiased), or None to
            keep each image's size (then batch_size must be 1).
        labels: optional {name: class index}.
        names: one name per file (default: the file stems), e.g. a dataset's stimulus ids.
    """

    def __init__(
        self,
        files: Sequence[Path],
        image_size: Sequence[int] | None = (224, 224),
        labels: dict[str, int] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        self.files = [Path(f) for f in files]
        self.image_size = (int(image_size[0]), int(image_size[1])) if image_size else None
        self.labels = labels or {}
        self.names = [str(n) for n in names] if names is not None else [f.stem for f in self.files]
        if len(self.names) != len(self.files):
            raise ValueError(f"{len(self.names)} names for {len(self.files)} files")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        im = load_image(path)
        w, h = im.size
        if self.image_size is not None and (h, w) != self.image_size:
            im = im.resize((self.image_size[1], self.image_size[0]), Image.BILINEAR, reducing_gap=None)
        image = torch.from_numpy(np.array(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        name = self.names[index]
        return {
            "image": image,
            "size": torch.tensor([h, w]),
            "name": name,
            "path": str(path),
            "label": int(self.labels.get(name, -1)),
            "index": index,
        }


class ImagesDataModule(L.LightningDataModule):
    """An image folder split into train/val/test (for training), and all of it for prediction.

    Args:
        image_dir: the folder. recursive: include sub-folders.
        image_size: (H, W) every image is resized to.
        labels_file: optional CSV ``name,label`` (class indices, e.g. for NeVA's ``target=label``).
        split: fractions of the files for train/val/test (shuffled with ``seed``).
        limit: use only the first ``limit`` files (sorted by name), e.g. for quick runs.
        batch_size, num_workers: loader settings.
        strict: an image that does not decode is an error (by default it is skipped and counted).
    """

    def __init__(
        self,
        image_dir: str = "data/images",
        image_size: Size2 = (224, 224),
        recursive: bool = False,
        labels_file: str | None = None,
        split: Split3 = (0.8, 0.1, 0.1),
        limit: PositiveInt | None = None,
        seed: int = 100,
        batch_size: PositiveInt = 8,
        num_workers: NonNegativeInt = 0,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.dataset: ImageFolder | None = None
        self.splits: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        hp = self.hparams
        files = list_images(hp.image_dir, hp.recursive)
        if hp.limit:
            files = files[: int(hp.limit)]
        skips = ImageSkips(str(hp.image_dir), bool(hp.strict))
        files = [f for f in files if skips.size(f) is not None]
        self.skipped = skips.report()["unreadable_images"]
        if not files:
            raise UserError(
                f"none of the {skips.checked} images in {hp.image_dir} can be read, e.g. {skips.skipped[0]}"
            )
        labels = read_labels(hp.labels_file) if hp.labels_file else None
        self.dataset = ImageFolder(files, hp.image_size, labels)
        n = len(files)
        fractions = np.asarray(hp.split, dtype=float)
        if len(fractions) != 3 or (fractions < 0).any() or fractions.sum() <= 0:
            raise UserError(f"data.split must be three non-negative fractions, got {list(hp.split)}")
        order = np.random.default_rng(hp.seed).permutation(n)
        counts = np.floor(fractions / fractions.sum() * n).astype(int)
        counts[0] += n - counts.sum()
        # a split that asks for images gets at least one (small folders), taken from the largest split
        for k in np.flatnonzero((fractions > 0) & (counts == 0)):
            largest = int(counts.argmax())
            if counts[largest] > 1:
                counts[largest] -= 1
                counts[k] = 1
        bounds = np.cumsum([0, *counts])
        self.splits = {
            name: Subset(self.dataset, order[bounds[i] : bounds[i + 1]].tolist())
            for i, name in enumerate(("train", "val", "test"))
        }
        log.info("images: %d files in %s (train/val/test %s)", n, hp.image_dir, counts.tolist())

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"], shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset, shuffle=False)
