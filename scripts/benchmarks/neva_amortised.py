"""Amortised NeVA vs the per-image search: images/s on the same task model, side by side in one run.

``python scripts/bench.py --only neva_amortised [--repeats N]``: at 224×224, L=10, batch 8,
EfficientNet-Lite0 (``neva_classifier`` / ``neva_amortised`` configs), one batch of scanpaths by the
per-image search (S=20 sign-gradient steps per fixation: S−1 forward+backward and one forward pass
of the task model) and by α (one forward pass of α and of the task model per fixation). Both use
the SAME task module, inputs and perception settings; the calls alternate round by round (each round:
one search, ``NEVA_AMORTISED_CALLS`` amortised calls), so machine load hits both alike; the speed-up
is the ratio of the medians. α is untrained here (its cost does not depend on its weights).

Smaller runs: NEVA_BENCH_LENGTH, NEVA_BENCH_STEPS, NEVA_BENCH_BATCH, NEVA_BENCH_SIZE as for ``neva_search``.
"""

from __future__ import annotations

import os

import torch
from benchmarks.neva import _images  # the same images as the search benchmark
from timing import measure_interleaved


def _settings() -> dict:
    env = os.environ.get
    return {
        "length": int(env("NEVA_BENCH_LENGTH", 10)),
        "steps": int(env("NEVA_BENCH_STEPS", 20)),
        "batch": int(env("NEVA_BENCH_BATCH", 8)),
        "size": int(env("NEVA_BENCH_SIZE", 224)),
        "amortised_calls": int(env("NEVA_AMORTISED_CALLS", 3)),
    }


def bench_amortised(args) -> dict:
    from attnlab.models.neva import ClassifierTask, NevaModule, SearchConfig
    from attnlab.models.neva.amortised import AmortisedNevaModule
    from attnlab.models.pretrained import efficientnet_lite0

    torch.manual_seed(0)
    s = _settings()
    size = (s["size"], s["size"])
    task = ClassifierTask(efficientnet_lite0())  # one task module, shared by both
    common = dict(image_size=size, blur_kernel=5, blur_sigma=5.0, channels_last=True)
    search = NevaModule(task, SearchConfig(length=s["length"], steps=s["steps"]), **common).to(args.device).eval()
    amortised = AmortisedNevaModule(task, length=s["length"], **common).to(args.device).eval()
    images, source = _images(s["batch"], s["size"], args.device)
    paths = {}

    def run_search() -> None:
        paths["search"] = search.scanpaths(images, generator=torch.Generator().manual_seed(0))[0]

    def run_amortised() -> None:
        paths["amortised"] = amortised.scanpaths(images)[0]

    timed = measure_interleaved(
        {"search": (run_search, 1), "amortised": (run_amortised, s["amortised_calls"])},
        rounds=max(1, args.repeats),
        warmup=1,
    )
    batch = s["batch"]
    rates = {name: batch / m.median_s for name, m in timed.items()}
    return {
        "settings": s | {"images": source, "threads": torch.get_num_threads(), "channels_last": True},
        "search": timed["search"].to_dict() | {"images_per_s": rates["search"]},
        "amortised": timed["amortised"].to_dict() | {"images_per_s": rates["amortised"]},
        "speedup": rates["amortised"] / rates["search"],
        "mean_loss_per_fixation": {
            name: path.best_loss.mean(0).tolist() for name, path in paths.items()
        },  # untrained α: not a quality comparison
    }


BENCHMARKS = {"neva_amortised": bench_amortised}
