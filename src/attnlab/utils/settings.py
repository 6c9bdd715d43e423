"""The vocabulary of a command's own settings (``seed=``, ``max_images=``, ``split=``, ...) and their check.

Objects declare their settings in their constructors (:mod:`attnlab.utils.config`); a command's own
keys belong to no object, so each command declares them as one dataclass beside the code that reads
them (``TrainSettings`` in :mod:`attnlab.train`, the benchmark's in :mod:`attnlab.benchmark.settings`),
in the same ``Annotated`` vocabulary; a field whose type is a settings dataclass is a sub-node (the
scanpaths command's ``scoring``). The defaults live in the command's YAML, once; a field that is not
``Optional`` may not be null (``eval`` needs ``ckpt_path``). :func:`check_command` checks a composed
config against a command's dataclass (one-line :class:`~attnlab.utils.config.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import annotated_types as at
from omegaconf import DictConfig, OmegaConf

from attnlab.utils.config import Check, ConfigError, UserError, describe, value_ok

__all__ = ["Checkpoint", "ResumeFrom", "Seed", "Sources", "check_command", "settings_of"]

Checkpoint = Annotated[str, Check(lambda v: Path(str(v)).expanduser().is_file(), "an existing checkpoint file")]
Sources = Union[str, list[str]]
Seed = Annotated[int, at.Interval(ge=0, le=2**32 - 1)]  # what NumPy and Lightning accept
# train's ckpt_path also takes ``last``: the newest checkpoint of the run folder (resuming)
ResumeFrom = Annotated[
    str, Check(lambda v: v == "last" or Path(str(v)).expanduser().is_file(), "an existing checkpoint file or last")
]


def _example(name: str) -> str:
    return {
        "ckpt_path": "ckpt_path=PATH (a checkpoint written by attnlab.train, e.g. <run folder>/checkpoints/last.ckpt)"
    }.get(name, f"{name}=VALUE")


def _sub_node(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def settings_of(cfg: DictConfig, settings: type) -> dict[str, Any]:
    """The keys of ``cfg`` that ``settings`` declares (not its sub-nodes), as plain values."""
    hints = typing.get_type_hints(settings, include_extras=True)
    plain = lambda v: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v  # noqa: E731
    return {f.name: plain(cfg[f.name]) for f in dataclasses.fields(settings) if not _sub_node(hints[f.name])}


def check_command(config_name: str, cfg: DictConfig, settings: type, path: str = "") -> None:
    """Check ``cfg``'s command-level keys against the dataclass ``settings``; raise a one-line error."""
    node = OmegaConf.select(cfg, path) if path else cfg
    if not isinstance(node, DictConfig):
        return
    hints = typing.get_type_hints(settings, include_extras=True)
    for field in dataclasses.fields(settings):
        name, hint = field.name, hints[field.name]
        key = f"{path}.{name}" if path else name
        if _sub_node(hint):
            check_command(config_name, cfg, hint, key)
            continue
        if name not in node.keys():  # `in` is false for ??? (missing) values
            continue
        if node._get_node(name)._is_interpolation():
            continue
        if OmegaConf.is_missing(node, name):
            raise UserError(f"{config_name} needs {_example(name)}")
        value: Any = node[name]
        if isinstance(value, DictConfig) or OmegaConf.is_list(value):
            value = OmegaConf.to_container(value, resolve=True)
        if value is None and typing.get_origin(hint) is not Union:
            raise UserError(f"{config_name} needs {_example(name)}")
        if (
            name == "ckpt_path"
            and isinstance(value, str)
            and value != "last"
            and not Path(value).expanduser().is_file()
        ):
            where = Path(value).expanduser()
            raise UserError(
                f"checkpoint not found: {value}" + (" (a folder, not a checkpoint file)" if where.is_dir() else "")
            )
        if not value_ok(value, hint):
            raise ConfigError(key, value, describe(hint))
