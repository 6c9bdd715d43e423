"""Class activation maps of a batch of images, computed by grad-cam (``pytorch_grad_cam``).

Every method is grad-cam's own class; this module only names them and runs one batch. The CAM
objects are used as context managers: grad-cam 1.5.7 releases its hooks in ``__exit__`` (left to
``__del__``, it prints a TypeError traceback at interpreter exit).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.utils.config import UserError

__all__ = ["METHODS", "cam_class", "cam_maps"]

# attention=cam:<method> → the grad-cam class (imported when used)
METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",  # one forward pass per channel of the layer: slow
    "ablationcam": "AblationCAM",  # likewise
}


@contextmanager
def _gradients_from(net: nn.Module, layer: nn.Module):
    """Backpropagate from the output to ``layer``'s output only: the parameters are frozen and the
    layer's output becomes the root of the graph (a copy, so in-place ops after it stay legal).
    The CAM gradients (d class score / d activation) are the same; the backward pass through the
    layers before the target, and every weight gradient, are skipped (on CPU, EfficientNet-Lite0's
    depthwise weight gradients cost ~4× its forward pass)."""
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    handle = layer.register_forward_hook(lambda module, args, output: output.detach().requires_grad_().clone())
    try:
        yield
    finally:
        handle.remove()
        for p in frozen:
            p.requires_grad_(True)


def cam_class(method: str) -> type:
    """grad-cam's class of ``method`` (a key of :data:`METHODS`)."""
    if method not in METHODS:
        raise UserError(f"unknown CAM method {method!r}; use one of: {', '.join(METHODS)}")
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, METHODS[method])


def cam_maps(net: nn.Module, layer: nn.Module, method: str, inputs: Tensor) -> np.ndarray:
    """B×H×W float32 maps in [0, 1] (grad-cam's min-max scaling, at the inputs' H×W) of the top-1
    class of each image (grad-cam's targets=None) at ``layer`` of ``net``; ``inputs`` B×3×H×W as
    ``net`` takes them, on its device. A map that is constant comes back all zero."""
    cls = cam_class(method)
    out = None
    with torch.enable_grad(), _gradients_from(net, layer), cls(model=net, target_layers=[layer]) as cam:
        out = cam(input_tensor=inputs, targets=None)
    if out is None:  # grad-cam's __exit__ swallows an IndexError (after printing it)
        raise UserError(f"grad-cam {METHODS[method]} failed on the chosen layer (see the message above)")
    return np.asarray(out, dtype=np.float32)
