"""Human fixation datasets as training data for saliency models: ``{"image", "fixations", "density",
"index"}`` batches over the splits of a :class:`~attnlab.data.fixations.FixationDataset`."""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from attnlab.data.base import INPUT_SIZE, SplitDataModule
from attnlab.data.fixation_maps import sigma_in_pixels
from attnlab.data.fixations import FixationDataset, valid_fixations
from attnlab.utils.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Size2, Split3

log = logging.getLogger(__name__)

__all__ = ["SaliencyTorchDataset", "FixationDataModule"]


class SaliencyTorchDataset(Dataset):
    """Image (3×h×w in [0, 1]), fixation counts and density at ``map_size``, for one split.

    With ``flip``, each item is mirrored left-right with probability 1/2 (torch's random generator):
    image, fixation counts and density together, so the targets are those of the mirrored fixations.
    """

    def __init__(
        self,
        data: FixationDataset,
        image_size: tuple[int, int],
        map_size: tuple[int, int] | None = None,
        sigma_px: float = 24.0,
        flip: bool = False,
    ) -> None:
        self.data = data
        self.image_size = tuple(image_size)
        self.map_size = tuple(map_size or image_size)
        self.sigma_px = sigma_px
        self.flip = bool(flip)
        self._dropped = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(i, flipped=self.flip and bool(torch.rand(()) < 0.5))

    def item(self, i: int, flipped: bool = False) -> dict[str, Any]:
        """Item ``i``, mirrored left-right when ``flipped`` (the density blur is mirror-symmetric,
        so the mirrored density is that of the mirrored fixations)."""
        from PIL import Image

        image = Image.fromarray(self.data.load_image(i)).resize(self.image_size[::-1], Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        counts, _ = self.data.fixation_map(i, self.map_size)
        density = self.data.density(i, sigma_px=self.sigma_px, size=self.map_size)
        if not np.isfinite(density).all():  # an image without fixations: a uniform target, no fixations
            density = np.full(self.map_size, 1.0 / (self.map_size[0] * self.map_size[1]))
        counts, density = torch.from_numpy(counts.astype(np.float32)), torch.from_numpy(density.astype(np.float32))
        if flipped:
            x, counts, density = x.flip(-1), counts.flip(-1), density.flip(-1)
        return {"image": x, "fixations": counts, "density": density, "index": i}


class FixationDataModule(SplitDataModule):
    """Train/val/test splits by image of a :class:`FixationDataset` (made by ``load``) as batches.

    Subclasses (e.g. :class:`attnlab.data.osie.OSIEDataModule`) implement :meth:`load`. The whole
    dataset (after filtering) is in ``self.dataset`` and the splits in ``self.splits`` once
    :meth:`setup` ran; the benchmark uses these directly.

    Every loader skips (and counts, in one warning) images that do not decode, or stops with
    ``strict=True``; fixations with a NaN/inf coordinate or outside their image are dropped here
    for every consumer alike (:func:`attnlab.data.fixations.valid_fixations`). ``flip=True`` mirrors
    training images left-right at random, with their fixations (:class:`SaliencyTorchDataset`).
    """

    def __init__(
        self,
        root: str,
        drop_first: bool = False,
        min_duration: NonNegativeFloat = 0.0,
        split: Split3 = (0.7, 0.1, 0.2),
        seed: int = 0,
        pixels_per_degree: Optional[PositiveFloat] = None,
        sigma_deg: NonNegativeFloat = 1.0,
        image_size: Size2 = INPUT_SIZE,
        map_size: Optional[Size2] = None,
        batch_size: PositiveInt = 8,
        num_workers: NonNegativeInt = 0,
        strict: bool = False,
        flip: bool = False,
    ) -> None:
        super().__init__()
        self.root = root
        self.flip = flip
        self.strict = strict
        self.drop_first = drop_first
        self.min_duration = min_duration
        self.split_fractions = tuple(split)
        self.seed = seed
        self.pixels_per_degree = pixels_per_degree
        self.sigma_deg = sigma_deg
        self.image_size = tuple(image_size)
        self.map_size = tuple(map_size) if map_size else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dataset: FixationDataset | None = None
        self.splits: dict[str, FixationDataset] = {}

    def load(self) -> FixationDataset:  # pragma: no cover - implemented by each dataset
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        data = self.load()
        if self.pixels_per_degree is not None:
            data.pixels_per_degree = float(self.pixels_per_degree)
        data = data.filtered(drop_first=self.drop_first, min_duration=self.min_duration)
        data = valid_fixations(data)  # NaN / outside the image: dropped here, for every metric alike
        self.dataset = data
        self.splits = data.split(self.split_fractions, self.seed)
        log.info("%s: %s; split %s", data.name, data, {k: len(v) for k, v in self.splits.items()})

    @property
    def sigma_px(self) -> float:
        assert self.dataset is not None, "call setup() first"
        return sigma_in_pixels(self.sigma_deg, self.dataset.pixels_per_degree)

    def split_dataset(self, split: str) -> Dataset:
        data = self.splits["test" if split == "predict" else split]
        flip = self.flip and split == "train"  # augmentation: training images only
        return SaliencyTorchDataset(data, self.image_size, self.map_size, self._map_sigma(data), flip)

    def _map_sigma(self, data: FixationDataset) -> float:
        return self.sigma_px
