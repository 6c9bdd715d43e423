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
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from attnlab.utils.compose import (  # noqa: F401  (CONFIG_DIR, compose_config: handed on to callers)
    CONFIG_DIR,
    CONFIG_PACKAGE,
    compose,
    compose_config,
    first_sweep_values,
    force_added,
    override_key,
    settings_left_at_default,
    sweep_values,
)
from attnlab.utils.config import UserError, validate
from attnlab.utils.model_data import model_data_mismatch
from attnlab.utils.resume import RESUME_KEY, resume_overrides
from attnlab.utils.settings import check_command

__all__ = ["CONFIG_DIR", "CONFIG_PACKAGE", "compose_config", "entry_point", "fail", "first_sweep_values"]

EXIT_USAGE = 2
_HYDRA_FLAGS_WITH_VALUE = {
    "-cn",
    "--config-name",
    "-cp",
    "--config-path",
    "-cd",
    "--config-dir",
    "--experimental-rerun",
    "--cfg",
    "-c",
    "-p",
    "--package",
}
_HYDRA_FLAGS = {
    "-m",
    "--multirun",
    "--resolve",
    "--info",
    "-i",
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--shell-completion",
    "-sc",
}


def fail(message: str) -> None:
    """Print one line to stderr and exit with the usage error code."""
    print(f"attnlab: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


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
        value = next(
            (o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=")[0] == full_key and "=" in o), None
        )
        reason = str(cause).strip().splitlines()[0]
        shown = f"{full_key}={value}" if value is not None else full_key
        return f"invalid config: {shown}: {reason} ({first})"
    return f"invalid config: {first}"


def _precheck(config_name: str, overrides: list[str], settings: type | None) -> set[str]:
    """Compose and validate before Hydra runs, so errors are one line: with the first value of every
    sweep, then with each other value of each sweep (a bad value in a later job stops the whole
    multirun before its first job starts). Returns the keys to override with ``++``."""
    try:
        first = first_sweep_values(overrides)
        added = settings_left_at_default(config_name, first)
        variants = [first] + [
            first[:k] + [v] + first[k + 1 :] for k, values in sweep_values(overrides, first) for v in values
        ]
        for variant in variants:
            _validate_or_fail(compose(config_name, force_added(variant, added)), config_name, settings)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:
        fail(_one_line(ex, overrides))
    return added


def _validate_or_fail(cfg: DictConfig, config_name: str, settings: type | None) -> None:
    try:
        validate(cfg)
        if settings is not None:
            check_command(config_name, cfg, settings)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:  # e.g. an interpolation that cannot resolve
        fail(f"invalid config: {str(ex).splitlines()[0]}")


# --- the run folder and the console ---------------------------------------------------------------


def _model_fits_data_or_fail(config_name: str, choices: Any) -> None:
    """``train model=X data=Y`` where X does not train on Y: one line before anything starts (eval and
    analyze check it when the checkpoint carries no config of its own: :func:`attnlab.utils.checkpoint.load_model`)."""
    if config_name == "train" and (message := model_data_mismatch(choices)):
        fail(message)


def _writable_or_fail(config_name: str, overrides: list[str], multirun: bool) -> None:
    """Fail with one line when the run folder Hydra is about to make cannot be made or written, or
    when the model cannot train on the data."""
    try:
        cfg = compose(config_name, overrides, return_hydra_config=True)
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
        if not isinstance(handler, logging.FileHandler) and not any(
            isinstance(f, ConsoleFilter) for f in handler.filters
        ):
            handler.addFilter(ConsoleFilter())


def _log_file_only(message: str, exc_info: bool = False) -> None:
    """Append ``message`` to the run's log file(s) only (the console gets the one-line error)."""
    record = logging.getLogger("attnlab").makeRecord(
        "attnlab", logging.ERROR, __file__, 0, message, None, sys.exc_info() if exc_info else None
    )
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
    own = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.relative_to(folder).parts[0] != ".hydra"
        and p.relative_to(folder) != Path(f"{task_name}.log")
        and p.name not in _BOOKKEEPING
    ]
    if own:
        return False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            handler.close()
            root.removeHandler(handler)  # a closed FileHandler reopens its file on the next record
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
        if type(ex).__module__.startswith("omegaconf") and type(ex).__name__.endswith(
            (
                "InterpolationKeyError",
                "InterpolationResolutionError",
                "UnsupportedInterpolationType",
                "MissingMandatoryValue",
            )
        ):
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

    overrides, multirun, _ = _split_argv(sys.argv[1:])
    asked = [
        o for o in overrides if override_key(o) == RESUME_KEY and o.split("=", 1)[1].strip("'\"") not in ("", "null")
    ]
    if not asked:
        return
    if multirun:
        fail(f"{RESUME_KEY}= resumes one run; it cannot be combined with -m/--multirun")
    flags = [a for a in sys.argv[1:] if a not in overrides]
    run_dir = asked[-1].split("=", 1)[1].strip("'\"")
    try:
        new = resume_overrides(
            config_name, run_dir, [o for o in overrides if override_key(o) != RESUME_KEY], compose_config
        )
    except UserError as ex:
        fail(str(ex))
    sys.argv = [sys.argv[0], *flags, *new]


def entry_point(
    config_name: str, settings: type | None = None, resumable: bool = False
) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a task ``f(cfg)`` into a console entry point with clean errors.

    ``settings``: the dataclass declaring the command's own keys (:mod:`attnlab.utils.settings`),
    checked before anything runs.

    ``resumable``: ``resume=<run folder>`` reruns that folder's job in it with its stored overrides
    (see :mod:`attnlab.utils.resume`).

    Usage::

        @entry_point("train", TrainSettings)
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
            _validate_or_fail(cfg, config_name, settings)
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
            print(
                f"attnlab {config_name}: done in {time.perf_counter() - start:.1f} s; results in {folder}", flush=True
            )
            return result

        hydra_task = hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name)(
            guarded
        )

        @functools.wraps(task)
        def main() -> Any:
            if resumable:
                _expand_resume(config_name)
            overrides, multirun, other_flags = _split_argv(sys.argv[1:])
            if not _full_errors() and not other_flags:
                added = _precheck(config_name, overrides, settings)
                _writable_or_fail(config_name, force_added(first_sweep_values(overrides), added), multirun)
            else:  # Hydra reports errors itself; settings left at their defaults still need ++
                try:
                    added = settings_left_at_default(config_name, first_sweep_values(overrides))
                except Exception:
                    added = set()
            sys.argv = [sys.argv[0], *force_added(sys.argv[1:], added)]
            return hydra_task()

        return main

    return decorate
