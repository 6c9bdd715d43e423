"""OSIE (Xu et al., JoV 2014) and any eye-tracking dataset in its MATLAB layout.

Layout (the dataset's GitHub release; the shared copy holds 400 of its 700 images)::

    <root>/data/stimuli/<image>            # any size, any format PIL reads; sizes may differ per image
    <root>/data/eye/fixations.mat          # fixations(i).img = '<image>' (a file name in stimuli/),
                                           # fixations(i).subjects(s).fix_x / fix_y / fix_duration

``root`` may also be the ``data`` folder itself. ``fixations`` may be a cell array of 1×1 structs
(as OSIE ships it) or a struct array, and so may ``subjects``; any number of observers per image.
``fix_duration`` (ms) is optional. Each image's size is read from its file (nothing assumes 800×600).

Coordinates: MATLAB's are 1-based, pixel k spanning [k, k+1) in ``fix_x`` — so ``fix_x`` runs up
to and including the width. attnlab's are 0-based (column j spans [j, j+1), see
:mod:`attnlab.data.fixation_maps`), so the loader stores ``x = fix_x − 1`` and ``y = fix_y − 1``
(as attnlab's SALICON loaders do): ``fix_x = 1`` is column 0 and ``fix_x = W`` column W − 1. A
fixation that lands outside the image (``fix_x < 1`` or ``fix_x ≥ W + 1``) is dropped and counted
when the data module is set up (:func:`attnlab.data.fixations.valid_fixations`).

Bad input: a .mat without this structure is one line naming the missing field; a listed image
that has no file, or that does not decode, is skipped and counted in one warning (an error with
``strict=True``); an image without any fixation is skipped and counted (its map would be empty).
The first fixation of each scanpath is the central start fixation: ``drop_first=True``
(``data.drop_first=true``) removes it.

Usage::

    from attnlab.data.osie import load_osie
    data = load_osie(os.environ["ATTNLAB_OSIE_ROOT"])      # FixationDataset
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["load_osie", "OSIEDataModule", "OSIE_SIZE", "MATLAB_ORIGIN"]

OSIE_SIZE = (600, 800)  # (H, W) of the published OSIE images; the loader reads each image's own size
MATLAB_ORIGIN = 1.0  # fix_x/fix_y of the first pixel: x = fix_x − MATLAB_ORIGIN
STRUCTURE = "fixations(i).img and fixations(i).subjects(s).fix_x/fix_y[/fix_duration]"


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


def _cell(value, where: str, mat_path: Path) -> np.ndarray:
    """A MATLAB numeric vector field (1×n or n×1) as a flat float array (empty fields become empty
    arrays); text, a matrix or a struct is one line, not coerced or flattened."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    if not np.size(value):
        return np.zeros(0)
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array) or sum(d > 1 for d in array.shape) > 1:
        shown = f"{array.dtype} of shape {array.shape}" if array.dtype.kind not in "US" else repr(value)[:30]
        raise UserError(f"{mat_path}: {where} is {shown}; expected a vector of numbers ({STRUCTURE})")
    return array.astype(np.float64).reshape(-1)


def _record(value):
    """A MATLAB struct element (possibly wrapped in 1×1 arrays or cells) as a numpy record."""
    while isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _elements(value) -> list:
    """The elements of a MATLAB struct array or cell array (of structs), as records."""
    if isinstance(value, np.ndarray) and value.dtype.names is None and value.dtype != object:
        return [value]  # a plain numeric array: not a struct, reported by _field
    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        inner = value.reshape(-1)[0]
        if isinstance(inner, np.ndarray) and inner.size > 1:  # a cell holding a struct array
            value = inner
    if not isinstance(value, np.ndarray):
        return [value]
    return [_record(v) for v in value.reshape(-1)]


def _field(record: Any, name: str, where: str, mat_path: Path, optional: bool = False):
    names = getattr(getattr(record, "dtype", None), "names", None) or ()
    if name not in names:
        if optional:
            return None
        found = ", ".join(names) if names else f"a {type(record).__name__}, not a struct"
        raise UserError(f"{mat_path}: {where} has no field {name!r} ({found}); expected {STRUCTURE}")
    return record[name]


def _string(value, where: str, mat_path: Path) -> str:
    """A MATLAB char field (possibly wrapped in cell/object arrays) as a str."""
    while isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if not isinstance(value, str) or not value:
        raise UserError(f"{mat_path}: {where}.img is {value!r}, not an image file name; expected {STRUCTURE}")
    return value


def _read_mat(mat_path: Path) -> list:
    from scipy.io import loadmat

    try:
        contents = loadmat(str(mat_path))
    except Exception as ex:  # not a .mat at all
        raise UserError(f"cannot read OSIE fixations from {mat_path}: {str(ex).splitlines()[0]}") from None
    if "fixations" not in contents:
        found = ", ".join(k for k in contents if not k.startswith("__")) or "none"
        raise UserError(f"{mat_path} has no variable 'fixations' (variables: {found}); expected {STRUCTURE}")
    return _elements(contents["fixations"])


def _scanpaths(record, i: int, stimulus: Stimulus, mat_path: Path) -> list[Scanpath]:
    paths = []
    for s, subject in enumerate(_elements(_field(record, "subjects", f"fixations({i})", mat_path))):
        where = f"fixations({i}).subjects({s + 1})"
        x = _cell(_field(subject, "fix_x", where, mat_path), f"{where}.fix_x", mat_path) - MATLAB_ORIGIN
        y = _cell(_field(subject, "fix_y", where, mat_path), f"{where}.fix_y", mat_path) - MATLAB_ORIGIN
        duration = _field(subject, "fix_duration", where, mat_path, optional=True)
        if len(x) == 0 and len(y) == 0:
            continue
        duration = (
            None if duration is None or np.size(duration) == 0 else _cell(duration, f"{where}.fix_duration", mat_path)
        )
        try:
            paths.append(Scanpath(x, y, duration=duration, subject=f"s{s + 1:02d}", stimulus=stimulus.id))
        except UserError as ex:  # x, y and durations of different lengths
            raise UserError(f"{mat_path}: {where}: {ex}") from None
    return paths


def load_osie(root: str | Path, strict: bool = False) -> FixationDataset:
    """Read OSIE (or any dataset in its layout) into a :class:`FixationDataset`, coordinates 0-based.

    Images listed but missing or not decoding, and images without fixations, are skipped and counted
    (missing and broken ones are an error with ``strict``); ``info`` lists them.
    """
    stimuli_dir, mat_path = _layout(root)
    records = _read_mat(mat_path)
    stimuli, scanpaths, missing, no_fixations = [], [], [], []
    skips = ImageSkips("osie", strict)
    for i, record in enumerate(records, start=1):
        name = _string(_field(record, "img", f"fixations({i})", mat_path), f"fixations({i})", mat_path)
        path = stimuli_dir / name
        if not path.is_file():
            if strict:
                raise UserError(
                    f"osie: {mat_path.name} lists {name}, which is not in {stimuli_dir} "
                    "(data.strict=true; set data.strict=false to skip it)"
                )
            missing.append(name)
            continue
        size = skips.size(path)
        if size is None:
            continue
        stimulus = Stimulus(Path(name).stem, path, size)
        paths = _scanpaths(record, i, stimulus, mat_path)
        if not paths:
            no_fixations.append(name)
            continue
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
    if no_fixations:
        log.warning(
            "OSIE: %d images in %s have no fixations (skipped), e.g. %s",
            len(no_fixations),
            mat_path.name,
            no_fixations[0],
        )
    info = {"root": str(root), "missing_images": missing, "images_without_fixations": no_fixations} | skips.report()
    if not stimuli and skips.skipped:
        raise UserError(f"OSIE at {root}: none of the {skips.checked} images can be read, e.g. {skips.skipped[0]}")
    if not stimuli and no_fixations:
        raise UserError(f"OSIE at {root}: none of the {len(records)} images in {mat_path.name} has a fixation")
    if not stimuli:
        raise UserError(f"OSIE at {root}: none of the {len(records)} images in fixations.mat exists in {stimuli_dir}")
    return FixationDataset("osie", stimuli, scanpaths, pixels_per_degree=None, info=info)


class OSIEDataModule(FixationDataModule):
    """OSIE as a Hydra ``data=osie`` option (see :class:`FixationDataModule` for the options)."""

    def load(self) -> FixationDataset:
        return load_osie(self.root, self.strict)
