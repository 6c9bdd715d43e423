"""Config validation read from the constructors themselves: each setting is declared once.

A configurable class declares its settings in its ``__init__`` signature: the type, the default
and, through ``Annotated`` metadata, the allowed values, e.g.::

    def __init__(self, lr: PositiveFloat = 1e-3, strength: Fraction = 0.2,
                 upsample: Literal["nearest", "bilinear"] = "nearest") -> None: ...

YAML files hold only what differs from those defaults. :func:`validate` walks a composed config,
imports the module of every ``_target_`` (which also registers what those modules add to the
config language, such as resolvers) and checks each given value against the signature with
pydantic, reporting the first violation as one line (:class:`ConfigError`). Keys a signature does
not have are reported with the keys it has. :func:`accepts` tells the command line whether a key
left out of the YAML is still a setting of its object.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import annotated_types as at
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

__all__ = [
    "ConfigError",
    "UserError",
    "Check",
    "Device",
    "ExistingPath",
    "Fraction",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Size2",
    "Split3",
    "accepts",
    "check_arguments",
    "resolve_device",
    "signature_of",
    "validate",
]


class UserError(Exception):
    """An error the user can fix (bad input, missing file): reported as one line, exit code 2."""


class ConfigError(UserError, ValueError):
    """A config value outside what is allowed (a ValueError too, for objects built in Python)."""

    def __init__(self, key: str, value: Any, allowed: str, unknown_key: bool = False) -> None:
        if unknown_key:
            message = f"invalid config: {key}={value!r}: no such key; allowed keys: {allowed}"
        else:
            message = f"invalid config: {key}={value!r} is not allowed; expected {allowed}"
        super().__init__(message)
        self.key, self.value, self.allowed = key, value, allowed


# --- the vocabulary of constructor annotations ------------------------------------------------------


class Check:
    """``Annotated`` metadata for a rule no type expresses: ``Check(predicate, "what is allowed")``."""

    def __init__(self, predicate, description: str) -> None:
        self.predicate, self.description = predicate, description


Device = Annotated[
    str,
    Check(lambda v: v in ("cpu", "cuda", "auto") or re.fullmatch(r"cuda:\d+", str(v)) is not None,
          "cpu, cuda, cuda:N or auto"),
]  # fmt: skip


def resolve_device(name: str, key: str = "device") -> str:
    """A :data:`Device` setting as a torch device name (``auto``: a GPU when there is one); a GPU asked
    for on a machine without one is one line naming ``key``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{key}={name}: no CUDA GPU on this machine; use {key}=cpu")
    return name


ExistingPath = Check(lambda v: Path(str(v)).expanduser().exists(), "an existing path")
Fraction = Annotated[float, at.Interval(ge=0, le=1)]
Size2 = tuple[PositiveInt, PositiveInt]  # [height, width]
Split3 = Annotated[
    tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat],
    Check(lambda v: sum(v) > 0, "three non-negative fractions [train, val, test]"),
]


# --- reading a signature ------------------------------------------------------------------------------


_META_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
_NO_DEFAULT = inspect.Parameter.empty


@functools.lru_cache(maxsize=None)
def _resolve_target(target: str) -> Any:
    """The class or function a ``_target_`` names, or None when it cannot be imported."""
    module, _, name = target.rpartition(".")
    for split in range(target.count("."), 0, -1):  # a.b.C.method: import the longest module prefix
        module_name = ".".join(target.split(".")[:split])
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in target.split(".")[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


@functools.lru_cache(maxsize=None)
def signature_of(target: str) -> Optional[tuple[dict[str, Any], bool]]:
    """({parameter: annotation or Any}, accepts **kwargs) of a target's constructor, or None."""
    obj = _resolve_target(target)
    if obj is None:
        return None
    function = obj.__init__ if inspect.isclass(obj) else obj
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # third-party annotations that do not resolve here: keys are still checked
        hints = {}
    params, var_kwargs = {}, False
    for name, p in parameters.items():
        if name == "self" or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kwargs = True
            continue
        params[name] = hints.get(name, Any)
    return params, var_kwargs


def accepts(target: str, key: str) -> bool:
    """Whether ``key`` is a setting of ``target`` (a parameter of its constructor)."""
    sig = signature_of(target)
    return sig is not None and (key in sig[0] or sig[1])


# --- describing and checking one value ---------------------------------------------------------------


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is Annotated:
        base, *meta = typing.get_args(annotation)
        inner, more = _split_annotated(base)
        return inner, [*more, *meta]
    return annotation, []


def _bounds(meta: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in meta:
        for item in m.metadata if hasattr(m, "metadata") and not isinstance(m, at.BaseMetadata) else [m]:
            if isinstance(item, at.Interval):
                out |= {k: getattr(item, k) for k in ("gt", "ge", "lt", "le") if getattr(item, k) is not None}
            for k in ("gt", "ge", "lt", "le"):
                if isinstance(item, getattr(at, k.capitalize())):
                    out[k] = getattr(item, k)
    return out


def describe(annotation: Any) -> str:
    """What a value of ``annotation`` may be, in words (the end of an error line)."""
    base, meta = _split_annotated(annotation)
    checks = [m for m in meta if isinstance(m, Check)]
    if checks:
        return checks[0].description
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is Union:
        kinds = [a for a in args if a is not type(None)]
        text = " or ".join(describe(a) for a in kinds)
        return text + (" or null" if len(kinds) < len(args) else "")
    b = _bounds(meta)
    noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(base)
    if noun is None:
        if origin in (tuple, list) or base in (tuple, list):
            inner = [a for a in args if a is not Ellipsis]
            return (
                f"a list of {len(inner)} values ({', '.join(describe(a) for a in inner)})"
                if origin is tuple and Ellipsis not in args
                else "a list"
            )
        return f"a value of type {getattr(base, '__name__', base)}"
    if base in (int, float):
        noun = "a number" if base is float else "an integer"
        if ("ge" in b or "gt" in b) and ("le" in b or "lt" in b):
            lo, hi = b.get("ge", b.get("gt")), b.get("le", b.get("lt"))
            left, right = ("[" if "ge" in b else "("), ("]" if "le" in b else ")")
            return f"{noun} in {left}{lo}, {hi}{right}"
        for k, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if k in b:
                return f"{noun} {sign} {b[k]}"
    return noun


@functools.lru_cache(maxsize=None)
def _adapter(annotation: Any):
    from pydantic import ConfigDict, TypeAdapter

    base, meta = _split_annotated(annotation)
    plain = [m for m in meta if not isinstance(m, Check)]
    try:
        return TypeAdapter(
            Annotated[(base, *plain)] if plain else base, config=ConfigDict(arbitrary_types_allowed=True)
        )
    except Exception:  # a type pydantic cannot check (a torch module, a callable): not checked here
        return None


def _tuples(value: Any) -> Any:
    """Lists as tuples, recursively: YAML has no tuples, signatures use them for fixed sizes."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def value_ok(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (plain Python, from YAML or the command line) fits ``annotation``."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return False
    adapter = _adapter(annotation)
    if adapter is not None:
        from pydantic import ValidationError

        for candidate in (value, _tuples(value)):
            try:
                adapter.validate_python(candidate, strict=True)  # strict: "yes" is no boolean, "3" no number
                break
            except ValidationError:
                continue
        else:
            return False
    return value is None or all(check.predicate(value) for check in _checks(annotation))


def _checks(annotation: Any) -> list[Check]:
    """The :class:`Check` rules of ``annotation``, also inside ``Optional[Annotated[...]]``."""
    base, meta = _split_annotated(annotation)
    found = [m for m in meta if isinstance(m, Check)]
    if typing.get_origin(base) is Union:
        found += [c for a in typing.get_args(base) if a is not type(None) for c in _checks(a)]
    return found


# --- walking a config ----------------------------------------------------------------------------------


def _lightning_devices(v: Any) -> bool:
    """What Lightning's ``devices`` accepts: a count, -1 (all), "auto", GPU indices as a list or "0,1"."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0 or v == -1
    if isinstance(v, list):
        return bool(v) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)
    return isinstance(v, str) and re.fullmatch(r"auto|-1|\d+|\d+(,\d+)+,?", v) is not None


# Lightning's Trainer declares its own settings; these are the ones it checks only after a run has started.
_EXTRA_RULES: dict[str, dict[str, Any]] = {
    "lightning.Trainer": {
        "devices": Annotated[
            Any, Check(_lightning_devices, "a positive integer, -1 (all), auto, or GPU indices ([0, 1] or '0,1')")
        ],
        "accelerator": Optional[Literal["cpu", "gpu", "cuda", "mps", "auto"]],
        "max_epochs": Optional[PositiveInt],
        "num_nodes": PositiveInt,
        "log_every_n_steps": Optional[PositiveInt],
        "gradient_clip_val": Optional[NonNegativeFloat],  # a negative one flips the gradients' sign
        "accumulate_grad_batches": PositiveInt,
        "check_val_every_n_epoch": Optional[PositiveInt],
        "min_epochs": Optional[NonNegativeInt],
    },
}
_EXTRA_RULES["lightning.pytorch.trainer.Trainer"] = _EXTRA_RULES["lightning.pytorch.Trainer"] = _EXTRA_RULES[
    "lightning.Trainer"
]


def _plain(node: DictConfig, name: str) -> tuple[bool, Any]:
    """(checkable, value) of ``node[name]``: interpolations are checked where their value is defined."""
    if node._get_node(name)._is_interpolation() or node._get_node(name)._is_missing():
        return False, None  # ??? (mandatory) is reported by OmegaConf when the value is read
    try:
        value = OmegaConf.select(node, name, throw_on_missing=False)
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra run: checked again inside the run
        return False, None
    return True, value


def _check_node(node: DictConfig, prefix: str, target: str) -> None:
    sig = signature_of(target)
    if sig is None:
        return  # instantiation reports targets that do not exist, with its own message
    params, var_kwargs = sig
    rules = {**params, **_EXTRA_RULES.get(target, {})}
    for key in node.keys():
        key = str(key)
        if key in _META_KEYS:
            continue
        if key not in params and not var_kwargs:
            raise ConfigError(f"{prefix}.{key}", node.get(key), ", ".join(sorted(params)), unknown_key=True)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and "_target_" in child:
            continue  # a nested object: checked as its own node
        checkable, value = _plain(node, key)
        if checkable and key in rules and not value_ok(value, rules[key]):
            raise ConfigError(f"{prefix}.{key}", value, describe(rules[key]))


def _targets(node: Any, prefix: str = "") -> list[tuple[str, DictConfig, str]]:
    """(key path, node, target) of every object node, outermost first (the ``hydra`` node skipped)."""
    if not isinstance(node, DictConfig):
        return []
    found = []
    target = node.get("_target_") if "_target_" in node else None
    if isinstance(target, str):
        found.append((prefix, node, target))
    for key in node.keys():
        if key == "hydra":
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += _targets(child, f"{prefix}.{key}" if prefix else str(key))
    return found


def check_arguments(cls: type, values: dict[str, Any]) -> None:
    """Check ``values`` against ``cls``'s constructor signature, for objects built in Python rather
    than from a config (e.g. a dataclass's ``__post_init__``); raise :class:`ConfigError`."""
    target = f"{cls.__module__}.{cls.__qualname__}"
    params = (signature_of(target) or ({}, True))[0]
    for key, value in values.items():
        if key in params and not value_ok(value, params[key]):
            raise ConfigError(f"{cls.__name__}.{key}", value, describe(params[key]))


def validate(cfg: DictConfig) -> None:
    """Check every ``_target_`` node of ``cfg`` against its constructor; raise :class:`ConfigError`."""
    nodes = _targets(cfg)
    for _, _, target in nodes:  # import first: modules register resolvers that other nodes use
        _resolve_target(target)
    for prefix, node, target in nodes:
        _check_node(node, prefix, target)
