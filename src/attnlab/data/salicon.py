"""SALICON (LSUN 2017 release) for training saliency models: image, saliency map, fixations.

Layout (the official release, 10k train / 5k val COCO images of 640×480)::

    <root>/images/{train,val}/<id>.jpg
    <root>/maps/{train,val}/<id>.png              # continuous saliency maps
    <root>/fixations/{train,val}/<id>.mat         # `gaze`: one struct per subject with
                                                  # `fixations` N×2 (x, y), 1-based, plus raw
                                                  # `location`/`timestamp`; `resolution` [H W]

The reference's own layout (maps as .jpg, a ready-made H×W ``fixationPts`` map in the .mat) is read
too. Fixations are rasterised to a fixation-count map at ``map_size``; the saliency map is resized
bilinearly and normalised to sum 1 (the density the loss and metrics use).

Splits: the official ``train`` images are split by image into ``train`` and ``val`` (held out for
model selection, ``val_fraction``); the official ``val`` images are the ``test`` split, so
reported numbers never come from images used to choose the checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from annotated_types import Interval
from torch.utils.data import DataLoader, Dataset

from attnlab.data.base import INPUT_SIZE
from attnlab.data.fixation_maps import fixation_map
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2, UserError

log = logging.getLogger(__name__)

__all__ = ["SALICONMaps", "SALICONMapsDataModule", "read_salicon_fixations", "salicon_samples"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
MAP_EXTS = (".png", ".jpg", ".jpeg")


def _find(folder: Path, stem: str, exts: Sequence[str]) -> Path | None:
    for ext in exts:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def salicon_samples(root: str | Path, split: str) -> list[tuple[str, Path, Path, Path]]:
    """(id, image, map, fixations .mat) of every image of an official split that has all three."""
    root = Path(root).expanduser()
    images, maps, fixations = root / "images" / split, root / "maps" / split, root / "fixations" / split
    for folder in (images, maps, fixations):
        if not folder.is_dir():
            raise UserError(
                f"SALICON folder not found: {folder}; expected <root>/images|maps|fixations/{{train,val}} "
                "(the LSUN 2017 release; set data.root)"
            )
    out, incomplete = [], 0
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTS):
        smap, mat = _find(maps, image.stem, MAP_EXTS), fixations / f"{image.stem}.mat"
        if smap is None or not mat.is_file():
            incomplete += 1
            continue
        out.append((image.stem, image, smap, mat))
    if incomplete:
        log.warning("SALICON %s: %d images lack a saliency map or fixation file (skipped)", split, incomplete)
    if not out:
        raise UserError(f"SALICON {split}: no image in {images} has both a map in {maps} and a .mat in {fixations}")
    return out


def read_salicon_fixations(path: Path, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Fixation (x, y) in 0-based pixels of the original image, and that image's (H, W).

    Reads the LSUN'17 ``gaze`` struct (all subjects pooled) or the reference's ``fixationPts`` map.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as ex:
        raise UserError(f"cannot read SALICON fixations {path}: {ex}") from ex
    size = image_size
    if "resolution" in mat:
        size = tuple(int(v) for v in np.asarray(mat["resolution"]).reshape(-1)[:2])
    if "gaze" in mat:
        xs, ys = [], []
        for subject in np.asarray(mat["gaze"]).reshape(-1):
            fix = (
                np.asarray(subject["fixations"], dtype=np.float64).reshape(-1, 2)
                if np.size(subject["fixations"])
                else np.zeros((0, 2))
            )
            xs.append(fix[:, 0] - 1)  # MATLAB is 1-based
            ys.append(fix[:, 1] - 1)
        return np.concatenate(xs) if xs else np.zeros(0), np.concatenate(ys) if ys else np.zeros(0), size
    if "fixationPts" in mat:
        pts = np.asarray(mat["fixationPts"])
        rows, cols = np.nonzero(pts)
        return cols.astype(np.float64), rows.astype(np.float64), pts.shape[:2]
    raise UserError(f"{path} has neither 'gaze' (LSUN 2017) nor 'fixationPts'; not a SALICON fixation file")


class SALICONMaps(Dataset):
    """Items ``{"image" 3×H×W in [0, 1], "density" h×w (sum 1), "fixations" h×w counts, "index"}``.

    Args:
        samples: from :func:`salicon_samples`.
        image_size: (H, W) the image is resized to (ignoring aspect ratio, like the reference).
        map_size: (h, w) of density and fixation maps (default ``image_size``).
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, Path, Path, Path]],
        image_size: Sequence[int],
        map_size: Sequence[int] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.map_size = tuple(int(s) for s in map_size) if map_size else self.image_size

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s[0] for s in self.samples]

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        _, image_path, map_path, mat_path = self.samples[i]
        with Image.open(image_path) as im:
            original = (im.height, im.width)
            im = im.convert("RGB").resize(self.image_size[::-1], Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        with Image.open(map_path) as sm:
            sm = sm.convert("L").resize(self.map_size[::-1], Image.BILINEAR)
            density = np.asarray(sm, dtype=np.float64)
        total = density.sum()
        density = density / total if total > 0 else np.full(self.map_size, 1.0 / (self.map_size[0] * self.map_size[1]))
        fx, fy, size = read_salicon_fixations(mat_path, original)
        counts, _ = fixation_map(fx, fy, size, self.map_size)
        return {
            "image": x,
            "density": torch.from_numpy(density.astype(np.float32)),
            "fixations": torch.from_numpy(counts.astype(np.float32)),
            "index": i,
        }


class SALICONMapsDataModule(L.LightningDataModule):
    """SALICON as ``data=salicon``: train / held-out val (from official train) / test (official val).

    Args:
        root: the release folder (images/, maps/, fixations/).
        val_fraction: part of the official training images held out for model selection.
        seed: seed of that hold-out split.
        image_size: network input (H, W); map_size: target maps (default image_size).
        limit: use only the first N images of each official split (quick runs).
    """

    def __init__(
        self,
        root: str,
        val_fraction: Annotated[float, Interval(ge=0, le=0.9)] = 0.1,
        seed: int = 0,
        image_size: Size2 = INPUT_SIZE,
        map_size: Optional[Size2] = None,
        limit: Optional[PositiveInt] = None,
        batch_size: PositiveInt = 10,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.root, self.val_fraction, self.seed = root, float(val_fraction), int(seed)
        self.image_size = tuple(image_size)
        self.map_size = tuple(map_size) if map_size else None
        self.limit, self.batch_size, self.num_workers = limit, batch_size, num_workers
        self.splits: dict[str, SALICONMaps] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train = salicon_samples(self.root, "train")[: self.limit]
        test = salicon_samples(self.root, "val")[: self.limit]
        order = np.random.default_rng(self.seed).permutation(len(train))
        n_val = int(round(len(train) * self.val_fraction))
        if self.val_fraction > 0 and n_val == 0 and len(train) > 1:
            n_val = 1
        held = set(order[:n_val].tolist())
        parts = {
            "train": [s for i, s in enumerate(train) if i not in held],
            "val": [s for i, s in enumerate(train) if i in held],
            "test": test,
        }
        self.splits = {k: SALICONMaps(v, self.image_size, self.map_size) for k, v in parts.items()}
        log.info("SALICON: %s", {k: len(v) for k, v in self.splits.items()})

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        if not len(self.splits[name]):
            raise UserError(f"SALICON {name} split is empty; raise data.val_fraction or data.limit")
        return DataLoader(self.splits[name], batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
