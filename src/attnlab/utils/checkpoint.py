"""Checkpoints that remember the config that built them, and loading them back into models.

Every checkpoint and weights file attnlab reads goes through :func:`torch_load`: ``torch.load`` with
``weights_only=True``, which rebuilds tensors and plain containers only and calls nothing a file
names, so a crafted pickle is refused before any of it runs. What attnlab writes needs no more
(:class:`StoreConfig` stores plain containers, :class:`~attnlab.utils.checkpoint_io.RandomState`
plain tuples and tensors), so nothing is allow-listed.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.utils.config import UserError, validate
from attnlab.utils.model_data import model_data_mismatch

__all__ = [
    "StoreConfig",
    "CONFIG_KEY",
    "load_model",
    "read_checkpoint",
    "stored_config",
    "torch_load",
    "unsafe_file_error",
    "user_error_behind",
]

CONFIG_KEY = "attnlab_config"


class StoreConfig(L.Callback):
    """Save the resolved model and data config inside every checkpoint, so eval rebuilds the same model."""

    def __init__(self, cfg: DictConfig) -> None:
        # plain containers: they load with weights_only=True (an OmegaConf object would not)
        self.config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data") if key in cfg}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config


# torch names what its weights-only unpickler refused as ``GLOBAL module.name`` (a function or class
# the pickle would call) or ``but got <class 'module.name'>`` (an object it would build)
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def unsafe_file_error(path: Any, ex: pickle.UnpicklingError, what: str = "checkpoint") -> UserError:
    """The one line for a file ``torch.load(weights_only=True)`` refused: the type it needs, when torch
    names one (nothing of the file ran), else why it is not a file of tensors and plain types."""
    found = _REFUSED.search(str(ex))
    if found:
        return UserError(
            f"{what} {path} refused: it needs {found.group(1) or found.group(2)}, which is not a tensor or plain "
            "type; attnlab reads weights only (torch.load weights_only=True), so nothing in the file ran"
        )
    detail = next((line.strip() for line in reversed(str(ex).splitlines()) if line.startswith("Unsupported")), "")
    return UserError(
        f"cannot read {what} {path}: not a torch.save file of tensors and plain types"
        + (f" ({detail})" if detail else "")
    )


def torch_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load`` of a checkpoint or weights file on the CPU with ``weights_only=True``; a missing,
    unreadable or unsafe file is one :class:`UserError` naming it (``what``: how to call it)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as ex:
        raise unsafe_file_error(path, ex, what) from None
    except Exception as ex:  # corrupt, truncated or not a torch file
        detail = next((line.strip() for line in str(ex).splitlines() if line.strip()), type(ex).__name__)
        raise UserError(f"cannot read {what} {path}: {detail[:200]}") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint, loaded on the CPU whatever device it was saved from (:func:`torch_load`)."""
    return torch_load(path, "checkpoint")


def stored_config(checkpoint: dict[str, Any], path: Any = None) -> DictConfig | None:
    """The model/data config a checkpoint was trained with, if it carries one, checked like a config
    given on the command line (the file may come from anyone): one :class:`UserError` when it is not."""
    stored = checkpoint.get(CONFIG_KEY) if isinstance(checkpoint, dict) else None
    if not stored:
        return None
    path = path or "(in memory)"
    groups = ("model", "data")
    if not isinstance(stored, dict) or not all(isinstance(stored.get(g, {}), dict) for g in groups):
        raise UserError(f"checkpoint {path} stores a config that is not {{model: ..., data: ...}}")
    for group in groups:
        if group in stored and not isinstance(stored[group].get("_target_"), str):
            raise UserError(f"checkpoint {path} stores a {group} config without a _target_")
    try:
        config = OmegaConf.create(stored)
        validate(config)
    except UserError as ex:
        raise UserError(f"checkpoint {path} stores an invalid config: {ex}") from None
    except Exception as ex:  # e.g. an interpolation that cannot resolve
        raise UserError(f"checkpoint {path} stores an unreadable config: {str(ex).splitlines()[0]}") from None
    return config


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
    stored = stored_config(checkpoint, path)
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


def user_error_behind(ex: BaseException | None) -> UserError | None:
    """The UserError behind ``ex`` (Hydra wraps the errors raised while instantiating), or None."""
    seen = set()
    while ex is not None and id(ex) not in seen:
        if isinstance(ex, UserError):
            return ex
        seen.add(id(ex))
        ex = ex.__cause__ or ex.__context__
    return None


def _build(node: DictConfig, path: Any = None) -> Any:
    try:
        return hydra.utils.instantiate(node, _convert_="all")
    except Exception as ex:
        found = user_error_behind(ex)  # e.g. a task model whose weights file is missing
        if found is not None:
            raise found from None
        cause = ex.__cause__ or ex
        if path is None or not isinstance(cause, (TypeError, ValueError)):
            raise
        # a stored config that validates key by key but cannot build (a required setting left out)
        raise UserError(f"{path}: {node.get('_target_')} cannot be built from its stored config: {cause}") from None


def _mismatch(ex: BaseException) -> str:
    """The line of a ``load_state_dict`` error that says what does not fit."""
    lines = str(ex).strip().splitlines()
    keys = ("size mismatch", "Missing key", "Unexpected key")
    line = next((x.strip() for x in lines if any(k in x for k in keys)), lines[0] if lines else type(ex).__name__)
    return line[:200]


def _load_weights(module: Any, checkpoint: Any, path: Any, name: str, target: str) -> None:
    """Load ``checkpoint`` into ``module`` strictly; every misfit is one line naming the file as ``name``."""
    try:
        if hasattr(module, "load_checkpoint_state"):  # formats of its own (published weights)
            module.load_checkpoint_state(checkpoint)
        elif not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise UserError(f"{name} has no state_dict: not a Lightning checkpoint of {target}")
        else:
            module.load_state_dict(checkpoint["state_dict"])
    except UserError as ex:  # the model's own loader: name the file
        raise UserError(str(ex) if str(path) in str(ex) else f"{name} does not fit {target}: {ex}") from None
    except (RuntimeError, KeyError, ValueError) as ex:  # weights of another architecture or size
        raise UserError(f"{name} does not fit {target}: {_mismatch(ex)}") from None


def load_trained(
    path: str | Path,
    expect: str | Sequence[str],
    what: str,
    hint: str | Callable[[str], str] = "",
    part: str | None = None,
    prepare: Callable[[DictConfig], None] | None = None,
    check: Callable[[Any, DictConfig], None] | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> tuple[Any, DictConfig]:
    """(the trained model — or its submodule ``part``, e.g. ``"net"`` — in eval mode with the checkpoint's
    weights, its stored config) of a checkpoint written by ``attnlab.train`` whose model
    class is named ``expect`` (or one of them). The one loader of every family: the file is read weights
    only, the stored config checked like a command line, the model rebuilt from it and every weight loaded
    strictly. ``prepare(cfg)`` may first switch off what must not be read again (pretrained weights);
    ``check(module, cfg)`` may refuse the built module before its weights, with a line that says more.
    Each misfit is one :class:`UserError` naming the file; ``what`` names the family expected and ``hint``
    (e.g. "; train one with ...", or a function of the model class found) ends the message when the file
    is of another family. ``checkpoint``: the file's contents when the caller has read them already."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    cfg = stored_config(checkpoint, path)
    target = str(cfg.model.get("_target_")) if cfg is not None and "model" in cfg else None
    if target is None or not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(
            f"{path} is not a checkpoint of {what}: it carries no stored model config (not written by attnlab.train)"
            f"{hint('') if callable(hint) else hint}"
        )
    if target.rsplit(".", 1)[-1] not in ((expect,) if isinstance(expect, str) else tuple(expect)):
        raise UserError(
            f"{path} is not a checkpoint of {what}: its model is {target}{hint(target) if callable(hint) else hint}"
        )
    if prepare is not None:
        with open_dict(cfg):
            prepare(cfg)
    node = cfg.model if part is None else cfg.model[part]
    module = _build(node, path)
    if check is not None:
        check(module, cfg)
    state = checkpoint["state_dict"]
    if part is not None:  # the submodule's own weights, without the prefix the whole model gives them
        state = {k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")}
    _load_weights(module, {"state_dict": state}, path, str(path), target if part is None else f"{target}.{part}")
    return module.eval(), cfg


def load_model(cfg: DictConfig, checkpoint: dict, path: Any = None) -> L.LightningModule:
    """Build the model described by the checkpoint (or by ``cfg.model``) and load its weights; the
    checkpoint's stored config also decides ``cfg.data`` (:func:`use_stored_config`)."""
    use_stored_config(cfg, checkpoint, path)
    if not (
        isinstance(checkpoint, dict) and checkpoint.get(CONFIG_KEY)
    ):  # e.g. a paper .pt: model= and data= must go together
        try:
            from hydra.core.hydra_config import HydraConfig

            choices = HydraConfig.get().runtime.choices
        except Exception:  # outside a Hydra run
            choices = None
        if message := model_data_mismatch(choices):
            raise UserError(f"ckpt_path={path} carries no config, so model= and data= decide: {message}")
    model = _build(cfg.model, path)
    _load_weights(model, checkpoint, path, f"ckpt_path={path}", f"model {cfg.model.get('_target_')}")
    return model
