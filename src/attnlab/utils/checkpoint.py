"""Checkpoints that remember the config that built them, and loading them back into models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from attnlab.utils.config import UserError

__all__ = ["StoreConfig", "CONFIG_KEY", "read_checkpoint", "stored_config"]

CONFIG_KEY = "attnlab_config"


class StoreConfig(L.Callback):
    """Save the resolved model and data config inside every checkpoint, so eval rebuilds the same model."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = {
            key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data") if key in cfg
        }

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU whatever device it was saved from; clear error if missing."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as ex:  # corrupt or not a torch file
        raise UserError(f"cannot read checkpoint {path}: {ex}") from ex


def stored_config(checkpoint: dict[str, Any]) -> DictConfig | None:
    """The model/data config a checkpoint was trained with, if it carries one."""
    stored = checkpoint.get(CONFIG_KEY)
    return OmegaConf.create(stored) if stored else None
