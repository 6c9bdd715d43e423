"""The reference's published gating weights, converted into attnlab's GatingNet."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import ONE_THREAD, shared_path

from attnlab.models.gating import GatingNet, run_glimpses
from attnlab.models.gating.paper import (
    PAPER_ARCHITECTURES,
    convert_paper_state_dict,
    is_paper_state_dict,
    load_paper_checkpoint,
    paper_key,
)
from attnlab.utils.config import UserError

CKPT_DIR = ("data", "gating_paper_checkpoints")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _raw(variant: str) -> dict:
    path = shared_path(*CKPT_DIR, f"paper_{variant}_model.pt")
    return torch.load(path, map_location="cpu", weights_only=True)


def reference_step(sd: dict, x: torch.Tensor, gates: list, s: float, mode: str) -> tuple:
    """One step of the reference network written directly from spec §2 with the raw tensors."""
    n = sum(1 for k in sd if k.startswith("conv") and not k.split(".")[0].endswith("_t")) // 2
    h = u0 = x * (1 - s * gates[0])
    convs, pools = [], []
    for i in range(1, n + 1):
        if i > 1:
            h = h * (1 - s * gates[i - 1])
        c = F.relu(F.conv2d(h, sd[f"conv{i}.weight"], sd[f"conv{i}.bias"]))
        convs.append(c)
        h = F.max_pool2d(c, 2, 2)
        pools.append(h)
    logits = F.linear(h.flatten(1), sd["linear_out.weight"], sd["linear_out.bias"])
    top = torch.tanh(F.linear(logits, sd["linear_out_t.weight"], sd["linear_out_t.bias"])).view_as(h)
    new = [None] * n
    for i in range(n, 0, -1):
        size = convs[i - 1].shape[-2:]
        kw = {} if mode == "nearest" else {"align_corners": False}
        z = torch.cat(
            [F.interpolate(top, size=size, mode=mode, **kw), F.interpolate(pools[i - 1], size=size, mode=mode, **kw)], 1
        )
        top = torch.tanh(F.conv_transpose2d(z, sd[f"conv{i}_t.weight"], sd[f"conv{i}_t.bias"]))
        new[i - 1] = top
    return logits, u0, new


def test_key_mapping_names():
    assert paper_key("conv1.weight") == "convs.0.weight"
    assert paper_key("conv4_t.bias") == "deconvs.3.bias"
    assert paper_key("linear_out.weight") == "classifier.weight"
    assert paper_key("linear_out_t.bias") == "feedback.bias"
    with pytest.raises(KeyError):
        paper_key("fc.weight")


@pytest.mark.parametrize("variant,params", [("mnist", 82_661), ("coco", 477_713)])
def test_conversion_maps_every_tensor(variant, params):
    raw = _raw(variant)
    assert is_paper_state_dict(raw)
    net = GatingNet(**PAPER_ARCHITECTURES[variant])
    converted = convert_paper_state_dict(raw, net)
    assert set(converted) == set(net.state_dict())
    for key, tensor in raw.items():
        assert torch.equal(converted[paper_key(key)], tensor)
    assert sum(t.numel() for t in converted.values()) == params  # spec §8 parameter counts


@pytest.mark.parametrize("variant,mode", [("mnist", "nearest"), ("coco", "bicubic")])
def test_converted_net_matches_reference_forward(variant, mode):
    """Logits, gated input and every gate agree with an independent forward pass (3 recurrent steps)."""
    raw = _raw(variant)
    arch = PAPER_ARCHITECTURES[variant]
    net = load_paper_checkpoint(shared_path(*CKPT_DIR, f"paper_{variant}_model.pt"), variant)
    x = torch.rand(2, arch["in_channels"], *arch["input_size"], generator=torch.Generator().manual_seed(0))
    ours = theirs = net.initial_state(x)
    with torch.no_grad():
        for _ in range(3):
            out = net.step(x, ours)
            ref_logits, ref_u0, ref_gates = reference_step(raw, x, theirs, arch["strength"], mode)
            torch.testing.assert_close(out.logits, ref_logits, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(out.gated_input, ref_u0, atol=1e-6, rtol=1e-5)
            for g, r in zip(out.gates, ref_gates):
                torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)
            ours, theirs = out.gates, ref_gates


def test_paper_mnist_glimpse_accuracy():
    """Seeded MultiMNIST test composites (n=2, s=0.2, noise 0.3): the reference reported 0.976 val accuracy."""
    from attnlab.data.multimnist import MultiMNISTDataModule

    net = load_paper_checkpoint(shared_path(*CKPT_DIR, "paper_mnist_model.pt"), "mnist")
    dm = MultiMNISTDataModule(
        num_objects=2, strength=0.2, noise=0.3, val_size=1, test_size=256, seed=100, batch_size=128
    )
    dm.setup("test")
    correct = total = 0
    with torch.no_grad():
        for x, targets, labels in dm.test_dataloader():
            for r in run_glimpses(net, x, targets, labels, glimpses=2):
                correct += int((r.output.logits.argmax(1) == r.target_class).sum())
                total += len(labels)
    assert total == 512
    assert correct / total >= 0.95


def test_wrong_variant_or_file_is_a_clear_error(tmp_path):
    raw = _raw("mnist")
    coco_net = GatingNet(**PAPER_ARCHITECTURES["coco"])
    with pytest.raises(UserError, match="do not fit|shape"):
        convert_paper_state_dict(raw, coco_net)
    wide = GatingNet(**(PAPER_ARCHITECTURES["mnist"] | {"input_size": (28, 56)}))  # n=3 canvas
    with pytest.raises(UserError, match="linear_out|classifier.weight has shape"):
        convert_paper_state_dict(raw, wide)
    with pytest.raises(UserError, match="unknown paper variant"):
        load_paper_checkpoint(shared_path(*CKPT_DIR, "paper_mnist_model.pt"), "imagenet")
    with pytest.raises(UserError, match="not found"):
        load_paper_checkpoint(tmp_path / "nope.pt", "mnist")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read"):
        load_paper_checkpoint(bad, "mnist")


def test_eval_accepts_the_raw_paper_file(run_cli, tmp_path):
    ckpt = shared_path(*CKPT_DIR, "paper_mnist_model.pt")
    proc = run_cli(
        "attnlab.eval",
        "model=gating_mnist",
        f"ckpt_path={ckpt}",
        "data.test_size=64",
        "data.val_size=1",
        "data.batch_size=64",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics_file = next((tmp_path / "outputs" / "eval").rglob("metrics.json"))
    metrics = json.loads(metrics_file.read_text())
    assert metrics["test/acc"] >= 0.9
    assert 0.0 <= metrics["test/iou"] <= 1.0 and metrics["test/bacc"] >= 0.85
    assert (metrics_file.parent / "confusion_matrix_test.png").stat().st_size > 1000
