"""The peripheral blur of NeVA: a normalised Gaussian, per channel, with reflection padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["gaussian_kernel1d", "GaussianBlur", "BLUR_KERNEL", "BLUR_SIGMA"]

# the peripheral blur's defaults (kernel size, σ in pixels of the model's input), for both NeVA modules
BLUR_KERNEL = 5
BLUR_SIGMA = 5.0


def gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """A length-``size`` Gaussian with std ``sigma`` (in pixels), centred, summing to 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd number, got {size}")
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    offsets = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


class GaussianBlur(nn.Module):
    """Separable Gaussian blur G_σ ⊛ x of every channel (a k×k normalised kernel = outer product of 1-D ones).

    Args:
        kernel_size: k (odd). sigma: std in pixels.

    Shapes: ``forward(x)``: B×C×H×W → B×C×H×W. Borders are reflected; an image smaller than
    the kernel radius cannot be reflected and is padded by replicating its edge instead.
    """

    def __init__(self, kernel_size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.sigma = float(sigma)
        self.register_buffer("kernel", gaussian_kernel1d(self.kernel_size, self.sigma), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size == 1:
            return x
        b, c, h, w = x.shape
        r = self.kernel_size // 2
        mode = "reflect" if r < h and r < w else "replicate"
        k = self.kernel.to(dtype=x.dtype, device=x.device)
        y = F.pad(x.reshape(b * c, 1, h, w), (r, r, r, r), mode=mode)
        y = F.conv2d(y, k.view(1, 1, 1, -1))
        y = F.conv2d(y, k.view(1, 1, -1, 1))
        return y.reshape(b, c, h, w)

    def residual(self, x: Tensor) -> Tensor:
        """β = G ⊛ x − x: what foveation removes where it does not look (x + β is fully blurred)."""
        return self.forward(x) - x

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}"
