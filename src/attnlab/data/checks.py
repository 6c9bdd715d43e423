"""Bad input at the data layer: broken image files and unusable fixations, named and counted once.

- :func:`image_size` opens AND decodes an image (JPEGs at 1/8 scale, so a whole dataset is checked
  in seconds) and raises :class:`UnreadableImage` naming the file: zero-byte, random-byte and
  truncated files are caught when the dataset is loaded, not in the middle of training or scoring.
- :class:`ImageSkips` is what every loader uses: a broken image is skipped and counted (one warning
  per dataset, naming the first file), or is an error with ``strict=True`` (``data.strict=true``).
- :func:`valid_fixations` drops fixations with a NaN/inf coordinate or outside the image (the rule
  of :func:`attnlab.data.fixation_maps.pixel_indices`, so maps and scanpath metrics see the same
  fixations), counts them and reports them once per dataset. Stimuli stay (the splits do not move);
  one left without fixations is skipped (and counted) by whatever scores it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnlab.data.fixation_maps import pixel_indices
from attnlab.utils.config import UserError

if TYPE_CHECKING:
    from attnlab.data.fixations import FixationDataset

log = logging.getLogger(__name__)

__all__ = ["UnreadableImage", "image_size", "ImageSkips", "valid_fixations", "finite_scanpath"]


class UnreadableImage(UserError):
    """An image file that is missing, empty or does not decode."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path, self.reason = Path(path), reason


def _reason(ex: Exception) -> str:
    text = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
    return text.replace(" (data.strict=true)", "")


def image_size(path: str | Path, decode: bool = True) -> tuple[int, int]:
    """(height, width) of an image that decodes; :class:`UnreadableImage` otherwise."""
    from PIL import Image

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage(path, "the file is empty (0 bytes)")
        with Image.open(path) as im:
            size = (int(im.size[1]), int(im.size[0]))
            if decode:
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, size[1] // 8), max(1, size[0] // 8)))
                im.load()
        return size
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage(path, "no such file") from None
    except Exception as ex:  # PIL raises many types for bad files (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise UnreadableImage(path, _reason(ex)) from None


@dataclass
class ImageSkips:
    """Broken images of one dataset: skipped and counted, or an error with ``strict``."""

    dataset: str
    strict: bool = False
    skipped: list[UnreadableImage] = field(default_factory=list)
    checked: int = 0

    def size(self, path: str | Path) -> tuple[int, int] | None:
        """(H, W) of ``path``, or None when it is broken and skipped."""
        self.checked += 1
        try:
            return image_size(path)
        except UnreadableImage as ex:
            if self.strict:
                raise UserError(f"{self.dataset}: {ex} (data.strict=true; set data.strict=false to skip it)") from None
            self.skipped.append(ex)
            return None

    def report(self) -> dict[str, Any]:
        """Warn once (when images were skipped); the counts for the dataset's ``info``."""
        if self.skipped:
            first = self.skipped[0]
            log.warning(
                "%s: skipped %d of %d images that cannot be read, e.g. %s (%s); data.strict=true makes this an error",
                self.dataset,
                len(self.skipped),
                self.checked,
                first.path,
                first.reason,
            )
        return {"unreadable_images": [str(s.path) for s in self.skipped]}


def finite_scanpath(scanpath):
    """``scanpath`` without fixations whose x or y is NaN/inf, and how many were dropped."""
    keep = np.isfinite(scanpath.x) & np.isfinite(scanpath.y)
    return (scanpath, 0) if keep.all() else (scanpath.select(keep), int((~keep).sum()))


def valid_fixations(data: "FixationDataset") -> "FixationDataset":
    """``data`` without fixations that are not finite or lie outside their image; counted in
    ``info["dropped_fixations"]`` and reported once. Scanpaths left empty are removed."""
    from attnlab.data.fixations import FixationDataset

    not_finite = outside = total = emptied = 0
    emptied_images = []
    out = []
    for stimulus, paths in zip(data.stimuli, data.scanpaths):
        kept = []
        for p in paths:
            total += len(p)
            finite = np.isfinite(p.x) & np.isfinite(p.y)
            _, _, inside = pixel_indices(p.x, p.y, stimulus.size, None)
            not_finite += int((~finite).sum())
            outside += int((finite & ~inside).sum())
            q = p if inside.all() else p.select(inside)
            if len(q):
                kept.append(q)
            else:
                emptied += 1
        if paths and not kept:
            emptied_images.append(stimulus.id)
        out.append(kept)
    if total and not_finite + outside == total:
        raise UserError(
            f"{data.name}: none of its {total} fixations lies inside its image ({not_finite} NaN/inf, "
            f"{outside} outside); are x and y swapped, or in another unit than pixels of the original image?"
        )
    info = dict(data.info)
    if not_finite or outside:
        info["dropped_fixations"] = {
            "not_finite": not_finite,
            "outside_image": outside,
            "of": total,
            "emptied_scanpaths": emptied,
            "images_without_fixations": emptied_images,
        }
        why = [
            f"{n} {what}"
            for n, what in ((not_finite, "with a NaN/inf coordinate"), (outside, "outside the image"))
            if n
        ]
        message = f"{data.name}: dropped {not_finite + outside} of {total} fixations ({', '.join(why)})"
        if emptied:
            message += f"; {emptied} scanpaths left empty"
        if emptied_images:
            message += (
                f"; {len(emptied_images)} images have no fixation left (skipped when scored), e.g. {emptied_images[0]}"
            )
        log.warning(message)
    return FixationDataset(data.name, list(data.stimuli), out, data.pixels_per_degree, info)
