"""Checkpoints that remember the config that built them, and loading them back into models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.utils.config import UserError
from attnlab.utils.model_data import model_data_mismatch

__all__ = ["StoreConfig", "CONFIG_KEY", "load_model", "read_checkpoint", "stored_config"]

CONFIG_KEY = "attnlab_config"


class StoreConfig(L.Callback):
    """Save the resolved model and data config inside every checkpoint, so eval rebuilds the same model."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data") if key in cfg}

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


def _command_line() -> list[str]:
    """The overrides of the running Hydra job (empty outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:
        return []


def _choice(overrides: list[str], group: str) -> str | None:
    """The option chosen for ``group`` on the command line (``data=osie``), or None."""
    for o in overrides:
        key, eq, value = o.lstrip("+~").partition("=")
        if eq and key == group:
            return value
    return None


def _sub_overrides(overrides: list[str], group: str) -> list[str]:
    """Keys below ``group`` set on the command line (``data.root=...`` gives ``root``)."""
    return [
        o.lstrip("+~").split("=", 1)[0][len(group) + 1 :]
        for o in overrides
        if "=" in o and o.lstrip("+~").split("=", 1)[0].startswith(group + ".")
    ]


def use_stored_config(cfg: DictConfig, checkpoint: dict, path: Any = None, overrides: list[str] | None = None) -> None:
    """Let the checkpoint's stored config decide ``cfg.model`` and ``cfg.data`` (the family it was
    trained in). ``model=X``/``data=X`` on the command line that names another class is a
    :class:`UserError`; ``data.key=value`` overrides (a new ``data.root``, a smaller split) still apply."""
    stored = stored_config(checkpoint)
    if stored is None:
        return
    overrides = _command_line() if overrides is None else overrides
    for group in ("model", "data"):
        if group not in stored:
            continue
        mine = stored[group]
        target = mine.get("_target_")
        given = cfg.get(group)
        choice = _choice(overrides, group)
        asked = given.get("_target_") if isinstance(given, DictConfig) else None
        if choice is not None and asked is not None and asked != target:
            raise UserError(
                f"ckpt_path={path} was trained with {group} {target}, not {group}={choice} ({asked}); "
                f"leave {group}= out (the checkpoint decides) or pass a {choice} checkpoint"
            )
        merged = OmegaConf.create(OmegaConf.to_container(mine, resolve=True))
        if isinstance(given, DictConfig) and asked == target:
            for key in _sub_overrides(overrides, group):
                try:
                    value = OmegaConf.select(given, key, throw_on_missing=False)
                except Exception:  # an interpolation into the other group: the stored value stands
                    continue
                OmegaConf.update(merged, key, value, force_add=True)
        with open_dict(cfg):
            cfg[group] = merged


def load_model(cfg: DictConfig, checkpoint: dict, path: Any = None) -> L.LightningModule:
    """Build the model described by the checkpoint (or by ``cfg.model``) and load its weights; the
    checkpoint's stored config also decides ``cfg.data`` (:func:`use_stored_config`)."""
    use_stored_config(cfg, checkpoint, path)
    if stored_config(checkpoint) is None:  # e.g. a paper .pt: model= and data= must go together
        try:
            from hydra.core.hydra_config import HydraConfig

            choices = HydraConfig.get().runtime.choices
        except Exception:  # outside a Hydra run
            choices = None
        if message := model_data_mismatch(choices):
            raise UserError(f"ckpt_path={path} carries no config, so model= and data= decide: {message}")
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    try:
        if hasattr(model, "load_checkpoint_state"):  # model-specific formats (e.g. published weights)
            model.load_checkpoint_state(checkpoint)
        elif "state_dict" not in checkpoint:
            raise UserError(
                f"ckpt_path={path} has no state_dict: not a Lightning checkpoint of model {cfg.model.get('_target_')}"
            )
        else:
            model.load_state_dict(checkpoint["state_dict"])
    except UserError as ex:  # the model's own loader: name the file
        raise UserError(
            str(ex)
            if str(path) in str(ex)
            else f"ckpt_path={path} does not fit model {cfg.model.get('_target_')}: {ex}"
        ) from None
    except (RuntimeError, KeyError, ValueError) as ex:  # weights of another architecture or size
        first = str(ex).strip().splitlines()
        detail = next(
            (
                line.strip()
                for line in first
                if "size mismatch" in line or "Missing key" in line or "Unexpected key" in line
            ),
            first[0] if first else type(ex).__name__,
        )
        raise UserError(f"ckpt_path={path} does not fit model {cfg.model.get('_target_')}: {detail[:200]}") from None
    return model
