"""Every metric of every source on a chunk of images, computed in batches (the fast path).

:func:`score_chunk` scores a few images at once and gives the same per-image values as the plain
per-image loop of :mod:`attnlab.benchmark.reference` (checked by tests/test_benchmark_fast.py):

- what every source compares against is built once per image (:class:`Targets`): fixations, the
  human density, per-subject densities, scanpath clusters (mean shift with every seed at once), and
  the shuffled-AUC negatives once per chunk;
- a source's maps of all the chunk's images of one size go through ONE
  :func:`attnlab.metrics.saliency.saliency_metrics` call (AUC-Judd without jitter, the pysaliency
  convention, so a map's value does not depend on its place in the batch); AUC-Borji draws its
  random negatives per call, so it keeps one call per image and source, as the reference;
- the inter-observer maps (each subject left out) are sums of per-subject densities (one prefix
  and one suffix sum) instead of one blur per subject;
- every scanpath pair of every source and image goes to
  :func:`attnlab.metrics.scanpath_batch.pairwise_scanpath_metrics` together; human scanpaths are
  encoded once for all sources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

import attnlab.benchmark.probabilistic as P
import attnlab.metrics.registry as R
from attnlab.baselines import fitted_centre_bias
from attnlab.data.fixation_maps import TRUNCATE, gaussian_operator, pixel_indices, sparse_fixation_maps
from attnlab.data.gaze import Scanpath
from attnlab.metrics import kernels
from attnlab.metrics import saliency as S
from attnlab.metrics.maps import InvalidMapError, flat, match_size, row_stats, shared_inputs, store
from attnlab.metrics.scanpath import FixationClusters
from attnlab.metrics.scanpath_batch import fit_fixation_clusters_fast, pairwise_scanpath_metrics
from attnlab.sources import AttentionSource, BenchmarkContext
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "SALIENCY_METRICS",
    "SCANPATH_METRICS",
    "LOWER_IS_BETTER",
    "INTER_OBSERVER_SPLITS",
    "LOCATION_METRICS",
    "DISTRIBUTION_METRICS",
    "Targets",
    "image_targets",
    "score_chunk",
    "split_halves",
]

SALIENCY_METRICS = R.names("fixations", "density")
SCANPATH_METRICS = R.names("scanpaths")
LOWER_IS_BETTER = R.LOWER_IS_BETTER
INTER_OBSERVER_SPLITS = 5  # random halvings of the subjects for the inter-observer CC/KLD/SIM
LOCATION_METRICS = R.names("fixations")
DISTRIBUTION_METRICS = R.names("density")
BATCHED = tuple(m for m in SALIENCY_METRICS if m != "AUC_Borji")  # batch-invariant: one call per chunk


def split_halves(subjects: list[str], count: int, rng: np.random.Generator) -> list[tuple[set[str], set[str]]]:
    """``count`` random halvings of the subjects (the first half has ⌊n/2⌋)."""
    halves = []
    for _ in range(count):
        order = rng.permutation(len(subjects))
        half = len(subjects) // 2
        halves.append(({subjects[k] for k in order[:half]}, {subjects[k] for k in order[half:]}))
    return halves


@dataclass
class Targets:
    """What every source of image i is compared with, built once per image."""

    index: int
    size: tuple[int, int]
    points: tuple[np.ndarray, np.ndarray]  # every fixation (x, y)
    sigma_px: float
    subjects: list[str]
    subject_points: list[tuple[np.ndarray, np.ndarray]]
    humans: list[Scanpath]  # scanpaths the scanpath metrics compare with
    clusters: Optional[FixationClusters]
    _counts: Optional[torch.Tensor] = None
    _density: Optional[np.ndarray] = None
    _blur_parts: Optional[tuple] = None  # (everyone's blur, kernel cover counts, fixation pixels per subject)

    def fixation_counts(self) -> torch.Tensor:
        """1×H×W fixation counts, sparse (AUC-Borji's input), built on first use."""
        if self._counts is None:
            self._counts = sparse_fixation_maps([self.points], [self.size])
        return self._counts

    def density(self) -> np.ndarray:
        """H×W human density, built on first use (by :func:`leave_one_out_densities` if that runs
        first: everyone's blur is its first step)."""
        if self._density is None:
            blur = blur_for(self.size, self.sigma_px)
            self._density = blur.density(blur.windows(*self.points), np.empty(self.size))
        return self._density


def image_targets(ctx: BenchmarkContext, i: int) -> Targets:
    data = ctx.data
    size = data.stimuli[i].size
    f = data.fixations(i)
    _, _, inside = pixel_indices(f.x, f.y, size, None)
    if (~inside).any():
        log.warning("%s: %d fixations outside the image dropped", data.stimuli[i].id, int((~inside).sum()))
    subjects = sorted({p.subject for p in data.scanpaths[i]})
    per_subject = [data._fixations_of(i, {s}) for s in subjects]
    humans = ctx.human_scanpaths[i]
    xy = np.concatenate([h.xy for h in humans]) if humans else np.zeros((0, 2))
    return Targets(
        i,
        size,
        (f.x, f.y),
        ctx.sigma_px,
        subjects,
        [(p.x, p.y) for p in per_subject],
        humans,
        fit_fixation_clusters_fast(xy) if len(xy) else None,
        _density=None if ctx.sigma_px > 0 else data.density(i, sigma_px=ctx.sigma_px),
    )


class _Blur:
    """Gaussian densities of fixation sets on one image size, as :func:`gaussian_density` defines
    them (the blur operator's rows at the fixated pixels, reflect boundary), added fixation by
    fixation over the kernel's window only: each fixation touches (2·4σ+1)² pixels instead of the
    whole map, and the maps are written into buffers reused from image to image (fresh memory
    costs a page fault per 4 KiB, which here costs more than the arithmetic)."""

    def __init__(self, size: tuple[int, int], sigma_px: float) -> None:
        self.size = size
        h, w = size
        sigma = round(float(sigma_px), 9)
        self.my, self.mx = gaussian_operator(h, sigma), gaussian_operator(w, sigma)
        self.radius = int(TRUNCATE * sigma + 0.5)  # the operator's kernel radius: rows beyond it are 0

    def buffer(self, name: str, count: int, dtype=np.float64) -> np.ndarray:
        return map_buffer(self.size, name, count, dtype)

    def windows(self, x: np.ndarray, y: np.ndarray) -> list[tuple[slice, slice, np.ndarray, np.ndarray]]:
        """(rows, columns, vertical, horizontal profile) of each fixation inside the image."""
        rows, cols, _ = pixel_indices(x, y, self.size, None)
        h, w = self.size
        r = self.radius
        out = []
        for i, j in zip(rows.tolist(), cols.tolist()):
            ys, xs = slice(max(0, i - r), min(h, i + r + 1)), slice(max(0, j - r), min(w, j + r + 1))
            out.append((ys, xs, self.my[ys, i], self.mx[xs, j]))
        return out

    def density(self, windows: list, out: np.ndarray) -> np.ndarray:
        """Σ of the windows' outer products, normalised to sum 1 (NaN map without fixations)."""
        out.fill(0.0)
        if not windows:
            out.fill(np.nan)
            return out
        for ys, xs, a, b in windows:
            out[ys, xs] += np.multiply.outer(a, b)
        return np.divide(out, out.sum(), out=out)


_BLURS: dict[tuple, _Blur] = {}  # per process: the operators outlive a chunk
_BUFFERS: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # per process, one image size at a time


def map_buffer(size: tuple[int, int], name: str, count: int, dtype=np.float64) -> np.ndarray:
    """count×H×W buffer ``name``, reused from chunk to chunk: fresh memory costs a page fault per
    4 KiB (a forked worker's first chunk spent a fifth of its time in them); NumPy asks for huge
    pages for arrays this size. Its content is whatever the last user left."""
    size = tuple(size)
    if size not in _BUFFERS:
        _BUFFERS.clear()  # one image size at a time keeps the memory bounded
        _BUFFERS[size] = {}
    b = _BUFFERS[size].get(name)
    if b is None or b.shape[0] < count or b.dtype != dtype:
        b = _BUFFERS[size][name] = np.empty((count, *size), dtype=dtype)
    return b[:count]


def blur_for(size: tuple[int, int], sigma_px: float) -> _Blur:
    key = (tuple(size), float(sigma_px))
    if key not in _BLURS:
        _BLURS.clear()  # one image size at a time keeps the memory bounded
        _BLURS[key] = _Blur(tuple(size), sigma_px)
    return _BLURS[key]


def _nan_if_empty(m: np.ndarray, empty: bool) -> np.ndarray:
    if empty:
        m.fill(np.nan)  # nobody looked: a NaN map, as the data's own density
    return m


def _window_box(blur: _Blur, rows: np.ndarray, cols: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the kernel windows of fixations at (rows, cols): outside it none of them adds anything."""
    (h, w), r = blur.size, blur.radius
    return (
        slice(max(0, int(rows.min()) - r), min(h, int(rows.max()) + r + 1)),
        slice(max(0, int(cols.min()) - r), min(w, int(cols.max()) + r + 1)),
    )


def _add_windows(blur: _Blur, out: np.ndarray, count: np.ndarray, rows, cols, subtract: bool = False) -> None:
    kernels.add_fixation_windows(out, count, rows, cols, blur.my, blur.mx, blur.radius, subtract)


def _remove_windows(blur: _Blur, out: np.ndarray, cover: np.ndarray, own: np.ndarray, rows, cols) -> None:
    """out −= the kernels of the fixations at (rows, cols), with exact zeros where no other kernel
    of ``cover`` reaches; ``own`` is scratch (it counts the removed kernels inside their box)."""
    if not rows.size:
        return
    ys, xs = _window_box(blur, rows, cols)
    own[ys, xs] = 0
    _add_windows(blur, out, own, rows, cols, subtract=True)
    kernels.zero_where_equal(out, cover, own, ys.start, ys.stop, xs.start, xs.stop)


def leave_one_out_densities(tg: "Targets", sigma_px: float) -> np.ndarray:
    """S×H×W: the blur of every subject but s, for each s, = (everyone's blur − s's blur); pixels
    that no other subject's kernel reaches are set to exactly 0, as the reference's blur of the
    others leaves them (the subtraction would leave rounding there). One map copy and s's own few
    kernel windows per subject (compiled: :func:`attnlab.metrics.kernels.add_fixation_windows`),
    instead of a blur of all the others; the fixations' pixels are kept for the halvings
    (:func:`_half_densities`).

    The maps are NOT divided by their sums: every metric scored on them is unchanged by the scale
    (the AUCs and NSS) or normalises the map itself (IG, KLD, SIM; CC is a correlation), so the
    division would be one more pass over each map for nothing. Each is a NaN map when the others
    have no fixation inside the image, as the data's own density is then."""
    blur = blur_for(tg.size, sigma_px)
    pixels = [pixel_indices(x, y, tg.size, None)[:2] for x, y in tg.subject_points]
    total = blur.buffer("total", 1)[0]
    total.fill(0.0)
    cover = blur.buffer("cover", 1, np.int32)[0]
    cover.fill(0)
    for rows, cols in pixels:
        _add_windows(blur, total, cover, rows, cols)
    tg._blur_parts = (total, cover, dict(zip(tg.subjects, pixels)))  # the halvings start from these
    everyone = sum(rows.size for rows, _ in pixels)
    if tg._density is None:  # everyone's density, without blurring every fixation once more
        tg._density = np.divide(total, total.sum()) if everyone else np.full(tg.size, np.nan)
    loo = blur.buffer("loo", len(pixels))
    own = blur.buffer("own", 1, np.int32)[0]
    for k, (rows, cols) in enumerate(pixels):
        np.copyto(loo[k], total)
        _remove_windows(blur, loo[k], cover, own, rows, cols)
        _nan_if_empty(loo[k], rows.size == everyone)
    return loo


def _tensor(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class _Chunk:
    """The images of one chunk and what their sources share."""

    def __init__(self, ctx: BenchmarkContext, indices: Sequence[int], negatives: S.ShuffledNegatives) -> None:
        self.ctx = ctx
        self.targets = [image_targets(ctx, i) for i in indices]
        self.negatives = negatives
        self._baselines: dict[tuple[int, int], torch.Tensor] = {}
        self._densities: dict[tuple, torch.Tensor] = {}

    def densities(self, ks: list[int], size: tuple[int, int]) -> torch.Tensor:
        """len(ks)×H×W human densities of targets ``ks`` (all of ``size``), stacked once for every source."""
        key = (tuple(ks), size)
        if key not in self._densities:
            out = map_buffer(size, "densities", len(ks))
            for row_k, k in enumerate(ks):
                np.copyto(out[row_k], self.targets[k].density())
            self._densities = {key: torch.from_numpy(out)}  # the buffer holds one stack at a time
        return self._densities[key]

    def baseline(self, size: tuple[int, int]) -> torch.Tensor:
        if size not in self._baselines:
            self._baselines[size] = _tensor(fitted_centre_bias(self.ctx).map(size))
        return self._baselines[size]

    def log_baseline(self, size: tuple[int, int]) -> np.ndarray:
        size = tuple(size)
        if ("log", size) not in self._baselines:
            self._baselines[("log", size)] = np.log(self.baseline(size).numpy())
        return self._baselines[("log", size)]


def _mean(values: torch.Tensor) -> float:
    return S.mean_over_images(values)[0]


def _maps_of(source: AttentionSource, chunk: _Chunk) -> list[Optional[np.ndarray]]:
    out = []
    for tg in chunk.targets:
        m = source.saliency_map(chunk.ctx, tg.index)
        if m is not None:
            m = np.asarray(m, dtype=np.float64)
            if not np.isfinite(m).all():
                sid = chunk.ctx.data.stimuli[tg.index].id
                raise UserError(
                    f"source {source.name}: the saliency map of stimulus {sid!r} contains NaN or inf values"
                )
        out.append(m)
    return out


def _map_rows(
    source: AttentionSource,
    chunk: _Chunk,
    maps: list[Optional[np.ndarray]],
    rows: list[dict],
    metrics: Sequence[str] = SALIENCY_METRICS,
    flag_constant: bool = True,
) -> None:
    """Saliency ``metrics`` of one map per image: one call per image size for the batch-invariant
    metrics, AUC-Borji per image (its random draws depend on the batch). ``flag_constant``: mark rows
    whose map is constant (reported by the run: it scores as the uniform map)."""
    seed = chunk.ctx.seed
    batched = tuple(m for m in BATCHED if m in metrics)
    by_size: dict[tuple[int, int], list[int]] = {}
    for k, (tg, m) in enumerate(zip(chunk.targets, maps)):
        if m is not None:
            by_size.setdefault(tg.size, []).append(k)
    for size, ks in by_size.items():
        tgs = [chunk.targets[k] for k in ks]
        pred = map_buffer(size, "pred", len(ks))
        for row_k, k in enumerate(ks):
            m = maps[k] if maps[k].shape == size else match_size(_tensor(maps[k])[None], size)[0].numpy()
            np.copyto(pred[row_k], m)
        pred = torch.from_numpy(pred)
        fix = sparse_fixation_maps([tg.points for tg in tgs], [size] * len(tgs))
        dens = chunk.densities(ks, size)
        nonfix = chunk.negatives.support_counts([tg.index for tg in tgs], size)
        # one block: AUC-Borji, called per map, finds each map's range where the batch call left it
        with shared_inputs():
            try:
                values = S.saliency_metrics(
                    pred, fix, dens, chunk.baseline(size), nonfix, metrics=batched, seed=seed, jitter=False
                )
            except InvalidMapError as ex:
                sid = chunk.ctx.data.stimuli[tgs[0].index].id
                raise UserError(
                    f"source {source.name}: the saliency map of stimulus {sid!r} contains NaN or inf values"
                ) from ex
            ranges = row_stats(flat(pred))
            for row_k, (k, tg) in enumerate(zip(ks, tgs)):
                one_map = pred[row_k : row_k + 1]
                store("stats", flat(one_map), ranges[row_k : row_k + 1])
                one = {name: _mean(v[row_k : row_k + 1]) for name, v in values.items()}
                if "AUC_Borji" in metrics:
                    one["AUC_Borji"] = _mean(S.auc_borji(one_map, tg.fixation_counts(), seed=seed))
                rows[k].update({name: one[name] for name in SALIENCY_METRICS if name in one})
                low, high = ranges[row_k, :2].tolist() if maps[k].shape == size else (maps[k].min(), maps[k].max())
                if flag_constant and float(low) == float(high):
                    rows[k]["constant_map"] = True  # scores as uniform; reported once by the run


def _leave_one_out_rows(chunk: _Chunk, rows: list[dict]) -> None:
    """Inter-observer saliency metrics: the others' density against each left-out subject's
    fixations; one random half's density against the other half's (CC, KLD, SIM)."""
    ctx = chunk.ctx
    for k, tg in enumerate(chunk.targets):
        if len(tg.subjects) < 2:
            continue
        if ctx.sigma_px > 0:
            loo = torch.from_numpy(leave_one_out_densities(tg, ctx.sigma_px))
        else:  # no blur: normalised counts, as the data's own density gives them
            loo = torch.from_numpy(
                np.stack(
                    [
                        ctx.data.density(tg.index, sigma_px=ctx.sigma_px, subjects=set(tg.subjects) - {s})
                        for s in tg.subjects
                    ]
                )
            )
        fix = sparse_fixation_maps(tg.subject_points, [tg.size] * len(tg.subjects))
        nonfix = chunk.negatives.support_counts([tg.index] * len(tg.subjects), tg.size)
        values = S.saliency_metrics(
            loo, fix, None, chunk.baseline(tg.size), nonfix, metrics=LOCATION_METRICS, seed=ctx.seed, jitter=False
        )
        rows[k].update({name: _mean(v) for name, v in values.items()})
        halves = split_halves(tg.subjects, INTER_OBSERVER_SPLITS, np.random.default_rng([ctx.seed, tg.index]))
        pred, target = _half_densities(ctx, tg, halves)
        # one call: each pair of maps read once for all three (the fixations only satisfy the signature)
        some = sparse_fixation_maps([tg.points] * len(halves), [tg.size] * len(halves))
        values = S.saliency_metrics(pred, some, target, metrics=DISTRIBUTION_METRICS, seed=ctx.seed, jitter=False)
        rows[k].update({name: _mean(values[name]) for name in DISTRIBUTION_METRICS})


def _half_densities(ctx: BenchmarkContext, tg: Targets, halves) -> tuple[torch.Tensor, torch.Tensor]:
    """The blurs of both halves of each halving (one half blurred, the other by subtraction; not
    divided by their sums, see :func:`leave_one_out_densities`)."""
    if ctx.sigma_px <= 0:
        dens = lambda group: np.stack([ctx.data.density(tg.index, sigma_px=ctx.sigma_px, subjects=g) for g in group])  # noqa: E731
        return torch.from_numpy(dens([a for a, _ in halves])), torch.from_numpy(dens([b for _, b in halves]))
    blur = blur_for(tg.size, ctx.sigma_px)
    if tg._blur_parts is None:
        leave_one_out_densities(tg, ctx.sigma_px)
    total, cover, pixels = tg._blur_parts
    everyone = sum(rows.size for rows, _ in pixels.values())
    out = blur.buffer("halves", 2 * len(halves))
    mine = blur.buffer("own", 1, np.int32)[0]
    for k, (a, b) in enumerate(halves):
        # blur the half with fewer fixations; the other half is everyone's blur minus it, with
        # exact zeros where none of its own kernels reach (as in leave_one_out_densities)
        pa, pb = ([pixels[s] for s in sorted(half)] for half in (a, b))
        na, nb = sum(r.size for r, _ in pa), sum(r.size for r, _ in pb)
        small, large = (k, len(halves) + k) if na <= nb else (len(halves) + k, k)
        group = pa if small == k else pb
        rows = np.concatenate([r for r, _ in group]) if group else np.zeros(0, np.int64)
        cols = np.concatenate([c for _, c in group]) if group else np.zeros(0, np.int64)
        part, rest = out[small], out[large]
        part.fill(0.0)
        np.copyto(rest, total)
        if rows.size:
            ys, xs = _window_box(blur, rows, cols)
            mine[ys, xs] = 0
            _add_windows(blur, part, mine, rows, cols)
            # outside the box the half adds nothing: the rest is everyone's blur there, exactly
            np.subtract(total[ys, xs], part[ys, xs], out=rest[ys, xs])
            kernels.zero_where_equal(rest, cover, mine, ys.start, ys.stop, xs.start, xs.stop)
        _nan_if_empty(part, not rows.size)
        _nan_if_empty(rest, rows.size == everyone)
    tg._blur_parts = None  # the kernel windows of the image are no longer needed
    return torch.from_numpy(out[: len(halves)]), torch.from_numpy(out[len(halves) :])


def _probabilistic_rows(source: AttentionSource, chunk: _Chunk, maps: list[Optional[np.ndarray]], rows: list[dict]):
    """A density source's saliency metrics on the metric-specific maps and its conditional metrics
    (:mod:`attnlab.benchmark.probabilistic`); a map source's saliency metrics on its maps."""
    ctx = chunk.ctx
    wanted = ctx.metric_specific or ctx.conditional_metrics
    log_ps = P.source_log_densities(source, ctx, [tg.index for tg in chunk.targets]) if wanted else []
    if not any(lp is not None for lp in log_ps):
        _map_rows(source, chunk, maps, rows)
        return
    if any(lp is None for lp in log_ps):
        raise UserError(f"source {source.name}: gives a log density for some images only")
    log_centres = [chunk.log_baseline(tg.size) for tg in chunk.targets]
    if ctx.metric_specific:  # the centre bias of one size: derived once
        n = P.fixations_per_image(ctx)
        derived = P.derived_once(
            log_ps, lambda lp: P.metric_specific_maps(lp, chunk.log_baseline(lp.shape), ctx.sigma_px, n, ctx.seed)
        )
        for group in dict.fromkeys(P.METRIC_MAPS.values()):
            metrics = [m for m, g in P.METRIC_MAPS.items() if g == group]
            # the centre bias over itself is constant by definition: only the density itself is flagged
            _map_rows(source, chunk, [d[group] for d in derived], rows, metrics, flag_constant=group == "density")
    else:
        _map_rows(source, chunk, maps, rows)
    stats = P.derived_once(log_ps, P.map_statistics) if ctx.conditional_metrics and not source.conditional else None
    for k, (row, tg, lp, lc) in enumerate(zip(rows, chunk.targets, log_ps, log_centres)):
        row["probabilistic"] = True
        if ctx.conditional_metrics:
            row.update(P.conditional_scores(source, ctx, tg.index, lp, lc, stats[k] if stats else None))


class _Pairs:
    """Every scanpath pair of the chunk, tagged with the (source, image) row it averages into."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Scanpath, Scanpath]] = []
        self.sizes: list[tuple[int, int]] = []
        self.clusters: list[Optional[FixationClusters]] = []
        self.owner: list[int] = []
        self.rows: list[dict] = []

    def add(self, row: dict, preds: list[Scanpath], tg: Targets, exclude_self: bool) -> None:
        owner = len(self.rows)
        self.rows.append(row)
        for a, p in enumerate(preds):
            for b, h in enumerate(tg.humans):
                if not (exclude_self and a == b):
                    self.pairs.append((p, h))
                    self.sizes.append(tg.size)
                    self.clusters.append(tg.clusters)
                    self.owner.append(owner)

    def score(self) -> None:
        """Mean of each metric over each row's pairs (NaN skipped; NaN when none is defined)."""
        values = pairwise_scanpath_metrics(self.pairs, self.sizes, self.clusters)
        owner = np.asarray(self.owner, dtype=np.int64)
        order = np.argsort(owner, kind="stable")
        starts = np.searchsorted(owner[order], np.arange(len(self.rows) + 1))
        for r, row in enumerate(self.rows):
            sel = order[starts[r] : starts[r + 1]]
            for name in SCANPATH_METRICS:
                v = values[name][sel]
                row[name] = float(np.nanmean(v)) if len(v) and np.isfinite(v).any() else float("nan")


def score_chunk(
    sources: Sequence[AttentionSource],
    ctx: BenchmarkContext,
    indices: Sequence[int],
    negatives: S.ShuffledNegatives,
    keep_maps: Sequence[int] = (),
) -> tuple[dict[str, list[dict]], dict[int, dict]]:
    """({source name: one row per image of ``indices``}, {image: {"density", "maps", "scanpaths"}} for
    ``keep_maps``: the human density, each source's map and each scanpath source's scanpaths, for figures).

    Images must have fixations. Rows hold every saliency metric of a source with a map and every
    scanpath metric of a source with scanpaths (inter_observer: both, subject by subject).
    """
    chunk = _Chunk(ctx, indices, negatives)
    keep = set(keep_maps)
    shown: dict[int, dict] = {tg.index: {"maps": {}, "scanpaths": {}} for tg in chunk.targets if tg.index in keep}
    out = {s.name: [{"stimulus": ctx.data.stimuli[tg.index].id} for tg in chunk.targets] for s in sources}
    for source in sources:
        if source.leave_one_out:  # first: its blurs give the human density the other sources need
            _leave_one_out_rows(chunk, out[source.name])
    pairs = _Pairs()
    for source in sources:
        rows = out[source.name]
        if source.leave_one_out:
            for row, tg in zip(rows, chunk.targets):
                pairs.add(row, tg.humans, tg, exclude_self=True)
                if tg.index in shown:
                    shown[tg.index]["maps"][source.name] = tg.density()
            continue
        maps = _maps_of(source, chunk)
        _probabilistic_rows(source, chunk, maps, rows)
        for row, tg, m in zip(rows, chunk.targets, maps):
            if m is not None and tg.index in shown:
                shown[tg.index]["maps"][source.name] = m
            paths = source.scanpaths(ctx, tg.index)
            if paths:
                pairs.add(row, list(paths), tg, exclude_self=False)
                if tg.index in shown:
                    shown[tg.index]["scanpaths"][source.name] = list(paths)
    for tg in chunk.targets:
        if tg.index in shown:
            shown[tg.index]["density"] = tg.density()
    pairs.score()
    return out, shown
