"""Build the objects a Hydra config describes: callbacks, loggers, trainer, and save run summaries."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from attnlab.utils.checkpoint_io import AtomicCheckpointIO
from attnlab.utils.config import UserError
from attnlab.utils.io import write_json  # noqa: F401  (re-exported for the commands)
from attnlab.utils.logging import configure_wandb_mode

log = logging.getLogger(__name__)

__all__ = [
    "check_devices",
    "instantiate_group",
    "instantiate_trainer",
    "log_hyperparameters",
    "write_json",
    "to_float_dict",
]


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group such as ``callbacks`` or ``logger``."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def check_devices(accelerator: str | None, devices: Any) -> None:
    """Fail with one line when the requested GPUs do not exist on this machine, or when GPU indices
    are given to the CPU (Lightning takes a count of CPU processes there)."""
    if accelerator not in ("gpu", "cuda"):
        if accelerator == "cpu" and not (
            devices in (None, "auto", -1) or isinstance(devices, int) or str(devices).isdigit()
        ):
            raise UserError(f"trainer.devices={devices}: GPU indices need trainer=gpu; on the CPU give a count")
        return
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise UserError(f"trainer.accelerator={accelerator}: no CUDA GPU on this machine; use trainer=cpu")
    if isinstance(devices, (list, tuple, ListConfig)):
        bad = [d for d in devices if not 0 <= int(d) < available]
        if bad:
            raise UserError(
                f"trainer.devices={list(devices)}: GPU index {bad[0]} does not exist; allowed 0..{available - 1}"
            )
    elif isinstance(devices, int) and devices > available:
        raise UserError(f"trainer.devices={devices}: only {available} GPU(s) on this machine")


def instantiate_trainer(cfg: DictConfig, extra_callbacks: list | None = None, **settings: Any):
    """The Lightning trainer with the run's callbacks and loggers (W&B offline without a key),
    checkpoints written atomically, and ``settings`` (trainer arguments decided in code) over the config."""

    if cfg.get("logger") and any("Wandb" in str(c.get("_target_", "")) for c in cfg.logger.values()):
        configure_wandb_mode()
    check_devices(cfg.trainer.get("accelerator"), cfg.trainer.get("devices"))
    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = instantiate_group(cfg.get("logger"))
    plugins = list(settings.pop("plugins", None) or []) + [AtomicCheckpointIO()]
    return hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **settings
    )


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
