"""The factorised saliency models as a benchmark source: ``python -m attnlab.benchmark
attention=centre_bias,saliency:<checkpoint>`` scores a trained model next to the baselines.

Found by the benchmark through the ``attnlab.sources`` entry point ``saliency`` (pyproject.toml)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from attnlab.sources import AttentionSource, BenchmarkContext, register_source
from attnlab.utils.config import UserError

__all__ = ["SaliencyModelSource"]


@register_source("saliency")
class SaliencyModelSource(AttentionSource):
    """Maps of a trained saliency model (``saliency:<checkpoint>``), predicted at the size it was
    trained at (the benchmark resizes them to each image)."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        from attnlab.models.saliency.module import load_saliency_model

        if not argument:
            raise UserError("attention=saliency needs a checkpoint: attention=saliency:<path to .ckpt>")
        self.model, cfg = load_saliency_model(argument)
        self.image_size = tuple(cfg.data.get("image_size") or (240, 320))
        self.name = f"saliency:{cfg.model.net._target_.rsplit('.', 1)[-1]}"

    @torch.no_grad()
    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        from PIL import Image

        image = Image.fromarray(ctx.data.load_image(i)).resize(self.image_size[::-1], Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        return self.model(x)[0, 0].double().numpy()
