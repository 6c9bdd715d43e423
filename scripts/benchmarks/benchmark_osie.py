"""The benchmark command on OSIE: ``python scripts/bench.py --only benchmark_osie --repeats 3``.

Two measurements in one run, both with the three baselines (centre_bias, uniform, inter_observer)
and every saliency and scanpath metric:

1. ``full``: ``run_benchmark`` (what ``python -m attnlab.benchmark data=osie split=all`` runs:
   loading the data, scoring, writing the reports and figure) on all images of
   $ATTNLAB_OSIE_ROOT (default: shared/data/osie beside the checkout, 400 images), ``--repeats`` times, median.
   Target: ≤ 60 s.
2. ``ratio``: on the first ``RATIO_IMAGES`` images (32: one 16-image chunk per worker process, the
   chunk size of the full run; on 8 images each worker scored one 4-image chunk, so starting the
   processes and touching fresh memory weighed four times more than in the run), the scoring of the fast path
   (:func:`attnlab.benchmark.run.score_images`, with its worker processes) against the same scores
   computed the plain way: pysaliency 0.2.22 for AUC-Judd, sAUC, NSS, IG, CC, KLD and SIM (one
   pysaliency model per map), multimatch_gaze for MultiMatch, and a per-pair loop of the project's
   own reference definitions (:mod:`attnlab.metrics.scanpath`: ScanMatch, SED, DTW, TDE, Sequence
   Score with scikit-learn's mean shift) — AUC-Borji has no pysaliency counterpart, so both sides
   call attnlab's ``auc_borji`` for it. Alternated round by round (``measure_interleaved``) so both
   meet the same load of the shared host; the largest difference of any value is reported.
   Both sides score each source's own map (``metric_specific=False``, ``conditional_metrics=False``:
   pysaliency has no metric-specific maps of a probabilistic source such as the centre bias).
   Target: ≥ 20×, values equal to 1e-6. One convention differs and is not compared: NSS of a
   constant map (the uniform baseline) is −1 in pysaliency and defined as 0 by attnlab.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import measure, measure_interleaved

RATIO_IMAGES = 32
SOURCES = ("centre_bias", "uniform", "inter_observer")


SHARED = Path(os.environ.get("ATTNLAB_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def _root() -> str:
    return os.environ.get("ATTNLAB_OSIE_ROOT") or str(SHARED / "data" / "osie")


def _config(out: Path, *extra: str):
    from hydra import compose, initialize_config_dir

    from attnlab.utils.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="benchmark",
            overrides=[
                "data=osie",
                f"data.root={_root()}",
                "split=all",
                f"attention=[{','.join(SOURCES)}]",
                "progress=false",
                f"paths.output_dir={out}",
                *extra,
            ],
        )


# --- the plain way: pysaliency, multimatch_gaze, per-pair reference loops ---------------------


class _OneMap:
    """pysaliency model factory: a model that returns one given map for any stimulus."""

    def __new__(cls, m):
        import pysaliency

        class OneMap(pysaliency.SaliencyMapModel):
            def __init__(self, m):
                super().__init__(caching=False)
                self.m = m

            def _saliency_map(self, stimulus):
                return self.m

        return OneMap(m)


def _pysaliency_maps(preds, fix_xy, negatives_xy, densities, baseline, stimulus):
    """pysaliency's values of B maps: AUC-Judd, sAUC, NSS, IG (fixation targets), CC/KLD/SIM (densities)."""
    import pysaliency

    out = {k: [] for k in ("AUC_Judd", "sAUC", "NSS", "IG", "CC", "KLD", "SIM")}
    base = pysaliency.models.SaliencyMapNormalizingModel(_OneMap(baseline)) if baseline is not None else None
    for b, p in enumerate(preds):
        model = _OneMap(p)
        if fix_xy is not None:
            x, y = fix_xy[b]
            fix = pysaliency.Fixations.create_without_history(x, y, np.zeros(len(x), dtype=int))
            nx, ny = negatives_xy[b]
            neg = pysaliency.Fixations.create_without_history(nx, ny, np.zeros(len(nx), dtype=int))
            out["AUC_Judd"].append(
                model.AUC_per_image(stimulus, fix, nonfixations="unfixated", thresholds="fixations")[0]
            )
            out["sAUC"].append(model.AUC_per_image(stimulus, fix, nonfixations=neg)[0])
            # pysaliency gives −1 for a constant map (0/0 → its own fallback); attnlab defines NSS = 0
            # there (metrics/saliency.py, degenerate inputs): the defined value, not compared
            out["NSS"].append(0.0 if p.min() == p.max() else float(np.mean(model.NSSs(stimulus, fix))))
            ig = pysaliency.models.SaliencyMapNormalizingModel(model).information_gains(
                stimulus, fix, baseline_model=base
            )
            out["IG"].append(float(np.mean(ig)))
        if densities is not None:
            out["CC"].append(pysaliency.metrics.CC(p, densities[b]))
            out["KLD"].append(pysaliency.metrics.MIT_KLDiv(p, densities[b]))
            out["SIM"].append(pysaliency.metrics.SIM(p, densities[b]))
    return {k: float(np.nanmean(v)) for k, v in out.items() if v}


def _plain_pairs(preds, humans, size, clusters, exclude_self):
    import multimatch_gaze as mg

    from attnlab.benchmark.scoring import SCANPATH_METRICS
    from attnlab.metrics import scanpath as SP

    h, w = size
    rec = lambda s: np.rec.fromarrays(
        [s.x, s.y, s.duration if s.duration is not None else np.ones(len(s))], names=["start_x", "start_y", "duration"]
    )  # noqa: E731
    rows = []
    for k, p in enumerate(preds):
        for j, q in enumerate(humans):
            if exclude_self and j == k:
                continue
            mm = mg.docomparison(rec(p), rec(q), screensize=[w, h]) if len(p) >= 3 and len(q) >= 3 else [math.nan] * 5
            rows.append(
                [
                    SP.string_edit_similarity(p, q, size),
                    SP.scanmatch(p, q, size),
                    *mm,
                    SP.dtw(p, q, size),
                    SP.scaled_time_delay_embedding(p, q, size),
                    SP.sequence_score(p, q, clusters) if clusters is not None else math.nan,
                ]
            )
    values = np.array(rows, dtype=float).reshape(-1, len(SCANPATH_METRICS))
    return {
        m: float(np.nanmean(values[:, c])) if np.isfinite(values[:, c]).any() else math.nan
        for c, m in enumerate(SCANPATH_METRICS)
    }


def _plain_scores(sources, ctx, indices, negatives):
    """{source: [row per image]} the plain way (see the module docstring)."""
    import pysaliency

    from attnlab.baselines import CentreBias
    from attnlab.benchmark.scoring import INTER_OBSERVER_SPLITS, split_halves
    from attnlab.metrics import saliency as S
    from attnlab.metrics import scanpath as SP

    data, seed, sigma = ctx.data, ctx.seed, ctx.sigma_px
    baseline_model = CentreBias.fit(ctx.train)
    out = {s.name: [] for s in sources}
    for i in indices:
        size = data.stimuli[i].size
        stimulus = pysaliency.Stimuli([np.zeros((*size, 3), dtype=np.uint8)])
        f = data.fixations(i)
        counts = negatives.counts(i)
        ny, nx = np.nonzero(counts)
        reps = counts[ny, nx].astype(int)
        neg_xy = (np.repeat(nx, reps).astype(float), np.repeat(ny, reps).astype(float))
        density = data.density(i, sigma_px=sigma)
        baseline = baseline_model.map(size)
        humans = ctx.human_scanpaths[i]
        clusters = SP.fit_fixation_clusters(np.concatenate([p.xy for p in humans])) if humans else None
        dense_fix = torch.as_tensor(data.fixation_map(i)[0])[None]
        for source in sources:
            row = {}
            if source.leave_one_out:
                subjects = sorted({p.subject for p in data.scanpaths[i]})
                loo = np.stack([data.density(i, sigma_px=sigma, subjects=set(subjects) - {s}) for s in subjects])
                sub_xy = [(g.x, g.y) for g in (data._fixations_of(i, {s}) for s in subjects)]
                row |= _pysaliency_maps(loo, sub_xy, [neg_xy] * len(subjects), None, baseline, stimulus)
                sub_fix = torch.as_tensor(np.stack([data.fixation_map(i, subjects={s})[0] for s in subjects]))
                row["AUC_Borji"] = S.mean_over_images(S.auc_borji(torch.as_tensor(loo), sub_fix, seed=seed))[0]
                halves = split_halves(subjects, INTER_OBSERVER_SPLITS, np.random.default_rng([seed, i]))
                a = np.stack([data.density(i, sigma_px=sigma, subjects=g) for g, _ in halves])
                b = np.stack([data.density(i, sigma_px=sigma, subjects=g) for _, g in halves])
                row |= _pysaliency_maps(a, None, None, b, None, stimulus)
                row |= _plain_pairs(humans, humans, size, clusters, True)
            else:
                m = np.asarray(source.saliency_map(ctx, i), dtype=np.float64)
                row |= _pysaliency_maps([m], [(f.x, f.y)], [neg_xy], [density], baseline, stimulus)
                row["AUC_Borji"] = S.mean_over_images(S.auc_borji(torch.as_tensor(m)[None], dense_fix, seed=seed))[0]
                paths = source.scanpaths(ctx, i)
                if paths:
                    row |= _plain_pairs(list(paths), humans, size, clusters, False)
            out[source.name].append(row)
    return out


def _context(images: int):
    import hydra

    from attnlab.benchmark import BenchmarkContext, resolve_source
    from attnlab.metrics.saliency import ShuffledNegatives

    dm = hydra.utils.instantiate(_config(Path("unused")).data, _convert_="all")  # as the command builds it
    dm.setup("test")
    data = dm.dataset.subset(range(images))
    # the plain side scores each source's own map: so does the fast side here (centre_bias and
    # uniform are probabilistic, and the command scores them on metric-specific maps by default)
    ctx = BenchmarkContext(
        data,
        dm.splits["train"],
        dm.sigma_px,
        0,
        data.filtered(drop_first=True).scanpaths,
        metric_specific=False,
        conditional_metrics=False,
    )
    negatives = ShuffledNegatives(
        [(f.x, f.y) for f in (data.fixations(i) for i in range(len(data)))], [s.size for s in data.stimuli]
    )
    return ctx, [resolve_source(s, ctx) for s in SOURCES], negatives


def benchmark_osie(args) -> dict:
    import json

    import attnlab.benchmark.run as run

    # 1. the whole command on every image
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp))
        images = {}
        full = measure(
            "run_benchmark", lambda: images.update(n=run.run_benchmark(cfg)["images"]), repeats=args.repeats, warmup=0
        )
    print("full runs:", json.dumps(full.to_dict()), flush=True)  # kept even if the comparison fails
    return {
        "images": images["n"],
        "full_median_s": full.median_s,
        "full_target_s": 60.0,
        "full_meets_target": full.median_s <= 60.0,
        "full": full.to_dict(),
    } | benchmark_osie_ratio(args)


def benchmark_osie_ratio(args) -> dict:
    """Part 2 alone (``--only benchmark_osie_ratio``): fast vs plain scoring, side by side."""
    import attnlab.benchmark.run as run

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # pysaliency 0.2.22 calls np.trapz, which NumPy 2.4 removed
    ctx, sources, negatives = _context(RATIO_IMAGES)
    indices = list(range(RATIO_IMAGES))
    processes = run.workers(sources, len(indices))
    fast_rows, plain_rows = {}, {}

    def fast():
        rows = {s.name: [] for s in sources}
        for chunk_rows, _, _ in run.score_images(sources, ctx, indices, negatives, [], processes):
            for name, r in chunk_rows.items():
                rows[name].extend(r)
        fast_rows.update(rows)

    timed = measure_interleaved(
        {"fast": (fast, 1), "plain": (lambda: plain_rows.update(_plain_scores(sources, ctx, indices, negatives)), 1)},
        rounds=args.repeats,
        warmup=1,
    )
    worst_abs, worst_rel, compared, unequal = 0.0, 0.0, 0, []
    for name, rows in plain_rows.items():
        for ref, got in zip(rows, fast_rows[name]):
            for metric, v in ref.items():
                g = got[metric]
                if not (math.isfinite(v) and math.isfinite(g)):
                    if not (v == g or (math.isnan(v) and math.isnan(g))):
                        unequal.append(f"{name} {got['stimulus']} {metric}: plain {v}, fast {g}")
                    continue
                worst_abs = max(worst_abs, abs(g - v))
                worst_rel = max(worst_rel, abs(g - v) / max(abs(v), 1e-12))
                compared += 1
    speedup = timed["plain"].median_s / timed["fast"].median_s
    return {
        "sources": list(SOURCES),
        "cpu": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "worker_processes": processes,
        "ratio_images": RATIO_IMAGES,
        "fast_median_s": timed["fast"].median_s,
        "plain_median_s": timed["plain"].median_s,
        "speedup": speedup,
        "target_speedup": 20.0,
        "meets_speedup": speedup >= 20.0,
        "values_compared": compared,
        "max_abs_difference": worst_abs,
        "max_rel_difference": worst_rel,
        "non_finite_mismatches": unequal,
        "fast": timed["fast"].to_dict(),
        "plain": timed["plain"].to_dict(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


MODEL_IMAGES = 96
MODEL_SOURCES = ("centre_bias", "inter_observer", "cam:gradcam", "cam:gradcam+prior", "wta:cam:gradcam")


def benchmark_model_sources(args) -> dict:
    """The benchmark with model sources (CAMs of the offline EfficientNet-Lite0, and winner-take-all
    scanpaths on them) on the first ``MODEL_IMAGES`` OSIE images: scored in one process (how a source
    that may not be forked kept the benchmark until issue 36) against the parent predicting each
    chunk while forked workers score (``run.score_images``), alternated round by round; same values."""
    import attnlab.benchmark.run as run

    workers = run.workers
    results: dict[str, dict] = {}

    def once(label: str, processes) -> None:
        run.workers = processes
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = _config(Path(tmp), f"max_images={MODEL_IMAGES}", "figure_images=0")
                cfg.attention = list(MODEL_SOURCES)
                results[label] = run.run_benchmark(cfg, reports=False)["per_image"]
        finally:
            run.workers = workers

    timed = measure_interleaved(
        {
            "one_process": (lambda: once("one_process", lambda sources, images: 1), 1),
            "parent_predicts": (lambda: once("parent_predicts", workers), 1),
        },
        rounds=args.repeats,
        warmup=1,
    )
    worst = 0.0
    for name, rows in results["one_process"].items():
        for a, b in zip(rows, results["parent_predicts"][name]):
            for metric, v in a.items():
                if isinstance(v, float) and math.isfinite(v):
                    worst = max(worst, abs(b[metric] - v) / max(abs(v), 1e-12))
    one, both = timed["one_process"].median_s, timed["parent_predicts"].median_s
    return {
        "sources": list(MODEL_SOURCES),
        "images": MODEL_IMAGES,
        "cpu": _cpu_model(),
        "worker_processes": workers([], MODEL_IMAGES),
        "one_process_median_s": one,
        "parent_predicts_median_s": both,
        "speedup": one / both,
        "max_rel_difference": worst,
        "one_process": timed["one_process"].to_dict(),
        "parent_predicts": timed["parent_predicts"].to_dict(),
    }


BENCHMARKS = {
    "benchmark_osie": benchmark_osie,
    "benchmark_osie_ratio": benchmark_osie_ratio,
    "benchmark_model_sources": benchmark_model_sources,
}
