"""The gating network's attention as a benchmark source: ``python -m attnlab.benchmark
attention=centre_bias,gating:<checkpoint>`` scores where the network attends on free-viewing photos.

The map is the input gate ``g1`` of the first glimpse (the gate its last step used, spec §2) turned
into attention: ``1 - g1``, in [0, 2], high where the input is left open (attended) and low where it
is suppressed. The photo is prepared as the COCO gating data are (padded with grey to the net's
aspect ratio, bilinear-resized to its input size, scaled to [0, 1]); the map is resized back to the
padded canvas and cropped to the photo, so it has the image's size.

Checkpoints: the paper's ``paper_coco_model.pt`` (the reference state dict) or a Lightning checkpoint
of ``model=gating_coco`` written by ``attnlab.train``. Nets of digits (1 channel: the MNIST paper
checkpoint, ``model=gating_mnist``) and checkpoints of other models are refused in one line naming
their family. Found by the benchmark through the ``attnlab.sources`` entry point ``gating``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.data.coco_dataset import PAD_FILL
from attnlab.models.gating.net import GatingNet
from attnlab.models.gating.paper import is_paper_state_dict, load_paper_checkpoint
from attnlab.sources import BatchedMapSource, BenchmarkContext, image_batch, register_source
from attnlab.utils.checkpoint import load_trained, read_checkpoint
from attnlab.utils.config import UserError

__all__ = ["GatingSource", "load_gating_net", "pad_to_aspect"]


def _photo_net_required(path: Any, what: str) -> UserError:
    return UserError(
        f"{path} is {what}: a net of 1-channel digit composites, which cannot look at photos; "
        "attention=gating needs a gating net trained on photos (3 channels): the paper's paper_coco_model.pt "
        "or a checkpoint of model=gating_coco"
    )


def load_gating_net(path: str | Path) -> GatingNet:
    """The :class:`GatingNet` (eval mode, CPU) of a paper state dict or of a Lightning checkpoint of the
    gating model; a checkpoint of another family, or a digit net, is a one-line :class:`UserError`."""

    checkpoint = read_checkpoint(path)
    if is_paper_state_dict(checkpoint):
        if checkpoint["conv1.weight"].shape[1] != 3:
            raise _photo_net_required(path, "the gating paper's MNIST checkpoint")
        return load_paper_checkpoint(path, "coco")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(
            f"{path} is not a gating checkpoint: neither the paper's state dict (keys like conv1.weight) nor a "
            "Lightning checkpoint written by attnlab.train"
        )
    hint = lambda target: f"; score it with attention=saliency:{path}" if "saliency" in target else ""  # noqa: E731

    def sees_photos(net: GatingNet, cfg) -> None:
        if net.in_channels != 3:
            data = cfg.get("data", {}).get("_target_", "digits")
            raise _photo_net_required(path, f"a gating checkpoint trained on {data}")

    what = "the gating model (GatingModule)"
    return load_trained(path, "GatingModule", what, hint, part="net", check=sees_photos, checkpoint=checkpoint)[0]


def aspect_canvas(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(height, width, top, left): the smallest canvas of width/height ``aspect`` an h×w image fits
    in, centred."""
    ch, cw = (round(w / aspect), w) if w / h > aspect else (h, round(h * aspect))
    ch, cw = max(ch, h), max(cw, w)
    return ch, cw, (ch - h) // 2, (cw - w) // 2


def pad_to_aspect(image: np.ndarray, aspect: float, fill: int = PAD_FILL) -> tuple[np.ndarray, tuple[int, int]]:
    """``image`` (H×W×C) centred on a ``fill`` canvas of width/height ``aspect``; also its (top, left) offset."""
    h, w = image.shape[:2]
    ch, cw, top, left = aspect_canvas(h, w, aspect)
    out = np.full((ch, cw, image.shape[2]), fill, dtype=image.dtype)
    out[top : top + h, left : left + w] = image
    return out, (top, left)


@register_source("gating")
class GatingSource(BatchedMapSource):
    """``gating:<checkpoint>``: ``1 - g1``, the open part of the input gate after the first glimpse."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError("attention=gating needs a checkpoint: attention=gating:<paper_coco_model.pt or .ckpt>")
        self.net = load_gating_net(argument)
        self.input_size = tuple(self.net.input_size)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """``1 - g1`` of the first glimpse: x B×3×H×W in [0, 1] at the net's input size -> B×H×W in [0, 2]."""
        return 1 - self.net.glimpse(x).gates[0][:, 0]

    def to_input(self, ctx: BenchmarkContext, indices: list[int]) -> Tensor:
        """Each photo padded to the net's aspect ratio (as the COCO gating data are), then resized."""
        h, w = self.input_size
        canvases = [pad_to_aspect(ctx.data.load_image(k), w / h)[0] for k in indices]
        return image_batch(canvases, self.input_size)

    def to_map(self, ctx: BenchmarkContext, i: int, predicted: np.ndarray) -> np.ndarray:
        """The map resized back to the padded canvas and cropped to the photo."""
        h, w = ctx.data.stimuli[i].size
        ch, cw, top, left = aspect_canvas(h, w, self.input_size[1] / self.input_size[0])
        a = torch.from_numpy(predicted)[None, None]
        if tuple(a.shape[-2:]) != (ch, cw):
            a = F.interpolate(a, size=(ch, cw), mode="bilinear", align_corners=False)
        return a[0, 0, top : top + h, left : left + w].numpy()
