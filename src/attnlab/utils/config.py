"""Config schemas: one dataclass per configurable object, with the allowed range of every value.

Hydra's struct mode already rejects misspelled keys at override time; these schemas add types,
ranges, choices and existing paths, and :func:`validate` reports the first violation as one line.
Model and dataset issues register their schemas with :func:`register_schema`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "ConfigError",
    "UserError",
    "register_schema",
    "validate",
    "between",
    "greater",
    "at_least",
    "one_of",
    "existing_path",
    "SCHEMAS",
]


class UserError(Exception):
    """An error the user can fix (bad input, missing file): reported as one line, exit code 2."""


class ConfigError(UserError):
    """A config value outside what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str, unknown_key: bool = False) -> None:
        if unknown_key:
            message = f"invalid config: {key}={value!r}: no such key; allowed keys: {allowed}"
        else:
            message = f"invalid config: {key}={value!r} is not allowed; expected {allowed}"
        super().__init__(message)
        self.key, self.value, self.allowed = key, value, allowed


# Constraints live in dataclass field metadata under "check": (predicate, description).
def between(lo: float, hi: float) -> dict:
    return {"check": (lambda v: lo <= v <= hi, f"a number in [{lo}, {hi}]")}


def greater(lo: float) -> dict:
    return {"check": (lambda v: v > lo, f"a number > {lo}")}


def at_least(lo: float) -> dict:
    return {"check": (lambda v: v >= lo, f"a number >= {lo}")}


def one_of(*choices: Any) -> dict:
    return {"check": (lambda v: v in choices, "one of " + ", ".join(map(str, choices)))}


def existing_path() -> dict:
    return {"check": (lambda v: Path(str(v)).expanduser().exists(), "an existing path")}


SCHEMAS: dict[str, type] = {}


def _canvas_width(num_objects: Any) -> int:
    from attnlab.data.multimnist import canvas_width

    return canvas_width(int(num_objects))


# Resolvers let configs derive sizes instead of repeating them (e.g. the MultiMNIST canvas).
OmegaConf.register_new_resolver("multimnist_width", _canvas_width, replace=True)


def register_schema(target: str):
    """Class decorator: ``target`` (a ``_target_`` string) is validated against this dataclass."""

    def wrap(cls: type) -> type:
        SCHEMAS[target] = cls
        return cls

    return wrap


_META_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _type_ok(value: Any, annotation: Any) -> bool:
    ann = str(annotation).replace("typing.", "")
    optional = ann.startswith("Optional[") or "None" in ann
    if ann.startswith("Optional["):
        ann = ann[len("Optional[") : -1]
    if value is None:
        return optional or "Any" in ann
    if ann.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ann.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if ann.startswith("bool"):
        return isinstance(value, bool)
    if ann.startswith("str"):
        return isinstance(value, str)
    return True


def _check_node(node: DictConfig, prefix: str, schema: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields and key not in _META_KEYS:
            raise ConfigError(f"{prefix}.{key}", node.get(key), ", ".join(sorted(fields)), unknown_key=True)
    for name, f in fields.items():
        if name not in node or node._get_node(name)._is_interpolation():
            continue  # an interpolation is checked where its value is defined
        try:
            value = OmegaConf.select(node, name, throw_on_missing=False)
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True)
        except Exception:  # e.g. ${hydra:...} outside a Hydra run: checked again inside the run
            continue
        if not _type_ok(value, f.type):
            raise ConfigError(f"{prefix}.{name}", value, f"a value of type {f.type}")
        check = f.metadata.get("check")
        if check is not None and value is not None and not check[0](value):
            raise ConfigError(f"{prefix}.{name}", value, check[1])


def _import_owner(target: str) -> None:
    """Import the module defining ``target``: schemas are registered next to the classes."""
    import importlib

    module = target.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
    except ImportError:
        pass  # instantiation reports unknown targets with its own message


def validate(cfg: DictConfig) -> None:
    """Check every node that has a registered ``_target_`` schema; raise :class:`ConfigError`."""

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, DictConfig):
            return
        target = node.get("_target_") if "_target_" in node else None
        if isinstance(target, str) and target not in SCHEMAS:
            _import_owner(target)
        if isinstance(target, str) and target in SCHEMAS:
            _check_node(node, prefix, SCHEMAS[target])
        for key in node.keys():
            if key == "hydra":
                continue
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}.{key}" if prefix else str(key))

    walk(cfg, "")


# --- schemas of the spine's own objects -------------------------------------------------------


@register_schema("lightning.pytorch.trainer.Trainer")
@register_schema("lightning.Trainer")
@dataclass
class TrainerSchema:
    accelerator: str = field(default="cpu", metadata=one_of("cpu", "gpu", "cuda", "mps", "auto"))
    devices: Any = 1
    strategy: Any = "auto"
    num_nodes: int = field(default=1, metadata=at_least(1))
    precision: Any = 32
    max_epochs: int = field(default=1, metadata=greater(0))
    min_epochs: Any = None
    max_steps: int = -1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: Any = 1
    log_every_n_steps: int = field(default=50, metadata=at_least(1))
    num_sanity_val_steps: Any = None
    deterministic: Any = False
    benchmark: Any = None
    default_root_dir: Any = None
    enable_checkpointing: Any = True
    enable_progress_bar: Any = True
    enable_model_summary: Any = True
    gradient_clip_val: Any = None
    accumulate_grad_batches: Any = 1
    fast_dev_run: Any = False
    sync_batchnorm: Any = False
    use_distributed_sampler: Any = True
    detect_anomaly: bool = False
    profiler: Any = None
    overfit_batches: Any = 0.0
