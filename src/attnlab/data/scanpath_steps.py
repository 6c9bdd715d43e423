"""Human scanpaths as next-fixation samples, for training scanpath models by teacher forcing.

Each split of a fixation dataset (``data=osie`` etc., split by image) becomes one item per image:
the image (3×H×W in [0, 1] at ``image_size``) and, for every fixation t of every human scanpath
(after the dataset's ``drop_first``), the last ``history`` earlier fixations of that scanpath and
fixation t itself, in image-normalised coordinates (x/W, y/H ∈ [0, 1)). Fixations outside the image
are dropped before the samples are made (counted once). A batch is a list of such items: the
model computes each image's features once for all its samples.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from attnlab.data.base import INPUT_SIZE, SplitDataModule
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2

log = logging.getLogger(__name__)

__all__ = ["ScanpathSteps", "ScanpathStepsDataModule", "next_fixation_samples"]


def next_fixation_samples(paths, size: tuple[int, int], history: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(histories N×history×2, history mask N×history, targets N×2, dropped) for the scanpaths of one
    image of ``size`` (H, W): coordinates divided by the image's width and height; the most recent
    earlier fixation first; the mask marks the earlier fixations that exist."""
    h, w = size
    hist, mask, targets, dropped = [], [], [], 0
    for path in paths:
        xy = np.stack([np.asarray(path.x, float) / w, np.asarray(path.y, float) / h], 1)
        inside = np.isfinite(xy).all(1) & (xy >= 0).all(1) & (xy < 1).all(1)
        dropped += int((~inside).sum())
        xy = xy[inside]
        for t in range(len(xy)):
            earlier = xy[max(0, t - history) : t][::-1]
            padded = np.zeros((history, 2))
            padded[: len(earlier)] = earlier
            hist.append(padded)
            mask.append(np.arange(history) < len(earlier))
            targets.append(xy[t])
    if not targets:
        return np.zeros((0, history, 2)), np.zeros((0, history), bool), np.zeros((0, 2)), dropped
    return np.stack(hist), np.stack(mask), np.stack(targets), dropped


class ScanpathSteps(Dataset):
    """One item per image of a split: ``{"image", "history", "mask", "target", "stimulus"}``."""

    def __init__(self, data: FixationDataset, image_size: tuple[int, int], history: int) -> None:
        self.data, self.image_size, self.history = data, tuple(image_size), int(history)
        self.samples = []
        dropped = 0
        for i in range(len(data)):
            hist, mask, target, out = next_fixation_samples(data.scanpaths[i], data.stimuli[i].size, self.history)
            dropped += out
            self.samples.append((hist, mask, target))
        if dropped:
            log.warning("%s: %d fixations outside the image left out of the next-fixation samples", data.name, dropped)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        image = Image.fromarray(self.data.load_image(i)).resize(self.image_size[::-1], Image.BILINEAR)
        hist, mask, target = self.samples[i]
        return {
            "image": torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1),
            "history": torch.from_numpy(hist).float(),
            "mask": torch.from_numpy(mask),
            "target": torch.from_numpy(target).float(),
            "stimulus": self.data.stimuli[i].id,
        }


class ScanpathStepsDataModule(SplitDataModule):
    """``data=osie_steps``: the splits of a fixation datamodule as next-fixation samples.

    A batch is a list of items (each image keeps its own number of samples).

    Args:
        fixations: the fixation datamodule whose splits (and ``drop_first``) are used.
        history: how many earlier fixations each sample carries (the model's ``history`` reads it).
        image_size: the images' size for the model's features (H, W).
        batch_size: images per batch (each with all its samples).
    """

    collate_fn = list  # a batch is a list of items: each image keeps its own number of samples

    def __init__(
        self,
        fixations: FixationDataModule,
        history: NonNegativeInt,
        image_size: Size2 = INPUT_SIZE,
        batch_size: PositiveInt = 4,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.fixations = fixations
        self.seed = fixations.seed  # the training batches' shuffling
        self.image_size = tuple(image_size)
        self.history = int(history)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.splits: dict[str, ScanpathSteps] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.fixations.setup(stage)
        self.splits = {
            name: ScanpathSteps(data, self.image_size, self.history) for name, data in self.fixations.splits.items()
        }

    @property
    def train_split(self) -> FixationDataset:
        """The training images' fixations (the centre bias is fitted on them)."""
        return self.fixations.splits["train"]

    def split_dataset(self, split: str) -> ScanpathSteps:
        return self.splits["test" if split == "predict" else split]
