"""OSIE (Xu et al., JoV 2014): 700 images of 800×600, 15 subjects, 3 s free viewing.

Official layout (the dataset's GitHub release)::

    <root>/data/stimuli/<id>.jpg
    <root>/data/eye/fixations.mat   # struct array `fixations` with fields img, subjects(fix_x, fix_y, fix_duration)

``root`` may also be the ``data`` folder itself. Coordinates are kept exactly as stored (like
pysaliency's ``get_OSIE``); durations are in ms. The first fixation of each scanpath is the central
start fixation: use ``drop_first=True`` (``data.drop_first=true``) to remove it.

Usage::

    from attnlab.data.osie import load_osie
    data = load_osie(os.environ["ATTNLAB_OSIE_ROOT"])      # FixationDataset
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["load_osie", "OSIEDataModule", "OSIE_SIZE"]

OSIE_SIZE = (600, 800)


def _layout(root: str | Path) -> tuple[Path, Path]:
    root = Path(root).expanduser()
    for base in (root / "data", root):
        stimuli, mat = base / "stimuli", base / "eye" / "fixations.mat"
        if stimuli.is_dir() and mat.is_file():
            return stimuli, mat
    raise UserError(
        f"OSIE not found at {root}: expected data/stimuli/*.jpg and data/eye/fixations.mat "
        "(set ATTNLAB_OSIE_ROOT or data.root)"
    )


def _cell(value) -> np.ndarray:
    """A MATLAB numeric field as a flat float array (empty fields become empty arrays)."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return np.asarray(value, dtype=np.float64).reshape(-1) if np.size(value) else np.zeros(0)


def _record(value):
    """A MATLAB struct element (possibly wrapped in 1×1 arrays) as a numpy record."""
    while isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value


def _string(value) -> str:
    """A MATLAB char field (possibly wrapped in cell/object arrays) as a str."""
    while isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return str(value)


def load_osie(root: str | Path, strict: bool = False) -> FixationDataset:
    """Read OSIE (or a subset in the same layout) into a :class:`FixationDataset`; images that do not
    decode are skipped and counted (an error with ``strict``)."""
    from scipy.io import loadmat

    stimuli_dir, mat_path = _layout(root)
    try:
        records = loadmat(str(mat_path))["fixations"].reshape(-1)
    except Exception as ex:  # not a .mat, or no `fixations` variable
        raise UserError(f"cannot read OSIE fixations from {mat_path}: {ex}") from ex
    stimuli, scanpaths, missing = [], [], []
    skips = ImageSkips("osie", strict)
    for record in records:
        record = _record(record)
        name = _string(record["img"])
        path = stimuli_dir / name
        if not path.is_file():
            missing.append(name)
            continue
        size = skips.size(path)
        if size is None:
            continue
        stimulus = Stimulus(Path(name).stem, path, size)
        paths = []
        for k, subject in enumerate(np.asarray(record["subjects"], dtype=object).reshape(-1)):
            fix = _record(subject)
            x, y = _cell(fix["fix_x"]), _cell(fix["fix_y"])
            if len(x) == 0:
                continue
            paths.append(
                Scanpath(x, y, duration=_cell(fix["fix_duration"]), subject=f"s{k + 1:02d}", stimulus=stimulus.id)
            )
        stimuli.append(stimulus)
        scanpaths.append(paths)
    if missing:
        log.warning(
            "OSIE: %d images listed in %s have no file in %s (skipped), e.g. %s",
            len(missing),
            mat_path.name,
            stimuli_dir,
            missing[0],
        )
    info = {"root": str(root)} | skips.report()
    if not stimuli and skips.skipped:
        raise UserError(f"OSIE at {root}: none of the {skips.checked} images can be read, e.g. {skips.skipped[0]}")
    if not stimuli:
        raise UserError(f"OSIE at {root}: none of the {len(records)} images in fixations.mat exists in {stimuli_dir}")
    return FixationDataset("osie", stimuli, scanpaths, pixels_per_degree=None, info=info)


class OSIEDataModule(FixationDataModule):
    """OSIE as a Hydra ``data=osie`` option (see :class:`FixationDataModule` for the options)."""

    def load(self) -> FixationDataset:
        return load_osie(self.root, self.strict)
