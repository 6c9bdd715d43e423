"""The top-level settings of each command (``seed=``, ``max_images=``, ``split=``, ...), declared once.

Objects declare their settings in their constructors (:mod:`attnlab.utils.config`); a command's own
keys belong to no object, so they are declared here, as the signatures of one function per command
(and per plain sub-node such as ``scoring``), in the same ``Annotated`` vocabulary. The defaults
live in the command's YAML; a parameter without a default here is required (``eval`` needs
``ckpt_path``). :func:`check_command` checks a composed config against them (one-line
:class:`~attnlab.utils.config.ConfigError`).
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

import annotated_types as at
from omegaconf import DictConfig, OmegaConf

from attnlab.utils.config import (
    Check,
    ConfigError,
    Device,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UserError,
    describe,
    value_ok,
)

__all__ = ["COMMAND_SETTINGS", "check_command"]

Checkpoint = Annotated[str, Check(lambda v: Path(str(v)).expanduser().is_file(), "an existing checkpoint file")]
Sources = Union[str, list[str]]
Seed = Annotated[int, at.Interval(ge=0, le=2**32 - 1)]  # what NumPy and Lightning accept
# train's ckpt_path also takes ``last``: the newest checkpoint of the run folder (resuming)
ResumeFrom = Annotated[
    str, Check(lambda v: v == "last" or Path(str(v)).expanduser().is_file(), "an existing checkpoint file or last")
]


def train(
    seed: Seed, train: bool, test: bool, ckpt_path: Optional[ResumeFrom], optimized_metric: Optional[str]
) -> None:
    """``python -m attnlab.train``: ``ckpt_path`` resumes from a checkpoint."""


def eval(seed: Seed, ckpt_path: Checkpoint) -> None:  # noqa: A001 - named after the command
    """``python -m attnlab.eval``."""


def analyze(seed: Seed, ckpt_path: Optional[Checkpoint], device: Device) -> None:
    """``python -m attnlab.analyze``."""


def scanpaths(
    seed: Seed,
    split: Literal["all", "train", "val", "test"],
    batch_size: Optional[PositiveInt],
    max_images: Optional[PositiveInt],
    overlays: bool,
    overlay_humans: NonNegativeInt,
    optimized_metric: Optional[str],
) -> None:
    """``python -m attnlab.scanpaths``: ``optimized_metric`` (a benchmark metric of the model's row, e.g.
    ``ScanMatch``) is returned to a sweep (``hparams_search=neva_osie_optuna``)."""


def scanpaths_scoring(
    enabled: bool,
    model_name: str,
    centre_baseline: bool,
    baselines: list[str],
    drop_first_human: bool,
    sigma_px: Optional[PositiveFloat],
    figure_images: NonNegativeInt,
) -> None:
    """``scoring.*`` of ``python -m attnlab.scanpaths``."""


def benchmark(
    seed: Seed,
    attention: Sources,
    split: Literal["train", "val", "test", "all"],
    max_images: Optional[PositiveInt],
    sigma_px: Optional[PositiveFloat],
    scanpath_drop_first: bool,
    metric_specific: bool,
    conditional_metrics: bool,
    figure_images: NonNegativeInt,
    progress: bool,
) -> None:
    """``python -m attnlab.benchmark``."""


def leaderboard_bootstrap(samples: PositiveInt, level: Annotated[float, at.Interval(gt=0, lt=1)]) -> None:
    """``bootstrap.*`` of ``python -m attnlab.leaderboard`` (its other keys are the benchmark's; the
    resampled image indices are drawn with ``seed``)."""


# command -> {node path ("" for the top level): the function declaring its keys}
COMMAND_SETTINGS: dict[str, dict[str, Callable[..., None]]] = {
    "train": {"": train},
    "eval": {"": eval},
    "analyze": {"": analyze},
    "scanpaths": {"": scanpaths, "scoring": scanpaths_scoring},
    "benchmark": {"": benchmark},
    "leaderboard": {"": benchmark, "bootstrap": leaderboard_bootstrap},
}


def _example(name: str) -> str:
    return {
        "ckpt_path": "ckpt_path=PATH (a checkpoint written by attnlab.train, e.g. <run folder>/checkpoints/last.ckpt)"
    }.get(name, f"{name}=VALUE")


def check_command(config_name: str, cfg: DictConfig) -> None:
    """Check ``cfg``'s command-level keys against :data:`COMMAND_SETTINGS`; raise a one-line error."""
    for path, function in COMMAND_SETTINGS.get(config_name, {}).items():
        node = OmegaConf.select(cfg, path) if path else cfg
        if not isinstance(node, DictConfig):
            continue
        hints = typing.get_type_hints(function, include_extras=True)
        for name, parameter in inspect.signature(function).parameters.items():
            key = f"{path}.{name}" if path else name
            if name not in node.keys():  # `in` is false for ??? (missing) values
                continue
            if node._get_node(name)._is_interpolation():
                continue
            if OmegaConf.is_missing(node, name):
                raise UserError(f"{config_name} needs {_example(name)}")
            value: Any = node[name]
            if isinstance(value, DictConfig) or OmegaConf.is_list(value):
                value = OmegaConf.to_container(value, resolve=True)
            if (
                value is None
                and parameter.default is inspect.Parameter.empty
                and typing.get_origin(hints[name]) is not Union
            ):
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
            if not value_ok(value, hints[name]):
                raise ConfigError(key, value, describe(hints[name]))
