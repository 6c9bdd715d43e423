"""Toronto (Bruce & Tsotsos, NIPS 2005 / JoV 2009): 120 colour images of 681×511, 20 subjects, 4 s free viewing.

Layout (the official eyetrackingdata.zip)::

    <root>/eyetrackingdata/fixdens/Original Image Set/<n>.jpg    # n = 1 … 120
    <root>/eyetrackingdata/fixdens/origfixdata.mat               # variable white: 1×120 cell of binary H×W maps

``root`` may also be the ``fixdens`` folder. As for CAT2000, the release pools every subject's fixations
into one binary map per image (the per-subject files do not hold pixel positions, as pysaliency notes),
so each image gets one pseudo-scanpath (subject ``all``) of the marked pixels at pixel centres;
scanpath metrics and the leave-one-subject-out baseline do not apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

__all__ = ["load_toronto", "TorontoDataModule"]

IMAGE_DIR = "Original Image Set"
FIXATIONS = "origfixdata.mat"


def _fixdens(root: Path) -> Path:
    for base in (root / "eyetrackingdata" / "fixdens", root / "fixdens", root):
        if (base / FIXATIONS).is_file() and (base / IMAGE_DIR).is_dir():
            return base
    raise UserError(
        f"Toronto not found at {root}: expected eyetrackingdata/fixdens/{IMAGE_DIR}/<n>.jpg and "
        f"eyetrackingdata/fixdens/{FIXATIONS} (attnlab-data fetch toronto)"
    )


def _binary_maps(path: Path) -> list[np.ndarray]:
    from scipy.io import loadmat

    try:
        white = loadmat(str(path))["white"]
    except KeyError:
        raise UserError(f"{path} holds no variable 'white' (the Toronto fixation maps)") from None
    except Exception as ex:
        raise UserError(f"cannot read Toronto fixations from {path}: {ex}") from None
    if white.dtype != object:
        raise UserError(f"{path}: 'white' is a {white.dtype} array, expected a cell array of maps")
    return [np.asarray(m) for m in white.ravel()]


def load_toronto(root: str | Path, strict: bool = False) -> FixationDataset:
    root = Path(root).expanduser()
    base = _fixdens(root)
    maps = _binary_maps(base / FIXATIONS)
    stimuli, scanpaths = [], []
    skips = ImageSkips("toronto", strict)
    for n, fixated in enumerate(maps, start=1):
        image = base / IMAGE_DIR / f"{n}.jpg"
        if not image.is_file():
            continue  # a map without its image: nothing to score it on
        size = skips.size(image)
        if size is None:
            continue
        if fixated.shape != tuple(size):
            raise UserError(
                f"{base / FIXATIONS}: map {n} is {fixated.shape[0]}×{fixated.shape[1]} but image {image.name} is "
                f"{size[0]}×{size[1]}"
            )
        rows, cols = np.nonzero(fixated)
        sid = str(n)
        stimuli.append(Stimulus(sid, image, size))
        scanpaths.append([Scanpath(cols + 0.5, rows + 0.5, subject="all", stimulus=sid)] if len(rows) else [])
    skipped = skips.report()
    if not stimuli:
        raise UserError(f"Toronto at {root}: no image in {IMAGE_DIR}/ has a map in {FIXATIONS}")
    return FixationDataset("toronto", stimuli, scanpaths, None, {"root": str(root)} | skipped)


class TorontoDataModule(FixationDataModule):
    """``data=toronto``."""

    def load(self) -> FixationDataset:
        return load_toronto(self.root, self.strict)
