"""The factorised saliency models as a benchmark source: ``python -m attnlab.benchmark
attention=centre_bias,saliency:<checkpoint>`` scores a trained model next to the baselines.

Found by the benchmark through the ``attnlab.sources`` entry point ``saliency`` (pyproject.toml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from attnlab.data.base import INPUT_SIZE
from attnlab.models.saliency.module import load_saliency_model
from attnlab.sources import BatchedMapSource, BenchmarkContext, register_source
from attnlab.utils.config import UserError

__all__ = ["SaliencyModelSource"]

log = logging.getLogger(__name__)


def _file(path) -> str:
    return str(Path(path).resolve())


@register_source("saliency")
class SaliencyModelSource(BatchedMapSource):
    """Maps of a trained saliency model (``saliency:<checkpoint>``), predicted at the size it was
    trained at, ``batch_size`` images at a time (the benchmark resizes them to each image)."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError("attention=saliency needs a checkpoint: attention=saliency:<path to .ckpt>")
        self.model, cfg = load_saliency_model(argument)
        self.data_config = cfg.data
        self.input_size = tuple(cfg.data.get("image_size") or INPUT_SIZE)
        self.name = f"saliency:{cfg.model.net._target_.rsplit('.', 1)[-1]}"

    def prepare(self, ctx: BenchmarkContext, indices: list[int]) -> None:
        """Refuse to score images the model was trained or selected on: its stored data config (root,
        split fractions, seed) gives its train and val images; a benchmark with another ``seed`` draws
        another test split of the same dataset, which would hold some of them."""
        seen = self._fitted_images()
        scored = {_file(ctx.data.stimuli[i].path) for i in indices if ctx.data.stimuli[i].path}
        overlap = scored & seen
        if overlap:
            seed = self.data_config.get("seed")
            raise UserError(
                f"source {self.name}: {len(overlap)} of the {len(scored)} scored images were in its training or "
                f"validation split (it was trained with seed={seed}, which decides the split); score with "
                f"seed={seed} split=test, or on images it has not seen"
            )

    def _fitted_images(self) -> set[str]:
        import hydra

        try:
            dm = hydra.utils.instantiate(self.data_config, _convert_="all")
            dm.setup("fit")
        except Exception as ex:  # the training data is not on this machine: nothing to compare with
            log.info("source %s: its training data cannot be loaded here (%s); overlap not checked", self.name, ex)
            return set()
        splits = getattr(dm, "splits", {})
        return {_file(s.path) for name in ("train", "val") if name in splits for s in splits[name].stimuli if s.path}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, 0]

    def log_density(self, ctx: BenchmarkContext, i: int) -> Optional[np.ndarray]:
        """With the centre prior the model's map is a density (a softmax over its pixels): a
        probabilistic source; without it, a map source."""
        if self.model.prior is None:
            return None
        p = self.saliency_map(ctx, i)
        with np.errstate(divide="ignore"):
            return np.log(p / p.sum())  # float32 softmax: renormalised in float64
