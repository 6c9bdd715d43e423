"""DINet: a dilated backbone followed by a dilated inception module.

u = ReLU(conv1×1(x))                           B×E×h×w
b_i = ReLU(conv3×3 dilation d_i (u))           i = 1..3, dilations (4, 8, 16) by default
inception(x) = concat[b1+b2+b3, b1, b2, b3]    B×4E×h×w
f = ReLU(conv3×3 4E→E)                         B×E×h×w (D = E)

Baseline decoder (bases=0): conv3×3 E→E + ReLU, conv3×3 E→1. Factorised: conv3×3 E→1 on f̂.
The reference disagrees with itself on E (512 for training, 256 in dissection); here it is one
config value, ``width``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from attnlab.models.saliency.backbones import BackboneName, build_backbone
from attnlab.models.saliency.net import BASES, PHASE, FactorizedSaliencyNet, OutputStride, Phase, UpsampleMode
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2

__all__ = ["DilatedInception", "DINet"]


class DilatedInception(nn.Module):
    """B×C×h×w → B×4E×h×w; all convs bias-free with 'same' padding."""

    def __init__(self, in_channels: int, width: int, dilations: Sequence[int] = (4, 8, 16)) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=d, dilation=d, bias=False), nn.ReLU(inplace=True))
            for d in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        u = self.reduce(x)
        branches = [b(u) for b in self.branches]
        return torch.cat([torch.stack(branches).sum(0), *branches], dim=1)


class DINet(FactorizedSaliencyNet):
    """Dilated backbone + dilated inception module + conv decoder.

    Args:
        backbone: "resnet50" (dilated, stride 8) or "efficientnet_lite0".
        backbone_weights: "auto", "none" or a weights file (see :mod:`.backbones`).
        width: E, the inception width and the feature width D.
        dilations: dilations of the three inception branches.
        output_stride: backbone output stride (8 in the reference).
        freeze_bn: keep the backbone's BatchNorm fixed.
        bases, phase, output_size, upsample: see :class:`FactorizedSaliencyNet`.
    """

    def __init__(
        self,
        backbone: BackboneName = "resnet50",
        backbone_weights: str | None = "auto",
        width: PositiveInt = 256,
        dilations: Sequence[PositiveInt] = (4, 8, 16),
        output_stride: OutputStride = 8,
        freeze_bn: bool = True,
        bases: NonNegativeInt = BASES,
        phase: Phase = PHASE,
        output_size: Optional[Size2] = None,
        upsample: UpsampleMode = "bilinear",
    ) -> None:
        super().__init__(bases, phase, output_size, upsample, sigmoid_first=True)
        self.backbone = build_backbone(backbone, (4,), output_stride, backbone_weights, freeze_bn)
        self.inception = DilatedInception(self.backbone.channels[-1], width, dilations)
        self.reduce = nn.Sequential(nn.Conv2d(4 * width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.add_heads(width)

    def make_head(self, factorized: bool) -> nn.Module:
        d = self.feature_dim
        if factorized:
            return nn.Conv2d(d, 1, 3, padding=1, bias=False)
        return nn.Sequential(
            nn.Conv2d(d, d, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(d, 1, 3, padding=1, bias=False)
        )

    def features(self, x: Tensor) -> Tensor:
        """B×3×H×W → f, B×E×h×w."""
        return self.reduce(self.inception(self.backbone(x)[-1]))
