"""SALICON (LSUN 2017 layout) datamodule, and SALICON / TranSalNet trained in both phases on it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from attnlab.data.salicon import SALICONMapsDataModule, read_salicon_fixations
from attnlab.models.saliency import SALICONNet, SaliencyModule, TranSalNet
from attnlab.utils.config import UserError

# tiny test models: a second thread gains nothing, and OpenMP waits dominate on a busy machine
# (a 32x48 ResNet-50 forward: 0.06 s on one thread, 3 s on two)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_salicon(root: Path, n_train: int = 4, n_val: int = 2, size=(48, 64)) -> dict[str, list]:
    """Random images, maps and per-subject gaze .mat files; returns the fixations written (1-based)."""
    rng = np.random.default_rng(0)
    written = {}
    for split, n in (("train", n_train), ("val", n_val)):
        for sub in ("images", "maps", "fixations"):
            (root / sub / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            stem = f"COCO_{split}2014_{i:012d}"
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
                root / "images" / split / f"{stem}.jpg"
            )
            Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(root / "maps" / split / f"{stem}.png")
            subjects = []
            for s in range(2):
                fix = np.stack([rng.integers(1, size[1] + 1, 3), rng.integers(1, size[0] + 1, 3)], 1).astype(float)
                subjects.append((fix * 1.0, np.zeros(3), fix))
            gaze = np.array(subjects, dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
            savemat(
                root / "fixations" / split / f"{stem}.mat",
                {"image": stem, "resolution": np.array([size]), "gaze": gaze.reshape(1, -1)},
            )
            written[(split, stem)] = np.concatenate([s[2] for s in subjects])
    return written


def test_salicon_datamodule_reads_the_lsun_layout(tmp_path):
    written = make_salicon(tmp_path)
    dm = SALICONMapsDataModule(str(tmp_path), val_fraction=0.25, image_size=(48, 64), batch_size=2)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 3, "val": 1, "test": 2}
    assert not set(dm.splits["val"].ids) & set(dm.splits["train"].ids)
    assert all(i.startswith("COCO_val") for i in dm.splits["test"].ids)
    item = dm.splits["test"][0]
    fix = written[("val", dm.splits["test"].ids[0])]
    expected = np.zeros((48, 64))
    np.add.at(expected, (fix[:, 1].astype(int) - 1, fix[:, 0].astype(int) - 1), 1)  # 1-based (x, y)
    np.testing.assert_array_equal(item["fixations"].numpy(), expected)
    assert item["image"].shape == (3, 48, 64) and 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert abs(float(item["density"].sum()) - 1) < 1e-4
    # maps at half resolution: fixations are rasterised onto the smaller grid
    small = SALICONMapsDataModule(str(tmp_path), image_size=(48, 64), map_size=(24, 32))
    small.setup()
    assert float(small.splits["test"][0]["fixations"].sum()) == len(fix)
    with pytest.raises(UserError, match="SALICON folder not found"):
        SALICONMapsDataModule(str(tmp_path / "missing")).setup()


def test_reference_fixation_maps_are_read_too(tmp_path):
    pts = np.zeros((6, 8))
    pts[2, 5] = pts[4, 1] = 1
    savemat(tmp_path / "a.mat", {"fixationPts": pts})
    x, y, size = read_salicon_fixations(tmp_path / "a.mat", (6, 8))
    assert sorted(zip(x.tolist(), y.tolist())) == [(1.0, 4.0), (5.0, 2.0)] and size == (6, 8)
    savemat(tmp_path / "b.mat", {"other": pts})
    with pytest.raises(UserError, match="gaze"):
        read_salicon_fixations(tmp_path / "b.mat", (6, 8))


@pytest.mark.parametrize(
    "make_net",
    [
        lambda phase: SALICONNet(backbone_weights="none", embed_dim=8, bases=6, phase=phase),
        lambda phase: TranSalNet(
            backbone_weights="none",
            input_size=(32, 48),
            dims=(16, 16, 8),
            heads=(2, 2, 2),
            decoder_dim=8,
            feature_dim=8,
            bases=6,
            phase=phase,
        ),
    ],
    ids=["salicon", "transalnet"],
)
def test_salicon_and_transalnet_train_both_phases(make_net, tmp_path):
    make_salicon(tmp_path / "salicon")
    dm = SALICONMapsDataModule(str(tmp_path / "salicon"), val_fraction=0.25, image_size=(32, 48), batch_size=2)
    adam = lambda params: torch.optim.Adam(params, lr=1e-3)
    trainer_args = dict(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    L.seed_everything(0)
    phase1 = SaliencyModule(make_net(1), adam, bases=6)
    before = {k: v.clone() for k, v in phase1.state_dict().items()}
    trainer = L.Trainer(**trainer_args)
    trainer.fit(phase1, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["val/cc"])
    assert not torch.equal(
        before["net.bases.weight"], phase1.state_dict()["net.bases.weight"]
    )  # phase 1 trains the bases
    ckpt = tmp_path / "phase1.ckpt"
    trainer.save_checkpoint(ckpt)

    phase2 = SaliencyModule(make_net(2), adam, phase=2, bases=6, init_from=str(ckpt))
    L.Trainer(**trainer_args).fit(phase2, datamodule=dm)
    s1, s2 = phase1.state_dict(), phase2.state_dict()
    for k, v in s1.items():
        if not k.startswith("net.head."):
            assert torch.equal(v, s2[k]), k
    test = L.Trainer(**trainer_args | {"limit_test_batches": 1}).test(phase2, datamodule=dm, verbose=False)[0]
    assert np.isfinite(test["test/cc"]) and np.isfinite(test["test/cb_cc"])
