"""TranSalNet (the saliency_analysis variant): three transformer encoders over a CNN pyramid and a
CNN decoder.

x8, x16, x32 = backbone stages at strides 8, 16, 32 (ResNet-50: 512, 1024, 2048 channels)
y = D1(T1(x32))                        resized to x16's grid
y = D2(ReLU(y ⊙ T2(x16)))              stride 8
y = D3(ReLU(y ⊙ T3(x8)))               stride 4
f = D4(y)                              B×D×(H/2)×(W/2)   (D = 128)

Dk = conv3×3 + BN + ReLU + ×2 upsampling. The reference fixes the positional embeddings to a
240×320 input; here their grid comes from ``input_size`` and they are resized (bilinear) when an
input of another size arrives.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.data.base import INPUT_SIZE
from attnlab.models.saliency.backbones import BackboneName, build_backbone
from attnlab.models.saliency.net import BASES, PHASE, FactorizedSaliencyNet, Phase, UpsampleMode, resize
from attnlab.utils.config import NonNegativeInt, PositiveInt, Size2

__all__ = ["TokenTransformer", "TranSalNet"]


class _Block(nn.Module):
    """Pre-LN transformer block with an MLP d → 2d → d (GELU after both linears, as the reference)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TokenTransformer(nn.Module):
    """T(in, d, heads, grid): each location of a map is a token.

    B×C×h×w → tokens B×hw×C → Linear C→d + learned positional embedding (one per cell of
    ``grid``) → ``depth`` blocks → LayerNorm → B×d×h×w.
    """

    def __init__(self, in_channels: int, dim: int, heads: int, grid: Sequence[int], depth: int = 2) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.embed = nn.Linear(in_channels, dim)
        self.pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*(_Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def positions(self, h: int, w: int) -> Tensor:
        """Positional embeddings for an h×w grid, 1×hw×d (resized from the configured grid)."""
        if (h, w) == self.grid:
            return self.pos
        d = self.pos.shape[-1]
        grid = self.pos.reshape(1, *self.grid, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, h * w, d)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        tokens = self.embed(x.flatten(2).transpose(1, 2)) + self.positions(h, w)
        tokens = self.norm(self.blocks(tokens))
        return tokens.transpose(1, 2).reshape(b, -1, h, w)


class _Up(nn.Module):
    """conv3×3 + BN + ReLU, then ×2 upsampling."""

    def __init__(self, cin: int, cout: int, mode: str) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return resize(x, (2 * x.shape[-2], 2 * x.shape[-1]), self.mode)


class TranSalNet(FactorizedSaliencyNet):
    """Transformer-augmented CNN saliency model.

    Args:
        backbone: "resnet50" (undilated) or "efficientnet_lite0".
        backbone_weights: "auto", "none" or a weights file.
        input_size: (H, W) the positional embeddings are laid out for (the data's image size).
        dims: token widths of T1 (stride 32), T2 (stride 16), T3 (stride 8).
        heads: attention heads of T1, T2, T3.
        depth: blocks per transformer.
        decoder_dim: channels after D3.
        feature_dim: D, channels of f.
        freeze_bn: keep the backbone's BatchNorm fixed.
        bases, phase, output_size, upsample: see :class:`FactorizedSaliencyNet`.
    """

    def __init__(
        self,
        backbone: BackboneName = "resnet50",
        backbone_weights: str | None = "auto",
        input_size: Size2 = INPUT_SIZE,
        dims: tuple[PositiveInt, PositiveInt, PositiveInt] = (768, 768, 512),
        heads: tuple[PositiveInt, PositiveInt, PositiveInt] = (12, 12, 8),
        depth: PositiveInt = 2,
        decoder_dim: PositiveInt = 512,
        feature_dim: PositiveInt = 128,
        freeze_bn: bool = True,
        bases: NonNegativeInt = BASES,
        phase: Phase = PHASE,
        output_size: Optional[Size2] = None,
        upsample: UpsampleMode = "bilinear",
    ) -> None:
        super().__init__(bases, phase, output_size, upsample, sigmoid_first=False)
        self.backbone = build_backbone(backbone, (2, 3, 4), 32, backbone_weights, freeze_bn)
        grids = self._grids(input_size)
        c8, c16, c32 = self.backbone.channels
        d1, d2, d3 = dims
        self.t32 = TokenTransformer(c32, d1, heads[0], grids[2], depth)
        self.t16 = TokenTransformer(c16, d2, heads[1], grids[1], depth)
        self.t8 = TokenTransformer(c8, d3, heads[2], grids[0], depth)
        self.d1 = _Up(d1, d2, upsample)
        self.d2 = _Up(d2, d3, upsample)
        self.d3 = _Up(d3, decoder_dim, upsample)
        self.d4 = nn.Sequential(
            _Up(decoder_dim, feature_dim, upsample),
            nn.Conv2d(feature_dim, feature_dim, 3, padding=1),
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.add_heads(feature_dim)

    @torch.no_grad()
    def _grids(self, input_size: Sequence[int]) -> list[tuple[int, int]]:
        """Feature grids of the three stages for ``input_size`` (one dry run of the backbone)."""
        was_training = self.backbone.training
        self.backbone.eval()
        maps = self.backbone(torch.zeros(1, 3, int(input_size[0]), int(input_size[1])))
        self.backbone.train(was_training)
        return [tuple(m.shape[-2:]) for m in maps]

    def make_head(self, factorized: bool) -> nn.Module:
        return nn.Conv2d(self.feature_dim, 1, 3, padding=1, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """B×3×H×W → f, B×D×(H/2)×(W/2)."""
        x8, x16, x32 = self.backbone(x)
        y = resize(self.d1(self.t32(x32)), x16.shape[-2:], self.upsample)
        y = self.d2(F.relu(y * self.t16(x16)))
        y = resize(y, x8.shape[-2:], self.upsample)
        y = self.d3(F.relu(y * self.t8(x8)))
        return self.d4(y)
