"""NeVA task adapters on tiny CPU inputs: classifier (EfficientNet-Lite0), autoencoder, CLIP."""

from __future__ import annotations

import pytest
import torch

from attnlab.models.neva import (
    ClassifierTask,
    ClipTask,
    ConvAutoencoder,
    NevaModule,
    ReconstructionTask,
    SearchConfig,
)
from attnlab.models.pretrained import efficientnet_lite0
from attnlab.utils.config import UserError

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def run(task, size=32, batch=2, length=2, steps=3, **kwargs):
    module = NevaModule(
        task, SearchConfig(length=length, steps=steps), image_size=(size, size), blur_kernel=5, blur_sigma=3.0, **kwargs
    )
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return module.predict_step({"image": images}, 0), module, images


def frozen(task) -> bool:
    return not task.model.training and all(not p.requires_grad for p in task.model.parameters())


def test_efficientnet_lite0_classifier_adapter():
    task = ClassifierTask(efficientnet_lite0())
    out, module, images = run(task, size=64)
    assert frozen(task)
    module.train()  # a LightningModule switching modes must not unfreeze the task model's BatchNorm
    assert not task.model.training
    assert out["fixations"].shape == (2, 2, 2) and torch.isfinite(out["best_loss"]).all()
    with torch.no_grad():
        clean = task(images).argmax(1)
    assert [t["class"] for t in out["target"]] == clean.tolist()
    assert all(isinstance(t["name"], str) for t in out["target"])


def test_classifier_adapter_with_a_fixed_label():
    task = ClassifierTask(efficientnet_lite0(), target="label", label=779)
    out, _, _ = run(task, size=64, batch=1, length=1)
    assert out["target"][0] == {"class": 779, "name": "school bus"}


def test_channels_last_and_bf16_flags_run():
    torch.manual_seed(0)
    out, _, _ = run(
        ClassifierTask(efficientnet_lite0()), size=64, batch=1, length=1, channels_last=True, precision="bf16"
    )
    assert torch.isfinite(out["best_loss"]).all() and out["best_loss"].dtype == torch.float32


def test_reconstruction_adapter_uses_the_clean_image_as_target():
    net = ConvAutoencoder(3, (8, 16))
    task = ReconstructionTask(net)
    out, module, images = run(task, size=30)  # not a multiple of 4: padded and cropped back
    assert frozen(task)
    with torch.no_grad():
        assert net(images).shape == images.shape
        loss = task.loss(images, task.target(images))
        assert torch.allclose(loss, (net(images) - images).pow(2).flatten(1).mean(1))
    assert torch.isfinite(out["best_loss"]).all()


def test_reconstruction_without_checkpoint_says_how_to_train_one():
    with pytest.raises(UserError, match="python -m attnlab.train model=autoencoder"):
        ReconstructionTask()


@pytest.mark.parametrize("prompt", [None, "a photo of a dog"])
def test_clip_adapter_with_a_tiny_random_model(prompt):
    task = ClipTask(model_cfg=TINY_CLIP, weights="random", prompt=prompt)
    out, module, images = run(task, size=32)
    assert frozen(task)
    assert out["fixations"].shape == (2, 2, 2)
    losses = out["best_loss"]
    assert torch.isfinite(losses).all() and (losses >= 0).all() and (losses <= 2).all()  # 1 - cosine
    target = task.target(images)
    assert target.shape == (2, 16) and torch.allclose(target.norm(dim=-1), torch.ones(2), atol=1e-5)
    if prompt is None:  # the clean image matches its own embedding perfectly
        assert torch.allclose(task.loss(images, target), torch.zeros(2), atol=1e-5)


def test_clip_without_local_weights_says_where_to_put_them(tmp_path):
    with pytest.raises(UserError, match="no local CLIP weights for ViT-B-32/openai.*model.task.weights"):
        ClipTask(model_name="ViT-B-32", pretrained_tag="openai", cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="CLIP weights file not found"):
        ClipTask(weights=str(tmp_path / "missing.pt"))


def test_clip_loads_a_local_checkpoint_file(tmp_path):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP)
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    task = ClipTask(model_cfg=TINY_CLIP, weights=str(path), prompt="a cat")
    assert torch.equal(task.model.visual.conv1.weight, model.visual.conv1.weight)
