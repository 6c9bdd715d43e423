"""``run_benchmark(cfg)``: load the data, resolve the sources, score every image, write the reports."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, ListConfig

import attnlab.benchmark.report as report
from attnlab.baselines import fitted_centre_bias
from attnlab.benchmark.scoring import score_chunk
from attnlab.benchmark.sources import UniformSource, check_unique_names, resolve_source
from attnlab.metrics import saliency as S
from attnlab.sources import AttentionSource, BenchmarkContext, source_names
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["run_benchmark", "source_list", "source_options", "score_images", "workers"]

CHUNK = 16  # images scored together: enough to batch the metrics and scanpath pairs, few enough to keep memory small
_SHARED: tuple = ()  # (sources, ctx, negatives) for forked workers, set before the pool starts


def workers(sources: Sequence[AttentionSource], images: int) -> int:
    """Processes to score with: one per available core (at most one per chunk). A source that may not
    run in a forked process (a model may hold a GPU or threads) predicts in the parent while the
    workers score (:class:`Predicted`); a conditional one (its density depends on each human's
    history, asked for inside the scoring) keeps the whole benchmark in one process."""
    if (
        any(not getattr(s, "parallel_safe", False) and getattr(s, "conditional", False) for s in sources)
        or "fork" not in mp.get_all_start_methods()
    ):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, images))


class Predicted(AttentionSource):
    """A source that may not run in a forked worker, as the workers see it: what it gives for the
    images of the chunk being scored, computed in the parent (which goes on to the next chunk)."""

    parallel_safe = True

    def __init__(self, source: AttentionSource) -> None:
        self.name, self.leave_one_out = source.name, source.leave_one_out
        self.outputs: dict[int, tuple] = {}

    @staticmethod
    def outputs_of(source: AttentionSource, ctx: BenchmarkContext, indices: list[int]) -> dict[int, tuple]:
        return {i: (source.saliency_map(ctx, i), source.log_density(ctx, i), source.scanpaths(ctx, i)) for i in indices}

    def saliency_map(self, ctx, i):
        return self.outputs[i][0]

    def log_density(self, ctx, i):
        return self.outputs[i][1]

    def scanpaths(self, ctx, i):
        return self.outputs[i][2]


def _init_worker() -> None:
    torch.set_num_threads(1)  # the processes are the parallelism; also keeps OpenMP out of forked children


def _score_chunk(job: tuple[list[int], list[int], dict[int, dict[int, tuple]]]):
    sources, ctx, negatives = _SHARED
    indices, keep, predicted = job
    for k, outputs in predicted.items():
        sources[k].outputs = outputs
    rows, maps = score_chunk(sources, ctx, indices, negatives, keep)
    return rows, maps, len(indices)


def score_images(sources, ctx, indices, negatives, keep, processes: int = 1):
    """(rows, figure maps, image count) of each chunk of ``indices``, in order; ``processes`` > 1
    scores chunks in forked worker processes, while the parent computes the next chunk's outputs of
    the sources that may not be forked."""
    global _SHARED
    size = max(1, min(CHUNK, -(-len(indices) // max(1, processes))))  # few images: one chunk per process
    jobs = [
        (indices[k : k + size], [i for i in indices[k : k + size] if i in keep]) for k in range(0, len(indices), size)
    ]
    for size in {ctx.data.stimuli[i].size for i in indices}:  # build the shared caches once, before forking
        negatives.support_counts(indices[:1], size)
    # one thread in this process: the metrics' per-map threads cost more than they save on chunks
    # this size, the benchmark's own parallelism is the processes, and a model source predicts here
    # as it does without workers (its maps do not depend on the number of processes)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if processes <= 1:
            _SHARED = (sources, ctx, negatives)
            for chunk, shown in jobs:
                yield _score_chunk((chunk, shown, {}))
            return
        in_parent = {k: s for k, s in enumerate(sources) if not getattr(s, "parallel_safe", False)}
        _SHARED = ([Predicted(s) if k in in_parent else s for k, s in enumerate(sources)], ctx, negatives)
        with mp.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
            pending: deque = deque()
            for chunk, shown in jobs:
                predicted = {k: Predicted.outputs_of(s, ctx, chunk) for k, s in in_parent.items()}
                pending.append(pool.apply_async(_score_chunk, ((chunk, shown, predicted),)))
                if len(pending) > processes:  # as many chunks in flight as workers, and one being predicted
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        torch.set_num_threads(threads)
        _SHARED = ()


def source_list(attention: Any, required: bool = True) -> list[str]:
    """The source specs of ``attention=`` (a list or a comma-separated string)."""
    if attention is None:
        items = []
    elif isinstance(attention, (list, tuple, ListConfig)):
        items = [str(a) for a in attention]
    else:
        items = str(attention).split(",")
    items = [a.strip() for a in items if a and a.strip()]
    if not items and required:
        raise UserError(
            "attention= is empty; name at least one source, e.g. attention=centre_bias,uniform,inter_observer"
        )
    return items


def source_options(cfg: DictConfig) -> dict[str, Any]:
    """Each source's settings: the top-level config nodes named after a source, instantiated."""
    import hydra

    names = set(source_names())
    return {
        str(k): hydra.utils.instantiate(v, _convert_="all")
        for k, v in cfg.items()
        if k in names and isinstance(v, DictConfig) and "_target_" in v
    }


def run_benchmark(cfg: DictConfig, sources: Sequence[AttentionSource] = (), reports: bool = True) -> dict[str, Any]:
    """Score ``sources`` (already built, e.g. in-memory scanpaths) and every source of
    ``cfg.attention`` on ``cfg.data``; write the table and figure into ``cfg.paths.output_dir``
    (``reports=False``: write and print nothing, for commands with reports of their own).

    The result also holds, in memory only, ``figure``: per image of the figure, its ``stimulus`` id,
    ``image`` (or None), human ``density``, each source's ``maps``, each scanpath source's
    ``scanpaths`` and the ``humans``' scanpaths."""
    import hydra
    from tqdm import tqdm

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
        # the command checked split= against its declared choices (BenchmarkSettings); a caller may not
        raise UserError(f"split={split!r}: {dm.dataset.name} has the splits {', '.join([*dm.splits, 'all'])}")
    if cfg.max_images:
        data = data.subset(range(min(int(cfg.max_images), len(data))))
    if len(data) == 0:
        raise UserError(f"the {split} split of {dm.dataset.name} is empty; change data.split")
    train = dm.splits.get("train") or dm.dataset
    if train.num_fixations < 3:
        train = dm.dataset
    sigma_px = float(cfg.sigma_px) if cfg.get("sigma_px") else dm.sigma_px
    humans = (
        data.filtered(drop_first=bool(cfg.scanpath_drop_first)).scanpaths if cfg.scanpath_drop_first else data.scanpaths
    )
    ctx = BenchmarkContext(
        data,
        train,
        sigma_px,
        int(cfg.seed),
        humans,
        source_options(cfg),
        metric_specific=bool(cfg.metric_specific),
        conditional_metrics=bool(cfg.conditional_metrics),
    )
    fitted_centre_bias(ctx)  # fitted once, here, before any worker needs it
    sources = list(sources) + [resolve_source(s, ctx) for s in source_list(cfg.attention, required=not sources)]
    check_unique_names(sources)
    log.info(
        "benchmark: %d %s images of %s, sigma %.1f px, sources %s",
        len(data),
        split,
        dm.dataset.name,
        sigma_px,
        [s.name for s in sources],
    )

    negatives = S.ShuffledNegatives(
        [(f.x, f.y) for f in (data.fixations(i) for i in range(len(data)))], [s.size for s in data.stimuli]
    )
    scored = [i for i in range(len(data)) if data.fixations(i).x.size]
    skipped = len(data) - len(scored)
    for source in sources:
        source.prepare(ctx, scored)
    uniform_names = {s.name for s in sources if isinstance(s, UniformSource)}  # constant by design
    keep = scored[: int(cfg.figure_images)]
    per_image: dict[str, list[dict[str, float]]] = {s.name: [] for s in sources}
    shown: dict[int, dict] = {}
    with tqdm(total=len(scored), desc="benchmark", disable=not cfg.progress) as bar:
        for rows, maps, count in score_images(sources, ctx, scored, negatives, keep, workers(sources, len(scored))):
            for name, r in rows.items():
                per_image[name].extend(r)
            shown |= maps
            bar.update(count)
    if skipped:
        log.warning("%d images without fixations were skipped", skipped)
    constant = {s.name: [r["stimulus"] for r in per_image[s.name] if r.get("constant_map")] for s in sources}
    constant = {name: ids for name, ids in constant.items() if ids and name not in uniform_names}
    for name, ids in constant.items():
        log.warning(
            "source %s: %d constant or all-zero maps, scored as the uniform map (AUC 0.5, NSS 0), e.g. stimulus %s",
            name,
            len(ids),
            ids[0],
        )
    figure_rows = [
        (
            data.stimuli[i].id,
            data.load_image(i) if data.stimuli[i].path else None,
            shown[i]["density"],
            shown[i]["maps"],
        )
        for i in keep
    ]

    table, columns = report.summary_table(per_image)
    out = Path(cfg.paths.output_dir)
    result = {
        "dataset": dm.dataset.name,
        "split": split,
        "images": len(data) - skipped,
        "skipped_images": skipped,
        "sigma_px": sigma_px,
        "centre_bias": fitted_centre_bias(ctx).to_dict(),
        "sources": [s.name for s in sources],
        "dropped_human_fixations": dm.dataset.info.get("dropped_fixations"),
        "constant_maps": constant,
        "dropped_model_fixations": {s.name: s.dropped for s in sources if getattr(s, "dropped", {}).get("of")},
        "metrics": table,
        # scored with metric-specific maps and conditional metrics (attnlab.benchmark.probabilistic)
        "probabilistic": [name for name, rows in per_image.items() if any(r.get("probabilistic") for r in rows)],
        "per_image": per_image,
    }
    if reports:
        text = report.write_reports(out, result, columns)
        report.write_figure(figure_rows, out / "saliency_grid.png")
        print(text)
        print(f"({len(data) - skipped} {split} images of {dm.dataset.name}; run folder: {out})")
    result["figure"] = [
        dict(zip(("stimulus", "image", "density", "maps"), row), scanpaths=shown[i]["scanpaths"], humans=humans[i])
        for i, row in zip(keep, figure_rows)
    ]
    return result
