"""The settings of the CAM attention sources (``cam.<key>=...`` on the benchmark's command line)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from attnlab.utils.config import Fraction, PositiveInt, Size2, check_arguments

__all__ = ["CamSettings"]


@dataclass
class CamSettings:
    """How ``attention=cam:<method>[+prior]`` computes its maps.

    Args:
        model: the classifier the CAMs explain. ``efficientnet_lite0`` (default) is the offline
            ImageNet EfficientNet-Lite0 of :func:`attnlab.models.pretrained.efficientnet_lite0`;
            any other torchvision or timm classifier name (``resnet50``, ``timm:convnext_tiny``,
            ``torchvision:resnet18``; a bare name is looked up in torchvision first) needs ``weights``.
        weights: a local weights file (a state dict, or a checkpoint holding one under ``state_dict``
            or ``model``); for ``efficientnet_lite0`` a converted file in the package's layout. Nothing
            is ever downloaded.
        layer: the target layer, a name of ``model.named_modules()`` with a B×C×h×w output. Default:
            the last such module in forward order that is not a pooling layer, i.e. the last conv
            block before the global pooling (EfficientNet-Lite0: ``bn2``, conv_head + BN + ReLU6,
            1280×7×7 at 224×224; ResNets: ``layer4``).
        batch_size: images per forward/backward pass (the maps of the next ``batch_size`` images
            are computed on the first request).
        input_size: [height, width] the image is resized to (bilinear, aspect not kept) before the model.
        device: torch device of the model, e.g. ``cpu``, ``cuda``, ``cuda:1``.
        floor: ``+prior`` only: added to the CAM (in [0, 1], maximum 1) before it is multiplied by
            the centre-bias prior, so the product is never all zero where the CAM is.
    """

    model: str = "efficientnet_lite0"
    weights: Optional[str] = None
    layer: Optional[str] = None
    batch_size: PositiveInt = 8
    input_size: Size2 = (224, 224)
    device: str = "cpu"
    floor: Fraction = 1e-3

    def __post_init__(self) -> None:
        self.input_size = tuple(self.input_size)
        check_arguments(type(self), vars(self))
