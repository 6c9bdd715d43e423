"""``run_benchmark(cfg)``: load the data, resolve the sources, score every image, write the reports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

import attnlab.benchmark.report as report
from attnlab.benchmark.scoring import _score_source, _targets
from attnlab.benchmark.sources import centre_bias, resolve_source
from attnlab.metrics import saliency as S
from attnlab.sources import AttentionSource, BenchmarkContext
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["run_benchmark", "source_list"]


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
        raise UserError("attention= is empty; name at least one source, e.g. attention=centre_bias,uniform,inter_observer")
    return items


def run_benchmark(cfg: DictConfig, sources: Sequence[AttentionSource] = ()) -> dict[str, Any]:
    """Score ``sources`` (already built, e.g. in-memory scanpaths) and every source of
    ``cfg.attention`` on ``cfg.data``; write the table and figure into ``cfg.paths.output_dir``."""
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
    sources = list(sources) + [resolve_source(s, ctx) for s in source_list(cfg.attention, required=not sources)]
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

    table, columns = report.summary_table(per_image)
    out = Path(cfg.paths.output_dir)
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
    text = report.write_reports(out, result, columns)
    report.write_figure(figure_rows, out / "saliency_grid.png")
    print(text)
    print(f"({len(data) - skipped} {split} images of {dm.dataset.name}; run folder: {out})")
    return result
