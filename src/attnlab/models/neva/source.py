"""NeVA as a benchmark source, run in this process: ``python -m attnlab.benchmark data=osie
attention=centre_bias,neva:neva_classifier``.

``neva:<name>`` builds the NeVA model of ``conf/model/<name>.yaml`` (composed as the scanpaths command
composes it, ``neva`` alone: ``neva_classifier``); ``neva:<checkpoint>`` takes an autoencoder checkpoint
of ``python -m attnlab.train model=autoencoder`` as the task model of ``neva_reconstruction``, or a
checkpoint of amortised NeVA (``python -m attnlab.train model=neva_amortised``): the trained α and its
task model, loaded as ``python -m attnlab.scanpaths ckpt_path=`` loads it (the stored config decides
everything, so ``neva.overrides`` must stay empty), frozen and in eval mode.

Per image it searches 1 + ``starts`` scanpaths: one with the model's configured start (the paper's
centre) and ``starts`` with random starts (``search.start=random``), each from its own generator
seeded by (``ctx.seed``, image index, start), so an image's scanpaths do not depend on the batch,
``max_images`` or the device. Fixations are in pixels of the ORIGINAL image, without durations (the
benchmark reports MultiMatch duration as not available). The saliency map is the Gaussian density
(``ctx.sigma_px``) of the fixations of all the starts.

Amortised NeVA takes no start position (its first fixation is α's answer to the fully blurred image,
nothing fixated yet) and has no randomness, so it gives ONE deterministic scanpath per image (its L
fixations, subject ``neva``), the same for every seed; ``neva.starts`` does not apply (logged once).

Images are searched ``batch_size`` at a time, in the order the benchmark scores them, on the first
request for one of them; the time per image is logged.

Settings: :class:`NevaSourceSettings`, the benchmark's ``neva`` node (``neva.starts=2``,
``neva.device=cuda``, ``'neva.overrides=[model.search.steps=5]'`` on the command line).
Found through the ``attnlab.sources`` entry point ``neva`` (pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from attnlab.data.fixations import Scanpath, gaussian_density
from attnlab.data.images import ImageFolder
from attnlab.metrics.maps import free_cpus
from attnlab.models.neva.module import NevaModule
from attnlab.sources import AttentionSource, BenchmarkContext, register_source
from attnlab.utils.checkpoint import load_trained, read_checkpoint, stored_config, user_error_behind
from attnlab.utils.compose import CONFIG_DIR, compose, compose_config
from attnlab.utils.config import (
    Device,
    NonNegativeInt,
    PositiveInt,
    UserError,
    check_arguments,
    resolve_device,
    validate,
)

log = logging.getLogger(__name__)

__all__ = ["NevaSource", "NevaSourceSettings", "build_neva", "neva_configs", "start_generator"]

NEVA_TARGET = "attnlab.models.neva.NevaModule"
AUTOENCODER_TARGET = "attnlab.models.neva.autoencoder.AutoencoderModule"
AMORTISED_TARGET = "attnlab.models.neva.amortised.AmortisedNevaModule"
AMORTISED = "neva_amortised"  # the config name build_neva gives for an amortised checkpoint
DEFAULT_CONFIG = "neva_classifier"


@dataclass
class NevaSourceSettings:
    """Settings of ``attention=neva:...`` (the benchmark's config node ``neva``).

    Args:
        starts: extra scanpaths per image, each searched from random starts (``search.start=random``),
            next to the one with the model's configured start (not for amortised NeVA, which takes no
            start: one scanpath per image).
        batch_size: images searched together; each brings 1 + ``starts`` searches to the batch.
        device: where NeVA runs (``cpu``, ``cuda``, ``cuda:1``, ``auto``).
        overrides: overrides of the NeVA config as on the scanpaths command line, e.g.
            ``[model.search.steps=5, model.image_size=[112,112]]``.
    """

    starts: NonNegativeInt = 4
    batch_size: PositiveInt = 8
    device: Device = "cpu"
    overrides: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.overrides = tuple(str(o) for o in self.overrides)
        check_arguments(type(self), vars(self))


def start_generator(seed: int, index: int, start: int) -> torch.Generator:
    """The CPU generator of scanpath ``start`` (0: the configured start) of image ``index`` under ``seed``."""
    state = np.random.SeedSequence([int(seed), int(index), int(start)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# --- building the model -----------------------------------------------------------------------


def _model_configs() -> list[str]:
    """The names of the configs in conf/model."""

    return sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def _target_of(name: str) -> str:
    """The ``_target_`` of model config ``name`` as the scanpaths command composes it (with its defaults)."""
    from omegaconf import OmegaConf

    try:
        own = OmegaConf.load(Path(CONFIG_DIR) / "model" / f"{name}.yaml").get("_target_")
        return str(own or compose("scanpaths", [f"model={name}"]).model.get("_target_"))
    except Exception:  # a config that does not compose alone: not one this source can build
        return ""


def neva_configs() -> list[str]:
    """The names of the NeVA model configs (conf/model/<name>.yaml building a NevaModule)."""
    return [name for name in _model_configs() if _target_of(name) == NEVA_TARGET]


def _family(target: str) -> str:
    """``attnlab.models.saliency.module.SaliencyModule`` → ``saliency``; other targets unchanged."""
    parts = target.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["attnlab", "models"] else target


def _looks_like_path(argument: str) -> bool:
    return Path(argument).suffix in (".ckpt", ".pt", ".pth") or "/" in argument or Path(argument).expanduser().exists()


def _accepted() -> str:
    """What ``neva:`` takes, for the error messages."""
    return (
        "NeVA takes a checkpoint of `python -m attnlab.train model=neva_amortised` (amortised NeVA), an "
        "autoencoder checkpoint of `python -m attnlab.train model=autoencoder` or a model config name "
        f"({', '.join(neva_configs())})"
    )


def _checkpoint_config(path: Path) -> tuple[str, dict[str, Any]]:
    """(the NeVA config a checkpoint feeds, the checkpoint): ``neva_reconstruction`` for an autoencoder,
    :data:`AMORTISED` for amortised NeVA; a UserError naming the file for anything else."""

    checkpoint = read_checkpoint(path)  # a missing or unreadable file is a UserError here
    stored = stored_config(checkpoint, path)
    target = str(stored.model.get("_target_")) if stored is not None and "model" in stored else None
    if target == AUTOENCODER_TARGET:
        return "neva_reconstruction", checkpoint
    if target == AMORTISED_TARGET:
        return AMORTISED, checkpoint
    if target is None:
        raise UserError(
            f"attention=neva:{path} carries no stored model config: not an attnlab checkpoint; {_accepted()}"
        )
    family = _family(target)
    hint = f"; score it with attention={family}:{path}" if family in ("saliency", "gating") else ""
    raise UserError(
        f"attention=neva:{path} is a {family} checkpoint ({target}), not amortised NeVA or an autoencoder: "
        f"{_accepted()}{hint}"
    )


def _load_amortised(path: Path, contents: dict[str, Any], overrides: Sequence[str]):
    """The AmortisedNevaModule of a ``model=neva_amortised`` checkpoint (its stored config and weights),
    frozen and in eval mode (:func:`attnlab.utils.checkpoint.load_trained`)."""

    if overrides:  # the checkpoint decides the architecture and the perception settings, as with ckpt_path=
        raise UserError(
            f"neva.overrides={list(overrides)}: attention=neva:{path} is an amortised NeVA checkpoint, whose "
            "stored config decides every setting; leave neva.overrides empty"
        )
    module, _ = load_trained(path, AMORTISED_TARGET.rsplit(".", 1)[-1], "amortised NeVA", checkpoint=contents)
    module.requires_grad_(False)  # α too: the benchmark only predicts
    return module.eval()


def build_neva(argument: Optional[str], seed: int = 0, overrides: Sequence[str] = ()):
    """(NevaModule, config name) of ``neva:<argument>``: a model config name (None: neva_classifier) or an
    autoencoder checkpoint, composed with ``overrides`` as the scanpaths command line composes it; or an
    amortised NeVA checkpoint: (its AmortisedNevaModule, frozen in eval mode, ``neva_amortised``)."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict

    argument = (argument or DEFAULT_CONFIG).strip()
    checkpoint = None
    if _looks_like_path(argument):
        checkpoint = Path(argument).expanduser()
        name, stored = _checkpoint_config(checkpoint)
        if name == AMORTISED:
            return _load_amortised(checkpoint, stored, overrides), name
    else:
        name = argument
        if name not in _model_configs():
            raise UserError(f"attention=neva:{name}: no model config {name!r}; use one of: {', '.join(neva_configs())}")
        if _target_of(name) != NEVA_TARGET:
            raise UserError(
                f"attention=neva:{name}: model config {name} builds {_target_of(name) or 'no model'} "
                f"({_family(_target_of(name))} family), not {NEVA_TARGET}; use one of: {', '.join(neva_configs())}"
            )
    try:
        cfg = compose_config("scanpaths", [f"model={name}", f"seed={int(seed)}", *overrides])
    except HydraException as ex:
        raise UserError(f"neva.overrides={list(overrides)}: {str(ex).strip().splitlines()[0]}") from None
    if checkpoint is not None:
        with open_dict(cfg):
            cfg.model.task.checkpoint = str(checkpoint)
    model_cfg = OmegaConf.create({"model": OmegaConf.to_container(cfg.model, resolve=True)})
    validate(model_cfg)

    try:
        module = hydra.utils.instantiate(model_cfg.model, _convert_="all")
    except Exception as ex:
        found = user_error_behind(ex)
        if found is None:
            raise
        raise found from None
    if not isinstance(module, NevaModule):
        raise UserError(f"attention=neva:{argument}: model._target_ builds {type(module).__name__}, not NevaModule")
    return module, name


# --- the source -------------------------------------------------------------------------------


@register_source("neva")
class NevaSource(AttentionSource):
    """NeVA scanpaths (1 + ``starts`` per image; amortised NeVA: 1) and the density of their fixations,
    computed in this process."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        settings = ctx.options.get("neva", NevaSourceSettings())
        if not isinstance(settings, NevaSourceSettings):
            raise UserError(f"the benchmark's neva node must build {NevaSourceSettings.__qualname__}")
        self.settings = settings
        self.device = torch.device(resolve_device(settings.device, "neva.device"))
        self.module, self.config_name = build_neva(argument, ctx.seed, settings.overrides)
        self.module.to(self.device)
        self.name = f"neva:{argument or DEFAULT_CONFIG}"
        self.amortised = self.config_name == AMORTISED
        if self.amortised:
            log.info(
                "%s: amortised NeVA takes no start position and is deterministic: one scanpath of %d fixations "
                "per image (neva.starts=%d does not apply)",
                self.name,
                self.module.length,
                settings.starts,
            )
        self.random_search = None if self.amortised else dataclasses.replace(self.module.search_config, start="random")
        # the benchmark scores on one thread; the searches get the threads the process had (as far as cores are idle)
        self.threads = torch.get_num_threads()
        self.order = list(range(len(ctx.data)))
        self.seconds: list[float] = []  # per image searched (its share of its batch)
        self._paths: dict[int, list[Scanpath]] = {}

    def prepare(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        """Batches follow the order in which the benchmark scores the images."""
        self.order = list(indices)

    def scanpaths(self, ctx: BenchmarkContext, i: int) -> list[Scanpath]:
        if i not in self._paths:
            self._search(ctx, self._batch_from(i))
        return self._paths[i]

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        paths = self.scanpaths(ctx, i)
        x = np.concatenate([p.x for p in paths])
        y = np.concatenate([p.y for p in paths])
        return gaussian_density(x, y, ctx.data.stimuli[i].size, ctx.sigma_px)

    def _batch_from(self, i: int) -> list[int]:
        """Image ``i`` and the next images to be scored that have no scanpaths yet (``batch_size`` in all)."""
        order = self.order[self.order.index(i) :] if i in self.order else [i]
        return [j for j in order if j not in self._paths][: self.settings.batch_size]

    def _images(self, ctx: BenchmarkContext, indices: list[int]) -> torch.Tensor:
        """B×3×H×W in [0, 1] at the model's input size, read as the scanpaths command reads them."""

        stimuli = [ctx.data.stimuli[j] for j in indices]
        for s in stimuli:
            if s.path is None or not Path(s.path).is_file():
                raise UserError(f"image file of stimulus {s.id!r} not found: {s.path}")
        files = ImageFolder([s.path for s in stimuli], self.module.image_size, names=[s.id for s in stimuli])
        return torch.stack([files[k]["image"] for k in range(len(files))])

    def _search(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        started = time.perf_counter()
        images = self._images(ctx, indices)
        stimuli = [ctx.data.stimuli[j] for j in indices]
        starts = 0 if self.amortised else int(self.settings.starts)
        threads = torch.get_num_threads()
        if self.device.type == "cpu":  # no more threads than idle cores: on a busy host each op's barrier waits
            torch.set_num_threads(max(1, min(self.threads, free_cpus())))
        used = torch.get_num_threads()
        try:
            if self.amortised:  # L forward passes of α, no search (no gradients, no generator)
                with torch.inference_mode():
                    first, _ = self.module.scanpaths(images)
            else:
                with torch.inference_mode(False), torch.enable_grad():
                    first, _ = self.module.scanpaths(
                        images, generator=[start_generator(ctx.seed, j, 0) for j in indices]
                    )
            if starts:
                with torch.inference_mode(False), torch.enable_grad():
                    more, _ = self.module.scanpaths(
                        images.repeat_interleave(starts, 0),
                        generator=[start_generator(ctx.seed, j, k) for j in indices for k in range(1, starts + 1)],
                        search=self.random_search,
                    )
        finally:
            torch.set_num_threads(threads)
        sizes = torch.tensor([list(s.size) for s in stimuli])
        ids = [s.id for s in stimuli]
        configured = first.scanpaths(sizes, ids, subject="neva")
        extra = []
        if starts:
            xy = more.pixels(sizes.repeat_interleave(starts, 0)).detach().double().cpu().numpy()
            extra = [
                Scanpath(p[:, 0], p[:, 1], subject=f"neva_random{r % starts + 1}", stimulus=ids[r // starts])
                for r, p in enumerate(xy)
            ]
        for n, j in enumerate(indices):
            self._paths[j] = [configured[n]] + extra[n * starts : (n + 1) * starts]
        seconds = time.perf_counter() - started
        self.seconds += [seconds / len(indices)] * len(indices)
        log.info(
            "%s: %d images × %d scanpaths in %.1f s (%.2f s per image, %s%s)",
            self.name,
            len(indices),
            1 + starts,
            seconds,
            seconds / len(indices),
            self.device,
            f", {used} thread{'s' if used > 1 else ''}" if self.device.type == "cpu" else "",
        )
