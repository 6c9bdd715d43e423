"""What an eye tracker records, as attnlab holds it.

- :class:`Stimulus` ``(id, path, size)`` — ``size`` is ``(height, width)`` of the original image.
- :class:`Scanpath` ``(x, y, duration=None, onset=None, subject="", stimulus="")`` — one subject's
  fixations on one stimulus, in viewing order. ``x``/``y`` are in pixels of the ORIGINAL image with
  the dataset's own origin (MIT1003 as published, exactly as pysaliency reads it; OSIE-layout MATLAB
  data 0-based, ``fix_x − 1``, see :mod:`attnlab.data.osie`);
  ``duration``/``onset`` in milliseconds when the dataset records them.
- :class:`Fixations` — the fixations of one image as flat arrays (x, y, subject, order, duration).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from attnlab.utils.config import UserError

__all__ = ["Stimulus", "Scanpath", "Fixations"]


@dataclass(frozen=True)
class Stimulus:
    """One image shown to observers: ``size`` = (height, width) in pixels."""

    id: str
    path: Optional[Path]
    size: tuple[int, int]

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]


@dataclass(frozen=True, eq=False)
class Scanpath:
    """One subject's fixations on one stimulus, in order (pixels of the original image, ms)."""

    x: np.ndarray
    y: np.ndarray
    duration: Optional[np.ndarray] = None
    onset: Optional[np.ndarray] = None
    subject: str = ""
    stimulus: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "y", np.asarray(self.y, dtype=np.float64).reshape(-1))
        if len(self.x) != len(self.y):
            raise UserError(
                f"scanpath of subject {self.subject!r} on {self.stimulus!r}: {len(self.x)} x values but "
                f"{len(self.y)} y values"
            )
        for name in ("duration", "onset"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if len(value) != len(self.x):
                    raise UserError(
                        f"scanpath of subject {self.subject!r} on {self.stimulus!r}: {len(value)} "
                        f"{name}s for {len(self.x)} fixations"
                    )
                object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xy(self) -> np.ndarray:
        """n×2 array of (x, y)."""
        return np.stack([self.x, self.y], axis=1)

    def select(self, keep: np.ndarray) -> "Scanpath":
        """The scanpath restricted to the fixations where ``keep`` is true."""
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return replace(self, x=self.x[keep], y=self.y[keep], duration=pick(self.duration), onset=pick(self.onset))

    def scaled(self, sx: float, sy: float) -> "Scanpath":
        """Coordinates multiplied by (sx, sy), e.g. to another image size."""
        return replace(self, x=self.x * sx, y=self.y * sy)


@dataclass(frozen=True, eq=False)
class Fixations:
    """All fixations on one image as flat arrays; ``order`` is the index within its scanpath."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    order: np.ndarray
    duration: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def from_scanpaths(cls, scanpaths: Sequence[Scanpath]) -> "Fixations":
        if not scanpaths:
            empty = np.zeros(0)
            return cls(empty, empty, np.zeros(0, dtype=object), np.zeros(0, dtype=int))
        durations = None
        if all(s.duration is not None for s in scanpaths):
            durations = np.concatenate([s.duration for s in scanpaths])
        return cls(
            x=np.concatenate([s.x for s in scanpaths]),
            y=np.concatenate([s.y for s in scanpaths]),
            subject=np.concatenate([np.full(len(s), s.subject, dtype=object) for s in scanpaths]),
            order=np.concatenate([np.arange(len(s)) for s in scanpaths]),
            duration=durations,
        )
