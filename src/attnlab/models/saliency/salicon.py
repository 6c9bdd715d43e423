"""SALICON-style model: one dilated backbone applied at two scales with shared weights.

fine   = v(backbone(x))                       B×E×h×w        (h, w = H/8, W/8)
coarse = up(v(backbone(down(x))), (h, w))      B×E×h×w        (x downsampled by ``coarse_scale``)
f      = concat[coarse, fine]                  B×2E×h×w       (D = 2E; 512 in the reference)

``v`` is a 3×3 conv without activation. The reference hard-codes the coarse input to 240×320 and
uses nearest resizing; here the coarse size follows the input and the resize mode is configurable.
"""

from __future__ import annotations

from typing import Annotated, Optional

import torch
from annotated_types import Interval
from torch import Tensor, nn

from attnlab.models.saliency.backbones import BackboneName, build_backbone
from attnlab.models.saliency.net import BASES, PHASE, FactorizedSaliencyNet, OutputStride, Phase, UpsampleMode, resize
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2

__all__ = ["SALICONNet"]


class SALICONNet(FactorizedSaliencyNet):
    """Two-scale saliency network with a shared dilated backbone.

    Args:
        backbone: "resnet50" (dilated, stride 8) or "efficientnet_lite0".
        backbone_weights: "auto", "none" or a weights file (see :mod:`.backbones`).
        embed_dim: E, channels of the shared 3×3 ``v_encoder``; D = 2E.
        coarse_scale: size of the coarse-stream input relative to the input.
        output_stride: backbone output stride (8 in the reference).
        freeze_bn: keep the backbone's BatchNorm fixed.
        bases, phase, output_size, upsample: see :class:`FactorizedSaliencyNet`.
    """

    def __init__(
        self,
        backbone: BackboneName = "resnet50",
        backbone_weights: str | None = "auto",
        embed_dim: PositiveInt = 256,
        coarse_scale: Annotated[float, Interval(ge=0.05, le=1)] = 0.5,
        output_stride: OutputStride = 8,
        freeze_bn: bool = True,
        bases: NonNegativeInt = BASES,
        phase: Phase = PHASE,
        output_size: Optional[Size2] = None,
        upsample: UpsampleMode = "bilinear",
    ) -> None:
        super().__init__(bases, phase, output_size, upsample, sigmoid_first=True)
        self.backbone = build_backbone(backbone, (4,), output_stride, backbone_weights, freeze_bn)
        self.v_encoder = nn.Conv2d(self.backbone.channels[-1], embed_dim, 3, padding=1, bias=True)
        self.coarse_scale = float(coarse_scale)
        self.add_heads(2 * embed_dim)

    def make_head(self, factorized: bool) -> nn.Module:
        return nn.Conv2d(self.feature_dim, 1, 3, padding=1, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """B×3×H×W → f = [coarse, fine], B×2E×h×w."""
        fine = self.v_encoder(self.backbone(x)[-1])
        small = (max(1, round(x.shape[-2] * self.coarse_scale)), max(1, round(x.shape[-1] * self.coarse_scale)))
        coarse = self.v_encoder(self.backbone(resize(x, small, self.upsample))[-1])
        return torch.cat([resize(coarse, fine.shape[-2:], self.upsample), fine], dim=1)
