"""Bring your own fixation data: a folder of images plus scanpaths in JSON or CSV.

Layout::

    <root>/images/<stimulus id>.<jpg|jpeg|png>     (or the images directly in <root>)
    <root>/scanpaths.json  or  <root>/scanpaths.csv

Scanpath files (also what ``python -m attnlab.benchmark attention=<file>`` reads for model
scanpaths; x, y in pixels of the original image, duration/onset in ms, both optional):

- JSON: a list of ``{"stimulus": "<id>", "subject": "<name>", "x": [...], "y": [...],
  "duration": [...], "onset": [...]}`` (``stimulus`` may also be ``"image"`` or a file name).
  A record may instead hold ``"fixations": [{"x": ..., "y": ..., "duration": ...}, ...]`` and name
  its stimulus ``"name"`` (what ``python -m attnlab.scanpaths`` writes per image); the file may be
  one such record.
- CSV: one row per fixation, in viewing order, with a header containing ``stimulus, subject, x, y``
  (``image`` is read as ``stimulus``; without either, the file is one scanpath of the stimulus
  named like the file) and optionally ``duration, onset``; consecutive rows of the same
  (stimulus, subject) form a scanpath.

Optional ``<root>/info.json``: ``{"name": "...", "pixels_per_degree": 35}``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from attnlab.data.checks import ImageSkips, finite_scanpath
from attnlab.data.fixation_datamodule import FixationDataModule
from attnlab.data.fixations import FixationDataset, Scanpath, Stimulus
from attnlab.utils.config import UserError
from attnlab.utils.io import write_json

log = logging.getLogger(__name__)

__all__ = ["read_scanpaths", "write_scanpaths", "load_folder", "FolderDataModule", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _stimulus_key(value) -> str:
    return Path(str(value)).stem if Path(str(value)).suffix.lower() in IMAGE_SUFFIXES + (".npy",) else str(value)


def _numbers(record: dict, field: str, k: int, path: Path) -> list | None:
    """``record[field]`` as it is written: a list of JSON numbers (``null`` for an absent duration or
    onset). Anything else (a bare number, a nested list, text, true/false) is refused, not coerced."""
    value = record.get(field)
    if value is None and field in ("duration", "onset"):
        return None
    numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not numbers:
        raise UserError(f"{path}: scanpath {k}: {field} must be a list of numbers, got {json.dumps(value)[:60]}")
    return value


def read_scanpaths(path: str | Path, drop_not_finite: bool = True) -> dict[str, list[Scanpath]]:
    """Scanpaths of a JSON/CSV file (format above), grouped by stimulus id in file order.

    Fixations with a NaN/inf coordinate are dropped and counted (one warning per file) unless
    ``drop_not_finite`` is false (a dataset's loader leaves them to :func:`attnlab.data.fixations.valid_fixations`).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"scanpath file not found: {path}")
    groups: "OrderedDict[str, list[Scanpath]]" = OrderedDict()
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            records = json.loads(path.read_text())
            if isinstance(records, dict) and "fixations" in records:  # one scanpath record
                records = [records]
            elif isinstance(records, dict):  # {stimulus: [scanpath, ...]}
                records = [dict(r, stimulus=k) for k, rs in records.items() for r in rs]
            for k, r in enumerate(records):
                if isinstance(r.get("fixations"), list):  # per-fixation dicts → per-field lists
                    fix = r["fixations"]
                    r = dict(
                        r,
                        **{
                            c: [f[c] for f in fix]
                            for c in ("x", "y", "duration", "onset")
                            if fix and all(c in f for f in fix)
                        },
                    )
                    r.setdefault("x", []), r.setdefault("y", [])
                named = r.get("stimulus", r.get("name") or r.get("image") or "")
                if not isinstance(named, (str, int)) or isinstance(named, bool) or "x" not in r or "y" not in r:
                    raise UserError(f"{path}: scanpath {k} needs 'stimulus' (a name), 'x' and 'y'")
                stim = _stimulus_key(named)
                if not stim:
                    raise UserError(f"{path}: scanpath {k} needs 'stimulus', 'x' and 'y'")
                x, y, duration, onset = (_numbers(r, c, k, path) for c in ("x", "y", "duration", "onset"))
                groups.setdefault(stim, []).append(Scanpath(x, y, duration, onset, str(r.get("subject", k)), stim))
        elif suffix == ".csv":
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and "stimulus" not in rows[0]:  # `image` names the stimulus, else the file does
                rows = [dict(r, stimulus=r.get("image", path.stem)) for r in rows]
            if rows and not {"stimulus", "x", "y"} <= set(rows[0]):
                raise UserError(
                    f"{path}: CSV header must contain stimulus, x, y (and optionally subject, duration, "
                    f"onset); got {list(rows[0])}"
                )
            current, bucket = None, []

            def flush():
                if bucket:
                    stim, subj = current
                    col = lambda name: (
                        None
                        if name not in bucket[0] or bucket[0][name] in ("", None)
                        else [float(r[name]) for r in bucket]
                    )  # noqa: E731
                    groups.setdefault(stim, []).append(
                        Scanpath(
                            [float(r["x"]) for r in bucket],
                            [float(r["y"]) for r in bucket],
                            col("duration"),
                            col("onset"),
                            subj,
                            stim,
                        )
                    )

            for r in rows:
                key = (_stimulus_key(r["stimulus"]), str(r.get("subject", "")))
                if key != current:
                    flush()
                    current, bucket = key, []
                bucket.append(r)
            flush()
        else:
            raise UserError(f"scanpath file {path} must end in .json or .csv")
    except UserError as ex:  # a scanpath's own check: say which file
        raise ex if str(path) in str(ex) else UserError(f"{path}: {ex}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as ex:
        raise UserError(
            f"cannot read scanpaths from {path}: {str(ex).splitlines()[0] if str(ex) else type(ex).__name__}"
        ) from None
    if drop_not_finite:
        dropped = total = 0
        for stim, paths in groups.items():
            cleaned = []
            for p in paths:
                total += len(p)
                q, n = finite_scanpath(p)
                dropped += n
                if len(q):
                    cleaned.append(q)
            groups[stim] = cleaned
        if dropped:
            log.warning("%s: dropped %d of %d fixations with a NaN/inf coordinate", path, dropped, total)
    return dict(groups)


def write_scanpaths(path: str | Path, scanpaths: list[Scanpath]) -> Path:
    """Write scanpaths as JSON (the format :func:`read_scanpaths` reads), atomically."""

    def plain(a):
        return None if a is None else np.asarray(a, dtype=float).tolist()

    records = [
        {
            k: v
            for k, v in dict(
                stimulus=s.stimulus,
                subject=s.subject,
                x=plain(s.x),
                y=plain(s.y),
                duration=plain(s.duration),
                onset=plain(s.onset),
            ).items()
            if v is not None
        }
        for s in scanpaths
    ]
    return write_json(path, records)


def load_folder(root: str | Path, strict: bool = False) -> FixationDataset:
    """A :class:`FixationDataset` from a folder in the layout above (images that do not decode are
    skipped and counted, an error with ``strict``)."""
    root = Path(root).expanduser()
    image_dir = root / "images" if (root / "images").is_dir() else root
    files = [root / n for n in ("scanpaths.json", "scanpaths.csv") if (root / n).is_file()]
    if not files:
        raise UserError(f"no scanpaths.json or scanpaths.csv in {root}")
    groups = read_scanpaths(files[0], drop_not_finite=False)
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    info = _read_info(root / "info.json")
    skips = ImageSkips(str(info.get("name", root.name)), strict)
    stimuli, scanpaths = [], []
    for stem, path in images.items():
        size = skips.size(path)
        if size is None:
            continue
        stimuli.append(Stimulus(stem, path, size))
        scanpaths.append(groups.get(stem, []))
    skipped = skips.report()
    unknown = sorted(set(groups) - set(images))
    if unknown:
        raise UserError(f"{files[0]}: scanpaths for stimuli without an image in {image_dir}: {unknown[:5]}")
    if not stimuli and skips.skipped:
        raise UserError(f"none of the {skips.checked} images in {image_dir} can be read, e.g. {skips.skipped[0]}")
    if not stimuli:
        raise UserError(f"no images (.jpg/.png) in {image_dir}")
    return FixationDataset(
        info.get("name", root.name), stimuli, scanpaths, info.get("pixels_per_degree"), {"root": str(root)} | skipped
    )


def _read_info(path: Path) -> dict:
    """The optional info.json: a dict with ``name`` and/or a positive ``pixels_per_degree``."""
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except ValueError as ex:
        raise UserError(f"cannot read {path}: {ex}") from None
    if not isinstance(info, dict):
        raise UserError(f'{path} must hold a JSON object such as {{"name": "mine", "pixels_per_degree": 35}}')
    ppd = info.get("pixels_per_degree")
    if ppd is not None and (
        isinstance(ppd, bool) or not isinstance(ppd, (int, float)) or not np.isfinite(ppd) or ppd <= 0
    ):
        raise UserError(f"{path}: pixels_per_degree={ppd!r} is not allowed; expected a number > 0")
    return info


class FolderDataModule(FixationDataModule):
    """``data=fixation_folder data.root=PATH``: your own images and scanpaths."""

    def load(self) -> FixationDataset:
        return load_folder(self.root, self.strict)
