"""The learned scanpath model as benchmark sources (entry points in pyproject.toml):

- ``scanpath:<ckpt>`` — the conditional density of the next fixation given the true history (the
  conditional metrics), its history-free density for the saliency metrics, and scanpaths sampled from
  its own history: for each human scanpath one sample of the same length, seeded by the benchmark's
  ``seed``, the image and the human's index (deterministic).
- ``scanpath_free:<ckpt>`` — the same network with no history (k = 0): a probabilistic saliency model.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch

from attnlab.data.base import INPUT_SIZE
from attnlab.data.fixations import Scanpath
from attnlab.sources import AttentionSource, BenchmarkContext, image_batch, register_source
from attnlab.utils.checkpoint import load_trained
from attnlab.utils.config import PositiveFloat, UserError, check_arguments

__all__ = ["ScanpathModelSource", "HistoryFreeScanpathSource", "ScanpathSamplingSettings", "load_scanpath_model"]

log = logging.getLogger(__name__)

TARGET = "attnlab.models.scanpath.ScanpathModule"


class ScanpathSamplingSettings:
    """Settings of ``scanpath:<ckpt>``'s sampled scanpaths (the config node ``scanpath:``).

    Args:
        temperature: each fixation is drawn from p^(1/temperature), renormalised: 1 samples the model's
            own density; lower values pick likelier places (towards winner-take-all). Tune it on val.
    """

    def __init__(self, temperature: PositiveFloat = 1.0) -> None:
        check_arguments(ScanpathSamplingSettings, {"temperature": temperature})
        self.temperature = float(temperature)


def load_scanpath_model(path: str):
    """(the trained module in eval mode, its stored config); another family's checkpoint is one line."""

    hint = "; train one with python -m attnlab.train experiment=scanpath_deepgaze_osie"
    return load_trained(path, TARGET.rsplit(".", 1)[-1], "the scanpath model", hint)


class _ScanpathModelBase(AttentionSource):
    kind = "scanpath"

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError(f"attention={self.kind} needs a checkpoint: attention={self.kind}:<path to .ckpt>")
        self.model, cfg = load_scanpath_model(argument)
        self.image_size = tuple(cfg.data.get("image_size") or INPUT_SIZE)
        self.history = int(cfg.data.history)
        self.name = self.kind
        settings = ctx.options.get("scanpath") if ctx is not None else None
        self.temperature = (settings or ScanpathSamplingSettings()).temperature
        self._priority: tuple = (None, None)
        self._said_cut = False

    @torch.no_grad()
    def _priority_of(self, ctx: BenchmarkContext, i: int) -> torch.Tensor:
        if self._priority[0] != (id(ctx), i):
            x = image_batch([ctx.data.load_image(i)], self.image_size)
            self._priority = ((id(ctx), i), self.model.net.priority(self.model.net.features(x)))
        return self._priority[1]

    @torch.no_grad()
    def _log_densities(self, ctx: BenchmarkContext, i: int, histories: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """N×h×w grid log densities for N histories (normalised coordinates, most recent first)."""
        h, w = self.image_size
        lp = self.model.net.log_density(
            self._priority_of(ctx, i), torch.from_numpy(histories).float(), torch.from_numpy(masks), w / h
        )
        return lp.double().numpy()

    def _empty(self, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, self.history, 2)), np.zeros((n, self.history), bool)

    def log_density(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        return self._log_densities(ctx, i, *self._empty())[0]

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        return np.exp(self.log_density(ctx, i))


@register_source("scanpath_free")
class HistoryFreeScanpathSource(_ScanpathModelBase):
    kind = "scanpath_free"


@register_source("scanpath")
class ScanpathModelSource(_ScanpathModelBase):
    def conditional_log_density(self, ctx, i, history_x, history_y) -> np.ndarray:
        hgt, wid = ctx.data.stimuli[i].size
        if len(history_x) > self.history and not self._said_cut:
            log.info("%s: histories are cut to the last %d fixations (the model's k)", self.name, self.history)
            self._said_cut = True
        recent = np.stack([np.asarray(history_x) / wid, np.asarray(history_y) / hgt], 1)[::-1][: self.history]
        histories, masks = self._empty()
        histories[0, : len(recent)] = recent
        masks[0, : len(recent)] = True
        return self._log_densities(ctx, i, histories, masks)[0]

    def scanpaths(self, ctx: BenchmarkContext, i: int) -> list[Scanpath]:
        """One sample per human scanpath, of its length, each fixation drawn from p(· | own history)."""
        humans = ctx.human_scanpaths[i]
        if not humans:
            return []
        hgt, wid = ctx.data.stimuli[i].size
        rngs = [np.random.default_rng([ctx.seed, i, j]) for j in range(len(humans))]
        lengths = [len(h.x) for h in humans]
        histories, masks = self._empty(len(humans))
        drawn = np.zeros((len(humans), max(lengths), 2))
        for t in range(max(lengths)):
            log_p = self._log_densities(ctx, i, histories, masks)  # N×gh×gw
            gh, gw = log_p.shape[-2:]
            for j, rng in enumerate(rngs):
                scaled = log_p[j].ravel() / self.temperature
                p = np.exp(scaled - scaled.max())
                cell = rng.choice(p.size, p=p / p.sum())
                drawn[j, t] = ((cell % gw + rng.random()) / gw, (cell // gw + rng.random()) / gh)
            histories = np.concatenate([drawn[:, t : t + 1], histories[:, :-1]], 1)
            masks = np.concatenate([np.ones((len(humans), 1), bool), masks[:, :-1]], 1)
        return [
            Scanpath(drawn[j, :n, 0] * wid, drawn[j, :n, 1] * hgt, subject=f"{self.name}_{j}", stimulus=human.stimulus)
            for j, (n, human) in enumerate(zip(lengths, humans))
        ]
