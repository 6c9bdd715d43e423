"""NeVA benchmarks: scanpath search speed and its overhead over the bare task-model passes.

``python scripts/bench.py --only neva_search [--repeats N]``: at 224×224, L=10, S=20, batch 8,
EfficientNet-Lite0 (the ``neva_classifier`` config), the time of one batch of scanpaths (images/s)
and, interleaved with it fixation by fixation, the time of S bare forward+backward passes of the
task model per fixation (L·S in all; gradient w.r.t. the input, same batch, same layout/precision).
Target: overhead ≤ 10%. Also timed: the exact model work of the search (S−1 forward+backward and
one forward-only pass per fixation, as the last step needs no gradient), so the pure bookkeeping
cost is visible.

``python scripts/bench.py --only neva_flags``: a one-fixation search (L=1, S=20) with each speed flag
(channels_last, bf16 autocast, torch.compile), round-robin, the speed-up over plain fp32 paired within
each round, and how far its fixations move from plain fp32.

Smaller runs for slow machines: NEVA_BENCH_LENGTH, NEVA_BENCH_STEPS, NEVA_BENCH_BATCH, NEVA_BENCH_SIZE
(environment variables) override L, S, batch and image side; the result records what was used.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from timing import measure

SHARED = Path(os.environ.get("ATTNLAB_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def _settings(length: int = 10, steps: int = 20, batch: int = 8, size: int = 224) -> dict:
    return {
        "length": int(os.environ.get("NEVA_BENCH_LENGTH", length)),
        "steps": int(os.environ.get("NEVA_BENCH_STEPS", steps)),
        "batch": int(os.environ.get("NEVA_BENCH_BATCH", batch)),
        "size": int(os.environ.get("NEVA_BENCH_SIZE", size)),
    }


def _images(batch: int, size: int, device: str) -> tuple[torch.Tensor, str]:
    """Real OSIE images when ../shared is there (the loss landscape matters for nothing but realism)."""
    from attnlab.data.images import ImageFolder

    folder = SHARED / "data" / "osie_subset" / "data" / "stimuli"
    files = sorted(folder.glob("*.jpg"))[:batch] if folder.is_dir() else []
    if len(files) == batch:
        data = ImageFolder(files, (size, size))
        return torch.stack([data[i]["image"] for i in range(batch)]).to(device), "osie_subset"
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, size, size, generator=generator).to(device), "random"


def _module(s: dict, device: str, channels_last: bool = True, precision: str = "fp32", compile: bool = False):
    from attnlab.models.neva import ClassifierTask, NevaModule, SearchConfig
    from attnlab.models.pretrained import efficientnet_lite0

    task = ClassifierTask(efficientnet_lite0())
    search = SearchConfig(length=s["length"], steps=s["steps"], lr=0.1, sigma_fovea=0.15, forgetting=0.1)
    module = NevaModule(
        task,
        search,
        image_size=(s["size"], s["size"]),
        blur_kernel=5,
        blur_sigma=5.0,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
    )
    return module.to(device).eval()


def _bare_passes(module, images: torch.Tensor, passes: int, forward_only: int = 0):
    """``passes`` forward+backward passes of the task model alone (gradient w.r.t. the input), then
    ``forward_only`` forward passes without gradient."""
    with torch.no_grad():
        target = module.task.target(images)
    loss_fn = module._loss_fn(target)

    def run() -> None:
        for _ in range(passes):
            x = images.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(x).sum(), x)
        with torch.no_grad():
            for _ in range(forward_only):
                loss_fn(images)

    return run


def _interleaved(fns: dict, repeats: int, warmup=None) -> dict:
    """Warm up (``warmup()``, else each fn once), then alternate single timed calls so machine load hits all alike."""
    if warmup is not None:
        warmup()
    else:
        for fn in fns.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name] += measure(name, fn, repeats=1, warmup=0).seconds
    return {
        name: {"seconds": s, "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s)}
        for name, s in seconds.items()
    }


def bench_search(args) -> dict:
    """Full L=10 searches; after each fixation (S passes) the same batch runs S bare passes, paired in time.

    On a shared machine the load changes within minutes, so whole-run timings of the search and of
    the bare passes are not comparable; timing them fixation by fixation, back to back, is. Chunks are
    timed with ``time.perf_counter`` (``measure``'s tracemalloc would tax only the Python-heavy side).
    ``--repeats`` = number of full searches (after a short warm-up).
    """
    from attnlab.models.neva import SearchConfig

    torch.manual_seed(0)
    s = _settings()
    module = _module(s, args.device, channels_last=True)
    images, source = _images(s["batch"], s["size"], args.device)
    steps = s["steps"]
    bare_chunk = _bare_passes(module, images, steps)
    # exactly the model work of one fixation: its last step needs no gradient
    same_chunk = _bare_passes(module, images, steps - 1, forward_only=1)

    full_config = module.search_config
    module.search_config = SearchConfig(length=1, steps=3)  # warm-up: kernels for every shape
    module.scanpaths(images, generator=torch.Generator().manual_seed(0))
    module.search_config = full_config
    bare_chunk(), same_chunk()

    chunks: dict[str, list[float]] = {"search": [], "bare": [], "same": []}
    totals = []
    for repeat in range(max(1, args.repeats)):
        mark = [time.perf_counter()]

        def on_fixation(t: int) -> None:
            chunks["search"].append(time.perf_counter() - mark[0])
            order = (("bare", bare_chunk), ("same", same_chunk))
            for name, fn in order if t % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                fn()
                chunks[name].append(time.perf_counter() - t0)
            mark[0] = time.perf_counter()

        module.scanpaths(images, generator=torch.Generator().manual_seed(0), on_fixation=on_fixation)
        totals.append(sum(chunks["search"][-s["length"] :]))
    search, bare, same = (np.array(chunks[k]) for k in ("search", "bare", "same"))
    summary = lambda a: {"median_s": float(np.median(a)), "min_s": float(a.min()), "max_s": float(a.max())}  # noqa: E731
    return {
        "settings": s
        | {
            "passes": s["length"] * steps,
            "images": source,
            "channels_last": True,
            "precision": "fp32",
            "threads": torch.get_num_threads(),
            "searches": len(totals),
        },
        "search_total_s": totals,
        "images_per_s": s["batch"] / float(np.median(totals)),
        "per_fixation": {"search": summary(search), "bare_S_passes": summary(bare), "same_model_work": summary(same)},
        "overhead_ratio": float(np.median(search / bare) - 1),
        "overhead_ratio_of_sums": float(search.sum() / bare.sum() - 1),
        "bookkeeping_overhead_ratio": float(np.median(search / same) - 1),
        "paired_ratios": (search / bare).round(4).tolist(),
    }


def bench_flags(args) -> dict:
    """One-fixation searches (S passes) with each flag, round-robin; speed-ups are paired within a round."""
    torch.manual_seed(0)
    s = _settings(length=1)
    images, source = _images(s["batch"], s["size"], args.device)
    variants = {
        "fp32": dict(channels_last=False),
        "channels_last": dict(channels_last=True),
        "bf16": dict(channels_last=False, precision="bf16"),
        "channels_last+bf16": dict(channels_last=True, precision="bf16"),
        "channels_last+compile": dict(channels_last=True, compile=True),
    }
    skip = set(filter(None, os.environ.get("NEVA_BENCH_SKIP", "").split(",")))
    modules = {name: _module(s, args.device, **kw) for name, kw in variants.items() if name not in skip}
    paths = {}

    def runner(name):
        def run():
            paths[name] = module_paths(modules[name])

        return run

    def module_paths(m):
        path, _ = m.scanpaths(images, generator=torch.Generator().manual_seed(0))
        return path.positions.detach().cpu()

    timings = _interleaved({name: runner(name) for name in modules}, args.repeats)
    reference = paths["fp32"]
    pixels = s["size"] / 2  # normalised units → pixels of the input
    out = {"settings": s | {"images": source}, "variants": {}}
    for name in modules:
        d = (paths[name] - reference).norm(dim=-1) * pixels
        paired = np.array(timings["fp32"]["seconds"]) / np.array(timings[name]["seconds"])
        out["variants"][name] = timings[name] | {
            "speedup_vs_fp32": float(np.median(paired)),
            "speedup_vs_fp32_per_round": paired.round(3).tolist(),
            "fixation_shift_px_mean": float(d.mean()),
            "fixation_shift_px_max": float(d.max()),
            "identical_fixations": bool(torch.equal(paths[name], reference)),
        }
    return out


BENCHMARKS = {"neva_search": bench_search, "neva_flags": bench_flags}
