"""Hydra entry points that fail with one clear line and exit code 2 instead of a traceback.

Composition errors (unknown option, unknown key, bad override syntax) are caught by composing the
config once before Hydra runs; schema violations and :class:`UserError`s raised by a task are
caught around the task. ``HYDRA_FULL_ERROR=1`` turns all of this off and shows full tracebacks.

Around every run: an output folder that cannot be written is reported before Hydra makes it; the
first line printed names the run folder and the last one sums the run up; a run that fails before
writing anything of its own leaves no folder behind, one that fails later has the error at the end
of its log. The console shows attnlab's own messages, the progress bar and the results: the
dependencies' tips, device banners, model summaries (FLOPs) and warnings go to the log file only.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from attnlab.utils.config import ConfigError, UserError, accepts, signature_of, validate

__all__ = ["CONFIG_DIR", "CONFIG_PACKAGE", "compose_config", "entry_point", "fail", "first_sweep_values"]

# The configs ship inside the package (conf/ at the top of the repository, linked as attnlab/conf),
# so an installed copy finds them as well as a checkout does.
CONFIG_PACKAGE = "attnlab.conf"
CONFIG_DIR = str(importlib.resources.files(CONFIG_PACKAGE))
EXIT_USAGE = 2
_HYDRA_FLAGS_WITH_VALUE = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--experimental-rerun",
                           "--cfg", "-c", "-p", "--package"}
_HYDRA_FLAGS = {"-m", "--multirun", "--resolve", "--info", "-i", "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc"}


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


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _compose(config_name: str, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


def compose_config(config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """A command's config composed from Python (notebooks, tests) as its command line would compose it:
    a setting that the YAML files leave at its constructor default can be overridden like any other."""
    overrides = list(overrides)
    added = _settings_left_at_default(config_name, overrides)
    final = ["++" + o if _override_key(o) in added and o[:1] not in "+~" else o for o in overrides]
    return _compose(config_name, final, return_hydra_config)


def _settings_left_at_default(config_name: str, overrides: list[str]) -> set[str]:
    """Keys of ``overrides`` that no YAML file names because the YAML leaves them at their
    constructor default: still settings of their object, so they are overridden with ``++``.
    A key that is no parameter of its object is reported with the keys it has."""
    from hydra.errors import ConfigCompositionException

    current, added = list(overrides), set()
    for _ in range(len(current) + 1):
        try:
            _compose(config_name, current)
            return added
        except ConfigCompositionException as ex:
            missing = re.match(r"Could not override '([^']+)'", str(ex))
            at = [k for k, o in enumerate(current) if missing and _override_key(o) == missing.group(1) and o[:1] not in "+~"]
            if not at:
                raise
            key = missing.group(1)
            parent, _, leaf = key.rpartition(".")
            # which object holds the key is decided by the group choices, not by other values
            base = _compose(config_name, [o for o in current if "." not in _override_key(o)])
            node = OmegaConf.select(base, parent) if parent else base
            target = node.get("_target_") if isinstance(node, DictConfig) else None
            if not isinstance(target, str):
                raise
            if not accepts(target, leaf):
                params = signature_of(target)
                allowed = ", ".join(sorted(params[0])) if params else "(unknown)"
                raise ConfigError(key, current[at[0]].split("=", 1)[1], allowed, unknown_key=True) from ex
            current[at[0]] = "++" + current[at[0]]
            added.add(key)
    return added


def _precheck(config_name: str, overrides: list[str]) -> set[str]:
    """Compose and validate before Hydra runs, so errors are one line: with the first value of every
    sweep, then with each other value of each sweep (a bad value in a later job stops the whole
    multirun before its first job starts). Returns the keys to override with ``++``."""
    try:
        first = first_sweep_values(overrides)
        added = _settings_left_at_default(config_name, first)
        variants = [first] + [first[:k] + [v] + first[k + 1 :] for k, values in _sweep_values(overrides, first) for v in values]
        for variant in variants:
            _validate_or_fail(_compose(config_name, ["++" + o if _override_key(o) in added and o[:1] not in "+~" else o for o in variant]), config_name)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:
        fail(_one_line(ex, overrides))
    return added


def _sweep_values(overrides: list[str], first: list[str]) -> list[tuple[int, list[str]]]:
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


def _validate_or_fail(cfg: DictConfig, config_name: str | None = None) -> None:
    try:
        validate(cfg)
        if config_name:
            from attnlab.utils.settings import check_command

            check_command(config_name, cfg)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:  # e.g. an interpolation that cannot resolve
        fail(f"invalid config: {str(ex).splitlines()[0]}")


# --- the run folder and the console ---------------------------------------------------------------


# Which datasets each model config trains on (the names of conf/model and conf/data). A model or a
# dataset not named here (your own config) is not checked.
_FIXATION_DATA = {"osie", "mit1003", "salicon_fixations", "cat2000", "fixation_folder"}
MODEL_DATA: dict[str, set[str]] = {
    "gating_mnist": {"multimnist"},
    "gating_coco": {"coco_objects"},
    "saliency_dinet": _FIXATION_DATA | {"salicon"},
    "saliency_salicon": _FIXATION_DATA | {"salicon"},
    "saliency_transalnet": _FIXATION_DATA | {"salicon"},
    "autoencoder": {"images"},
}
_KNOWN_DATA = set().union(*MODEL_DATA.values()) | {"images"}


def model_data_mismatch(choices: Any) -> str | None:
    """Why the ``model``/``data`` options chosen cannot go together, or None (also for unknown names)."""
    if not choices:
        return None
    model, data = choices.get("model"), choices.get("data")
    allowed = MODEL_DATA.get(str(model))
    if allowed is not None and data in _KNOWN_DATA and data not in allowed:
        return (f"model={model} does not train on data={data}; choose data={' or data='.join(sorted(allowed))} "
                f"(or a model for {data})")
    return None


def _model_fits_data_or_fail(config_name: str, choices: Any) -> None:
    """``train model=X data=Y`` where X does not train on Y: one line before anything starts (eval and
    analyze check it when the checkpoint carries no config of its own: :func:`attnlab.utils.checkpoint.load_model`)."""
    if config_name == "train" and (message := model_data_mismatch(choices)):
        fail(message)


def _writable_or_fail(config_name: str, overrides: list[str], multirun: bool) -> None:
    """Fail with one line when the run folder Hydra is about to make cannot be made or written, or
    when the model cannot train on the data."""
    try:
        cfg = _compose(config_name, overrides, return_hydra_config=True)
        folder = Path(str(OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")))
        choices = OmegaConf.select(cfg, "hydra.runtime.choices")
    except Exception:  # reported by Hydra (or the checks above) with its own message
        return
    _model_fits_data_or_fail(config_name, choices)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        fail(f"cannot write the run folder {folder}: {existing} is a file, not a folder (set paths.log_dir=PATH)")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"cannot write the run folder {folder}: {existing} is not writable (set paths.log_dir=PATH)")


class ConsoleFilter(logging.Filter):
    """Console records: attnlab's from INFO, the dependencies' from ERROR (the rest: log file only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("attnlab") or record.name == "__main__" or record.levelno >= logging.ERROR


def quiet_console() -> None:
    """Route the dependencies' logging and warnings through the root handlers (so the log file keeps
    them) and filter the console ones with :class:`ConsoleFilter`."""
    root = logging.getLogger()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # Lightning's own stderr handler (set when imported first)
                logger.removeHandler(handler)
        logger.propagate = True
    logging.captureWarnings(True)
    for handler in root.handlers:
        if not isinstance(handler, logging.FileHandler) and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter())


def _log_file_only(message: str, exc_info: bool = False) -> None:
    """Append ``message`` to the run's log file(s) only (the console gets the one-line error)."""
    record = logging.getLogger("attnlab").makeRecord("attnlab", logging.ERROR, __file__, 0, message, None,
                                                     sys.exc_info() if exc_info else None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
            handler.flush()


_BOOKKEEPING = {"hparams.yaml"}  # what loggers write when they start, before any result


def _discard_if_empty(folder: Path | None, task_name: str) -> bool:
    """Remove ``folder`` when it holds only bookkeeping (Hydra's config and log, the loggers'
    hyperparameters): a run that failed before any work of its own. Returns whether it was removed."""
    if folder is None or not folder.is_dir():
        return False
    own = [p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] != ".hydra"
           and p.relative_to(folder) != Path(f"{task_name}.log") and p.name not in _BOOKKEEPING]
    if own:
        return False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _run_folder() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:
        return None


def _find_user_error(ex: BaseException | None) -> UserError | None:
    """The UserError behind ``ex`` (Hydra wraps errors raised while instantiating)."""
    seen = set()
    while ex is not None and id(ex) not in seen:
        if isinstance(ex, UserError):
            return ex
        if type(ex).__module__.startswith("omegaconf") and type(ex).__name__.endswith(("InterpolationKeyError", "InterpolationResolutionError", "UnsupportedInterpolationType", "MissingMandatoryValue")):
            key = getattr(ex, "full_key", None)
            text = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
            return UserError(f"invalid config: {key + ': ' if key else ''}{text}")
        if type(ex).__name__ == "MisconfigurationException":  # Lightning's word for a setting it cannot use
            text = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
            if "could not find the monitored key" in text:
                text += " (set optimized_metric= to one of them)"
            return UserError(f"invalid config: {text}")
        seen.add(id(ex))
        ex = ex.__cause__ or ex.__context__
    return None


def _expand_resume(config_name: str) -> None:
    """Rewrite ``sys.argv`` when it has ``resume=<run folder>`` (not null): the stored run's overrides."""
    from attnlab.utils.resume import RESUME_KEY, resume_overrides

    overrides, multirun, _ = _split_argv(sys.argv[1:])
    asked = [o for o in overrides if _override_key(o) == RESUME_KEY and o.split("=", 1)[1].strip("'\"") not in ("", "null")]
    if not asked:
        return
    if multirun:
        fail(f"{RESUME_KEY}= resumes one run; it cannot be combined with -m/--multirun")
    flags = [a for a in sys.argv[1:] if a not in overrides]
    run_dir = asked[-1].split("=", 1)[1].strip("'\"")
    try:
        new = resume_overrides(config_name, run_dir, [o for o in overrides if _override_key(o) != RESUME_KEY],
                               compose_config)
    except UserError as ex:
        fail(str(ex))
    sys.argv = [sys.argv[0], *flags, *new]


def entry_point(config_name: str, resumable: bool = False) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a task ``f(cfg)`` into a console entry point with clean errors.

    ``resumable``: ``resume=<run folder>`` reruns that folder's job in it with its stored overrides
    (see :mod:`attnlab.utils.resume`).

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
            quiet_console()
            folder = _run_folder()
            print(f"attnlab {config_name}: writing to {folder}", flush=True)
            start = time.perf_counter()
            _validate_or_fail(cfg, config_name)
            try:
                result = task(cfg)
            except Exception as ex:
                user_error = _find_user_error(ex)
                message = str(user_error) if user_error is not None else f"{type(ex).__name__}: {ex}"
                _log_file_only(f"attnlab: error: {message}", exc_info=user_error is None)
                if _discard_if_empty(folder, config_name):
                    print(f"attnlab {config_name}: failed before writing anything; {folder} removed", flush=True)
                if user_error is None:
                    raise
                fail(str(user_error).strip().splitlines()[0] if str(user_error).strip() else type(user_error).__name__)
            print(f"attnlab {config_name}: done in {time.perf_counter() - start:.1f} s; results in {folder}", flush=True)
            return result

        hydra_task = hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name)(guarded)

        @functools.wraps(task)
        def main() -> Any:
            if resumable:
                _expand_resume(config_name)
            overrides, multirun, other_flags = _split_argv(sys.argv[1:])
            if not _full_errors() and not other_flags:
                added = _precheck(config_name, overrides)
            else:  # Hydra reports errors itself; settings left at their defaults still need ++
                try:
                    added = _settings_left_at_default(config_name, first_sweep_values(overrides))
                except Exception:
                    added = set()
            if not _full_errors() and not other_flags:
                final = ["++" + o if _override_key(o) in added and o[:1] not in "+~" else o for o in first_sweep_values(overrides)]
                _writable_or_fail(config_name, final, multirun)
            sys.argv = [sys.argv[0]] + ["++" + a if _override_key(a) in added and a[:1] not in "+~" and "=" in a else a for a in sys.argv[1:]]
            return hydra_task()

        return main

    return decorate
