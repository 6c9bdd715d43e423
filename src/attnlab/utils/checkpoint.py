"""Checkpoints that remember the config that built them, and loading them back into models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.utils.config import UserError

__all__ = ["StoreConfig", "CONFIG_KEY", "load_model", "read_checkpoint", "stored_config"]

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


def load_model(cfg: DictConfig, checkpoint: dict) -> L.LightningModule:
    """Build the model described by the checkpoint (or by ``cfg.model``) and load its weights."""
    stored = stored_config(checkpoint)
    if stored is not None and "model" in stored:
        with open_dict(cfg):
            cfg.model = stored.model
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    if hasattr(model, "load_checkpoint_state"):  # model-specific formats (e.g. published weights)
        model.load_checkpoint_state(checkpoint)
    else:
        model.load_state_dict(checkpoint["state_dict"])
    return model
