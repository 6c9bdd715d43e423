"""Factorised saliency models: dissection IoU speed, and forward/backward throughput of each model.

python scripts/bench.py --only saliency_dissection_iou saliency_dissection_iou_1thread
python scripts/bench.py --only saliency_train_step_dinet saliency_train_step_salicon saliency_train_step_transalnet
python scripts/bench.py --only saliency_lite0_output_stride
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from timing import measure


def _masks(num_images: int, per_image: int, num_concepts: int, grid: tuple[int, int], seed: int = 0):
    """Random box masks: ``per_image`` distinct concepts per image, as a collated batch would carry."""
    g = torch.Generator().manual_seed(seed)
    h, w = grid
    ids = torch.stack([torch.randperm(num_concepts, generator=g)[:per_image] for _ in range(num_images)])
    y0 = torch.randint(0, h - 1, (num_images, per_image, 1, 1), generator=g)
    x0 = torch.randint(0, w - 1, (num_images, per_image, 1, 1), generator=g)
    y1 = y0 + 1 + torch.randint(0, h // 2, (num_images, per_image, 1, 1), generator=g)
    x1 = x0 + 1 + torch.randint(0, w // 2, (num_images, per_image, 1, 1), generator=g)
    ys = torch.arange(h).view(1, 1, h, 1)
    xs = torch.arange(w).view(1, 1, 1, w)
    masks = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    return ids, masks


def dissection_iou(args) -> dict[str, Any]:
    """IoU of K=512 thresholded basis maps × 300 concepts × 1,000 images at 60×80 (20 concepts per
    image): the batched matrix products (from P, thresholding included) against the reference's
    image × concept × basis loop (given the thresholded maps).

    The loop's cost is linear in the number of images, so it is timed on ``loop_images`` images and
    scaled to 1,000 (both numbers are reported).
    """
    from attnlab.analysis.dissection import IoUAccumulator, iou_python_loop, threshold_maps

    K, C, N, grid, per_image, batch, loop_images = 512, 300, 1000, (60, 80), 20, 20, 10
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(1)
    ids, masks = _masks(N, per_image, C, grid)
    # basis probability maps of one batch, reused for every batch (the cost does not depend on them)
    p = torch.rand(batch, K, *grid, generator=g)
    tau = torch.full((K,), 0.8)
    on = p > tau.view(1, -1, 1, 1)
    p_dev = p.to(device)

    def batched():  # from P: thresholding included, as dissect() does it
        acc = IoUAccumulator(K, C, device)
        buffer = torch.empty(p_dev.numel(), device=device)
        for s in range(0, N, batch):
            acc.update(
                threshold_maps(p_dev, tau, buffer), ids[s : s + batch].to(device), masks[s : s + batch].to(device)
            )
        return acc

    threads = torch.get_num_threads()
    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))
    try:
        fast = measure("dissection_iou_batched", batched, repeats=max(1, min(args.repeats, 3)), warmup=1)
        slow = measure(
            "dissection_iou_loop",
            lambda: iou_python_loop(on[:loop_images], ids[:loop_images], masks[:loop_images], C),
            repeats=1,
            warmup=0,
        )
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    # same numbers on the overlapping images
    check = IoUAccumulator(K, C)
    check.update(on[:loop_images], ids[:loop_images], masks[:loop_images])
    total, _ = iou_python_loop(on[:loop_images], ids[:loop_images], masks[:loop_images], C)
    loop_full = slow.median_s * N / loop_images
    return {
        "torch_threads": used,
        "bases": K,
        "concepts": C,
        "images": N,
        "grid": list(grid),
        "concepts_per_image": per_image,
        "batched_s": fast.median_s,
        "batched_iqr_s": fast.iqr_s,
        "batched_images_per_s": N / fast.median_s,
        "loop_images_timed": loop_images,
        "loop_s_on_timed_images": slow.median_s,
        "loop_s_scaled_to_all_images": loop_full,
        "speedup": loop_full / fast.median_s,
        "max_abs_difference": float((check.iou_sum.cpu() - total).abs().max()),
        "peak_rss_mib": fast.peak_rss_mib,
    }


def _train_step_benchmark(model: str, overrides: dict[str, Any]):
    def run(args) -> dict[str, Any]:
        from attnlab.models.saliency import DINet, SALICONNet, SaliencyLoss, TranSalNet

        cls = {"dinet": DINet, "salicon": SALICONNet, "transalnet": TranSalNet}[model]
        options = dict(overrides)
        size = options.pop("image_size", (240, 320))
        batch = options.pop("batch", 2)
        device = torch.device(args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = cls(**options).to(device)
        loss_fn = SaliencyLoss()
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, 1e-4)
        x = torch.rand(batch, 3, *size, device=device)
        density = torch.rand(batch, 1, *size, device=device)
        fixations = (torch.rand(batch, 1, *size, device=device) > 0.995).float()

        def step():
            loss, _ = loss_fn(net(x), density, fixations)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def forward():
            with torch.no_grad():
                net(x)

        repeats = max(1, min(args.repeats, 3)) if device.type == "cpu" else args.repeats
        train = measure(f"{model}_train_step", step, repeats=repeats, warmup=1)
        infer = measure(f"{model}_forward", forward, repeats=repeats, warmup=1)
        return {
            "model": model,
            "image_size": list(size),
            "batch": batch,
            "bases": net.num_bases,
            "backbone": overrides.get("backbone", "resnet50"),
            "parameters": sum(p.numel() for p in net.parameters()),
            "train_step_s": train.median_s,
            "train_step_iqr_s": train.iqr_s,
            "train_images_per_s": batch / train.median_s,
            "forward_s": infer.median_s,
            "forward_images_per_s": batch / infer.median_s,
            "peak_rss_mib": train.peak_rss_mib,
            "peak_cuda_mib": train.peak_cuda_mib,
        }

    return run


def lite0_output_stride(args) -> dict[str, Any]:
    """EfficientNet-Lite0 backbone forward+backward at output stride 32, 16 and 8 (batch 6, 192×256):
    stride 8 dilates depthwise convolutions, which PyTorch runs on a slow path on the CPU."""
    from attnlab.models.saliency.backbones import build_backbone

    device = torch.device(args.device)
    x = torch.rand(6, 3, 192, 256, device=device)
    out = {}
    for stride in (32, 16, 8):
        net = build_backbone("efficientnet_lite0", (4,), stride, "auto").to(device)

        def step():
            net(x)[0].mean().backward()

        m = measure(f"lite0_os{stride}", step, repeats=max(1, min(args.repeats, 2)), warmup=1)
        out[f"os{stride}_fwd_bwd_s"] = m.median_s
    return out


def dissection_iou_one_thread(args) -> dict[str, Any]:
    """As ``saliency_dissection_iou`` with torch on one thread (both methods): on a busy shared
    machine two OpenMP threads make the many small tensor ops erratic."""
    import argparse

    return dissection_iou(argparse.Namespace(**vars(args), threads=1))


BENCHMARKS = {
    "saliency_dissection_iou": dissection_iou,
    "saliency_dissection_iou_1thread": dissection_iou_one_thread,
    "saliency_train_step_dinet": _train_step_benchmark("dinet", {"backbone_weights": "none"}),
    "saliency_train_step_salicon": _train_step_benchmark("salicon", {"backbone_weights": "none"}),
    "saliency_train_step_transalnet": _train_step_benchmark("transalnet", {"backbone_weights": "none"}),
    "saliency_train_step_dinet_lite0": _train_step_benchmark(
        "dinet",
        {
            "backbone": "efficientnet_lite0",
            "backbone_weights": "auto",
            "output_stride": 16,
            "width": 128,
            "bases": 256,
            "image_size": (192, 256),
            "batch": 6,
        },
    ),
    "saliency_lite0_output_stride": lite0_output_stride,
}
