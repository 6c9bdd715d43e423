"""Differentiable foveation: a Gaussian window of sharp vision over a blurred image, plus a memory.

Coordinates. A fixation p = (x, y) is in [−1, 1]²: x runs left → right along the columns and y top →
bottom along the rows, (−1, −1) is the top-left corner of the image and (1, 1) the bottom-right one
(the reference used meshgrid 'ij', so its first coordinate was the row; ours is the column). The
normalised grid samples pixel centres, u_j = (2j + 1)/n − 1, exactly like ``align_corners=False``
in ``grid_sample``, so the same p lands on the same spot of the scene whatever the image is resized
to. :func:`to_pixels` / :func:`from_pixels` convert to pixel (x, y) in the convention of the
human fixation data (:mod:`attnlab.data.fixations`): pixel j covers [j, j + 1), so its centre is
at j + 0.5 and x_px = (x + 1)/2 · W.

Perception model (spec: neva.md). With β = G ⊛ x − x the blur residual, M the memory (B×1×H×W)
and F_p(u) = a·exp(−‖u − p‖² / σ_f) the window (σ_f divides the squared distance directly, no
factor 2, so the paper's σ_f values carry over), the perceived image for a candidate p is
x̃ = x + β · clip(1 − (M + F_p), 0, 1). After fixating p_t: M_t = forgetting · M_{t−1} + F_{p_t}.
The window is defined on the normalised grid, so on a non-square input it is an axis-aligned
ellipse in pixels (it is circular on the square inputs the task models use).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "Foveation",
    "pixel_centres",
    "position_bounds",
    "to_pixels",
    "from_pixels",
    "SIGMA_FOVEA",
]

# the perception's default σ_f of the window (normalised units), for the search, both modules and this
# layer (the peripheral blur's: attnlab.models.neva.blur)
SIGMA_FOVEA = 0.15


def pixel_centres(n: int, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The n normalised coordinates of pixel centres along one axis: (2j + 1)/n − 1."""
    return (torch.arange(n, device=device, dtype=torch.float64) * 2 + 1).div(n).sub(1).to(dtype)


def position_bounds(height: int, width: int, device=None, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(low, high), each of shape 2 as (x, y): the outermost pixel centres, where fixations are clamped."""
    low = torch.tensor([1 / width - 1, 1 / height - 1], device=device, dtype=dtype)
    return low, -low


def to_pixels(p: Tensor, size: Tensor | tuple[int, int]) -> Tensor:
    """Normalised (x, y) → pixel (x, y) on an image of ``size`` = (H, W): x_px = (x + 1)/2 · W.

    ``p`` is (..., 2). ``size`` is one (H, W) or per-sample sizes B×2 (then ``p`` is B×2 or B×L×2).
    Pixel j covers [j, j + 1); a fixation clamped to the outermost pixel centre of the search grid
    stays strictly inside the image at any output size.
    """
    wh = _width_height(size, p)
    return (p + 1) * wh / 2


def from_pixels(pixels: Tensor, size: Tensor | tuple[int, int]) -> Tensor:
    """Pixel (x, y) on an image of ``size`` = (H, W) → normalised (x, y); the inverse of :func:`to_pixels`."""
    wh = _width_height(size, pixels)
    return 2 * pixels / wh - 1


def _width_height(size: Tensor | tuple[int, int], like: Tensor) -> Tensor:
    """(W, H) as a tensor broadcastable against ``like`` (..., 2)."""
    wh = torch.as_tensor(size, dtype=like.dtype, device=like.device).flip(-1)
    while wh.dim() < like.dim():
        wh = wh.unsqueeze(-2)
    return wh


class Foveation(nn.Module):
    """The perception model of NeVA (see the module docstring).

    Args:
        sigma: σ_f, width of the window on the normalised grid (paper: 0.15 classification, 0.2 CLIP).
        amplitude: a, the window's peak (1: fully sharp at the fixation).
    """

    def __init__(self, sigma: float = SIGMA_FOVEA, amplitude: float = 1.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"foveation sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.amplitude = float(amplitude)

    def window(self, p: Tensor, height: int, width: int) -> Tensor:
        """F_p on an H×W grid: p B×2 (x, y) → B×1×H×W, peak ``amplitude`` at p.

        The Gaussian factorises over the axes, so it is built as an outer product of a row and a column.
        """
        xs = pixel_centres(width, p.device, p.dtype)
        ys = pixel_centres(height, p.device, p.dtype)
        fx = torch.exp(-((xs - p[:, :1]) ** 2) / self.sigma)  # B×W
        fy = torch.exp(-((ys - p[:, 1:]) ** 2) / self.sigma)  # B×H
        return (self.amplitude * fy[:, None, :, None]) * fx[:, None, None, :]

    def forward(self, image: Tensor, residual: Tensor, memory: Tensor, p: Tensor) -> Tensor:
        """Perceived image x̃ = x + β·clip(1 − (M + F_p), 0, 1).

        Shapes: image, residual B×C×H×W; memory B×1×H×W; p B×2 → B×C×H×W.
        """
        h, w = image.shape[-2:]
        blur_weight = (1 - (memory + self.window(p, h, w))).clamp(0, 1)
        return image + residual * blur_weight

    def remember(self, memory: Tensor, p: Tensor, forgetting: float) -> Tensor:
        """M_t = forgetting · M_{t−1} + F_{p_t} (forgetting 0: no memory, 1: perfect memory)."""
        h, w = memory.shape[-2:]
        return forgetting * memory + self.window(p, h, w)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, amplitude={self.amplitude}"
