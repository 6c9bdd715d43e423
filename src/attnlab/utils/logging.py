"""Logging helpers shared by every model: images to whichever loggers are active, offline W&B."""

from __future__ import annotations

import logging
import os
from typing import Iterable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ["log_image_grid", "configure_wandb_mode"]


def _to_grid(images: dict[str, Tensor]) -> Tensor:
    """Rows = entries of ``images`` (each k×C×H×W in [0, 1]), as one 3×H'×W' image."""
    from torchvision.utils import make_grid

    rows = []
    for batch in images.values():
        batch = batch.detach().float().cpu().clamp(0, 1)
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        rows.append(batch)
    n = rows[0].shape[0]
    return make_grid(torch.cat(rows), nrow=n, padding=2, pad_value=1.0)


def log_image_grid(loggers: Iterable, key: str, images: dict[str, Tensor], step: int) -> None:
    """Send a grid (one row per entry: input, gated input per glimpse, ...) to image-capable loggers."""
    loggers = list(loggers)
    if not loggers:
        return
    grid = None
    for logger in loggers:
        name = type(logger).__name__
        if name == "WandbLogger":
            grid = _to_grid(images) if grid is None else grid
            logger.log_image(key=key, images=[grid], caption=[" / ".join(images)], step=step)
        elif name == "TensorBoardLogger":
            grid = _to_grid(images) if grid is None else grid
            logger.experiment.add_image(key, grid, global_step=step)


def configure_wandb_mode() -> str:
    """Use W&B offline unless an API key is configured, so runs never need the network.

    Returns the mode chosen. ``wandb sync <run folder>`` uploads an offline run later.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        netrc = os.path.expanduser("~/.netrc")
        has_key = os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()
    mode = "online" if has_key else "offline"
    os.environ["WANDB_MODE"] = mode
    if mode == "offline":
        log.info("W&B: no API key configured, logging offline (upload later with `wandb sync`)")
    return mode
