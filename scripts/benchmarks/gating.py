"""Gating-model benchmarks: MultiMNIST training and inference throughput (images/s)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from timing import measure

from attnlab.models.gating import GatingNet, run_glimpses

# the synthetic COCO generator is a test fixture (tests/fixtures), not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))


def _mnist_batch(batch: int, device: str):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 42, generator=g)
    targets = torch.rand(batch, 2, 1, 28, 42, generator=g)
    labels = torch.randint(0, 10, (batch, 2), generator=g)
    return x.to(device), targets.to(device), labels.to(device)


def _mnist_net(device: str) -> GatingNet:
    torch.manual_seed(0)
    return GatingNet(1, (28, 42), [20, 50], 10, upsample="nearest", strength=0.2).to(device)


def gating_mnist_train(args, batch: int = 64) -> dict:
    """One training batch = 2 glimpses x 5 steps with BPTT and an Adam step per glimpse."""
    net = _mnist_net(args.device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, targets, labels = _mnist_batch(batch, args.device)

    def step(k, r):
        loss = r.ce + 1000.0 * r.mse
        opt.zero_grad()
        loss.backward()
        opt.step()

    m = measure(
        "gating_mnist_train", lambda: run_glimpses(net, x, targets, labels, 2, on_glimpse=step), repeats=args.repeats
    )
    return m.to_dict() | {"batch": batch, "images_per_s": m.per_second(batch)}


def gating_mnist_infer(args, batch: int = 256) -> dict:
    """Inference: 2 glimpses x 5 steps, no gradients."""
    net = _mnist_net(args.device).eval()
    x, targets, labels = _mnist_batch(batch, args.device)

    def infer():
        with torch.no_grad():
            run_glimpses(net, x, targets, labels, 2)

    m = measure("gating_mnist_infer", infer, repeats=args.repeats)
    return m.to_dict() | {"batch": batch, "images_per_s": m.per_second(batch)}


BENCHMARKS = {
    "gating_mnist_train": gating_mnist_train,
    "gating_mnist_infer": gating_mnist_infer,
}


# --- COCO objects (issue 5) ---------------------------------------------------------------------


def gating_coco_metadata(args, images: int = 5000, instances: int = 40_000) -> dict:
    """Object selection over a generated COCO instances file (640×480 images, polygon masks).

    ``build`` parses the JSON and selects objects; ``cold`` adds hashing the file and writing the
    cache; ``warm`` is a later run that reads the cache. Target: build < 60 s on 2 cores.
    """
    import tempfile
    from pathlib import Path

    from fixtures.coco_synthetic import write_synthetic_coco  # tests/fixtures (on sys.path above)

    from attnlab.data.coco_objects import build_metadata, load_metadata

    with tempfile.TemporaryDirectory() as tmp:
        ann = write_synthetic_coco(
            tmp,
            images,
            instances // images,
            image_size=(640, 480),
            write_images=False,
            annotation_file="annotations/instances_train2017.json",
            seed=0,
        )
        meta = build_metadata(ann, 0.05, 0.01)
        build = measure(
            "gating_coco_metadata_build",
            lambda: build_metadata(ann, 0.05, 0.01),
            repeats=max(1, min(args.repeats, 3)),
            warmup=0,
        )
        counter = iter(range(10**6))
        cold = measure(
            "gating_coco_metadata_cold",
            lambda: load_metadata(ann, Path(tmp) / f"cache{next(counter)}", 0.05, 0.01),
            repeats=1,
            warmup=0,
        )
        warm = measure(
            "gating_coco_metadata_warm",
            lambda: load_metadata(ann, Path(tmp) / "cache0", 0.05, 0.01),
            repeats=max(1, min(args.repeats, 3)),
            warmup=0,
        )
        size_mb = ann.stat().st_size / 2**20
    return build.to_dict() | {
        "images": images,
        "instances": instances,
        "annotation_mib": size_mb,
        "selected_images": len(meta["images"]),
        "cold_with_cache_write_s": cold.median_s,
        "warm_from_cache_s": warm.median_s,
        "target_s": 60.0,
        "meets_target": build.median_s < 60.0,
    }


def gating_coco_train(args, batch: int = 32) -> dict:
    """The paper's COCO net (100×100 RGB, 30-60-100-20, bicubic feedback): one training batch =
    2 glimpses × 5 steps with BPTT and an Adam step per glimpse, weighted CE + 5000·MSE."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = GatingNet(3, (100, 100), [30, 60, 100, 20], 12, upsample="bicubic", strength=0.3).to(args.device)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 100, 100, generator=g).to(args.device)
    targets = torch.rand(batch, 2, 3, 100, 100, generator=g).to(args.device)
    labels = torch.randint(0, 12, (batch, 2), generator=g).to(args.device)
    weights = torch.rand(12, generator=g).to(args.device)

    def step(k, r):
        loss = F.cross_entropy(r.output.logits, r.target_class, weight=weights) + 5000.0 * r.mse
        opt.zero_grad()
        loss.backward()
        opt.step()

    m = measure(
        "gating_coco_train", lambda: run_glimpses(net, x, targets, labels, 2, on_glimpse=step), repeats=args.repeats
    )
    return m.to_dict() | {"batch": batch, "images_per_s": m.per_second(batch)}


def gating_coco_data(args, items: int = 64) -> dict:
    """COCO objects items/s (decode a 640×480 JPEG, pad, resize input and both targets) in one process."""
    import tempfile

    from fixtures.coco_synthetic import write_synthetic_coco  # tests/fixtures (on sys.path above)

    from attnlab.data.coco_objects import COCOObjectsDataModule

    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_coco(tmp, 200, 4, image_size=(640, 480), seed=0)
        dm = COCOObjectsDataModule(root=tmp, cache_dir=f"{tmp}/cache", min_area=0.03, max_overlap=0.05)
        dm.setup("fit")
        ds = dm.datasets["train"]
        n = min(items, len(ds))
        m = measure("gating_coco_data", lambda: [ds[i] for i in range(n)], repeats=args.repeats)
    return m.to_dict() | {"items": n, "items_per_s": m.per_second(n)}


BENCHMARKS |= {
    "gating_coco_metadata": gating_coco_metadata,
    "gating_coco_train": gating_coco_train,
    "gating_coco_data": gating_coco_data,
}
