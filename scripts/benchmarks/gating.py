"""Gating-model benchmarks: MultiMNIST training and inference throughput (images/s)."""

from __future__ import annotations

import torch

from attnlab.models.gating import GatingNet, run_glimpses
from attnlab.utils.timing import measure


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

    m = measure("gating_mnist_train", lambda: run_glimpses(net, x, targets, labels, 2, on_glimpse=step), repeats=args.repeats)
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
