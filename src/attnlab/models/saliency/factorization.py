"""Factorisation of a feature map into K learned bases (Chen, Jiang & Zhao, NeurIPS 2023).

At every location the feature f ∈ ℝ^D is scored against each basis w_k ∈ ℝ^D with an independent
sigmoid, p_k = σ(w_k·f): the K probability maps P say where each basis is "on". They are not a
distribution over bases (no softmax, no normalisation of w or f). Phase 1 feeds the
reconstruction f̂ = Σ_k p_k w_k to the model's own head; phase 2 reads saliency from P directly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Bases"]


class Bases(nn.Module):
    """K bases W ∈ ℝ^{K×D} (a bias-free linear map, stored as ``weight`` K×D).

    Args:
        num_bases: K.
        dim: D, channels of the feature map being factorised.
    """

    def __init__(self, num_bases: int, dim: int) -> None:
        super().__init__()
        self.num_bases, self.dim = int(num_bases), int(dim)
        self.weight = nn.Parameter(torch.empty(self.num_bases, self.dim))
        # nn.Linear's default init, as the reference uses a bias-free nn.Linear
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def probabilities(self, f: Tensor) -> Tensor:
        """P = σ(W f) per location: B×D×h×w → B×K×h×w, values in (0, 1)."""
        return torch.sigmoid(torch.einsum("kd,bdhw->bkhw", self.weight, f))

    def reconstruct(self, p: Tensor) -> Tensor:
        """f̂ = Σ_k p_k w_k: B×K×h×w → B×D×h×w."""
        return torch.einsum("kd,bkhw->bdhw", self.weight, p)

    def forward(self, f: Tensor) -> tuple[Tensor, Tensor]:
        """(P B×K×h×w, f̂ B×D×h×w)."""
        p = self.probabilities(f)
        return p, self.reconstruct(p)

    def extra_repr(self) -> str:
        return f"num_bases={self.num_bases}, dim={self.dim}"
