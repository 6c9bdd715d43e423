"""Fixation data: the OSIE subset as published, loaders on fixtures written in each documented format."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image
from scipy.io import loadmat, savemat
from scipy.ndimage import gaussian_filter

from attnlab.data.fixations import (
    FixationDataset,
    Scanpath,
    Stimulus,
    blur,
    fixation_map,
    gaussian_density,
    sigma_in_pixels,
)
from attnlab.utils.config import UserError


@pytest.fixture(scope="module")
def osie_root():
    root = os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))
    if not os.path.isdir(root):
        pytest.skip(f"OSIE subset not found at {root} (set ATTNLAB_OSIE_ROOT)")
    return root


@pytest.fixture(scope="module")
def osie(osie_root):
    from attnlab.data.osie import load_osie

    return load_osie(osie_root)


def test_osie_subset_is_read_as_published(osie, osie_root):
    raw = loadmat(os.path.join(osie_root, "data", "eye", "fixations.mat"))["fixations"].reshape(-1)
    assert len(osie) == len(raw) == 60
    assert {s.size for s in osie.stimuli} == {(600, 800)}
    assert len(osie.subjects) == 15
    first = raw[0][0, 0]
    assert osie.stimuli[0].id == str(first["img"][0]).removesuffix(".jpg")
    subject = first["subjects"].reshape(-1)[3][0, 0]
    path = osie.scanpaths[0][3]
    # MATLAB's 1-based pixels, 0-based in attnlab (attnlab.data.osie)
    np.testing.assert_array_equal(path.x, subject["fix_x"].reshape(-1) - 1)
    np.testing.assert_array_equal(path.y, subject["fix_y"].reshape(-1) - 1)
    np.testing.assert_array_equal(path.duration, subject["fix_duration"].reshape(-1))
    total = sum(len(s[0, 0]["fix_x"].reshape(-1)) for r in raw for s in r[0, 0]["subjects"].reshape(-1))
    assert osie.num_fixations == total


def test_density_equals_scipy_gaussian_filter(osie):
    counts, dropped = osie.fixation_map(4)
    assert dropped == 0 and counts.sum() == len(osie.fixations(4))
    ref = gaussian_filter(counts, 24.0, mode="reflect")
    np.testing.assert_allclose(osie.density(4, sigma_px=24.0), ref / ref.sum(), rtol=1e-9, atol=1e-18)
    # sigma in degrees, and at a smaller size (sigma scales with the map)
    osie.pixels_per_degree = 24.0
    small_counts, _ = osie.fixation_map(4, size=(60, 80))
    ref = gaussian_filter(small_counts, 2.4, mode="reflect")
    np.testing.assert_allclose(osie.density(4, sigma_deg=1.0, size=(60, 80)), ref / ref.sum(), rtol=1e-9)
    torch.testing.assert_close(
        blur(torch.as_tensor(counts), 24.0).numpy(), gaussian_filter(counts, 24.0, mode="reflect")
    )


def test_fixation_map_rules():
    counts, dropped = fixation_map(
        np.array([0.0, 799.9, 800.0, -0.1, 10.2, 10.7]), np.array([0, 599.9, 5, 5, 3, 3.9]), (600, 800)
    )
    assert dropped == 2  # x = 800 and x = −0.1 are outside
    assert counts[0, 0] == 1 and counts[599, 799] == 1 and counts[3, 10] == 2
    half, _ = fixation_map(np.array([10.2, 799.9]), np.array([3, 599.9]), (600, 800), size=(300, 400))
    assert half[1, 5] == 1 and half[299, 399] == 1  # floor(x · W / W0)
    assert np.isnan(gaussian_density(np.zeros(0), np.zeros(0), (10, 10), 2.0)).all()
    assert sigma_in_pixels(1.5, 24) == 36.0
    with pytest.raises(UserError, match="pixels_per_degree"):
        sigma_in_pixels(1.0, None)


def test_filters_and_split(osie):
    dropped = osie.filtered(drop_first=True)
    assert dropped.num_fixations == osie.num_fixations - sum(len(p) for p in osie.scanpaths)
    assert dropped.scanpaths[0][0].x[0] == osie.scanpaths[0][0].x[1]
    long_only = osie.filtered(min_duration=200)
    assert all((p.duration >= 200).all() for paths in long_only.scanpaths for p in paths)
    a, b = osie.split((0.7, 0.1, 0.2), seed=3), osie.split((0.7, 0.1, 0.2), seed=3)
    assert a["test"].ids == b["test"].ids and a["test"].ids != osie.split((0.7, 0.1, 0.2), seed=4)["test"].ids
    assert [len(a[k]) for k in ("train", "val", "test")] == [42, 6, 12]
    assert not set(a["train"].ids) & set(a["test"].ids)
    with pytest.raises(UserError, match="split"):
        osie.split((0.5, 0.5))


def test_osie_datamodule_batches(osie_root):
    from attnlab.data.osie import OSIEDataModule

    dm = OSIEDataModule(
        root=osie_root, drop_first=True, pixels_per_degree=24, image_size=(48, 64), map_size=(24, 32), batch_size=4
    )
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 48, 64) and batch["image"].max() <= 1
    assert batch["fixations"].shape == (4, 24, 32) and batch["fixations"].sum() > 0
    torch.testing.assert_close(batch["density"].sum((1, 2)), torch.ones(4))


def test_mit1003_fixture_with_raw_gaze(tmp_path):
    from attnlab.data.mit1003 import load_mit1003

    (tmp_path / "ALLSTIMULI").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "ALLSTIMULI" / "i05june05_static_street_boston_p1010764.jpeg")
    rng = np.random.default_rng(0)
    # 48 samples (200 ms) at (50, 40), a 2-sample saccade, 60 samples (250 ms) at (150, 60), a blink
    gaze = np.concatenate(
        [
            [50, 40] + rng.normal(0, 0.2, (48, 2)),
            [[90, 50], [130, 55]],
            [150, 60] + rng.normal(0, 0.2, (60, 2)),
            np.full((5, 2), -1.0),
        ]
    )
    for subject in ("CNG", "ajs"):
        (tmp_path / "DATA" / subject).mkdir(parents=True)
        name = "i05june05_static_street_boston_p1010764"
        savemat(tmp_path / "DATA" / subject / f"{name}.mat", {name: {"DATA": {"eyeData": gaze}}})
    data = load_mit1003(tmp_path)
    assert data.subjects == ["CNG", "ajs"] and data.stimuli[0].size == (100, 200)
    path = data.scanpaths[0][0]
    np.testing.assert_allclose(path.x, [50, 150], atol=0.5)
    np.testing.assert_allclose(path.y, [40, 60], atol=0.5)
    np.testing.assert_allclose(path.duration, [48 / 0.24, 60 / 0.24], rtol=0.05)


def test_salicon_fixture(tmp_path):
    from attnlab.data.salicon_fixations import load_salicon, read_salicon_map

    for d in ("images/train", "fixations/train", "maps/train"):
        (tmp_path / d).mkdir(parents=True)
    name = "COCO_train2014_000000000009"
    Image.new("RGB", (640, 480)).save(tmp_path / "images/train" / f"{name}.jpg")
    Image.fromarray(np.full((480, 640), 255, np.uint8)).save(tmp_path / "maps/train" / f"{name}.png")
    gaze = np.zeros((2, 1), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    gaze[0, 0] = (np.array([[1.0, 1.0], [11, 21]]), np.array([[1, 2]]), np.array([[101, 201], [301, 401], [641, 5]]))
    gaze[1, 0] = (np.array([[5.0, 5.0]]), np.array([[1]]), np.array([[1, 1]]))
    savemat(tmp_path / "fixations/train" / f"{name}.mat", {"image": name, "resolution": [480, 640], "gaze": gaze})
    data = load_salicon(tmp_path, "train")
    first = data.scanpaths[0][0]
    np.testing.assert_array_equal(first.x, [100, 300, 640])  # MATLAB one-based → zero-based
    np.testing.assert_array_equal(first.y, [200, 400, 4])
    assert data.fixation_map(0)[1] == 1  # x = 640 is outside the 640-wide image
    mouse = load_salicon(tmp_path, "train", fixation_type="mouse").scanpaths[0][0]
    np.testing.assert_array_equal(mouse.x, [0, 10])
    assert read_salicon_map(tmp_path / "maps/train" / f"{name}.png").max() == 1.0
    with pytest.raises(UserError, match="split"):
        load_salicon(tmp_path, "test")


def test_cat2000_fixture(tmp_path):
    from attnlab.data.cat2000 import load_cat2000

    for d in ("trainSet/Stimuli/Action", "trainSet/FIXATIONLOCS/Action"):
        (tmp_path / d).mkdir(parents=True)
    Image.new("RGB", (192, 108)).save(tmp_path / "trainSet/Stimuli/Action/001.jpg")
    locs = np.zeros((108, 192), dtype=np.uint8)
    locs[10, 20] = locs[50, 100] = 1
    savemat(tmp_path / "trainSet/FIXATIONLOCS/Action/001.mat", {"fixLocs": locs})
    data = load_cat2000(tmp_path)
    assert data.ids == ["Action/001"]
    counts, _ = data.fixation_map(0)
    np.testing.assert_array_equal(counts, locs)


def test_toronto_fixture_and_its_bad_files(tmp_path):
    from attnlab.data.toronto import load_toronto

    base = tmp_path / "eyetrackingdata" / "fixdens"
    (base / "Original Image Set").mkdir(parents=True)
    Image.new("RGB", (32, 24)).save(base / "Original Image Set" / "1.jpg")
    fixated = np.zeros((24, 32), np.uint8)
    fixated[3, 4] = fixated[20, 30] = 1
    maps = np.empty((1, 2), dtype=object)
    maps[0, 0], maps[0, 1] = fixated, fixated  # map 2 has no image: not scored
    savemat(base / "origfixdata.mat", {"white": maps})
    data = load_toronto(tmp_path)
    assert data.ids == ["1"]
    np.testing.assert_array_equal(data.fixation_map(0)[0], fixated)
    maps[0, 0] = np.zeros((10, 10), np.uint8)
    savemat(base / "origfixdata.mat", {"white": maps})
    with pytest.raises(UserError, match="map 1 is 10×10 but image 1.jpg is 24×32"):
        load_toronto(tmp_path)
    savemat(base / "origfixdata.mat", {"black": maps})
    with pytest.raises(UserError, match="no variable 'white'"):
        load_toronto(tmp_path)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_folder_format_round_trip(tmp_path, fmt):
    from attnlab.data.folder import load_folder, read_scanpaths

    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (40, 30)).save(tmp_path / "images" / f"{name}.png")
    paths = [
        ("a", "s1", [1, 2, 3], [4, 5, 6], [100, 200, 300]),
        ("a", "s2", [7, 8], [9, 10], [50, 60]),
        ("b", "s1", [11], [12], [70]),
    ]
    if fmt == "json":
        (tmp_path / "scanpaths.json").write_text(
            json.dumps([dict(stimulus=f"{s}.png", subject=u, x=x, y=y, duration=d) for s, u, x, y, d in paths])
        )
    else:
        rows = ["stimulus,subject,x,y,duration"] + [
            f"{s},{u},{x[k]},{y[k]},{d[k]}" for s, u, x, y, d in paths for k in range(len(x))
        ]
        (tmp_path / "scanpaths.csv").write_text("\n".join(rows) + "\n")
    data = load_folder(tmp_path)
    assert data.ids == ["a", "b"] and data.subjects == ["s1", "s2"]
    np.testing.assert_array_equal(data.scanpaths[0][1].x, [7, 8])
    np.testing.assert_array_equal(data.scanpaths[0][0].duration, [100, 200, 300])
    assert len(read_scanpaths(tmp_path / f"scanpaths.{fmt}")["b"]) == 1


def test_bad_inputs_are_clear_errors(tmp_path):
    from attnlab.data.folder import read_scanpaths
    from attnlab.data.osie import load_osie

    with pytest.raises(UserError, match="OSIE not found"):
        load_osie(tmp_path)
    (tmp_path / "bad.csv").write_text("image,x\n1,2\n")
    with pytest.raises(UserError, match="header"):
        read_scanpaths(tmp_path / "bad.csv")
    with pytest.raises(UserError, match="y values"):
        Scanpath([1, 2], [1])
    with pytest.raises(UserError):
        FixationDataset("x", [Stimulus("a", None, (2, 2))], [])
