"""Composing a command's config as its command line does, from the configs that ship in the package.

The YAML files hold only what differs from the constructors' defaults, so a setting left at its
default has no key in them; :func:`settings_left_at_default` finds such keys among the overrides
(the object's constructor has the parameter) so that they are overridden with ``++`` like any other,
and reports a key that no constructor has, with the keys it could have been.
"""

from __future__ import annotations

import importlib.resources
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from attnlab.utils.config import ConfigError, accepts, signature_of

__all__ = [
    "CONFIG_DIR",
    "CONFIG_PACKAGE",
    "compose",
    "compose_config",
    "first_sweep_values",
    "force_added",
    "override_key",
    "settings_left_at_default",
    "sweep_values",
]

# The configs ship inside the package (conf/ at the top of the repository, linked as attnlab/conf),
# so an installed copy finds them as well as a checkout does.
CONFIG_PACKAGE = "attnlab.conf"
CONFIG_DIR = str(importlib.resources.files(CONFIG_PACKAGE))


def first_sweep_values(overrides: list[str]) -> list[str]:
    """Replace each sweep (``a=1,2``, ``choice(...)``) by its first value; drop non-enumerable ones."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if not o.is_sweep_override():
            out.append(o.input_line)
            continue
        try:
            first = next(iter(o.sweep_string_iterator()))
        except Exception:  # interval() and other continuous sweeps have no first value
            continue
        out.append(f"{o.get_key_element()}={first}")
    return out


def override_key(override: str) -> str:
    """``a.b`` of ``a.b=v``, ``+a.b=v``, ``++a.b=v`` or ``~a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


def force_added(overrides: Sequence[str], keys: set[str]) -> list[str]:
    """``overrides`` with ``k=v`` written ``++k=v`` for every key in ``keys`` (other arguments unchanged)."""
    return ["++" + o if "=" in o and o[:1] not in "+~-" and override_key(o) in keys else o for o in overrides]


def compose(config_name: str, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """Hydra's compose of ``config_name`` with ``overrides`` exactly as given (no ``++`` added)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    # inside a running Hydra job (a benchmark source composing its model's config): set the job's Hydra aside
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)


def compose_config(config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """A command's config composed from Python (notebooks, tests) as its command line would compose it:
    a setting that the YAML files leave at its constructor default can be overridden like any other."""
    overrides = list(overrides)
    return compose(
        config_name, force_added(overrides, settings_left_at_default(config_name, overrides)), return_hydra_config
    )


def settings_left_at_default(config_name: str, overrides: list[str]) -> set[str]:
    """Keys of ``overrides`` that no YAML file names because the YAML leaves them at their
    constructor default: still settings of their object, so they are overridden with ``++``.
    A key that is no parameter of its object is reported with the keys it has. Which object holds a
    key is decided by the group choices, so the config is composed once with those alone and each
    dotted key looked up in it; a key under no object is left for Hydra to refuse."""
    dotted = [o for o in overrides if "=" in o and o[:1] not in "+~" and "." in override_key(o)]
    if not dotted:
        return set()
    base = compose(config_name, [o for o in overrides if "." not in override_key(o)])
    added = set()
    for override in dotted:
        key = override_key(override)
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(base, parent, throw_on_resolution_failure=False)
        if not isinstance(node, DictConfig) or leaf in node.keys():
            continue  # named by a YAML file, or not under an object
        target = node.get("_target_")
        if not isinstance(target, str):
            continue
        if not accepts(target, leaf):
            params = signature_of(target)
            allowed = ", ".join(sorted(params[0])) if params else "(unknown)"
            raise ConfigError(key, override.split("=", 1)[1], allowed, unknown_key=True)
        added.add(key)
    return added


def sweep_values(overrides: list[str], first: list[str]) -> list[tuple[int, list[str]]]:
    """(position in ``first``, the sweep's other values as overrides) for each enumerable sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if not o.is_sweep_override():
            continue
        try:
            values = list(o.sweep_string_iterator())
        except Exception:  # interval() and other continuous sweeps
            continue
        key = o.get_key_element()
        position = next((k for k, f in enumerate(first) if f.split("=", 1)[0] == key), None)
        if position is not None:
            out.append((position, [f"{key}={v}" for v in values[1:]]))
    return out
