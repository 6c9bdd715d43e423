"""Human fixation data: the dataset every attention model in attnlab is scored against.

:class:`FixationDataset` ``(name, stimuli, scanpaths, pixels_per_degree)`` — ``scanpaths[i]`` is the
list of scanpaths on ``stimuli[i]``. ``filtered(drop_first=, min_duration=)``, ``split(fractions,
seed)``, ``subset(indices)``, ``fixations(i)``, ``fixation_map(i, size)``, ``density(i, sigma_px=,
sigma_deg=, size=)``, ``load_image(i)``.

This module is also the face of the fixation data layer: it hands on the recorded types
(:mod:`attnlab.data.gaze`: ``Stimulus``, ``Scanpath``, ``Fixations``) and the maps made from them
(:mod:`attnlab.data.fixation_maps`). Training batches for saliency models come from
:mod:`attnlab.data.fixation_datamodule`. Loaders live next to this module (``osie``, ``mit1003``,
``salicon_fixations``, ``cat2000``, ``folder``) and all return a :class:`FixationDataset`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from attnlab.data.checks import UnreadableImage
from attnlab.data.fixation_maps import (
    TRUNCATE,
    blur,
    fixation_map,
    gaussian_density,
    gaussian_operator,
    pixel_indices,
    sigma_in_pixels,
    sparse_fixation_maps,
)
from attnlab.data.gaze import Fixations, Scanpath, Stimulus
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "Stimulus",
    "Scanpath",
    "Fixations",
    "FixationDataset",
    "fixation_map",
    "sparse_fixation_maps",
    "gaussian_density",
    "blur",
    "gaussian_operator",
    "sigma_in_pixels",
    "TRUNCATE",
    "valid_fixations",
]


@dataclass
class FixationDataset:
    """Stimuli and every subject's scanpath on each of them."""

    name: str
    stimuli: list[Stimulus]
    scanpaths: list[list[Scanpath]]
    pixels_per_degree: Optional[float] = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.stimuli) != len(self.scanpaths):
            raise UserError(
                f"dataset {self.name}: {len(self.stimuli)} stimuli but {len(self.scanpaths)} scanpath lists"
            )

    def __len__(self) -> int:
        return len(self.stimuli)

    def __repr__(self) -> str:
        return (
            f"FixationDataset({self.name!r}, {len(self)} stimuli, {len(self.subjects)} subjects, "
            f"{self.num_fixations} fixations)"
        )

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.stimuli]

    @property
    def subjects(self) -> list[str]:
        return sorted({p.subject for paths in self.scanpaths for p in paths})

    @property
    def num_fixations(self) -> int:
        return sum(len(p) for paths in self.scanpaths for p in paths)

    def fixations(self, i: int) -> Fixations:
        return Fixations.from_scanpaths(self.scanpaths[i])

    def fixation_map(
        self, i: int, size: tuple[int, int] | None = None, subjects: Optional[set[str]] = None
    ) -> tuple[np.ndarray, int]:
        """Counts per pixel of image i (optionally only ``subjects``) and the number dropped."""
        f = self._fixations_of(i, subjects)
        return fixation_map(f.x, f.y, self.stimuli[i].size, size)

    def density(
        self,
        i: int,
        sigma_px: float | None = None,
        sigma_deg: float | None = None,
        size: tuple[int, int] | None = None,
        subjects: Optional[set[str]] = None,
    ) -> np.ndarray:
        """Gaussian fixation density of image i (σ in original pixels, or degrees via pixels_per_degree)."""
        if sigma_px is None:
            if sigma_deg is None:
                raise UserError("density needs sigma_px or sigma_deg")
            sigma_px = sigma_in_pixels(sigma_deg, self.pixels_per_degree)
        f = self._fixations_of(i, subjects)
        return gaussian_density(f.x, f.y, self.stimuli[i].size, sigma_px, size)

    def _fixations_of(self, i: int, subjects: Optional[set[str]]) -> Fixations:
        paths = self.scanpaths[i]
        if subjects is not None:
            paths = [p for p in paths if p.subject in subjects]
        return Fixations.from_scanpaths(paths)

    def load_image(self, i: int) -> np.ndarray:
        """H×W×3 uint8 RGB array of stimulus i."""
        from PIL import Image

        path = self.stimuli[i].path
        if path is None or not Path(path).is_file():
            raise UserError(f"image file of stimulus {self.stimuli[i].id!r} not found: {path}")
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as ex:  # truncated or not an image: name the file
            raise UnreadableImage(path, str(ex).splitlines()[0] if str(ex) else type(ex).__name__) from None

    def subset(self, indices: Sequence[int], name: str | None = None) -> "FixationDataset":
        indices = list(indices)
        return FixationDataset(
            name or self.name,
            [self.stimuli[i] for i in indices],
            [self.scanpaths[i] for i in indices],
            self.pixels_per_degree,
            dict(self.info),
        )

    def filtered(self, drop_first: bool = False, min_duration: float = 0.0, min_length: int = 0) -> "FixationDataset":
        """Drop each scanpath's first (central) fixation and/or fixations shorter than ``min_duration`` ms.

        Scanpaths left shorter than ``min_length`` are removed. Fixations without durations are kept by
        the duration filter (nothing to compare), which is logged.
        """
        unknown = 0
        out = []
        for paths in self.scanpaths:
            kept = []
            for p in paths:
                keep = np.ones(len(p), dtype=bool)
                if drop_first and len(p):
                    keep[0] = False
                if min_duration > 0:
                    if p.duration is None:
                        unknown += 1
                    else:
                        keep &= p.duration >= min_duration
                q = p.select(keep)
                if len(q) >= max(min_length, 1):  # an emptied scanpath carries nothing
                    kept.append(q)
            out.append(kept)
        if unknown:
            log.warning(
                "%s: %d scanpaths have no durations; min_duration=%s not applied to them",
                self.name,
                unknown,
                min_duration,
            )
        return FixationDataset(self.name, list(self.stimuli), out, self.pixels_per_degree, dict(self.info))

    def split(self, fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, "FixationDataset"]:
        """Split by image into train/val/test with a seeded permutation (fractions are normalised)."""
        fractions = [float(f) for f in fractions]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
            raise UserError(
                f"split={fractions} is not allowed; expected three non-negative fractions (train, val, test)"
            )
        total = sum(fractions)
        order = np.random.default_rng(seed).permutation(len(self))
        n_train = int(round(len(self) * fractions[0] / total))
        n_val = int(round(len(self) * fractions[1] / total))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        return {k: self.subset(sorted(v.tolist()), f"{self.name}/{k}") for k, v in parts.items()}


def valid_fixations(data: FixationDataset) -> FixationDataset:
    """``data`` without fixations that are not finite or lie outside their image; counted in
    ``info["dropped_fixations"]`` and reported once. Scanpaths left empty are removed."""
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
