"""Score attention against human fixations: ``python -m attnlab.benchmark data=osie attention=<sources>``.

``attention`` is a comma-separated list of sources (``attention=centre_bias,uniform,inter_observer``
works without quotes). A source is

- a baseline: ``uniform``, ``centre_bias`` (Gaussian fitted to the TRAINING split's fixations;
  its scanpaths are drawn from that Gaussian), ``inter_observer`` — humans predicting humans: for
  AUCs, NSS and IG the other subjects' density scored against each left-out subject's fixations;
  for CC, KLD and SIM one random half of the subjects' density against the other half's (5 seeded
  halvings); for scanpaths leave-one-subject-out. Sampled baseline scanpaths are as long as each
  human scanpath, with every fixation lasting the mean training duration;
- a folder of saliency maps named like the stimuli (``<id>.png`` or ``<id>.npy``, any size: maps are
  resized bilinearly to the image);
- a scanpath file (``.json``/``.csv``, format in :mod:`attnlab.data.folder`); its map is the Gaussian
  density of its fixations;
- any name registered with :func:`register_source` (models do this in their own module; ``name`` or
  ``name:argument``, e.g. ``neva:path/to.ckpt``; the benchmark imports ``attnlab.models.<name>`` to
  let it register).

Every source is scored on the ``split`` images (default ``test``) with every saliency metric and,
when it produces scanpaths, every scanpath metric. Output in the run folder: ``benchmark.md``
(printed), ``benchmark.csv``, ``benchmark.json`` (with per-image values and skipped counts) and
``saliency_grid.png`` (stimulus, human density, each source's map for the first images).

Registering a model source::

    from attnlab.benchmark import AttentionSource, register_source

    @register_source("my_model")
    class MyModelSource(AttentionSource):
        def __init__(self, argument, context): ...
        def saliency_map(self, context, i): return np.ndarray  # H×W, any size, or None
        def scanpaths(self, context, i): return [Scanpath, ...]  # or None
"""

from __future__ import annotations

import csv
import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

from attnlab.baselines import CentreBias, uniform_map, uniform_scanpath
from attnlab.data.fixations import FixationDataset, Scanpath, gaussian_density
from attnlab.metrics import saliency as S
from attnlab.metrics import scanpath as SP
from attnlab.metrics.maps import InvalidMapError
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["AttentionSource", "BenchmarkContext", "register_source", "resolve_source", "SOURCES", "run_benchmark", "SALIENCY_METRICS", "SCANPATH_METRICS"]

SALIENCY_METRICS = ("AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "IG")
SCANPATH_METRICS = ("SED", "ScanMatch", "MM_vector", "MM_direction", "MM_length", "MM_position", "MM_duration", "DTW", "TDE", "SS")
LOWER_IS_BETTER = {"KLD", "DTW"}
INTER_OBSERVER_SPLITS = 5  # random halvings of the subjects for the inter-observer CC/KLD/SIM


@dataclass
class BenchmarkContext:
    """What sources may use: the evaluated images, the training split, the blur and the seed."""

    data: FixationDataset
    train: FixationDataset
    sigma_px: float
    seed: int
    human_scanpaths: list[list[Scanpath]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)


class AttentionSource:
    """A producer of saliency maps and/or scanpaths for the benchmark's images."""

    name: str = "source"
    leave_one_out: bool = False  # scored subject by subject (the inter-observer baseline)

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> Optional[np.ndarray]:
        return None

    def scanpaths(self, ctx: BenchmarkContext, i: int) -> Optional[list[Scanpath]]:
        return None


SOURCES: dict[str, Callable[[Optional[str], BenchmarkContext], AttentionSource]] = {}
if __name__ == "__main__":  # `python -m` runs a second copy: make it the one model packages register into
    sys.modules.setdefault("attnlab.benchmark", sys.modules[__name__])


def register_source(name: str):
    """Decorator: ``factory(argument, context) -> AttentionSource`` answers ``attention=name[:argument]``."""

    def wrap(factory):
        SOURCES[name] = factory
        return factory

    return wrap


def _mean_training_duration(ctx: BenchmarkContext) -> Optional[float]:
    if "duration" not in ctx.cache:
        d = [p.duration for paths in ctx.train.scanpaths for p in paths if p.duration is not None]
        ctx.cache["duration"] = float(np.mean(np.concatenate(d))) if d else None
    return ctx.cache["duration"]


def _sampled_scanpaths(ctx: BenchmarkContext, i: int, draw) -> list[Scanpath]:
    """One sampled scanpath per human scanpath of image i, as long as it; every fixation lasts the
    mean training duration (a baseline knows the average, not the human's own timing)."""
    rng = np.random.default_rng([ctx.seed, i])
    size = ctx.data.stimuli[i].size
    duration = _mean_training_duration(ctx)
    out = []
    for h in ctx.human_scanpaths[i]:
        s = draw(len(h), size, rng)
        dur = None if duration is None or h.duration is None else np.full(len(h), duration)
        out.append(Scanpath(s.x, s.y, dur, subject=s.subject, stimulus=ctx.data.stimuli[i].id))
    return out


@register_source("uniform")
class UniformSource(AttentionSource):
    name = "uniform"

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        pass

    def saliency_map(self, ctx, i):
        return uniform_map(ctx.data.stimuli[i].size)

    def scanpaths(self, ctx, i):
        return _sampled_scanpaths(ctx, i, lambda n, size, rng: uniform_scanpath(n, size, rng))


@register_source("centre_bias")
@register_source("center_bias")
class CentreBiasSource(AttentionSource):
    name = "centre_bias"

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        self.model = centre_bias(ctx)

    def saliency_map(self, ctx, i):
        return self.model.map(ctx.data.stimuli[i].size)

    def scanpaths(self, ctx, i):
        return _sampled_scanpaths(ctx, i, self.model.sample_scanpath)


@register_source("inter_observer")
class InterObserverSource(AttentionSource):
    """Humans predicting humans: other subjects' density / leave-one-subject-out scanpaths."""

    name = "inter_observer"
    leave_one_out = True

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        pass

    def saliency_map(self, ctx, i):  # for the figure: everyone's density
        return ctx.data.density(i, sigma_px=ctx.sigma_px)


class MapFolderSource(AttentionSource):
    """Saliency maps ``<folder>/<stimulus id>.png|.npy``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name

    def saliency_map(self, ctx, i):
        sid = ctx.data.stimuli[i].id
        for suffix in (".npy", ".png", ".jpg", ".jpeg"):
            path = self.folder / f"{sid}{suffix}"
            if path.is_file():
                if suffix == ".npy":
                    m = np.load(path)
                else:
                    from PIL import Image

                    with Image.open(path) as im:
                        m = np.asarray(im.convert("F"), dtype=np.float64)
                m = np.squeeze(np.asarray(m, dtype=np.float64))
                if m.ndim == 3:  # colour maps: the mean over channels
                    m = m.mean(-1)
                if m.ndim != 2:
                    raise UserError(f"saliency map {path} has shape {m.shape}; expected H×W")
                return m
        raise UserError(f"no saliency map for stimulus {sid!r} in {self.folder} (expected {sid}.png or {sid}.npy)")


class ScanpathFileSource(AttentionSource):
    """Model scanpaths from a JSON/CSV file; the map is the Gaussian density of their fixations."""

    def __init__(self, path: Path) -> None:
        from attnlab.data.folder import read_scanpaths

        self.groups = read_scanpaths(path)
        self.name = path.stem

    def scanpaths(self, ctx, i):
        paths = self.groups.get(ctx.data.stimuli[i].id)
        if not paths:
            raise UserError(f"no scanpath for stimulus {ctx.data.stimuli[i].id!r} in the scanpath file of source {self.name}")
        return paths

    def saliency_map(self, ctx, i):
        paths = self.scanpaths(ctx, i)
        x = np.concatenate([p.x for p in paths])
        y = np.concatenate([p.y for p in paths])
        return gaussian_density(x, y, ctx.data.stimuli[i].size, ctx.sigma_px)


def resolve_source(spec: str, ctx: BenchmarkContext) -> AttentionSource:
    """The source named by ``spec`` (a registered name[:argument], a map folder or a scanpath file)."""
    spec = str(spec).strip()
    name, _, argument = spec.partition(":")
    if name not in SOURCES:
        path = Path(spec).expanduser()
        if path.is_dir():
            return MapFolderSource(path)
        if path.suffix.lower() in (".json", ".csv"):
            return ScanpathFileSource(path)
        try:  # a model package may register itself on import
            importlib.import_module(f"attnlab.models.{name}")
        except ImportError:
            pass
    if name in SOURCES:
        source = SOURCES[name](argument or None, ctx)
        source.name = spec
        return source
    raise UserError(
        f"unknown attention source {spec!r}; use one of: {', '.join(sorted(SOURCES))}, a folder of maps, or a .json/.csv scanpath file"
    )


def centre_bias(ctx: BenchmarkContext) -> CentreBias:
    if "centre_bias" not in ctx.cache:
        ctx.cache["centre_bias"] = CentreBias.fit(ctx.train)
        log.info("centre bias fitted on %d training images: %s", len(ctx.train), ctx.cache["centre_bias"].to_dict())
    return ctx.cache["centre_bias"]


# --- per-image scoring -------------------------------------------------------------------------


@dataclass
class ImageTargets:
    """Everything the metrics compare against on one image."""

    size: tuple[int, int]
    fixations: torch.Tensor  # H×W counts
    density: torch.Tensor  # H×W
    baseline: torch.Tensor  # centre bias
    nonfixations: torch.Tensor  # other images' fixations (pysaliency sAUC)
    subjects: list[str]
    subject_fixations: torch.Tensor  # S×H×W
    clusters: Optional[SP.FixationClusters]


def _targets(ctx: BenchmarkContext, i: int, negatives: S.ShuffledNegatives) -> ImageTargets:
    data = ctx.data
    size = data.stimuli[i].size
    fix, dropped = data.fixation_map(i)
    if dropped:
        log.warning("%s: %d fixations outside the image dropped", data.stimuli[i].id, dropped)
    subjects = sorted({p.subject for p in data.scanpaths[i]})
    sub_fix = np.stack([data.fixation_map(i, subjects={s})[0] for s in subjects]) if subjects else np.zeros((0, *size))
    humans = ctx.human_scanpaths[i]
    points = np.concatenate([np.stack([h.x, h.y], 1) for h in humans]) if humans else np.zeros((0, 2))
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    return ImageTargets(
        size,
        t(fix),
        t(data.density(i, sigma_px=ctx.sigma_px)),
        t(centre_bias(ctx).map(size)),
        t(negatives.counts(i)),
        subjects,
        t(sub_fix),
        SP.fit_fixation_clusters(points) if len(points) else None,
    )


LOCATION_METRICS = ("AUC_Judd", "AUC_Borji", "sAUC", "NSS", "IG")  # scored against fixations
DISTRIBUTION_METRICS = ("CC", "KLD", "SIM")  # scored against a density


def _map_metrics(
    pred: torch.Tensor, fixations: Optional[torch.Tensor], density: Optional[torch.Tensor], tg: ImageTargets, seed: int
) -> dict[str, float]:
    """Saliency metrics of B maps against B targets, averaged over the batch (NaN = skipped)."""
    b = pred.shape[0]
    values = {}
    if fixations is not None:  # one call: each map validated once, intermediates shared
        names = LOCATION_METRICS + (DISTRIBUTION_METRICS if density is not None else ())
        values |= S.saliency_metrics(pred, fixations, density, tg.baseline, tg.nonfixations.expand(b, -1, -1), metrics=names, seed=seed)
    elif density is not None:
        values |= {"CC": S.cc(pred, density), "KLD": S.kld(pred, density), "SIM": S.sim(pred, density)}
    return {k: S.mean_over_images(v)[0] for k, v in values.items()}


def _split_halves(subjects: list[str], count: int, rng: np.random.Generator) -> list[tuple[set[str], set[str]]]:
    halves = []
    for _ in range(count):
        order = rng.permutation(len(subjects))
        half = len(subjects) // 2
        halves.append(({subjects[k] for k in order[:half]}, {subjects[k] for k in order[half:]}))
    return halves


def _scanpath_metrics(preds: list[Scanpath], humans: list[Scanpath], size, clusters, exclude_self: bool) -> dict[str, float]:
    """Every scanpath metric of each predicted scanpath against each human one (mean)."""
    pairs = [(p, h) for k, p in enumerate(preds) for j, h in enumerate(humans) if not (exclude_self and j == k)]
    if not pairs:
        return {k: float("nan") for k in SCANPATH_METRICS}
    rows = []
    for p, h in pairs:
        mm = SP.multimatch(p, h, size)
        rows.append(
            {
                "SED": SP.string_edit_similarity(p, h, size),
                "ScanMatch": SP.scanmatch(p, h, size),
                **{f"MM_{k}": v for k, v in mm.items()},
                "DTW": SP.dtw(p, h, size),
                "TDE": SP.scaled_time_delay_embedding(p, h, size),
                "SS": SP.sequence_score(p, h, clusters) if clusters is not None else float("nan"),
            }
        )
    return {k: float(np.nanmean([r[k] for r in rows])) if any(r[k] == r[k] for r in rows) else float("nan") for k in SCANPATH_METRICS}


def _score_source(source: AttentionSource, ctx: BenchmarkContext, i: int, tg: ImageTargets) -> tuple[dict[str, float], Optional[np.ndarray]]:
    sid = ctx.data.stimuli[i].id
    row: dict[str, float] = {}
    shown = None
    try:
        if source.leave_one_out:
            if len(tg.subjects) >= 2:
                # fixation-based metrics: the other subjects' density against each left-out subject
                loo = np.stack([ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=set(tg.subjects) - {s}) for s in tg.subjects])
                row |= _map_metrics(torch.as_tensor(loo), tg.subject_fixations, None, tg, ctx.seed)
                # distribution metrics: one half of the subjects' density against the other half's
                halves = _split_halves(tg.subjects, INTER_OBSERVER_SPLITS, np.random.default_rng([ctx.seed, i]))
                pred = np.stack([ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=a) for a, _ in halves])
                target = np.stack([ctx.data.density(i, sigma_px=ctx.sigma_px, subjects=b) for _, b in halves])
                row |= _map_metrics(torch.as_tensor(pred), None, torch.as_tensor(target), tg, ctx.seed)
            humans = ctx.human_scanpaths[i]
            row |= _scanpath_metrics(humans, humans, tg.size, tg.clusters, exclude_self=True)
            shown = source.saliency_map(ctx, i)
        else:
            smap = source.saliency_map(ctx, i)
            if smap is not None:
                shown = np.asarray(smap, dtype=np.float64)
                pred = torch.as_tensor(shown)[None]
                row |= _map_metrics(pred, tg.fixations[None], tg.density[None], tg, ctx.seed)
            paths = source.scanpaths(ctx, i)
            if paths:
                row |= _scanpath_metrics(list(paths), ctx.human_scanpaths[i], tg.size, tg.clusters, exclude_self=False)
    except InvalidMapError as ex:
        raise UserError(f"source {source.name}: the saliency map of stimulus {sid!r} contains NaN or inf values") from ex
    return row, shown


# --- the command --------------------------------------------------------------------------------


def _source_list(attention: Any) -> list[str]:
    if isinstance(attention, (list, tuple, ListConfig)):
        items = [str(a) for a in attention]
    else:
        items = str(attention).split(",")
    items = [a.strip() for a in items if a and a.strip()]
    if not items:
        raise UserError("attention= is empty; name at least one source, e.g. attention=centre_bias,uniform,inter_observer")
    return items


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Score every source of ``cfg.attention`` on ``cfg.data``; write the table and figure."""
    import hydra
    from tqdm import tqdm

    from attnlab.utils.instantiate import write_json

    torch.manual_seed(cfg.seed)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("test")
    split = str(cfg.split)
    if split == "all":
        data = dm.dataset
        log.warning("split=all: the centre bias is fitted on the training split, which is also evaluated")
    elif split in dm.splits:
        data = dm.splits[split]
    else:
        raise UserError(f"split={split!r} is not allowed; choose one of train, val, test, all")
    if cfg.max_images:
        data = data.subset(range(min(int(cfg.max_images), len(data))))
    if len(data) == 0:
        raise UserError(f"the {split} split of {dm.dataset.name} is empty; change data.split")
    train = dm.splits.get("train") or dm.dataset
    if train.num_fixations < 3:
        train = dm.dataset
    sigma_px = float(cfg.sigma_px) if cfg.get("sigma_px") else dm.sigma_px
    humans = data.filtered(drop_first=bool(cfg.scanpath_drop_first)).scanpaths if cfg.scanpath_drop_first else data.scanpaths
    ctx = BenchmarkContext(data, train, sigma_px, int(cfg.seed), humans)
    sources = [resolve_source(s, ctx) for s in _source_list(cfg.attention)]
    log.info("benchmark: %d %s images of %s, sigma %.1f px, sources %s", len(data), split, dm.dataset.name, sigma_px, [s.name for s in sources])

    negatives = S.ShuffledNegatives([(f.x, f.y) for f in (data.fixations(i) for i in range(len(data)))], [s.size for s in data.stimuli])
    per_image: dict[str, list[dict[str, float]]] = {s.name: [] for s in sources}
    skipped = 0
    figure_rows = []
    for i in tqdm(range(len(data)), desc="benchmark", disable=not cfg.progress):
        if data.fixations(i).x.size == 0:
            skipped += 1
            continue
        tg = _targets(ctx, i, negatives)
        maps = {}
        for source in sources:
            row, shown = _score_source(source, ctx, i, tg)
            per_image[source.name].append({"stimulus": data.stimuli[i].id, **row})
            if shown is not None:
                maps[source.name] = shown
        if len(figure_rows) < int(cfg.figure_images):
            figure_rows.append((data.stimuli[i].id, data.load_image(i) if data.stimuli[i].path else None, tg.density.numpy(), maps))
    if skipped:
        log.warning("%d images without fixations were skipped", skipped)

    columns = [m for m in SALIENCY_METRICS + SCANPATH_METRICS if any(m in r for rows in per_image.values() for r in rows)]
    table = {}
    for name, rows in per_image.items():
        table[name] = {}
        for m in columns:
            vals = np.array([r.get(m, np.nan) for r in rows], dtype=float)
            table[name][m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    out = Path(cfg.paths.output_dir)
    markdown = _markdown(table, columns)
    (out / "benchmark.md").write_text(markdown + "\n")
    _write_csv(out / "benchmark.csv", table, columns)
    result = {
        "dataset": dm.dataset.name,
        "split": split,
        "images": len(data) - skipped,
        "skipped_images": skipped,
        "sigma_px": sigma_px,
        "centre_bias": centre_bias(ctx).to_dict(),
        "sources": [s.name for s in sources],
        "metrics": table,
        "per_image": per_image,
    }
    write_json(out / "benchmark.json", result)
    if figure_rows:
        from attnlab.viz.saliency_grid import saliency_grid

        saliency_grid(figure_rows, out / "saliency_grid.png")
    print(markdown)
    print(f"({len(data) - skipped} {split} images of {dm.dataset.name}; run folder: {out})")
    return result


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:.3f}"


def _markdown(table: dict[str, dict[str, float]], columns: list[str]) -> str:
    head = "| source | " + " | ".join(f"{c} ↓" if c in LOWER_IS_BETTER else c for c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = ["| " + name + " | " + " | ".join(_fmt(row[c]) for c in columns) + " |" for name, row in table.items()]
    return "\n".join([head, rule, *body])


def _write_csv(path: Path, table: dict[str, dict[str, float]], columns: list[str]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", *columns])
        for name, row in table.items():
            writer.writerow([name, *[row[c] for c in columns]])
    tmp.replace(path)


def _quote_attention(argv: list[str]) -> list[str]:
    """``attention=a,b`` means a list of sources here, not a Hydra sweep: rewrite it as ``[a,b]``."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "attention" and "," in value and value[:1] not in "[\"'":
            arg = f"{key}=[{','.join(_escape(v) for v in value.split(','))}]"
        out.append(arg)
    return out


def _escape(item: str) -> str:
    plain = item.replace("_", "").replace("-", "").replace(".", "").isalnum()
    return item if plain else "'" + item.replace("'", "\\'") + "'"


def main() -> Any:
    sys.argv = [sys.argv[0], *_quote_attention(sys.argv[1:])]
    return _entry()


def _task(cfg: DictConfig) -> None:
    run_benchmark(cfg)


def _make_entry():
    from attnlab.utils.cli import entry_point

    return entry_point("benchmark")(_task)


_entry = _make_entry()

if __name__ == "__main__":
    main()
