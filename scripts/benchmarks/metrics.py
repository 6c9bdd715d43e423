"""Saliency metric speed: attnlab (torch, batched) vs pysaliency on the same 100 OSIE-size maps.

``python scripts/bench.py --only saliency_metrics [--repeats N]``. Target: the metric set pysaliency
has (AUC-Judd, sAUC, NSS, CC, KLD, SIM, IG) at least 20× faster than pysaliency, same values
(checked in the run: max |difference| is reported). The maps are smooth random fields; the
fixations are the real ones of $ATTNLAB_OSIE_ROOT (default: the 60-image OSIE subset in shared/,
cycled to 100 maps), synthetic only when that folder is missing. AUC-Judd runs without jitter on
both sides so the values are comparable exactly;
"attnlab_full_set" adds AUC-Borji and the jittered AUC-Judd (no pysaliency counterpart).
Timing: ``--repeats`` rounds of one pysaliency call, ``OURS_PER_ROUND`` attnlab calls and as many
through the torch path (``attnlab.metrics.saliency.COMPILED = False``, the code before the
compiled kernel), after one warm-up call each; the speed-ups are ratios of the medians.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from timing import measure, measure_interleaved

from attnlab.baselines import CentreBias
from attnlab.data.fixations import gaussian_density, sparse_fixation_maps
from attnlab.metrics import saliency as S

SHARED = Path(os.environ.get("ATTNLAB_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
N_MAPS = 100
SIZE = (600, 800)
OURS_PER_ROUND = 5  # attnlab calls per pysaliency call in each timed round


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    root = os.environ.get("ATTNLAB_OSIE_ROOT") or str(SHARED / "data" / "osie_subset")
    if os.path.isdir(root):
        from attnlab.data.osie import load_osie

        data = load_osie(root)
        xy = [(data.fixations(i).x, data.fixations(i).y) for i in range(len(data))]
        source = f"OSIE subset fixations ({len(data)} images, cycled)"
    else:
        xy = [(rng.uniform(0, SIZE[1], 140), rng.uniform(0, SIZE[0], 140)) for _ in range(60)]
        source = "synthetic fixations"
    xy = [xy[i % len(xy)] for i in range(N_MAPS)]
    noise = torch.from_numpy(rng.random((N_MAPS, 1, SIZE[0] // 8, SIZE[1] // 8)))
    preds = torch.nn.functional.interpolate(noise, size=SIZE, mode="bicubic", align_corners=False)[:, 0].numpy()
    dens = np.stack([gaussian_density(x, y, SIZE, 24.0) for x, y in xy])
    baseline = CentreBias.isotropic(0.25).map(SIZE)
    return preds, xy, dens, baseline, source


def _ours(preds, xy, dens, baseline, device, extra: bool = False) -> dict[str, np.ndarray]:
    """All 100 maps in one call: the metrics work one map at a time, so no chunking is needed, and
    the fixations (sparse counts) and shuffled-AUC negatives (counts on the pixels fixated in any
    image) are built from the raw points, the same input pysaliency gets."""
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    fix = sparse_fixation_maps(xy, [SIZE] * len(xy)).to(device)
    nonfix = S.ShuffledNegatives(xy, [SIZE] * len(xy)).support_counts(range(len(xy)), device=device)
    names = S.ALL_METRICS if extra else S.DEFAULT_METRICS
    values = S.saliency_metrics(t(preds), fix, t(dens), t(baseline), nonfix, metrics=names, jitter=extra)
    return {k: v.cpu().numpy() for k, v in values.items()}


def _torch_path(preds, xy, dens, baseline, device) -> None:
    """The same call through the torch path (before the compiled kernel; GPU tensors still take it)."""
    S.COMPILED = False
    try:
        _ours(preds, xy, dens, baseline, device)
    finally:
        S.COMPILED = True


def _pysaliency(preds, xy, dens, baseline) -> dict[str, np.ndarray]:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # pysaliency 0.2.22 calls np.trapz
    import pysaliency
    from pysaliency.saliency_map_models import handle_stimulus

    stimuli = pysaliency.Stimuli(
        [
            np.full((*SIZE, 3), i % 251, dtype=np.uint8)
            + np.eye(1, SIZE[1], i % SIZE[1], dtype=np.uint8)[..., None] * (i // 251 + 1)
            for i in range(len(preds))
        ]
    )
    ids = [s.stimulus_id for s in stimuli.stimulus_objects]

    class Maps(pysaliency.SaliencyMapModel):
        def __init__(self, maps):
            super().__init__(caching=False)
            self.maps = maps

        def _saliency_map(self, stimulus):
            raise NotImplementedError

        def saliency_map(self, stimulus):
            return self.maps[ids.index(handle_stimulus(stimulus).stimulus_id)]

    ns = np.concatenate([np.full(len(x), i) for i, (x, _) in enumerate(xy)])
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([x for x, _ in xy]), np.concatenate([y for _, y in xy]), ns
    )
    model = Maps(list(preds))

    def run():
        per_image = lambda v: np.array([v[ns == i].mean() for i in range(len(preds))])  # noqa: E731
        ig = pysaliency.models.SaliencyMapNormalizingModel(model).information_gains(
            stimuli,
            fixations,
            baseline_model=pysaliency.models.SaliencyMapNormalizingModel(Maps([baseline] * len(preds))),
        )
        return {
            "AUC_Judd": np.array(
                model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
            ),
            "sAUC": np.array(model.AUC_per_image(stimuli, fixations, nonfixations="shuffled")),
            "NSS": per_image(model.NSSs(stimuli, fixations)),
            "CC": np.array([pysaliency.metrics.CC(p, q) for p, q in zip(preds, dens)]),
            "KLD": np.array([pysaliency.metrics.MIT_KLDiv(p, q) for p, q in zip(preds, dens)]),
            "SIM": np.array([pysaliency.metrics.SIM(p, q) for p, q in zip(preds, dens)]),
            "IG": per_image(ig),
        }

    return run


def _read_floor(preds, dens, repeats: int = 5) -> dict[str, float]:
    """One read of the call's two big inputs (maps and human densities) at this machine's read speed: the
    median time of a NumPy sum over each, both threads' worth (one sum per half, in two threads)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    halves = [a[: len(a) // 2] for a in (preds, dens)] + [a[len(a) // 2 :] for a in (preds, dens)]
    times = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(lambda pair: [float(x.sum()) for x in pair], [halves[:2], halves[2:]]))
            times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"seconds": seconds, "gb_s": (preds.nbytes + dens.nbytes) / seconds / 1e9}


def saliency_metrics(args) -> dict:
    preds, xy, dens, baseline, source = _inputs()
    device = torch.device(args.device)
    full = measure(
        "attnlab_full_set",
        lambda: _ours(preds, xy, dens, baseline, device, extra=True),
        repeats=max(1, args.repeats // 2),
        warmup=1,
    )
    run_reference = _pysaliency(preds, xy, dens, baseline)
    ours_values, reference_values = {}, {}  # kept from the calls (all calls give the same values)
    # alternate the two sides: one pysaliency call takes as long as ~20 of ours, so timed back to
    # back ours would all fall in one second of the shared host's load and pysaliency's in the next 30
    timed = measure_interleaved(
        {
            "attnlab": (lambda: ours_values.update(_ours(preds, xy, dens, baseline, device)), OURS_PER_ROUND),
            "attnlab_torch_path": (lambda: _torch_path(preds, xy, dens, baseline, device), OURS_PER_ROUND),
            "pysaliency": (lambda: reference_values.update(run_reference()), 1),
        },
        rounds=args.repeats,
        warmup=1,
    )
    ours, torch_path, reference = timed["attnlab"], timed["attnlab_torch_path"], timed["pysaliency"]
    floor = _read_floor(preds, dens)
    diff = {k: float(np.nanmax(np.abs(ours_values[k] - reference_values[k]))) for k in reference_values}
    rel = {
        k: float(
            np.nanmax(np.abs(ours_values[k] - reference_values[k]) / np.maximum(np.abs(reference_values[k]), 1e-12))
        )
        for k in reference_values
    }
    return {
        "maps": N_MAPS,
        "size": list(SIZE),
        "fixations": source,
        "torch_threads": torch.get_num_threads(),
        "attnlab_s": ours.median_s,
        "attnlab_full_set_s": full.median_s,
        "attnlab_torch_path_s": torch_path.median_s,
        "compiled_vs_torch_path": torch_path.median_s / ours.median_s,
        "pysaliency_s": reference.median_s,
        "speedup": reference.median_s / ours.median_s,
        "read_floor_s": floor["seconds"],
        "read_bandwidth_gb_s": floor["gb_s"],
        "above_read_floor": ours.median_s / floor["seconds"],
        "target_speedup": 20.0,
        "meets_target": reference.median_s / ours.median_s >= 20.0,
        "max_abs_difference": diff,
        "max_rel_difference": rel,
        "attnlab": ours.to_dict(),
        "attnlab_full_set": full.to_dict(),
        "attnlab_torch_path": torch_path.to_dict(),
        "pysaliency": reference.to_dict(),
    }


BENCHMARKS = {"saliency_metrics": saliency_metrics}
