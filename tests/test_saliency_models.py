"""Factorised saliency networks: shapes, the factorisation, phase-2 freezing, checkpoint key checks,
backbone weights, loss vs. the metrics, learning-rate schedules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.models.saliency import (
    Bases,
    DINet,
    SALICONNet,
    SaliencyLoss,
    TranSalNet,
    build_backbone,
    load_phase1_weights,
    lr_factor,
)
from attnlab.utils.config import UserError

SIZE = (32, 48)


# tiny test models: a second thread gains nothing, and OpenMP waits dominate on a busy machine
# (a 32x48 ResNet-50 forward: 0.06 s on one thread, 3 s on two)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(cls, phase=1, bases=6, **kw):
    common = dict(backbone_weights="none", bases=bases, phase=phase)
    if cls is SALICONNet:
        return SALICONNet(embed_dim=8, **common, **kw)
    if cls is DINet:
        return DINet(width=8, **common, **kw)
    return TranSalNet(input_size=SIZE, dims=(16, 16, 8), heads=(2, 2, 2), decoder_dim=8, feature_dim=8, **common, **kw)


@pytest.fixture(scope="module")
def image():
    return torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cls, grid", [(SALICONNet, (4, 6)), (DINet, (4, 6)), (TranSalNet, (16, 24))])
def test_shapes_phase1_and_phase2(cls, grid, image):
    for phase in (1, 2):
        net = tiny(cls, phase, output_size=(20, 30)).eval()
        with torch.no_grad():
            out = net(image)
            p = net.probabilities(image)
            assert out.shape == (2, 1, 20, 30)
            assert bool(((out > 0) & (out < 1)).all())
            assert p.shape == (2, 6, *grid)
            assert bool(((p > 0) & (p < 1)).all())
            net.output_size = None  # default: the input size
            assert net(image).shape == (2, 1, *SIZE)


def test_unfactorised_baseline_has_the_models_own_decoder(image):
    net = tiny(DINet, bases=0).eval()
    assert net.bases is None and len(net.head) == 3  # conv E->E, ReLU, conv E->1
    with torch.no_grad():
        assert net(image).shape == (2, 1, *SIZE)
    with pytest.raises(UserError, match="no bases"):
        net.probabilities(image)


def test_bases_are_independent_sigmoids_and_reconstruct_with_their_weights():
    torch.manual_seed(0)
    bases = Bases(5, 3)
    f = torch.randn(2, 3, 4, 4)
    p, f_hat = bases(f)
    # per location: p_k = sigmoid(w_k . f), f_hat = sum_k p_k w_k
    loc = f[1, :, 2, 3]
    expected_p = torch.sigmoid(bases.weight @ loc)
    torch.testing.assert_close(p[1, :, 2, 3], expected_p)
    torch.testing.assert_close(f_hat[1, :, 2, 3], (expected_p[:, None] * bases.weight).sum(0))
    assert not torch.allclose(p.sum(1), torch.ones(2, 4, 4))  # not a distribution over bases


def test_phase2_trains_only_the_basis_head_and_keeps_batchnorm_frozen(image):
    net = tiny(TranSalNet, phase=2)  # TranSalNet has BatchNorm outside the backbone too
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"basis_head.weight"}
    assert net.basis_head.weight.shape == (1, 6, 3, 3)
    # frozen modules are in eval mode from construction on (Lightning never calls .train() itself)
    assert not net.d4[1].training and not net.backbone.stem[1].training and net.basis_head.training
    net.train()
    assert net.basis_head.training
    assert not any(m.training for name, m in net.named_modules() if name and not name.startswith("basis_head"))
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net(image).mean().backward()
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_phase1_checkpoint_loads_into_phase2_with_exact_key_checks():
    torch.manual_seed(0)
    phase1 = tiny(DINet, phase=1)
    state = {f"net.{k}": v for k, v in phase1.state_dict().items()}
    phase2 = tiny(DINet, phase=2)
    load_phase1_weights(phase2, {"state_dict": state})
    torch.testing.assert_close(phase2.bases.weight, phase1.bases.weight)
    torch.testing.assert_close(phase2.inception.reduce[0].weight, phase1.inception.reduce[0].weight)
    # a phase-2 checkpoint, a baseline without bases and another K are refused with the keys named
    p2_state = {f"net.{k}": v for k, v in phase2.state_dict().items()}
    with pytest.raises(UserError, match="not a phase-1 checkpoint"):
        load_phase1_weights(tiny(DINet, phase=2), {"state_dict": p2_state})
    baseline = {f"net.{k}": v for k, v in tiny(DINet, bases=0).state_dict().items()}
    with pytest.raises(UserError, match="bases.weight"):
        load_phase1_weights(tiny(DINet, phase=2), {"state_dict": baseline})
    with pytest.raises(UserError, match="does not fit"):
        load_phase1_weights(tiny(DINet, phase=2, bases=7), {"state_dict": state})


def test_dilated_resnet_matches_the_reference_layout_and_loads_torchvision_weights(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    reference = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet50", (4,), 8, str(path)).eval()
    torch.testing.assert_close(backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    torch.testing.assert_close(backbone.stem[0].weight, reference.conv1.weight)
    # stride 8 and every 3x3 conv of layer3 / layer4 dilated by 2 / 4
    assert backbone(torch.rand(1, 3, 64, 96))[0].shape == (1, 2048, 8, 12)
    assert {b.conv2.dilation for b in backbone.layer3} == {(2, 2)}
    assert {b.conv2.dilation for b in backbone.layer4} == {(4, 4)}
    # undilated: the torchvision network itself (ImageNet-normalised input inside the backbone)
    plain = build_backbone("resnet50", (4,), 32, str(path)).eval()
    x = torch.rand(1, 3, 64, 96)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    trunk = nn.Sequential(*list(reference.eval().children())[:-2])
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[0], trunk((x - mean) / std))
    # a file that is not a ResNet-50
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="not a ResNet-50"):
        build_backbone("resnet50", (4,), 8, str(bad))
    with pytest.raises(UserError, match="not found"):
        build_backbone("resnet50", (4,), 8, str(tmp_path / "missing.pth"))


def test_resnet_auto_weights_warn_when_the_cache_is_empty(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.warns(UserWarning, match="random weights"):
        assert build_backbone("resnet50", (4,), 8, "auto").weights_source == "random"


def test_efficientnet_backbone_uses_the_shared_pretrained_weights():
    from attnlab.models.pretrained import efficientnet_lite0, normalize_lite0

    reference = efficientnet_lite0(pretrained=True, features_only=True, out_indices=(2, 3, 4)).eval()
    ours = build_backbone("efficientnet_lite0", (2, 3, 4), 32, "auto").eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), reference(normalize_lite0(x))):
            torch.testing.assert_close(a, b)
    dilated = build_backbone("efficientnet_lite0", (4,), 8, "auto").eval()
    assert dilated(x)[0].shape == (1, 320, 8, 12)


def test_transalnet_positional_embeddings_follow_the_input_size(image):
    net = tiny(TranSalNet).eval()
    assert net.t32.grid == (1, 2) and net.t16.grid == (2, 3) and net.t8.grid == (4, 6)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)  # resized embeddings


def test_loss_parts_agree_with_the_metrics():
    from attnlab.metrics import saliency as M

    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 1, 12, 16, generator=g)
    density = torch.rand(3, 1, 12, 16, generator=g) ** 4
    fix = (torch.rand(3, 1, 12, 16, generator=g) > 0.9).float()
    total, parts = SaliencyLoss()(pred, density, fix)
    torch.testing.assert_close(parts["cc"].double(), M.cc(pred[:, 0], density[:, 0]).mean(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["nss"].double(), M.nss(pred[:, 0], fix[:, 0]).mean(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(parts["kld"].double(), M.kld(pred[:, 0], density[:, 0]).mean(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(total, -parts["nss"] + 10 * parts["kld"] - 2 * parts["cc"])
    # an all-zero prediction gives a finite loss (the reference's KLD is NaN there)
    zero_total, _ = SaliencyLoss()(torch.zeros_like(pred), density, fix)
    assert torch.isfinite(zero_total)


def test_learning_rate_schedules():
    assert [lr_factor(e, "step", 2, 0.1) for e in range(5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    # the reference: lr_E = 1e-4 * 0.1^(E(E+1)/4) for epochs E = 1, 2, 3 ...
    assert [1e-4 * lr_factor(e, "repo_compounding") for e in range(3)] == pytest.approx(
        [3.162e-5, 3.162e-6, 1e-7], rel=1e-3
    )
    with pytest.raises(UserError, match="lr_schedule"):
        lr_factor(0, "cosine")


def test_bad_options_are_one_line_user_errors():
    with pytest.raises(UserError, match="backbone="):
        build_backbone("vgg16")
    with pytest.raises(UserError, match="phase"):
        DINet(backbone_weights="none", width=8, bases=4, phase=3)
    with pytest.raises(UserError, match="bases"):
        DINet(backbone_weights="none", width=8, bases=0, phase=2)
