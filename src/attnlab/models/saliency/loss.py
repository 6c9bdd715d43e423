"""Training loss of the factorised saliency models: w_nss·(−NSS) + w_kld·KLD + w_cc·(−CC).

The reference's weights are NSS 1, KLD 10, CC 2. Two of its details are fixed here: the NSS term
uses the population std like the NSS metric (the reference mixes unbiased and population), and the
sum-normalisations carry ε so an all-zero prediction gives a finite KLD instead of NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.utils.config import NonNegativeFloat, PositiveFloat

__all__ = ["SaliencyLoss", "nss_loss", "cc_loss", "kld_loss"]


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1).float()


def _sum_normalise(x: Tensor, eps: float) -> Tensor:
    return x / (x.sum(1, keepdim=True) + eps)


def nss_loss(pred: Tensor, fixations: Tensor, eps: float = 1e-7) -> Tensor:
    """−mean over the batch of the NSS of ``pred`` at the binary ``fixations`` (both B×1×H×W)."""
    s, fix = _flat(pred), _flat(fixations)
    s = s / (s.amax(1, keepdim=True) + eps)
    s = (s - s.mean(1, keepdim=True)) / (s.std(1, unbiased=False, keepdim=True) + eps)
    return -((s * fix).sum(1) / (fix.sum(1) + eps)).mean()


def cc_loss(pred: Tensor, density: Tensor, eps: float = 1e-7) -> Tensor:
    """−mean Pearson correlation between ``pred`` and the fixation ``density`` (B×1×H×W)."""
    s, g = _sum_normalise(_flat(pred), eps), _sum_normalise(_flat(density), eps)
    s, g = s - s.mean(1, keepdim=True), g - g.mean(1, keepdim=True)
    cc = (s * g).sum(1) / (s.pow(2).sum(1).sqrt() * g.pow(2).sum(1).sqrt() + eps)
    return -cc.mean()


def kld_loss(pred: Tensor, density: Tensor, eps: float = 1e-7) -> Tensor:
    """Mean KL(density ‖ pred) after sum-normalising both (B×1×H×W)."""
    s, g = _sum_normalise(_flat(pred), eps), _sum_normalise(_flat(density), eps)
    return (g * torch.log(g / (s + eps) + eps)).sum(1).mean()


class SaliencyLoss(nn.Module):
    """Weighted sum of −NSS, KLD and −CC; returns (total, {"nss": ..., "kld": ..., "cc": ...}).

    The parts are reported as the metric values (NSS and CC positive), not as loss terms.
    """

    def __init__(
        self,
        nss_weight: NonNegativeFloat = 1.0,
        kld_weight: NonNegativeFloat = 10.0,
        cc_weight: NonNegativeFloat = 2.0,
        eps: PositiveFloat = 1e-7,
    ) -> None:
        super().__init__()
        self.nss_weight, self.kld_weight, self.cc_weight, self.eps = nss_weight, kld_weight, cc_weight, eps

    def forward(self, pred: Tensor, density: Tensor, fixations: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        nss = nss_loss(pred, fixations, self.eps)
        kld = kld_loss(pred, density, self.eps)
        cc = cc_loss(pred, density, self.eps)
        total = self.nss_weight * nss + self.kld_weight * kld + self.cc_weight * cc
        return total, {"nss": -nss.detach(), "kld": kld.detach(), "cc": -cc.detach()}
