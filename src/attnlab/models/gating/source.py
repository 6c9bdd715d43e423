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
from attnlab.sources import AttentionSource, BenchmarkContext, register_source
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
    from attnlab.utils.checkpoint import load_trained, read_checkpoint

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


def pad_to_aspect(image: np.ndarray, aspect: float, fill: int = PAD_FILL) -> tuple[np.ndarray, tuple[int, int]]:
    """``image`` (H×W×C) centred on a ``fill`` canvas of width/height ``aspect``; also its (top, left) offset."""
    h, w = image.shape[:2]
    ch, cw = (round(w / aspect), w) if w / h > aspect else (h, round(h * aspect))
    ch, cw = max(ch, h), max(cw, w)
    top, left = (ch - h) // 2, (cw - w) // 2
    out = np.full((ch, cw, image.shape[2]), fill, dtype=image.dtype)
    out[top : top + h, left : left + w] = image
    return out, (top, left)


@register_source("gating")
class GatingSource(AttentionSource):
    """``gating:<checkpoint>``: ``1 - g1``, the open part of the input gate after the first glimpse."""

    def __init__(self, argument: Optional[str], ctx: BenchmarkContext) -> None:
        if not argument:
            raise UserError("attention=gating needs a checkpoint: attention=gating:<paper_coco_model.pt or .ckpt>")
        self.net = load_gating_net(argument)

    @torch.no_grad()
    def attention(self, x: Tensor) -> Tensor:
        """``1 - g1`` of the first glimpse: x B×3×H×W in [0, 1] at the net's input size -> B×H×W in [0, 2]."""
        out = self.net.glimpse(x.to(next(self.net.parameters()).device))
        return 1 - out.gates[0][:, 0]

    def input_tensor(self, image: np.ndarray) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
        """H×W×3 uint8 photo -> (1×3×h×w net input, padded canvas size, photo offset on it)."""
        from PIL import Image

        h, w = self.net.input_size
        canvas, offset = pad_to_aspect(image, w / h)
        resized = np.asarray(Image.fromarray(canvas).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
        return torch.from_numpy(resized).permute(2, 0, 1)[None], canvas.shape[:2], offset

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        image = ctx.data.load_image(i)
        x, canvas, (top, left) = self.input_tensor(image)
        a = self.attention(x)[:, None].double().cpu()
        if tuple(a.shape[-2:]) != tuple(canvas):
            a = F.interpolate(a, size=tuple(canvas), mode="bilinear", align_corners=False)
        h, w = image.shape[:2]
        return a[0, 0, top : top + h, left : left + w].numpy()
