"""The reconstruction task end to end: train the autoencoder with attnlab.train, then NeVA on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import open_dict
from PIL import Image

from attnlab.models.neva import ConvAutoencoder, load_autoencoder
from attnlab.utils.cli import compose_config


def make_images(folder: Path, n: int = 8) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image = np.zeros((36, 44, 3), dtype=np.uint8)
        r, c = rng.integers(0, 24), rng.integers(0, 30)
        image[r : r + 12, c : c + 14] = rng.integers(0, 255, 3)  # a coloured block on black
        Image.fromarray(image).save(folder / f"img{i}.png")


def test_train_autoencoder_then_reconstruction_scanpaths(run_cli, tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder)
    result = run_cli(
        "attnlab.train",
        "model=autoencoder",
        "data=images",
        f"data.image_dir={folder}",
        "data.image_size=[32,32]",
        "data.batch_size=4",
        "debug=tiny",
        "logger=csv",
        "model.net.channels=[8,16]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/loss" in metrics and "val/psnr" in metrics
    ckpt = run / "checkpoints" / "last.ckpt"
    net = load_autoencoder(ckpt)
    assert isinstance(net, ConvAutoencoder)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(net.encoder[0].weight, state["net.encoder.0.weight"])

    from attnlab.benchmark.scanpaths import generate

    cfg = compose_config(
        "scanpaths",
        [
            "model=neva_reconstruction",
            f"model.task.checkpoint={ckpt}",
            "model.image_size=[32,32]",
            "model.search.length=2",
            "model.search.steps=3",
            f"data.image_dir={folder}",
            "max_images=2",
            "overlays=false",
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "neva")
    summary = generate(cfg)
    assert summary["images"] == 2 and len(summary["mean_best_loss_per_fixation"]) == 2
    record = json.loads((tmp_path / "neva" / "scanpaths" / "img0.json").read_text())
    assert (record["height"], record["width"]) == (36, 44)
    assert all(np.isfinite(f["best_loss"]) for f in record["fixations"])
