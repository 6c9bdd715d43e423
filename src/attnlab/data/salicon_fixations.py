"""SALICON (LSUN 2017 release): the fixation and saliency-map side, reusable by saliency datamodules.

Layout::

    <root>/images/{train,val,test}/COCO_<split>2014_<id>.jpg
    <root>/fixations/{train,val}/COCO_<split>2014_<id>.mat   # gaze: one struct per subject with
                                                             # location (mouse samples, N×2 x,y),
                                                             # timestamp, fixations (M×2 x,y)
    <root>/maps/{train,val}/COCO_<split>2014_<id>.png        # saliency maps

Coordinates in the .mat files are MATLAB one-based and are shifted by −1, as pysaliency does.
``fixation_type="fixations"`` (default) reads the detected fixations, ``"mouse"`` the raw mouse
samples. Subjects are anonymous per image (``s01``, ``s02``, ... in file order).

API: :func:`load_salicon` → FixationDataset (``info["maps_dir"]`` points at the maps),
:func:`read_salicon_fixations` for one .mat file, :func:`read_salicon_map` for one PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

__all__ = ["load_salicon", "read_salicon_fixations", "read_salicon_map", "SALICONDataModule", "SALICON_SIZE"]

SALICON_SIZE = (480, 640)


def read_salicon_fixations(
    path: str | Path, fixation_type: str = "fixations"
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per subject: (x, y, timestamps or None), zero-based pixels, from one SALICON .mat file."""
    from scipy.io import loadmat

    if fixation_type not in ("fixations", "mouse"):
        raise UserError(f"fixation_type={fixation_type!r} is not allowed; choose fixations or mouse")
    field = "fixations" if fixation_type == "fixations" else "location"
    try:
        gaze = loadmat(str(path))["gaze"].reshape(-1)
    except Exception as ex:
        raise UserError(f"cannot read SALICON fixations from {path}: {ex}") from ex
    out = []
    for subject in gaze:
        xy = (
            np.asarray(subject[field], dtype=np.float64).reshape(-1, 2) if np.size(subject[field]) else np.zeros((0, 2))
        )
        ts = None
        if fixation_type == "mouse" and "timestamp" in subject.dtype.names and np.size(subject["timestamp"]):
            ts = np.asarray(subject["timestamp"], dtype=np.float64).reshape(-1)
        out.append((xy[:, 0] - 1, xy[:, 1] - 1, ts))
    return out


def read_salicon_map(path: str | Path) -> np.ndarray:
    """A SALICON saliency map PNG as an H×W float array in [0, 1]."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise UserError(f"SALICON saliency map not found: {path}")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def load_salicon(
    root: str | Path, split: str = "train", fixation_type: str = "fixations", strict: bool = False
) -> FixationDataset:
    """One split (train or val: test has no fixations) of SALICON as a FixationDataset."""
    root = Path(root).expanduser()
    if split not in ("train", "val"):
        raise UserError(f"SALICON split={split!r} is not allowed; choose train or val (test has no fixations)")
    fix_dir, img_dir = root / "fixations" / split, root / "images" / split
    if not fix_dir.is_dir() or not img_dir.is_dir():
        raise UserError(f"SALICON not found at {root}: expected images/{split}/ and fixations/{split}/")
    stimuli, scanpaths = [], []
    skips = ImageSkips(f"salicon_{split}", strict)
    for mat in sorted(fix_dir.glob("*.mat")):
        image = img_dir / f"{mat.stem}.jpg"
        if not image.is_file():
            raise UserError(f"SALICON: {mat.name} has no image {image}")
        size = skips.size(image)
        if size is None:
            continue
        stimulus = Stimulus(mat.stem, image, size)
        paths = [
            Scanpath(x, y, onset=ts, subject=f"s{k + 1:02d}", stimulus=mat.stem)
            for k, (x, y, ts) in enumerate(read_salicon_fixations(mat, fixation_type))
            if len(x)
        ]
        stimuli.append(stimulus)
        scanpaths.append(paths)
    skipped = skips.report()
    if not stimuli:
        raise UserError(f"SALICON: no .mat files with a readable image in {fix_dir}")
    return FixationDataset(
        f"salicon_{split}",
        stimuli,
        scanpaths,
        None,
        {"root": str(root), "maps_dir": str(root / "maps" / split)} | skipped,
    )


class SALICONDataModule(FixationDataModule):
    """``data=salicon``: the official train split's fixations, split by image like the others."""

    def load(self) -> FixationDataset:
        return load_salicon(self.root, "train", strict=self.strict)
