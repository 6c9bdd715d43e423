"""The benchmark's built-in attention sources and how ``attention=<spec>`` resolves to one.

- ``uniform``; ``centre_bias`` / ``center_bias`` (Gaussian fitted to the TRAINING split's fixations;
  its scanpaths are drawn from that Gaussian); ``inter_observer`` (humans predicting humans, scored
  subject by subject by :mod:`attnlab.benchmark.scoring`). Sampled baseline scanpaths are as long
  as each human scanpath, with every fixation lasting the mean training duration.
- a folder of saliency maps ``<stimulus id>.png|.npy`` (:class:`MapFolderSource`);
- scanpaths, in memory (:class:`ScanpathSource`, what ``python -m attnlab.scanpaths`` hands over)
  or from a ``.json``/``.csv`` file (:class:`ScanpathFileSource`, format in
  :mod:`attnlab.data.folder`); the map is the Gaussian density of their fixations. Their
  fixations outside the image (or NaN) are dropped and counted, as the humans' are; scanpaths
  without durations have no MultiMatch duration (reported as not available, never made up);
- any name of :mod:`attnlab.sources` (registered or an ``attnlab.sources`` entry point),
  ``name`` or ``name:argument``, e.g. ``saliency:path/to.ckpt``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from attnlab.baselines import fitted_centre_bias, uniform_map, uniform_scanpath, winner_take_all
from attnlab.data.fixation_maps import pixel_indices
from attnlab.data.fixations import Scanpath, gaussian_density
from attnlab.data.folder import read_scanpaths
from attnlab.metrics.maps import match_size
from attnlab.sources import AttentionSource, BenchmarkContext, lookup_source, register_source, source_names
from attnlab.utils.config import NonNegativeFloat, PositiveFloat, UserError, check_arguments

log = logging.getLogger(__name__)

__all__ = [
    "UniformSource",
    "CentreBiasSource",
    "InterObserverSource",
    "WtaSettings",
    "WtaSource",
    "MapFolderSource",
    "ScanpathSource",
    "ScanpathFileSource",
    "resolve_source",
    "split_label",
    "display_name",
    "check_unique_names",
    "mean_training_duration",
]


def mean_training_duration(ctx: BenchmarkContext) -> Optional[float]:
    """Mean fixation duration of the training split (ms), None without durations (cached)."""
    if "duration" not in ctx.cache:
        d = [p.duration for paths in ctx.train.scanpaths for p in paths if p.duration is not None]
        ctx.cache["duration"] = float(np.mean(np.concatenate(d))) if d else None
    return ctx.cache["duration"]


def _sampled_scanpaths(ctx: BenchmarkContext, i: int, draw) -> list[Scanpath]:
    """One sampled scanpath per human scanpath of image i, as long as it; every fixation lasts the
    mean training duration (a baseline knows the average, not the human's own timing)."""
    rng = np.random.default_rng([ctx.seed, i])
    size = ctx.data.stimuli[i].size
    duration = mean_training_duration(ctx)
    out = []
    for h in ctx.human_scanpaths[i]:
        s = draw(len(h), size, rng)
        dur = None if duration is None or h.duration is None else np.full(len(h), duration)
        out.append(Scanpath(s.x, s.y, dur, subject=s.subject, stimulus=ctx.data.stimuli[i].id))
    return out


def _per_size(source: AttentionSource, store: str, size, compute) -> np.ndarray:
    """One read-only array per image size, the same object each time: the benchmark derives the
    metric-specific maps of a density once per distinct array."""
    maps = source.__dict__.setdefault(store, {})
    size = tuple(size)
    if size not in maps:
        maps[size] = compute(size)
        maps[size].setflags(write=False)
    return maps[size]


@register_source("uniform")
class UniformSource(AttentionSource):
    name = "uniform"
    parallel_safe = True

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        pass

    def saliency_map(self, ctx, i):
        return uniform_map(ctx.data.stimuli[i].size)

    def log_density(self, ctx, i):
        return _per_size(self, "_log_maps", ctx.data.stimuli[i].size, lambda size: np.log(uniform_map(size)))

    def scanpaths(self, ctx, i):
        return _sampled_scanpaths(ctx, i, lambda n, size, rng: uniform_scanpath(n, size, rng))


@register_source("centre_bias")
@register_source("center_bias")
class CentreBiasSource(AttentionSource):
    name = "centre_bias"
    parallel_safe = True

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        self.model = fitted_centre_bias(ctx)
        self._maps: dict[tuple[int, int], np.ndarray] = {}  # the map depends on the image size only

    def saliency_map(self, ctx, i):
        size = tuple(ctx.data.stimuli[i].size)
        if size not in self._maps:
            self._maps[size] = self.model.map(size)
        return self._maps[size].copy()  # callers may write to it; copying costs far less than the map

    def log_density(self, ctx, i):
        return _per_size(self, "_log_maps", ctx.data.stimuli[i].size, lambda size: np.log(self.model.map(size)))

    def scanpaths(self, ctx, i):
        return _sampled_scanpaths(ctx, i, self.model.sample_scanpath)


@register_source("inter_observer")
class InterObserverSource(AttentionSource):
    """Humans predicting humans: other subjects' density / leave-one-subject-out scanpaths."""

    name = "inter_observer"
    leave_one_out = True
    parallel_safe = True

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        pass

    def saliency_map(self, ctx, i):  # for the figure: everyone's density
        return ctx.data.density(i, sigma_px=ctx.sigma_px)


class WtaSettings:
    """Settings of ``wta:<source>`` (the config node ``wta:``, e.g. ``wta.ior_sigma=2`` on the command line).

    Args:
        ior_sigma: σ of the inhibition of return, in units of the benchmark's ``sigma_px`` (the blur
            of the human density, about one degree of visual angle).
        smooth_sigma: σ of the Gaussian blur of the map before fixations are chosen, same units (0: none).
    """

    def __init__(self, ior_sigma: PositiveFloat = 1.0, smooth_sigma: NonNegativeFloat = 0.0) -> None:
        check_arguments(WtaSettings, {"ior_sigma": ior_sigma, "smooth_sigma": smooth_sigma})
        self.ior_sigma, self.smooth_sigma = float(ior_sigma), float(smooth_sigma)


@register_source("wta")
class WtaSource(AttentionSource):
    """``wta:<source>``: winner-take-all scanpaths with inhibition of return on another source's maps
    (:func:`attnlab.baselines.winner_take_all`, Itti & Koch 1998), e.g. ``wta:centre_bias``,
    ``wta:saliency:<ckpt>``. The map is the inner source's (scored as it is); the inner map, resized to
    the image, gives one deterministic fixation sequence per image, and each human scanpath gets its
    first ``len(human)`` fixations, every one lasting the mean training duration (as the sampled baselines)."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError(
                "attention=wta needs a map source: attention=wta:<source>, e.g. wta:centre_bias or wta:saliency:<ckpt>"
            )
        self.inner = resolve_source(argument, ctx)
        if self.inner.leave_one_out:
            raise UserError(f"attention=wta:{argument}: {argument} is scored subject by subject and has no model map")
        settings = ctx.options.get("wta") or WtaSettings()
        self.ior_sigma_px = settings.ior_sigma * ctx.sigma_px
        self.smooth_sigma_px = settings.smooth_sigma * ctx.sigma_px
        self.parallel_safe = self.inner.parallel_safe
        self._maps: dict[int, np.ndarray] = {}  # inner maps computed for scoring, reused by scanpaths()

    def prepare(self, ctx, indices):
        prepare = getattr(self.inner, "prepare", None)
        if prepare is not None:
            prepare(ctx, indices)

    def _inner_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        m = self.inner.saliency_map(ctx, i)
        if m is None:
            raise UserError(f"attention={self.name}: source {self.inner.name} has no saliency map to fixate")
        return m

    def saliency_map(self, ctx, i):
        self._maps[i] = self._inner_map(ctx, i)
        return self._maps[i]

    def scanpaths(self, ctx, i):
        stimulus = ctx.data.stimuli[i]
        m = self._maps.pop(i, None)
        m = self._inner_map(ctx, i) if m is None else m
        m = match_size(torch.as_tensor(np.asarray(m, dtype=np.float64))[None], stimulus.size)[0].numpy()
        humans = ctx.human_scanpaths[i]
        x, y = winner_take_all(m, max((len(h) for h in humans), default=0), self.ior_sigma_px, self.smooth_sigma_px)
        duration = mean_training_duration(ctx)
        return [
            Scanpath(
                x[: len(h)],
                y[: len(h)],
                None if duration is None or h.duration is None else np.full(len(h), duration),
                subject="wta",
                stimulus=stimulus.id,
            )
            for h in humans
        ]


MAP_SUFFIXES = (".npy", ".png", ".jpg", ".jpeg")
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}
_CHANNEL_TOLERANCE = 2.0  # grey levels: a greyscale map saved as an RGB JPEG differs this much between channels


def _one_channel(m: np.ndarray, path: Path) -> np.ndarray:
    """An H×W×3|4 map saved with equal colour channels as its grey values; a map whose channels differ
    (a rendered heat map: its colours are no saliency values) is refused, not averaged."""
    rgb = m[..., :3]
    if np.ptp(rgb, axis=-1).max(initial=0) > _CHANNEL_TOLERANCE:
        raise UserError(
            f"saliency map {path} is a colour image whose channels differ (a rendered heat map?); "
            "save the map itself as a one-channel image or .npy"
        )
    return rgb.mean(-1)


def read_map_file(path: Path) -> np.ndarray:
    """A saliency map file (``.npy`` of real numbers, or a one-channel or grey image) as an H×W float64
    array of the values it holds; anything else is one :class:`UserError` naming the file."""
    try:
        if path.suffix == ".npy":
            m = np.load(path, allow_pickle=False)  # an object array would need pickle: refused
        else:
            from PIL import Image

            with Image.open(path) as im:
                m = np.asarray(im.convert("F") if im.mode in _GREY_MODES else im.convert("RGB"), dtype=np.float64)
    except Exception as ex:  # not a .npy / image file, truncated, or an object array
        raise UserError(f"cannot read saliency map {path}: {str(ex).splitlines()[0] if str(ex) else type(ex).__name__}")
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool) or np.iscomplexobj(m):
        raise UserError(f"saliency map {path} holds {m.dtype} values; expected real numbers")
    m = np.squeeze(np.asarray(m, dtype=np.float64))
    if m.ndim == 3 and m.shape[-1] in (3, 4):
        m = _one_channel(m, path)
    if m.ndim != 2 or m.size == 0:
        raise UserError(f"saliency map {path} has shape {m.shape}; expected H×W")
    return m


def _map_shape(path: Path) -> tuple[int, int] | None:
    """(H, W) of a map file from its header only (None when the header does not say)."""
    try:
        if path.suffix == ".npy":
            shape = tuple(d for d in np.load(path, mmap_mode="r", allow_pickle=False).shape if d != 1)  # squeezed
        else:
            from PIL import Image

            with Image.open(path) as im:
                shape = (im.height, im.width)
    except Exception:  # unreadable: saliency_map says why
        return None
    return tuple(shape[:2]) if len(shape) >= 2 else None


class MapFolderSource(AttentionSource):
    """Saliency maps ``<folder>/<stimulus id>.npy|.png|.jpg`` (:func:`read_map_file`); a map of another
    size than its image is resized to it (bilinear, as the MIT benchmark does) and the count said once."""

    parallel_safe = True  # reads files

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name

    def path(self, ctx, i) -> Path:
        sid = ctx.data.stimuli[i].id
        for suffix in MAP_SUFFIXES:
            if (self.folder / f"{sid}{suffix}").is_file():
                return self.folder / f"{sid}{suffix}"
        raise UserError(f"no saliency map for stimulus {sid!r} in {self.folder} (expected {sid}.png or {sid}.npy)")

    def prepare(self, ctx, indices):
        """Every map is there before scoring starts; the maps of another size are counted, said once."""
        resized = []
        for i in indices:
            path, size = self.path(ctx, i), tuple(ctx.data.stimuli[i].size)
            shape = _map_shape(path)
            if shape is not None and shape != size:
                resized.append((path.name, shape, size))
        if resized:
            name, (h, w), (ih, iw) = resized[0]
            log.warning(
                "source %s: %d of %d maps are not their image's size (e.g. %s is %d×%d for a %d×%d image); "
                "each is resized bilinearly to its image",
                self.name, len(resized), len(indices), name, w, h, iw, ih,
            )  # fmt: skip

    def saliency_map(self, ctx, i):
        return read_map_file(self.path(ctx, i))


class ScanpathSource(AttentionSource):
    """Model scanpaths held in memory, ``{stimulus id: [Scanpath, ...]}``; the map is their density.

    Fixations that are not finite or lie outside their image are dropped (counted in
    :attr:`dropped`, reported once, as the humans' are); an image none of whose fixations is
    inside cannot be scored and is a one-line error naming it."""

    parallel_safe = True

    def __init__(self, groups: dict[str, list[Scanpath]], name: str) -> None:
        self.groups = groups
        self.name = name
        self.dropped = {"not_finite": 0, "outside_image": 0, "of": 0}
        self._inside: dict[str, list[Scanpath]] = {}

    def prepare(self, ctx, indices):
        """Drop the fixations outside each image of ``indices`` once, before scoring (in the main
        process, so the counts are complete when workers score); report the totals once."""
        for i in indices:
            self.scanpaths(ctx, i)
        d = self.dropped
        if d["not_finite"] or d["outside_image"]:
            log.warning(
                "source %s: dropped %d of %d fixations before scoring, as the humans' are (%d NaN/inf, %d outside the "
                "image)",
                self.name,
                d["not_finite"] + d["outside_image"],
                d["of"],
                d["not_finite"],
                d["outside_image"],
            )

    def scanpaths(self, ctx, i):
        stimulus = ctx.data.stimuli[i]
        if stimulus.id not in self._inside:
            self._inside[stimulus.id] = self._inside_image(stimulus)
        return self._inside[stimulus.id]

    def _inside_image(self, stimulus) -> list[Scanpath]:
        paths = self.groups.get(stimulus.id)
        if not paths:
            raise UserError(f"no scanpath for stimulus {stimulus.id!r} in the scanpaths of source {self.name}")
        kept, total, not_finite = [], 0, 0
        for p in paths:
            inside = pixel_indices(p.x, p.y, stimulus.size, None)[2]
            total += len(p)
            not_finite += int((~(np.isfinite(p.x) & np.isfinite(p.y))).sum())
            if inside.any():
                kept.append(p if inside.all() else p.select(inside))
        self.dropped["not_finite"] += not_finite
        self.dropped["outside_image"] += total - sum(len(p) for p in kept) - not_finite
        self.dropped["of"] += total
        if not kept:
            h, w = stimulus.size
            raise UserError(
                f"source {self.name}: none of the {total} fixations on stimulus {stimulus.id!r} lies inside its "
                f"{w}×{h} image; are x and y swapped, or in pixels of another image size?"
            )
        return kept

    def saliency_map(self, ctx, i):
        paths = self.scanpaths(ctx, i)
        x = np.concatenate([p.x for p in paths])
        y = np.concatenate([p.y for p in paths])
        return gaussian_density(x, y, ctx.data.stimuli[i].size, ctx.sigma_px)


class ScanpathFileSource(ScanpathSource):
    """Model scanpaths from a JSON/CSV file (format in :mod:`attnlab.data.folder`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(read_scanpaths(path), path.stem)


# the file types of checkpoints and model configs, shortened to their stem in display names
_PATH_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".onnx", ".yaml", ".yml", ".json", ".csv", ".npz"}


def split_label(spec: str) -> tuple[Optional[str], str]:
    """``"label=spec"`` → ``("label", "spec")``; a spec without a label → ``(None, spec)``.

    An ``=`` after a ``:`` or a path separator belongs to the spec (``saliency:/runs/lr=0.1/x.ckpt``).
    Labels are column titles: not empty, no ``|``, ``,`` or line breaks."""
    spec = str(spec).strip()
    head, eq, rest = spec.partition("=")
    if not eq or any(c in head for c in ":/\\"):
        return None, spec
    label, rest = head.strip(), rest.strip()
    if not label or not rest:
        raise UserError(
            f"attention entry {spec!r}: the {'label' if not label else 'source'} is empty; "
            "write label=source, e.g. CB=centre_bias"
        )
    bad = sorted({c for c in label if c in "|,\n\r\t"})
    if bad:
        raise UserError(f"attention label {label!r} contains {' '.join(map(repr, bad))}; use letters, digits, _ . + -")
    return label, rest


def _short(part: str) -> str:
    path = Path(part)
    if "/" in part or "\\" in part or path.suffix.lower() in _PATH_SUFFIXES:
        return path.stem or part
    return part


def display_name(spec: str) -> str:
    """The name a source of ``spec`` gets (its column title): the label when given, else the spec with
    every path in its argument shortened to the file's stem (``saliency:/runs/x/dinet_osie.ckpt`` →
    ``saliency:dinet_osie``); map folders and scanpath files are named by :func:`resolve_source`."""
    label, spec = split_label(spec)
    if label:
        return label
    name, colon, argument = spec.partition(":")
    return name + colon + ":".join(_short(p) for p in argument.split(":")) if colon else spec


def check_unique_names(sources) -> None:
    """Every source's name is a column and a key of the results: two alike are a one-line error."""
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise UserError(
                f"two attention sources are both named {source.name!r}; give them labels, "
                f"e.g. attention=[A=<first>,B=<second>]"
            )
        seen.add(source.name)


def resolve_source(spec: str, ctx: BenchmarkContext) -> AttentionSource:
    """The source named by ``spec``: ``[label=]`` a registered name[:argument], a map folder or a
    scanpath file; named by the label, else by :func:`display_name` (folders and files: their stem)."""
    label, spec = split_label(spec)
    source = _resolve(spec, ctx)
    if label:
        source.name = label
    return source


def _resolve(spec: str, ctx: BenchmarkContext) -> AttentionSource:
    name, _, argument = spec.partition(":")
    factory = lookup_source(name)
    if factory is None:
        path = Path(spec).expanduser()
        if path.is_dir():
            return MapFolderSource(path)
        if path.suffix.lower() in (".json", ".csv"):
            return ScanpathFileSource(path)
        raise UserError(
            f"unknown attention source {spec!r}; use one of: {', '.join(source_names())}, a folder of "
            "maps, or a .json/.csv scanpath file"
        )
    source = factory(argument or None, ctx)
    source.name = display_name(spec)
    return source
