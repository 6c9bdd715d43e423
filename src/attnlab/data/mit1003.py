"""MIT1003 (Judd et al., ICCV 2009): 1003 images, 15 subjects, 3 s free viewing, raw gaze at 240 Hz.

Layout (the official ALLSTIMULI.zip and DATA.zip)::

    <root>/ALLSTIMULI/<name>.jpeg
    <root>/DATA/<subject>/<name>.mat   # variable <name> (truncated to 63 characters): struct with
                                       # DATA(1).eyeData = N×2 raw gaze samples (x, y) at 240 Hz

Judd et al. extract fixations with their MATLAB ``checkFixations``; attnlab does not ship or
reimplement that code. Instead raw samples become fixations with a velocity-threshold detector
(I-VT): samples slower than ``velocity_deg_s`` (default 30°/s at ``pixels_per_degree`` = 35) form
fixations, runs shorter than ``min_fixation_ms`` (default 100 ms) are dropped, a fixation sits at the
median of its samples and its onset/duration come from the sample clock. Samples outside the image
(blinks, track loss) end a fixation. Fixations therefore differ slightly from the published ones. A
.mat that already holds extracted fixations (fields ``fixations`` n×2, optional ``starts`` in samples
and ``durations`` in ms, as pysaliency's extraction writes) is used as it is. Coordinates are used
as stored (as pysaliency does); the first fixation is the central start fixation (``drop_first``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError

__all__ = ["load_mit1003", "detect_fixations", "MIT1003DataModule", "SAMPLE_RATE"]

SAMPLE_RATE = 240.0


def detect_fixations(
    samples: np.ndarray,
    image_size: tuple[int, int],
    pixels_per_degree: float = 35.0,
    velocity_deg_s: float = 30.0,
    min_fixation_ms: float = 100.0,
    rate_hz: float = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """I-VT fixations (x, y, onset ms, duration ms) from N×2 raw gaze samples in image pixels."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    h, w = image_size
    valid = (
        np.isfinite(samples).all(1)
        & (samples[:, 0] >= 0)
        & (samples[:, 0] < w)
        & (samples[:, 1] >= 0)
        & (samples[:, 1] < h)
    )
    speed = np.full(len(samples), np.inf)
    if len(samples) > 1:
        step = np.linalg.norm(np.diff(samples, axis=0), axis=1) * rate_hz / pixels_per_degree  # deg/s
        speed[1:] = step
        speed[0] = step[0]
    slow = valid & (speed < velocity_deg_s)
    xs, ys, onsets, durations = [], [], [], []
    start = None
    for k in range(len(samples) + 1):
        if k < len(samples) and slow[k]:
            start = k if start is None else start
            continue
        if start is not None:
            duration = (k - start) * 1000.0 / rate_hz
            if duration >= min_fixation_ms:
                block = samples[start:k]
                xs.append(np.median(block[:, 0]))
                ys.append(np.median(block[:, 1]))
                onsets.append(start * 1000.0 / rate_hz)
                durations.append(duration)
            start = None
    return np.array(xs), np.array(ys), np.array(onsets), np.array(durations)


def _struct(value):
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        return _struct(value.reshape(-1)[0])
    return value


def _read_subject(path: Path, name: str, size: tuple[int, int], ppd: float, velocity: float, min_ms: float):
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), simplify_cells=True)
    except Exception as ex:
        raise UserError(f"cannot read MIT1003 gaze data {path}: {ex}") from ex
    if "fixations" in mat:  # already extracted
        xy = _points(mat["fixations"], path, "fixations")
        starts = _vector(mat["starts"], len(xy), path, "starts") * 1000.0 / SAMPLE_RATE if "starts" in mat else None
        durations = _vector(mat["durations"], len(xy), path, "durations") if "durations" in mat else None
        return xy[:, 0], xy[:, 1], starts, durations
    key = name[:63] if name[:63] in mat else next((k for k in mat if not k.startswith("__")), None)
    record = _struct(mat.get(key)) if key else None
    data = _struct(record.get("DATA")) if isinstance(record, dict) else None
    if isinstance(data, (list, np.ndarray)) and not isinstance(data, dict):
        data = _struct(data[0]) if len(data) else None
    if not isinstance(data, dict) or "eyeData" not in data:
        raise UserError(f"{path}: expected a struct {name[:63]}.DATA(1).eyeData with raw gaze samples")
    x, y, onset, duration = detect_fixations(_points(data["eyeData"], path, "eyeData"), size, ppd, velocity, min_ms)
    return x, y, onset, duration


def _numeric(value, path: Path, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.size and (not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array)):
        raise UserError(f"{path}: {what} holds {array.dtype} values; expected numbers")
    return array.astype(np.float64)


def _points(value, path: Path, what: str) -> np.ndarray:
    """An N×2 array of (x, y) as the file holds it; any other shape is one line, not reshaped."""
    array = _numeric(value, path, what)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim == 1 and array.shape[0] == 2:  # one point (MATLAB drops the singleton dimension)
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 2:
        raise UserError(f"{path}: {what} has shape {array.shape}; expected N×2 (x, y)")
    return array


def _vector(value, n: int, path: Path, what: str) -> np.ndarray:
    array = _numeric(value, path, what).reshape(-1) if np.size(value) else np.zeros(0)
    if np.ndim(value) > 1 and sum(d > 1 for d in np.shape(value)) > 1 or len(array) != n:
        raise UserError(f"{path}: {what} has shape {np.shape(value)}; expected one value for each of the {n} fixations")
    return array


def load_mit1003(
    root: str | Path,
    pixels_per_degree: float = 35.0,
    velocity_deg_s: float = 30.0,
    min_fixation_ms: float = 100.0,
    strict: bool = False,
) -> FixationDataset:
    root = Path(root).expanduser()
    stim_dir, data_dir = root / "ALLSTIMULI", root / "DATA"
    if not stim_dir.is_dir() or not data_dir.is_dir():
        raise UserError(f"MIT1003 not found at {root}: expected ALLSTIMULI/*.jpeg and DATA/<subject>/*.mat")
    subjects = sorted(p for p in data_dir.iterdir() if p.is_dir())
    stimuli, scanpaths = [], []
    skips = ImageSkips("mit1003", strict)
    for image in sorted(p for p in stim_dir.iterdir() if p.suffix.lower() in (".jpeg", ".jpg")):
        size = skips.size(image)
        if size is None:
            continue
        paths = []
        for subject in subjects:
            mat = subject / f"{image.stem}.mat"
            if not mat.is_file():
                continue
            x, y, onset, duration = _read_subject(
                mat, image.stem, size, pixels_per_degree, velocity_deg_s, min_fixation_ms
            )
            if len(x):
                paths.append(Scanpath(x, y, duration, onset, subject.name, image.stem))
        stimuli.append(Stimulus(image.stem, image, size))
        scanpaths.append(paths)
    skipped = skips.report()
    if not stimuli:
        raise UserError(f"MIT1003 at {root}: no readable .jpeg images in ALLSTIMULI/")
    return FixationDataset("mit1003", stimuli, scanpaths, pixels_per_degree, {"root": str(root)} | skipped)


class MIT1003DataModule(FixationDataModule):
    """``data=mit1003``."""

    def load(self) -> FixationDataset:
        return load_mit1003(self.root, self.pixels_per_degree or 35.0, strict=self.strict)
