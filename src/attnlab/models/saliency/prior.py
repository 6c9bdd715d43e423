"""The centre bias as a log-prior on a saliency model's logits (as DeepGaze does).

    saliency = softmax over pixels (resize(logits) + log c)      B×1×H×W, sums to 1 per image

where c is the Gaussian centre bias fitted on the training split's fixations
(:class:`attnlab.baselines.CentreBias`, image-normalised coordinates, so one fit serves every
output size). With zero logits the prediction is the centre bias itself. Its mean and covariance are
buffers, so the fitted prior travels in the checkpoint.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.baselines import CentreBias

__all__ = ["CentreLogPrior"]


class CentreLogPrior(nn.Module):
    """log of a 2-D Gaussian centre bias on the pixel centres of a map, up to a constant.

    Until :meth:`fit` it is an isotropic Gaussian (σ = 1/4 of each side) at the image centre.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((2,), 0.5, dtype=torch.float64))
        self.register_buffer("cov", torch.eye(2, dtype=torch.float64) * 0.25**2)

    def fit(self, data) -> "CentreLogPrior":
        """Fit to all fixations of ``data`` (a :class:`~attnlab.data.fixations.FixationDataset`; use
        the training split)."""

        self.set(CentreBias.fit(data))
        return self

    def set(self, centre_bias) -> None:
        """Take the mean and covariance of a :class:`~attnlab.baselines.CentreBias`."""
        self.mean.copy_(torch.as_tensor(np.asarray(centre_bias.mean), dtype=torch.float64))
        self.cov.copy_(torch.as_tensor(np.asarray(centre_bias.cov), dtype=torch.float64))

    def forward(self, size: Sequence[int]) -> Tensor:
        """H×W log-density (float32, unnormalised: its maximum is 0) on the pixel centres of ``size``."""
        h, w = int(size[0]), int(size[1])
        device = self.mean.device
        xs = (torch.arange(w, dtype=torch.float64, device=device) + 0.5) / w - self.mean[0]
        ys = (torch.arange(h, dtype=torch.float64, device=device) + 0.5) / h - self.mean[1]
        inv = torch.linalg.inv(self.cov)
        q = inv[0, 0] * xs[None, :] ** 2 + 2 * inv[0, 1] * xs[None, :] * ys[:, None] + inv[1, 1] * ys[:, None] ** 2
        return (-0.5 * (q - q.min())).float()

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, cov={self.cov.tolist()}"
