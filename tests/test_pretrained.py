"""Offline EfficientNet-Lite0: the key mapping, real ImageNet predictions, the backbone variant."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from attnlab.models.pretrained import (
    efficientnet_lite0,
    efficientnet_lite0_state_dict,
    efficientnet_lite0_weights_path,
    imagenet_class_name,
    normalize_lite0,
)

BUS_CLASSES = {779, 654, 874}  # school bus, minibus, trolleybus


@pytest.fixture(scope="module")
def classifier():
    return efficientnet_lite0().eval()


def load_224(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        im = im.convert("RGB").resize((224, 224), Image.BILINEAR)
    return torch.from_numpy(np.array(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def test_every_published_tensor_lands_on_a_timm_parameter_of_the_same_shape():
    raw = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = efficientnet_lite0_state_dict()
    target = efficientnet_lite0(pretrained=False).state_dict()
    assert len(mapped) == len(raw) == len(target)
    assert set(mapped) == set(target)
    for key, value in mapped.items():
        assert value.shape == target[key].shape, key
    # spot checks of the mapping rule (flat block index -> stage.block, layer names per block type)
    assert torch.equal(mapped["blocks.0.0.conv_dw.weight"], raw["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(mapped["blocks.2.1.bn2.running_var"], raw["_blocks.4._bn1.running_var"])
    assert torch.equal(mapped["blocks.6.0.conv_pwl.weight"], raw["_blocks.15._project_conv.weight"])
    assert torch.equal(mapped["classifier.weight"], raw["_fc.weight"])


@torch.no_grad()
def test_street_with_buses_is_a_bus(classifier):
    image = shared_path("data", "coco_format_sample", "JPEGImages", "2011_000025.jpg")
    logits = classifier(normalize_lite0(load_224(image)))
    top1 = int(logits.argmax())
    assert top1 in BUS_CLASSES, (top1, imagenet_class_name(top1))


@torch.no_grad()
def test_grace_hopper_wears_a_military_uniform(classifier):
    """matplotlib's sample photo: runs without ../shared, so CI always checks the weights."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    probs = classifier(normalize_lite0(load_224(path))).softmax(-1)[0]
    assert int(probs.argmax()) == 652, imagenet_class_name(int(probs.argmax()))  # military uniform
    assert probs[652] > 0.3


@torch.no_grad()
def test_features_only_is_the_same_network_as_the_classifier(classifier):
    features = efficientnet_lite0(features_only=True).eval()
    assert features.feature_info.channels() == [16, 24, 40, 112, 320]
    assert features.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.rand(1, 3, 96, 128) * 2 - 1  # any size: TF "same" padding is computed per input
    maps = features(x)
    assert [tuple(m.shape[-2:]) for m in maps] == [(48, 64), (24, 32), (12, 16), (6, 8), (3, 4)]
    deepest = classifier.blocks(classifier.bn1(classifier.conv_stem(x)))
    assert torch.allclose(maps[-1], deepest, atol=1e-5)
    two = efficientnet_lite0(features_only=True, out_indices=[3, 4]).eval()(x)
    assert len(two) == 2 and torch.allclose(two[1], maps[-1], atol=1e-5)


def test_new_head_keeps_the_pretrained_backbone(classifier):
    model = efficientnet_lite0(num_classes=10)
    assert model.classifier.out_features == 10
    assert torch.equal(model.conv_stem.weight, classifier.conv_stem.weight)
    assert torch.equal(model.blocks[5][3].conv_pwl.weight, classifier.blocks[5][3].conv_pwl.weight)
