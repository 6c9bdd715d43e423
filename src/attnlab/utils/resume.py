"""``resume=<run folder>``: continue a run in its own folder with its own stored config.

The run folder keeps the overrides it was started with (``.hydra/overrides.yaml``) and the config
they composed (``.hydra/config.yaml``). Resuming replays those overrides with Hydra's run folder set
to the old one, so metrics, checkpoints and the choice of the best checkpoint stay in one place; the
training command then picks up the newest checkpoint there. Any other setting on the command line
that would change the composed config is refused, naming the keys, because a checkpoint trained
under one config and continued under another is neither run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from attnlab.utils.checkpoint import stored_config
from attnlab.utils.config import UserError

__all__ = ["RESUME_KEY", "checkpoint_config_differences", "config_differences", "flatten", "resume_overrides"]

RESUME_KEY = "resume"
# where a run lives and how it starts are not part of what it trains
_NOT_COMPARED = {"hydra", "paths", RESUME_KEY, "ckpt_path"}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def config_differences(stored: DictConfig, composed: DictConfig) -> list[str]:
    """``key (stored -> new)`` for every leaf that differs (interpolations compared as written)."""
    a, b = (
        {
            k: v
            for k, v in flatten(OmegaConf.to_container(c, resolve=False)).items()
            if k.split(".")[0] not in _NOT_COMPARED
        }
        for c in (stored, composed)
    )
    missing = object()
    return [
        f"{key} ({a.get(key, '<unset>')!s} -> {b.get(key, '<unset>')!s})"
        for key in sorted(set(a) | set(b))
        if a.get(key, missing) != b.get(key, missing)
    ]


def resume_overrides(
    config_name: str, run_dir: str | Path, overrides: list[str], compose_config: Callable[[str, list[str]], DictConfig]
) -> list[str]:
    """The overrides that rerun ``run_dir``'s job in ``run_dir``; ``overrides`` are the command line's
    others, which may repeat the stored settings but not change them (UserError naming the keys).
    ``compose_config(name, overrides)`` composes as the command line does (the CLI passes its own)."""
    run_dir = Path(run_dir).expanduser().resolve()
    hydra_dir = run_dir / ".hydra"
    stored_overrides_file, stored_config_file = hydra_dir / "overrides.yaml", hydra_dir / "config.yaml"
    if not stored_config_file.is_file() or not stored_overrides_file.is_file():
        raise UserError(f"{RESUME_KEY}={run_dir}: not a run folder (no .hydra/config.yaml and overrides.yaml)")
    stored_overrides = [str(o) for o in OmegaConf.load(stored_overrides_file)]
    stored_overrides = [o for o in stored_overrides if o.split("=", 1)[0].lstrip("+~") not in (RESUME_KEY, "ckpt_path")]
    stored = OmegaConf.load(stored_config_file)
    composed = compose_config(config_name, stored_overrides + [o for o in overrides if not _is_hydra(o)])
    changed = config_differences(stored, composed)
    if changed:
        hint = "" if overrides else " (the configs in conf/ changed since the run)"
        raise UserError(
            f"{RESUME_KEY}={run_dir} runs with its stored config; the command line changes{hint}: " + ", ".join(changed)
        )
    # Hydra's own settings pass through (Lightning's DDP launcher re-runs the command with its output
    # subfolder per rank); the run folder is always the stored run's. Quoted: Hydra's override
    # grammar stops at some path characters.
    passthrough = [o for o in overrides if _is_hydra(o) and o.split("=", 1)[0].lstrip("+~") != "hydra.run.dir"]
    return stored_overrides + passthrough + [f"hydra.run.dir='{run_dir}'", f"{RESUME_KEY}='{run_dir}'"]


def _is_hydra(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


# where files are and how they are read may change between machines; what is trained may not
_LOCATION_KEYS = ("_dir", "_root", "_path", "_file", "num_workers", "init_from")


def checkpoint_config_differences(checkpoint: dict[str, Any], cfg: DictConfig) -> list[str]:
    """``key (checkpoint -> this run)`` for each model/data setting that differs from the config stored
    in ``checkpoint`` (none when it stores none); file locations are not compared."""

    stored = stored_config(checkpoint)
    if stored is None:
        return []
    current = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data") if key in cfg}
    a = flatten(OmegaConf.to_container(stored, resolve=True))
    b = flatten(current)
    keys = [k for k in sorted(set(a) | set(b)) if not k.rsplit(".", 1)[-1].endswith(_LOCATION_KEYS)]
    unset = "<unset>"
    return [f"{k} ({a.get(k, unset)} -> {b.get(k, unset)})" for k in keys if a.get(k, unset) != b.get(k, unset)]
