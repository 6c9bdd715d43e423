"""The reference implementation's published weights (KordingLab/object-based-attention) as attnlab models.

The reference names its layers ``conv{i}`` (feed-forward stage i), ``conv{i}_t`` (the transposed
conv producing stage i's gate), ``linear_out`` (classifier) and ``linear_out_t`` (top of the
feedback path). :class:`~attnlab.models.gating.net.GatingNet` stores the same tensors, with the
same layouts, as ``convs.{i-1}``, ``deconvs.{i-1}``, ``classifier`` and ``feedback``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from attnlab.models.gating.net import GatingNet
from attnlab.utils.checkpoint import torch_load
from attnlab.utils.config import UserError

__all__ = [
    "PAPER_ARCHITECTURES",
    "PAPER_COCO_CLASSES",
    "convert_paper_state_dict",
    "is_paper_state_dict",
    "load_gating_checkpoint",
    "load_paper_checkpoint",
    "paper_key",
]

# The networks the published files were trained as (spec §2, §8); strengths are the paper's.
PAPER_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mnist": dict(
        in_channels=1, input_size=(28, 42), channels=[20, 50], num_classes=10, upsample="nearest", strength=0.2
    ),
    "coco": dict(
        in_channels=3,
        input_size=(100, 100),
        channels=[30, 60, 100, 20],
        num_classes=12,
        upsample="bicubic",
        strength=0.3,
    ),
}

# The COCO checkpoint's class order: supercategories sorted alphabetically (spec §1); pass as data.classes to
# evaluate it on a COCO subset that lacks some of them.
PAPER_COCO_CLASSES = [
    "accessory",
    "animal",
    "appliance",
    "electronic",
    "food",
    "furniture",
    "indoor",
    "kitchen",
    "outdoor",
    "person",
    "sports",
    "vehicle",
]

_KEY = re.compile(r"^(conv(\d+)(_t)?|linear_out(_t)?)\.(weight|bias)$")


def paper_key(key: str) -> str:
    """The attnlab name of a reference parameter, e.g. ``conv2_t.weight`` -> ``deconvs.1.weight``."""
    m = _KEY.match(key)
    if m is None:
        raise KeyError(f"not a parameter name of the reference gating network: {key!r}")
    layer, index, transposed, linear_t, param = m.groups()
    if index is not None:
        return f"{'deconvs' if transposed else 'convs'}.{int(index) - 1}.{param}"
    return f"{'feedback' if linear_t else 'classifier'}.{param}"


def is_paper_state_dict(state: Any) -> bool:
    """True for a plain reference state dict (all keys like ``conv1.weight``, values tensors)."""
    return (
        isinstance(state, Mapping)
        and len(state) > 0
        and all(isinstance(k, str) and _KEY.match(k) and isinstance(v, Tensor) for k, v in state.items())
    )


def convert_paper_state_dict(state: Mapping[str, Tensor], net: GatingNet) -> dict[str, Tensor]:
    """Rename a reference state dict for ``net``, checking that every key and shape maps one to one.

    Raises:
        UserError: naming the first unmatched or mis-shaped tensor (e.g. a COCO file for an MNIST net).
    """
    if not is_paper_state_dict(state):
        raise UserError(
            "not a reference gating state dict: expected only keys like conv1.weight, conv1_t.bias, "
            "linear_out.weight, linear_out_t.bias"
        )
    converted = {paper_key(k): v for k, v in state.items()}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    if missing or extra:
        raise UserError(
            f"reference weights do not fit a {len(net.convs)}-stage gating net: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected {extra[:4]}"
            f"{'...' if len(extra) > 4 else ''}"
        )
    for key, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise UserError(
                f"reference weight {key} has shape {tuple(tensor.shape)}, the net expects "
                f"{tuple(expected[key].shape)} (wrong variant or input size?)"
            )
    return {k: v.to(expected[k].dtype) for k, v in converted.items()}


def load_paper_checkpoint(path: str | Path, variant: str, **overrides: Any) -> GatingNet:
    """A :class:`GatingNet` (in eval mode, on the CPU) with the published weights of ``variant``.

    Args:
        path: ``paper_mnist_model.pt`` or ``paper_coco_model.pt`` (legacy torch format, saved on a GPU).
        variant: ``"mnist"`` or ``"coco"``.
        overrides: GatingNet arguments to change (e.g. ``steps``), on top of the paper architecture.
    """
    if variant not in PAPER_ARCHITECTURES:
        raise UserError(f"unknown paper variant {variant!r}; choose one of: {', '.join(PAPER_ARCHITECTURES)}")

    state = torch_load(path, "paper checkpoint")
    net = GatingNet(**(PAPER_ARCHITECTURES[variant] | overrides))
    net.load_state_dict(convert_paper_state_dict(state, net))
    return net.eval()


def load_gating_checkpoint(module: torch.nn.Module, checkpoint: Mapping[str, Any]) -> None:
    """Load a Lightning checkpoint (``state_dict`` key) or a reference state dict into a GatingModule."""
    if is_paper_state_dict(checkpoint):
        module.net.load_state_dict(convert_paper_state_dict(checkpoint, module.net))
    elif "state_dict" in checkpoint:
        module.load_state_dict(checkpoint["state_dict"])
    else:
        raise UserError(
            "checkpoint is neither a Lightning checkpoint (no 'state_dict') nor a reference "
            "gating state dict (keys like conv1.weight)"
        )
