"""Human fixation data: stimuli, scanpaths, fixation maps and Gaussian fixation densities.

This is the data layer every attention model in attnlab is scored against. Public API (stable):

- :class:`Stimulus` ``(id, path, size)`` — ``size`` is ``(height, width)`` of the original image.
- :class:`Scanpath` ``(x, y, duration=None, onset=None, subject="", stimulus="")`` — one subject's
  fixations on one stimulus, in viewing order. ``x``/``y`` are in pixels of the ORIGINAL image with
  the dataset's own origin (OSIE and MIT1003 as published, exactly as pysaliency reads them);
  ``duration``/``onset`` in milliseconds when the dataset records them.
- :class:`Fixations` — the fixations of one image as flat arrays (x, y, subject, order, duration).
- :class:`FixationDataset` ``(name, stimuli, scanpaths, pixels_per_degree)`` — ``scanpaths[i]`` is the
  list of scanpaths on ``stimuli[i]``. ``filtered(drop_first=, min_duration=)``, ``split(fractions,
  seed)``, ``subset(indices)``, ``fixations(i)``, ``fixation_map(i, size)``, ``density(i, sigma_px=,
  sigma_deg=, size=)``, ``load_image(i)``.
- :func:`fixation_map` ``(x, y, image_size, size=None)`` → ``(counts H×W, dropped)``: fixation counts
  per pixel. A fixation at ``x`` falls in column ``floor(x · W / W_image)`` (pixel j covers
  [j, j+1)); fixations outside the image are dropped and counted.
- :func:`sparse_fixation_maps` ``(points, image_sizes, size=None)`` → the same counts for several
  images as one sparse B×H×W tensor, which the saliency metrics take without a per-pixel cost.
- :func:`gaussian_density` ``(x, y, image_size, sigma_px, size=None)`` → H×W density summing to 1:
  the fixation map blurred with a Gaussian exactly as ``scipy.ndimage.gaussian_filter(mode="reflect",
  truncate=4)`` does (which is what pysaliency's ``FixationMap(kernel_size=sigma)`` uses).
- :func:`blur` ``(maps B×H×W, sigma_px)`` — the same Gaussian for dense maps, in torch.
- :func:`sigma_in_pixels` ``(sigma_deg, pixels_per_degree)``.
- :class:`FixationDataModule` — LightningDataModule over a :class:`FixationDataset` that yields
  ``{"image", "fixations", "density", "index"}`` batches for training saliency models.

Loaders live next to this module (``osie``, ``mit1003``, ``salicon_fixations``, ``cat2000``, ``folder``)
and all return a :class:`FixationDataset`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from attnlab.data.base import SplitDataModule
from attnlab.utils.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Size2, Split3, UserError

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
    "FixationDataModule",
]

# scipy.ndimage.gaussian_filter's default: the kernel reaches 4 sigma on each side
TRUNCATE = 4.0


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
            raise UserError(f"scanpath of subject {self.subject!r} on {self.stimulus!r}: {len(self.x)} x values but {len(self.y)} y values")
        for name in ("duration", "onset"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if len(value) != len(self.x):
                    raise UserError(f"scanpath of subject {self.subject!r} on {self.stimulus!r}: {len(value)} {name}s for {len(self.x)} fixations")
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


def sigma_in_pixels(sigma_deg: float, pixels_per_degree: float) -> float:
    """A Gaussian width given in degrees of visual angle, in pixels."""
    if pixels_per_degree is None or pixels_per_degree <= 0:
        raise UserError(f"pixels_per_degree={pixels_per_degree!r} is needed to give sigma in degrees; set it to a number > 0")
    return float(sigma_deg) * float(pixels_per_degree)


def _pixel_indices(x: np.ndarray, y: np.ndarray, image_size: tuple[int, int], size: tuple[int, int] | None):
    """Row/column of each fixation on a ``size`` map of an ``image_size`` image; mask of those inside."""
    h0, w0 = image_size
    h, w = size or image_size
    cols = np.floor(np.asarray(x, dtype=np.float64) * (w / w0))
    rows = np.floor(np.asarray(y, dtype=np.float64) * (h / h0))
    inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    return rows[inside].astype(np.int64), cols[inside].astype(np.int64), inside


def fixation_map(
    x: np.ndarray, y: np.ndarray, image_size: tuple[int, int], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, int]:
    """Fixation counts per pixel (H×W float64) and the number of fixations dropped outside the image.

    ``x``/``y`` are in pixels of an image of ``image_size`` = (H0, W0); the map has ``size`` (default
    ``image_size``) and fixation (x, y) lands in column floor(x·W/W0), row floor(y·H/H0).
    """
    h, w = size or image_size
    rows, cols, inside = _pixel_indices(x, y, image_size, size)
    counts = np.bincount(rows * w + cols, minlength=h * w).astype(np.float64).reshape(h, w)
    return counts, int((~inside).sum())


def sparse_fixation_maps(
    points: Sequence[tuple[np.ndarray, np.ndarray]], image_sizes: Sequence[tuple[int, int]], size: tuple[int, int] | None = None
) -> torch.Tensor:
    """:func:`fixation_map` of several images as one sparse B×H×W count tensor (float64).

    ``points[i]`` = (x, y) of image i in pixels of ``image_sizes[i]``; every map has ``size``
    (default: the first image's size). The saliency metrics take it in place of dense counts.
    """
    size = tuple(size or image_sizes[0])
    pixels = size[0] * size[1]
    keys = []  # one per fixation, image-major (b·H·W + row·W + column): one sort for all images
    for b, ((x, y), image_size) in enumerate(zip(points, image_sizes)):
        rows, cols, _ = _pixel_indices(x, y, image_size, size)
        keys.append(b * pixels + rows * size[1] + cols)
    key, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64), return_counts=True)
    b, pixel = np.divmod(key, pixels)
    index = torch.from_numpy(np.stack([b, pixel // size[1], pixel % size[1]]))
    return torch.sparse_coo_tensor(index, torch.from_numpy(counts.astype(np.float64)), (len(points), *size), is_coalesced=True, check_invariants=False)  # np.unique sorts


@lru_cache(maxsize=32)
def _kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: radius int(4σ + 0.5), normalised to sum 1."""
    radius = int(TRUNCATE * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (sigma * sigma) * t * t)
    return k / k.sum()


def _reflect(p: np.ndarray, n: int) -> np.ndarray:
    """scipy's 'reflect' boundary (d c b a | a b c d | d c b a) for any integer index."""
    p = np.mod(p, 2 * n)
    return np.where(p < n, p, 2 * n - 1 - p)


@lru_cache(maxsize=16)
def gaussian_operator(n: int, sigma: float) -> np.ndarray:
    """n×n matrix of the 1-D Gaussian filter with reflect boundary: ``out = M @ signal``."""
    k = _kernel(float(sigma))
    radius = len(k) // 2
    out = np.zeros((n, n))
    rows = np.arange(n)
    for t in range(-radius, radius + 1):
        np.add.at(out, (rows, _reflect(rows + t, n)), k[t + radius])
    return out


def gaussian_density(
    x: np.ndarray,
    y: np.ndarray,
    image_size: tuple[int, int],
    sigma_px: float,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Fixations blurred by a Gaussian (σ in pixels of the ORIGINAL image), normalised to sum 1.

    Equals ``gaussian_filter(fixation_map, σ', mode="reflect")`` / sum with σ' = σ scaled to ``size``,
    computed as a sparse product (rows of the blur operator at the fixated pixels), so it costs
    O(H·W·#fixations) instead of a dense convolution. No fixations → NaN map (nothing to blur).
    """
    h0, w0 = image_size
    h, w = size or image_size
    rows, cols, _ = _pixel_indices(x, y, image_size, size)
    if len(rows) == 0:
        return np.full((h, w), np.nan)
    sy = sigma_px * h / h0
    sx = sigma_px * w / w0
    if sy <= 0 or sx <= 0:
        counts, _ = fixation_map(x, y, image_size, size)
        return counts / counts.sum()
    a = gaussian_operator(h, round(sy, 9))[:, rows]  # H×K: vertical spread of each fixation
    b = gaussian_operator(w, round(sx, 9))[:, cols]  # W×K
    density = a @ b.T
    return density / density.sum()


def blur(maps: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of B×H×W (or H×W) maps, scipy 'reflect' boundary, on the maps' device."""
    squeeze = maps.dim() == 2
    m = maps.unsqueeze(0) if squeeze else maps
    if sigma_px <= 0:
        return maps
    h, w = m.shape[-2:]
    dtype = m.dtype if m.dtype in (torch.float32, torch.float64) else torch.float64
    my = torch.as_tensor(gaussian_operator(h, float(sigma_px)), dtype=dtype, device=m.device)
    mx = torch.as_tensor(gaussian_operator(w, float(sigma_px)), dtype=dtype, device=m.device)
    out = my @ m.to(dtype) @ mx.T
    return out[0] if squeeze else out


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
            raise UserError(f"dataset {self.name}: {len(self.stimuli)} stimuli but {len(self.scanpaths)} scanpath lists")

    def __len__(self) -> int:
        return len(self.stimuli)

    def __repr__(self) -> str:
        return f"FixationDataset({self.name!r}, {len(self)} stimuli, {len(self.subjects)} subjects, {self.num_fixations} fixations)"

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.stimuli]

    @property
    def subjects(self) -> list[str]:
        return sorted({p.subject for paths in self.scanpaths for p in paths})

    @property
    def num_fixations(self) -> int:
        return sum(len(p) for paths in self.scanpaths for p in paths)

    def index_of(self, stimulus_id: str) -> int:
        try:
            return self.ids.index(stimulus_id)
        except ValueError:
            raise UserError(f"stimulus {stimulus_id!r} is not in dataset {self.name}") from None

    def fixations(self, i: int) -> Fixations:
        return Fixations.from_scanpaths(self.scanpaths[i])

    def fixation_map(self, i: int, size: tuple[int, int] | None = None, subjects: Optional[set[str]] = None) -> tuple[np.ndarray, int]:
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
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

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
            log.warning("%s: %d scanpaths have no durations; min_duration=%s not applied to them", self.name, unknown, min_duration)
        return FixationDataset(self.name, list(self.stimuli), out, self.pixels_per_degree, dict(self.info))

    def split(self, fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, "FixationDataset"]:
        """Split by image into train/val/test with a seeded permutation (fractions are normalised)."""
        fractions = [float(f) for f in fractions]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
            raise UserError(f"split={fractions} is not allowed; expected three non-negative fractions (train, val, test)")
        total = sum(fractions)
        order = np.random.default_rng(seed).permutation(len(self))
        n_train = int(round(len(self) * fractions[0] / total))
        n_val = int(round(len(self) * fractions[1] / total))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        return {k: self.subset(sorted(v.tolist()), f"{self.name}/{k}") for k, v in parts.items()}


# --- torch side: batches for training and validating saliency models --------------------------


class SaliencyTorchDataset(Dataset):
    """Image (3×h×w in [0, 1]), fixation counts and density at ``map_size``, for one split."""

    def __init__(
        self,
        data: FixationDataset,
        image_size: tuple[int, int],
        map_size: tuple[int, int] | None = None,
        sigma_px: float = 24.0,
    ) -> None:
        self.data = data
        self.image_size = tuple(image_size)
        self.map_size = tuple(map_size or image_size)
        self.sigma_px = sigma_px
        self._dropped = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        image = Image.fromarray(self.data.load_image(i)).resize(self.image_size[::-1], Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        counts, _ = self.data.fixation_map(i, self.map_size)
        density = self.data.density(i, sigma_px=self.sigma_px, size=self.map_size)
        if not np.isfinite(density).all():  # an image without fixations: a uniform target, no fixations
            density = np.full(self.map_size, 1.0 / (self.map_size[0] * self.map_size[1]))
        return {
            "image": x,
            "fixations": torch.from_numpy(counts.astype(np.float32)),
            "density": torch.from_numpy(density.astype(np.float32)),
            "index": i,
        }


class FixationDataModule(SplitDataModule):
    """Train/val/test splits by image of a :class:`FixationDataset` (made by ``load``) as batches.

    Subclasses (e.g. :class:`attnlab.data.osie.OSIEDataModule`) implement :meth:`load`. The whole
    dataset (after filtering) is in ``self.dataset`` and the splits in ``self.splits`` once
    :meth:`setup` ran; the benchmark uses these directly.
    """

    def __init__(
        self,
        root: str,
        drop_first: bool = False,
        min_duration: NonNegativeFloat = 0.0,
        split: Split3 = (0.7, 0.1, 0.2),
        seed: int = 0,
        pixels_per_degree: Optional[PositiveFloat] = None,
        sigma_deg: NonNegativeFloat = 1.0,
        image_size: Size2 = (240, 320),
        map_size: Optional[Size2] = None,
        batch_size: PositiveInt = 8,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.root = root
        self.drop_first = drop_first
        self.min_duration = min_duration
        self.split_fractions = tuple(split)
        self.seed = seed
        self.pixels_per_degree = pixels_per_degree
        self.sigma_deg = sigma_deg
        self.image_size = tuple(image_size)
        self.map_size = tuple(map_size) if map_size else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dataset: FixationDataset | None = None
        self.splits: dict[str, FixationDataset] = {}

    def load(self) -> FixationDataset:  # pragma: no cover - implemented by each dataset
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        data = self.load()
        if self.pixels_per_degree is not None:
            data.pixels_per_degree = float(self.pixels_per_degree)
        data = data.filtered(drop_first=self.drop_first, min_duration=self.min_duration)
        self.dataset = data
        self.splits = data.split(self.split_fractions, self.seed)
        log.info("%s: %s; split %s", data.name, data, {k: len(v) for k, v in self.splits.items()})

    @property
    def sigma_px(self) -> float:
        assert self.dataset is not None, "call setup() first"
        return sigma_in_pixels(self.sigma_deg, self.dataset.pixels_per_degree)

    def split_dataset(self, split: str) -> Dataset:
        data = self.splits["test" if split == "predict" else split]
        return SaliencyTorchDataset(data, self.image_size, self.map_size, self._map_sigma(data))

    def _map_sigma(self, data: FixationDataset) -> float:
        return self.sigma_px
