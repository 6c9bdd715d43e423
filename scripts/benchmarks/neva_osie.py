"""Images/s of each NeVA row of the OSIE test table, side by side in one run.

``NEVA_BENCH_AUTOENCODER=<ckpt> NEVA_BENCH_ALPHA=<ckpt> python scripts/bench.py --only neva_osie_rows``:
the rows as the table ran them, built from their configs (``model=neva_classifier``,
``neva_classifier_osie``, ``neva_reconstruction`` with the autoencoder, ``neva_amortised`` from α's
checkpoint), each producing the scanpaths of the same batch of OSIE test images read at its own input
size (the scanpaths command's loader); the calls alternate round by round, so machine load hits all
rows alike. A row whose checkpoint is not given is left out. NEVA_BENCH_BATCH: images (default 8).
"""

from __future__ import annotations

import os

import torch
from timing import measure_interleaved


def _rows() -> dict[str, list[str]]:
    env = os.environ.get
    rows = {"NeVA-default": ["model=neva_classifier"], "NeVA-tuned": ["model=neva_classifier_osie"]}
    if env("NEVA_BENCH_AUTOENCODER"):
        rows["NeVA-reconstruction"] = [
            "model=neva_reconstruction",
            f"model.task.checkpoint={env('NEVA_BENCH_AUTOENCODER')}",
        ]
    if env("NEVA_BENCH_ALPHA"):
        rows["alpha"] = ["model=neva_amortised", f"ckpt_path={env('NEVA_BENCH_ALPHA')}"]
    return rows


def bench_rows(args) -> dict:
    import hydra

    from attnlab.benchmark.scanpaths import scanpath_model
    from attnlab.data.images import ImageFolder
    from attnlab.utils.compose import compose_config

    batch = int(os.environ.get("NEVA_BENCH_BATCH", 8))
    runs, settings = {}, {}
    for name, overrides in _rows().items():
        cfg = compose_config("scanpaths", [*overrides, "data=osie", "split=test"])
        model = scanpath_model(cfg).to(args.device).eval()
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        datamodule.setup("test")
        stimuli = datamodule.splits["test"].stimuli[:batch]
        folder = ImageFolder([s.path for s in stimuli], tuple(model.image_size), names=[s.id for s in stimuli])
        images = torch.stack([folder[i]["image"] for i in range(len(folder))]).to(args.device)

        def run(model=model, images=images) -> None:
            with torch.inference_mode(False), torch.enable_grad():  # the search needs autograd
                model.scanpaths(images.clone(), generator=torch.Generator().manual_seed(0))

        runs[name] = (run, 1)
        settings[name] = {"overrides": overrides, "image_size": list(model.image_size)}
    timed = measure_interleaved(runs, rounds=max(1, args.repeats), warmup=1)
    return {
        "settings": {"batch": batch, "threads": torch.get_num_threads(), "rows": settings},
        **{name: m.to_dict() | {"images_per_s": batch / m.median_s} for name, m in timed.items()},
    }


BENCHMARKS = {"neva_osie_rows": bench_rows}
