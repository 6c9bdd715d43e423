"""A scanpath model in the DeepGaze III pattern (Kümmerer, Bethge & Wallis, JoV 2022), sized for a CPU.

    priority = readout(frozen image features at several depths, upsampled to a grid at stride 8)
    history  = net(distance maps of every grid cell to each of the last k fixations, with their order)
    log p(x_t | image, x_<t) = log_softmax_over_cells(blur(combine(priority, history)) + log centre bias)

The grid is the input at stride 8 (240×320 → 30×40). Coordinates are image-normalised (x/W, y/H).
With no earlier fixation (all of the mask False) the history branch gets only zeros and the mask
channels, so the same network is also a history-free saliency model (k = 0).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.saliency.backbones import EfficientNetLite0Backbone
from attnlab.models.saliency.prior import CentreLogPrior

__all__ = ["ScanpathNet", "STRIDE"]

STRIDE = 8
SCALES = (0.04, 0.12)  # widths (fractions of the image diagonal) of the Gaussian distance features


class ScanpathNet(nn.Module):
    """Args:
    history: how many earlier fixations the history branch sees (the data's ``history``).
    stages: EfficientNet-Lite0 stages whose features the priority readout reads (2: stride 8 …
        4: stride 32).
    hidden: channels of the small 1×1 networks.
    blur_cells: σ of the fixed Gaussian blur of the combined map, in grid cells.
    """

    def __init__(
        self, history: int, stages: Sequence[int] = (2, 3, 4), hidden: int = 16, blur_cells: float = 1.0
    ) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0Backbone(stages=tuple(stages), output_stride=32)  # no slow dilation
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.history = int(history)
        channels = sum(self.backbone.channels)
        self.readout = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.Softplus(), nn.Conv2d(hidden, 1, 1))
        per_fixation = 2 + len(SCALES)  # distance, Gaussians of it, presence
        self.history_net = nn.Sequential(
            nn.Conv2d(per_fixation * self.history, hidden, 1), nn.Softplus(), nn.Conv2d(hidden, 1, 1)
        )
        self.combine = nn.Sequential(nn.Conv2d(2, hidden // 2, 1), nn.Softplus(), nn.Conv2d(hidden // 2, 1, 1))
        self.blur_cells = float(blur_cells)
        self.prior = CentreLogPrior()

    def train(self, mode: bool = True) -> "ScanpathNet":
        super().train(mode)
        self.backbone.eval()  # frozen, BatchNorm statistics included
        return self

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → B×C×(H/8)×(W/8): every stage upsampled to the grid and concatenated."""
        grid = (images.shape[-2] // STRIDE, images.shape[-1] // STRIDE)
        maps = self.backbone(images)
        return torch.cat([F.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in maps], 1)

    def priority(self, features: Tensor) -> Tensor:
        """B×C×h×w → B×1×h×w."""
        return self.readout(features)

    def _history_maps(self, history: Tensor, mask: Tensor, grid: tuple[int, int], aspect: float) -> Tensor:
        """N×k×2 (x, y in [0, 1)), N×k mask → N×(4k)×h×w distance features."""
        h, w = grid
        ys = (torch.arange(h, dtype=history.dtype, device=history.device) + 0.5) / h
        xs = (torch.arange(w, dtype=history.dtype, device=history.device) + 0.5) / w
        # distances in units of the image diagonal (x stretched by the aspect ratio W/H)
        diag = (1 + aspect**2) ** 0.5
        dx = (xs[None, None, None, :] - history[:, :, 0, None, None]) * aspect / diag
        dy = (ys[None, None, :, None] - history[:, :, 1, None, None]) / diag
        d = torch.sqrt(dx * dx + dy * dy)  # N×k×h×w
        present = mask[:, :, None, None].to(d.dtype).expand_as(d)
        parts = [d * present] + [torch.exp(-0.5 * (d / s) ** 2) * present for s in SCALES] + [present]
        return torch.cat(parts, 1)

    def log_density(self, priority: Tensor, history: Tensor, mask: Tensor, aspect: float) -> Tensor:
        """One image's priority (1×1×h×w) and N histories → N×h×w log densities (each sums to 1)."""
        n = history.shape[0]
        grid = tuple(priority.shape[-2:])
        hist = self.history_net(self._history_maps(history, mask, grid, aspect))
        pri = priority.expand(n, -1, -1, -1)
        logits = pri + hist + self.combine(torch.cat([pri, hist], 1))
        logits = _gaussian_blur(logits, self.blur_cells)
        logits = logits[:, 0] + self.prior(grid).to(logits.dtype)
        return torch.log_softmax(logits.reshape(n, -1), 1).reshape(n, *grid)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
