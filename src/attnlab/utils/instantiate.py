"""Build the objects a Hydra config describes: callbacks, loggers, trainer, and save run summaries."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from attnlab.utils.logging import configure_wandb_mode

log = logging.getLogger(__name__)

__all__ = ["instantiate_group", "instantiate_trainer", "log_hyperparameters", "write_json", "to_float_dict"]


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group such as ``callbacks`` or ``logger``."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def instantiate_trainer(cfg: DictConfig, extra_callbacks: list | None = None):
    """The Lightning trainer with the run's callbacks and loggers (W&B offline without a key)."""
    if cfg.get("logger") and any("Wandb" in str(c.get("_target_", "")) for c in cfg.logger.values()):
        configure_wandb_mode()
    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = instantiate_group(cfg.get("logger"))
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def log_hyperparameters(trainer, cfg: DictConfig) -> None:
    """Send the resolved config (model, data, trainer, seed) to every logger."""
    hparams = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
        for key in ("model", "data", "trainer", "seed", "task_name")
        if key in cfg
    }
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)


def to_float_dict(metrics: dict) -> dict[str, float]:
    """Lightning's metric tensors as plain floats."""
    return {k: float(v) for k, v in metrics.items()}


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (a temp file renamed into place), so an interrupted run leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
    return path
