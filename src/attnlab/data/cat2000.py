"""CAT2000 training set (Borji & Itti 2015): 2000 images of 1920×1080 in 20 categories, 18 subjects.

Layout (the official trainSet.zip)::

    <root>/trainSet/Stimuli/<Category>/<NNN>.jpg
    <root>/trainSet/FIXATIONLOCS/<Category>/<NNN>.mat   # variable fixLocs: binary H×W map
    <root>/trainSet/FIXATIONMAPS/<Category>/<NNN>.jpg

``root`` may also be the ``trainSet`` folder. FIXATIONLOCS holds every subject's fixations as one
binary map (no subjects, order or durations), so each image gets one pseudo-scanpath (subject
``all``) whose fixations are the marked pixels, at pixel centres (x = column + 0.5). Scanpath metrics
and the leave-one-subject-out baseline therefore do not apply to CAT2000. Stimulus ids are
``<Category>/<NNN>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

__all__ = ["load_cat2000", "read_fixation_locations", "CAT2000DataModule"]


def read_fixation_locations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel centres of the non-zero entries of a FIXATIONLOCS .mat (variable fixLocs)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as ex:
        raise UserError(f"cannot read CAT2000 fixation locations from {path}: {ex}") from ex
    key = "fixLocs" if "fixLocs" in mat else next((k for k in mat if not k.startswith("__")), None)
    if key is None:
        raise UserError(f"{path} holds no fixation map (expected a variable fixLocs)")
    rows, cols = np.nonzero(np.asarray(mat[key]))
    return cols + 0.5, rows + 0.5


def load_cat2000(root: str | Path, strict: bool = False) -> FixationDataset:
    root = Path(root).expanduser()
    base = root / "trainSet" if (root / "trainSet").is_dir() else root
    stim_dir, loc_dir = base / "Stimuli", base / "FIXATIONLOCS"
    if not stim_dir.is_dir() or not loc_dir.is_dir():
        raise UserError(
            f"CAT2000 not found at {root}: expected trainSet/Stimuli/<Category>/ and trainSet/FIXATIONLOCS/<Category>/"
        )
    stimuli, scanpaths = [], []
    skips = ImageSkips("cat2000", strict)
    for image in sorted(stim_dir.glob("*/*.jpg")):
        category = image.parent.name
        mat = loc_dir / category / f"{image.stem}.mat"
        if not mat.is_file():
            continue  # e.g. the 'Output' folders of the release
        sid = f"{category}/{image.stem}"
        size = skips.size(image)
        if size is None:
            continue
        x, y = read_fixation_locations(mat)
        stimuli.append(Stimulus(sid, image, size))
        scanpaths.append([Scanpath(x, y, subject="all", stimulus=sid)] if len(x) else [])
    skipped = skips.report()
    if not stimuli:
        raise UserError(f"CAT2000 at {root}: no readable image in Stimuli/ has a FIXATIONLOCS file")
    return FixationDataset(
        "cat2000", stimuli, scanpaths, None, {"root": str(root), "maps_dir": str(base / "FIXATIONMAPS")} | skipped
    )


class CAT2000DataModule(FixationDataModule):
    """``data=cat2000``."""

    def load(self) -> FixationDataset:
        return load_cat2000(self.root, self.strict)
