"""The NeVA scanpath search: each fixation is found by sign-gradient descent on the task loss.

For t = 1..L a position p starts at the centre, a random point or the previous fixation, and takes
S steps p ← p − lr·sign(∂loss/∂p) (per sample, since the loss of one sample does not depend on
another's p). Every evaluated p is kept if it beats the sample's best loss; samples that did not
improve are jittered by U(−lr/2, lr/2) or restarted uniformly in the image. The fixation is the best
p seen, and it enters the memory of the foveation layer before the next search.

Differences from the reference (spec: neva.md): the start is configurable; positions are clamped to
the outermost pixel centres; the recorded loss is the best one, kept in float32; the final step's
gradient, which the reference computed and threw away, is not computed.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from attnlab.data.gaze import Scanpath
from attnlab.models.neva.foveation import SIGMA_FOVEA, Foveation, position_bounds, to_pixels
from attnlab.utils.config import Fraction, PositiveFloat, PositiveInt, check_arguments

__all__ = ["SearchConfig", "SearchResult", "search_scanpath", "START_POSITIONS"]

StartPosition = Literal["centre", "random", "previous"]
START_POSITIONS = typing.get_args(StartPosition)


@dataclass
class SearchConfig:
    """How fixations are searched (defaults: the paper's classification setting).

    Args:
        length: L, fixations per scanpath (≥ 1).
        steps: S, loss evaluations per fixation (≥ 1).
        lr: step of the sign-gradient update, in normalised units (2 = the image width).
        sigma_fovea: σ_f of the foveation window.
        forgetting: memory decay between fixations, in [0, 1].
        start: where each search starts: centre (the reference), random, or previous (the last fixation;
            the first search starts at the centre).
        random_restarts: restart non-improving samples uniformly instead of jittering them.
    """

    length: PositiveInt = 10
    steps: PositiveInt = 20
    lr: PositiveFloat = 0.1
    sigma_fovea: PositiveFloat = SIGMA_FOVEA
    forgetting: Fraction = 0.1
    start: StartPosition = "centre"
    random_restarts: bool = False

    def __post_init__(self) -> None:
        check_arguments(type(self), vars(self))


@dataclass
class SearchResult:
    """The scanpaths of a batch of images, as the search found them (one image's recorded scanpath, in
    pixels, is :class:`attnlab.data.gaze.Scanpath`: :meth:`scanpaths` gives those).

    Attributes:
        positions: B×L×2 fixations (x, y) in normalised coordinates [−1, 1].
        best_loss: B×L float32, the task loss at each chosen fixation (the best seen in its search).
    """

    positions: Tensor
    best_loss: Tensor

    def pixels(self, size: Tensor | tuple[int, int]) -> Tensor:
        """B×L×2 pixel (x, y) on images of ``size`` (H, W), or per-sample sizes B×2."""
        return to_pixels(self.positions, size)

    def scanpaths(
        self, size: Tensor | tuple[int, int], stimuli: Sequence[str] = (), subject: str = "neva"
    ) -> list[Scanpath]:
        """One :class:`~attnlab.data.gaze.Scanpath` per image, in pixels of images of ``size``."""
        xy = self.pixels(size).detach().double().cpu().numpy()
        names = list(stimuli) or [""] * len(xy)
        return [Scanpath(p[:, 0], p[:, 1], subject=subject, stimulus=str(n)) for p, n in zip(xy, names)]


Generators = torch.Generator | Sequence[torch.Generator] | None


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: Generators, like: Tensor) -> Tensor:
    """U(low, high) drawn on the CPU generator (reproducible on any device), moved next to ``like``.
    A sequence of generators draws row k of the B×... sample from generator k (independent of the batch)."""
    if isinstance(generator, (list, tuple)):
        u = torch.stack([torch.rand(shape[1:], generator=g, dtype=torch.float32) for g in generator])
    else:
        u = torch.rand(shape, generator=generator, dtype=torch.float32)
    return (low + (high - low) * u).to(device=like.device, dtype=like.dtype)


def search_scanpath(
    loss_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    residual: Tensor,
    config: SearchConfig,
    foveation: Foveation | None = None,
    generator: Generators = None,
    on_fixation: Callable[[int], None] | None = None,
) -> SearchResult:
    """Search one scanpath per image.

    Args:
        loss_fn: perceived images B×C×H×W → per-sample task loss B (target already bound; the task
            model frozen). Must be differentiable w.r.t. its input.
        image: B×C×H×W, the clean images. residual: B×C×H×W, the blur residual β.
        config: search settings. foveation: the perception model (default: σ_f from ``config``).
        generator: a CPU generator for the random start, jitter and restarts (reproducible runs), or
            one per image (each image's search then does not depend on the others in the batch).
        on_fixation: called with t after each fixation (progress reporting).

    Returns:
        :class:`SearchResult` with B×L positions and float32 best losses.
    """
    if foveation is None:
        foveation = Foveation(config.sigma_fovea)
    b, _, h, w = image.shape
    if isinstance(generator, (list, tuple)) and len(generator) != b:
        raise ValueError(f"{len(generator)} generators for a batch of {b} images")
    image, residual = image.detach(), residual.detach()
    dtype, device = torch.float32, image.device
    low, high = position_bounds(h, w, device, dtype)
    centre = torch.zeros(b, 2, device=device, dtype=dtype)
    memory = torch.zeros(b, 1, h, w, device=device, dtype=image.dtype)
    lr = float(config.lr)
    positions, losses = [], []
    previous = centre
    for t in range(int(config.length)):
        if config.start == "random":
            p = _uniform((b, 2), -1.0, 1.0, generator, centre)
        elif config.start == "previous":
            p = previous.clone()
        else:
            p = centre.clone()
        p = torch.maximum(torch.minimum(p, high), low)
        best_p = p.clone()
        best_loss = torch.full((b,), float("inf"), device=device, dtype=torch.float32)
        for step in range(int(config.steps)):
            last = step == int(config.steps) - 1
            if last:  # the final update would never be evaluated: skip its gradient
                with torch.no_grad():
                    loss = loss_fn(foveation(image, residual, memory, p))
            else:
                with torch.enable_grad():
                    q = p.detach().requires_grad_(True)
                    loss = loss_fn(foveation(image, residual, memory, q))
                    (grad,) = torch.autograd.grad(loss.sum(), q)
            loss = loss.detach().float()
            improved = loss < best_loss
            best_loss = torch.where(improved, loss, best_loss)
            best_p = torch.where(improved[:, None], p, best_p)
            if last:
                break
            p = p - lr * grad.sign()
            stuck = (~improved)[:, None]
            if config.random_restarts:
                p = torch.where(stuck, _uniform((b, 2), -1.0, 1.0, generator, p), p)
            else:
                p = torch.where(stuck, p + _uniform((b, 2), -lr / 2, lr / 2, generator, p), p)
            p = torch.maximum(torch.minimum(p, high), low)
        positions.append(best_p)
        losses.append(best_loss)
        memory = foveation.remember(memory, best_p.to(memory.dtype), float(config.forgetting))
        previous = best_p
        if on_fixation is not None:
            on_fixation(t)
    return SearchResult(torch.stack(positions, 1), torch.stack(losses, 1))
