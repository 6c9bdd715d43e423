"""Hydra entry points that fail with one clear line and exit code 2 instead of a traceback.

Composition errors (unknown option, unknown key, bad override syntax) are caught by composing the
config once before Hydra runs; schema violations and :class:`UserError`s raised by a task are
caught around the task. ``HYDRA_FULL_ERROR=1`` turns all of this off and shows full tracebacks.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import sys
from typing import Any, Callable

from omegaconf import DictConfig

from attnlab.utils.config import UserError, validate

__all__ = ["CONFIG_DIR", "CONFIG_PACKAGE", "entry_point", "fail", "first_sweep_values"]

# The configs ship inside the package (conf/ at the top of the repository, linked as attnlab/conf),
# so an installed copy finds them as well as a checkout does.
CONFIG_PACKAGE = "attnlab.conf"
CONFIG_DIR = str(importlib.resources.files(CONFIG_PACKAGE))
EXIT_USAGE = 2
_HYDRA_FLAGS_WITH_VALUE = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--experimental-rerun"}
_HYDRA_FLAGS = {"-m", "--multirun", "--cfg", "-c", "--resolve", "-p", "--package", "--info", "-i", "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc"}


def fail(message: str) -> None:
    """Print one line to stderr and exit with the usage error code."""
    print(f"attnlab: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


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


def _split_argv(argv: list[str]) -> tuple[list[str], bool, bool]:
    """(overrides, multirun, has_other_flags) from a command line."""
    overrides, multirun, other = [], False, False
    it = iter(argv)
    for arg in it:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _HYDRA_FLAGS_WITH_VALUE:
            other = True
            next(it, None)
        elif arg in _HYDRA_FLAGS or arg.startswith("-"):
            other = True
        else:
            overrides.append(arg)
    return overrides, multirun, other


def _one_line(ex: Exception, overrides: list[str]) -> str:
    """A single line naming the key, the value and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(ex, MissingConfigException):
        missing = (ex.missing_cfg_file or "").strip("/")
        group, _, value = missing.rpartition("/")
        options = ", ".join(sorted(ex.options or [])) or "(none)"
        if group:
            return f"unknown option {group}={value}; choose one of: {options}"
        return str(ex).splitlines()[0]
    if isinstance(ex, OverrideParseException):
        return f"cannot parse override: {str(ex).splitlines()[0]}"
    cause = ex.__cause__
    full_key = getattr(cause, "full_key", None)
    first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
    if full_key:
        value = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=")[0] == full_key and "=" in o), None)
        reason = str(cause).strip().splitlines()[0]
        shown = f"{full_key}={value}" if value is not None else full_key
        return f"invalid config: {shown}: {reason} ({first})"
    return f"invalid config: {first}"


def _precheck(config_name: str, overrides: list[str]) -> None:
    """Compose once (first value of every sweep) and validate, so errors are one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        overrides = first_sweep_values(overrides)
    except Exception as ex:
        fail(_one_line(ex, overrides))
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    except Exception as ex:
        fail(_one_line(ex, overrides))
    finally:
        GlobalHydra.instance().clear()
    _validate_or_fail(cfg)


def _validate_or_fail(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:  # e.g. an interpolation that cannot resolve
        fail(f"invalid config: {str(ex).splitlines()[0]}")


def _find_user_error(ex: BaseException | None) -> UserError | None:
    """The UserError behind ``ex`` (Hydra wraps errors raised while instantiating)."""
    seen = set()
    while ex is not None and id(ex) not in seen:
        if isinstance(ex, UserError):
            return ex
        seen.add(id(ex))
        ex = ex.__cause__ or ex.__context__
    return None


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a task ``f(cfg)`` into a console entry point with clean errors.

    Usage::

        @entry_point("train")
        def main(cfg): ...
    """
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            if _full_errors():
                validate(cfg)
                return task(cfg)
            _validate_or_fail(cfg)
            try:
                return task(cfg)
            except Exception as ex:
                user_error = _find_user_error(ex)
                if user_error is None:
                    raise
                fail(str(user_error))

        hydra_task = hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name)(guarded)

        @functools.wraps(task)
        def main() -> Any:
            overrides, _, other_flags = _split_argv(sys.argv[1:])
            if not _full_errors() and not other_flags:
                _precheck(config_name, overrides)
            return hydra_task()

        return main

    return decorate
