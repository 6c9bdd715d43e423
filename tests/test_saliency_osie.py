"""Training the saliency models on OSIE-layout data (issue 17): horizontal flips that move the fixations
with the image, the centre bias as a log-prior on the logits, and the three recipes
``experiment=saliency_{dinet,transalnet,salicon}_osie`` with ``debug=tiny`` on a generated dataset."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.osie_layout import Image, random_images, write_osie_layout

from attnlab.baselines import CentreBias
from attnlab.data.fixation_datamodule import SaliencyTorchDataset
from attnlab.data.osie import OSIEDataModule, load_osie
from attnlab.utils.config import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- horizontal flips ---------------------------------------------------------------------------
def _centred_images(mirrored: bool) -> list[Image]:
    """Fixations on pixel centres (0-based column j + 0.5, i.e. MATLAB's fix_x = j + 1.5), or their mirror
    images x → W − x."""
    rng = np.random.default_rng(5)
    images = []
    for i, (h, w) in enumerate([(30, 40), (24, 60)]):
        subjects = []
        for _ in range(3):
            cols, rows = rng.integers(0, w, 7), rng.integers(0, h, 7)
            x0, y0 = cols + 0.5, rows + 0.5
            if mirrored:
                x0 = w - x0
            subjects.append((x0 + 1, y0 + 1))
        images.append(Image(f"{i}.png", (h, w), subjects))
    return images


def test_a_flipped_item_is_the_item_of_the_mirrored_fixations(tmp_path):
    original = load_osie(write_osie_layout(tmp_path / "a", _centred_images(False)))
    mirrored = load_osie(write_osie_layout(tmp_path / "b", _centred_images(True)))
    sizes = dict(image_size=(24, 32), map_size=(12, 20), sigma_px=3.0)
    data, mirror = SaliencyTorchDataset(original, **sizes), SaliencyTorchDataset(mirrored, **sizes)
    for i in range(len(original)):
        plain, flipped, target = data.item(i), data.item(i, flipped=True), mirror.item(i)
        assert torch.equal(flipped["image"], plain["image"].flip(-1))
        assert torch.equal(flipped["fixations"], plain["fixations"].flip(-1))
        assert torch.equal(flipped["density"], plain["density"].flip(-1))
        # ... and the targets are exactly those of the mirrored fixations
        assert plain["fixations"].sum() == 21 and not torch.equal(flipped["fixations"], plain["fixations"])
        assert torch.equal(flipped["fixations"], target["fixations"])
        torch.testing.assert_close(flipped["density"], target["density"], rtol=1e-5, atol=1e-9)


def test_flip_is_off_by_default_and_only_touches_the_training_split(tmp_path):
    root = write_osie_layout(tmp_path, random_images(10, sizes=[(30, 40)], observers=[2], seed=4))
    plain = OSIEDataModule(root=str(root), pixels_per_degree=8, image_size=(12, 16))
    plain.setup()
    assert not plain.split_dataset("train").flip
    dm = OSIEDataModule(root=str(root), pixels_per_degree=8, image_size=(12, 16), flip=True)
    dm.setup()
    train = dm.split_dataset("train")
    assert train.flip and not dm.split_dataset("val").flip and not dm.split_dataset("test").flip
    torch.manual_seed(0)
    unflipped = train.item(0)["fixations"]
    seen = {"plain" if torch.equal(train[0]["fixations"], unflipped) else "flipped" for _ in range(20)}
    assert seen == {"plain", "flipped"}  # each item is mirrored at random


# --- the centre bias as a log-prior -------------------------------------------------------------
def _module(centre_prior: bool, output_size=None):
    from attnlab.models.saliency import DINet, SaliencyModule

    net = DINet(
        backbone="efficientnet_lite0",
        backbone_weights="none",
        width=8,
        bases=6,
        output_stride=16,
        output_size=output_size,
    )
    return SaliencyModule(net, partial(torch.optim.Adam, lr=1e-4), bases=6, centre_prior=centre_prior).eval()


@pytest.mark.parametrize("output_size", [None, (27, 35)])
def test_with_the_prior_a_zero_network_output_predicts_the_centre_bias(tmp_path, output_size):
    data = load_osie(write_osie_layout(tmp_path, random_images(6, sizes=[(30, 40), (50, 30)], observers=[3], seed=6)))
    centre_bias = CentreBias.fit(data)
    model = _module(True, output_size)
    model.prior.fit(data)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        model.net.head.weight.zero_()  # the factorised head is a bias-free conv: zero logits everywhere
        pred = model(x)
    size = output_size or (32, 48)
    assert pred.shape == (2, 1, *size)
    for b in range(2):
        np.testing.assert_allclose(pred[b, 0].double().numpy(), centre_bias.map(size), rtol=1e-5, atol=1e-12)
    # without the prior the same network gives the flat sigmoid(0)
    plain = _module(False, output_size)
    plain.net.load_state_dict(model.net.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain(x), torch.full_like(pred, 0.5))


def test_the_prior_adds_to_the_logits_before_the_softmax(tmp_path):
    data = load_osie(write_osie_layout(tmp_path, random_images(4, sizes=[(30, 40)], observers=[3], seed=7)))
    model = _module(True)
    model.prior.fit(data)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        pred = model(x)
        logits = torch.nn.functional.interpolate(model.net.logits(x), size=(32, 48), mode="bilinear")
        expected = (logits + torch.log(torch.as_tensor(CentreBias.fit(data).map((32, 48))))).flatten(1).softmax(1)
    torch.testing.assert_close(pred.flatten(1), expected.float(), rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(pred.sum((1, 2, 3)), torch.ones(2))


def test_the_prior_without_fixation_data_is_one_line_naming_the_setting(tmp_path):
    from types import SimpleNamespace

    from attnlab.utils.config import UserError

    model = _module(True)
    model.trainer = SimpleNamespace(datamodule=SimpleNamespace())  # e.g. data=multimnist: no fixation splits
    with pytest.raises(UserError, match=r"model.centre_prior=true needs fixation data") as info:
        model.setup("fit")
    assert "\n" not in str(info.value)
    data = load_osie(write_osie_layout(tmp_path, random_images(4, sizes=[(30, 40)], observers=[2], seed=8)))
    model.trainer = SimpleNamespace(datamodule=SimpleNamespace(splits={"train": data}))
    model.setup("fit")  # fitted on the training split when fitting starts
    np.testing.assert_allclose(model.prior.mean.numpy(), CentreBias.fit(data).mean, rtol=1e-12)


# --- the recipes with debug=tiny ----------------------------------------------------------------
@pytest.fixture(scope="module")
def osie_fixture(tmp_path_factory):
    """20 images of three sizes, 2–4 observers (14 train / 2 val / 4 test)."""
    root = tmp_path_factory.mktemp("osie_layout")
    return write_osie_layout(root, random_images(20, sizes=[(60, 80), (90, 120), (75, 60)], observers=[2, 3, 4]))


def _train(tmp_path, monkeypatch, capfd, *overrides: str) -> tuple[int, str]:
    """``python -m attnlab.train <overrides>`` in this process, under ``tmp_path``."""
    from attnlab.train import main

    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab-train", *overrides])
    try:
        main()
        rc = 0
    except SystemExit as ex:
        rc = ex.code if isinstance(ex.code, int) else int(ex.code is not None)
    out, err = capfd.readouterr()
    return rc, out + err


@pytest.mark.parametrize("model", ["dinet", "transalnet", "salicon"])
def test_each_osie_recipe_trains_with_debug_tiny(tmp_path, monkeypatch, capfd, osie_fixture, model):
    monkeypatch.setenv("ATTNLAB_OSIE_ROOT", str(osie_fixture))
    rc, text = _train(
        tmp_path,
        monkeypatch,
        capfd,
        f"experiment=saliency_{model}_osie",
        "debug=tiny",
        "callbacks.rich_progress_bar=null",
    )
    assert rc == 0, text[-3000:]
    (metrics_file,) = (tmp_path / "outputs").glob("*/runs/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    for key in ("val/cc", "test/cc", "test/nss", "test/auc_judd"):
        assert np.isfinite(metrics[key]), key
    import hydra

    from attnlab.utils.checkpoint import stored_config

    checkpoint = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=False)
    cfg = stored_config(checkpoint)
    assert cfg.data.flip and cfg.model.centre_prior and checkpoint["epoch"] == 0  # the recipe's; debug=tiny: 1 epoch
    # the prior in the checkpoint is the centre bias of the training split's fixations
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    expected = CentreBias.fit(dm.splits["train"])
    np.testing.assert_allclose(checkpoint["state_dict"]["prior.mean"].numpy(), expected.mean, rtol=1e-12)
    np.testing.assert_allclose(checkpoint["state_dict"]["prior.cov"].numpy(), expected.cov, rtol=1e-12)
    if model == "dinet":  # the trained model as a benchmark source: a distribution at the trained size
        from attnlab.benchmark import BenchmarkContext, resolve_source

        ctx = BenchmarkContext(dm.dataset, dm.splits["train"], 3.0, 0)
        saliency = resolve_source(f"saliency:{metrics['best_checkpoint']}", ctx).saliency_map(ctx, 0)
        assert saliency.shape == tuple(cfg.data.image_size) and np.isfinite(saliency).all()
        assert saliency.min() > 0 and abs(saliency.sum() - 1) < 1e-4
        scores_another_dataset(tmp_path, metrics["best_checkpoint"], osie_fixture)
    assert Path(metrics["best_checkpoint"]).is_file()


def scores_another_dataset(tmp_path: Path, checkpoint: str, trained_on: Path) -> None:
    """Generalisation (README): a model trained on one OSIE-layout dataset scores another, of another image
    size and observer count, with ``attnlab.benchmark data=osie data.root=<it> split=all``, at its size;
    its own training and validation images are refused (scoring them would flatter it)."""
    from attnlab.benchmark import run_benchmark
    from attnlab.utils.compose import compose_config

    def score(root: Path) -> dict:
        return run_benchmark(
            compose_config(
                "benchmark",
                [
                    "data=osie",
                    f"data.root={root}",
                    "split=all",
                    f'attention=["DINet=saliency:{checkpoint}"]',  # quoted for Hydra, as the command quotes it
                    "figure_images=0",
                    "progress=false",
                    f"paths.output_dir={tmp_path / 'scored'}",
                ],
            )
        )

    with pytest.raises(UserError, match=r"source DINet: 16 of the 20 scored images were in its training or valid"):
        score(trained_on)  # 14 train + 2 val of its 20
    other = write_osie_layout(tmp_path / "other", random_images(6, sizes=[(45, 70)], observers=[5], seed=7))
    result = score(other)
    assert result["images"] == 6 and result["split"] == "all"
    for metric in ("AUC_Judd", "NSS", "CC", "KLD", "SIM", "IG"):
        assert np.isfinite(result["metrics"]["DINet"][metric]), metric
