"""Bad input at the data layer: broken image files and non-finite fixations, named and counted once.

- :func:`image_size` opens AND decodes an image (JPEGs at 1/8 scale, so a whole dataset is checked
  in seconds) and raises :class:`UnreadableImage` naming the file: zero-byte, random-byte and
  truncated files are caught when the dataset is loaded, not in the middle of training or scoring.
- :class:`ImageSkips` is what every loader uses: a broken image is skipped and counted (one warning
  per dataset, naming the first file), or is an error with ``strict=True`` (``data.strict=true``).
- :func:`finite_scanpath` drops a scanpath's NaN/inf fixations and counts them. (A whole dataset's
  fixations that are not finite or lie outside their image: :func:`attnlab.data.fixations.valid_fixations`.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["UnreadableImage", "image_size", "ImageSkips", "finite_scanpath"]


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
