"""Any dataset in OSIE's MATLAB layout loads (issue 17): generated fixtures written with scipy.io.savemat in
the real structure, of other image sizes and observer counts, several sizes in one dataset; MATLAB's
1-based coordinates; and the bad inputs (another structure, a missing stimulus, fixations outside the
image, an image without fixations)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fixtures.osie_layout import Image, random_images, write_osie_layout
from scipy.io import loadmat, savemat

from attnlab.data.osie import OSIEDataModule, load_osie
from attnlab.utils.config import UserError


def _raw(root):
    """fix_x, fix_y per image and subject, read back from the written .mat (OSIE's cell layout or structs)."""
    records = loadmat(str(root / "data" / "eye" / "fixations.mat"))["fixations"].reshape(-1)
    out = []
    for record in records:
        record = record.reshape(-1)[0] if isinstance(record, np.ndarray) else record
        subjects = record["subjects"].reshape(-1)
        out.append([s.reshape(-1)[0] if isinstance(s, np.ndarray) else s for s in subjects])
    return out


@pytest.mark.parametrize("layout", ["cell", "struct"])
def test_images_of_several_sizes_and_observer_counts_load(tmp_path, layout):
    images = random_images(6, sizes=[(48, 64), (30, 50), (64, 40)], observers=[2, 3, 5], seed=1)
    root = write_osie_layout(tmp_path, images, layout)
    data = load_osie(root)
    assert data.ids == [image.name.rsplit(".", 1)[0] for image in images]
    # each image's size is read from its own file
    assert [s.size for s in data.stimuli] == [image.size for image in images]
    assert [len(paths) for paths in data.scanpaths] == [len(image.subjects) for image in images]
    assert len(data.subjects) == 5
    raw = _raw(root)
    for i, image in enumerate(images):
        for s, path in enumerate(data.scanpaths[i]):
            fix = raw[i][s]
            # MATLAB's 1-based pixels become attnlab's 0-based ones
            np.testing.assert_array_equal(path.x, fix["fix_x"].reshape(-1) - 1)
            np.testing.assert_array_equal(path.y, fix["fix_y"].reshape(-1) - 1)
            np.testing.assert_array_equal(path.duration, fix["fix_duration"].reshape(-1))
            assert path.subject == f"s{s + 1:02d}"
    # the data module keeps every fixation (all lie inside their image) and splits by image
    dm = OSIEDataModule(root=str(root), split=(0.5, 0.0, 0.5), image_size=(24, 32))
    dm.setup()
    assert dm.dataset.num_fixations == data.num_fixations and "dropped_fixations" not in dm.dataset.info
    assert len(dm.splits["train"]) == 3 and len(dm.splits["test"]) == 3


def test_matlab_coordinates_up_to_and_including_the_size_land_in_the_edge_pixels(tmp_path):
    h, w = 30, 50
    # 1-based corners: (1, 1) is the first pixel, (W, H) the last; (W + 0.9, H + 0.9) is still inside it
    x, y = np.array([1.0, w, w + 0.9, 1.5]), np.array([1.0, h, h + 0.9, 2.0])
    root = write_osie_layout(tmp_path, [Image("a.png", (h, w), [(x, y)])])
    dm = OSIEDataModule(root=str(root), split=(1, 0, 0))
    dm.setup()
    counts, dropped = dm.dataset.fixation_map(0)
    assert dropped == 0 and counts.sum() == 4
    expected = np.zeros((h, w))
    expected[0, 0], expected[1, 0] = 1, 1  # (1, 1) and (1.5, 2.0): MATLAB rows 1 and 2 → rows 0 and 1
    expected[h - 1, w - 1] = 2
    np.testing.assert_array_equal(counts, expected)
    # a map of another size: the last MATLAB pixel is still the last cell
    small, _ = dm.dataset.fixation_map(0, size=(3, 5))
    assert small[2, 4] == 2 and small[0, 0] == 2


def test_fixations_outside_the_image_are_dropped_and_counted(tmp_path, caplog):
    inside = (np.array([5.0, 20.0]), np.array([5.0, 10.0]))
    # x = fix_x − 1 < 0, x ≥ W, y ≥ H, NaN: four fixations that no map may show
    outside = (np.array([0.5, 41.0, 3.0, np.nan]), np.array([3.0, 3.0, 31.0, 4.0]))
    images = [Image("a.png", (30, 40), [inside, outside]), Image("b.png", (30, 40), [outside])]
    root = write_osie_layout(tmp_path, images)
    dm = OSIEDataModule(root=str(root), split=(1, 0, 0))
    with caplog.at_level(logging.WARNING):
        dm.setup()
    dropped = dm.dataset.info["dropped_fixations"]
    assert dropped["outside_image"] == 6 and dropped["not_finite"] == 2 and dropped["of"] == 10
    assert dropped["images_without_fixations"] == ["b"]
    assert "dropped 8 of 10 fixations" in caplog.text
    counts, lost = dm.dataset.fixation_map(0)
    assert lost == 0 and counts.sum() == 2 and counts[4, 4] == 1 and counts[9, 19] == 1
    assert dm.dataset.scanpaths[1] == []


def test_an_image_without_fixations_is_skipped_and_counted(tmp_path, caplog):
    empty = (np.zeros(0), np.zeros(0), np.zeros(0))
    images = random_images(3, sizes=[(20, 30)], observers=[2], seed=2)
    images[1] = Image("empty.jpg", (20, 30), [empty, empty])
    root = write_osie_layout(tmp_path, images)
    with caplog.at_level(logging.WARNING):
        data = load_osie(root)
    assert data.ids == ["0001", "0003"]
    assert data.info["images_without_fixations"] == ["empty.jpg"]
    assert "1 images in fixations.mat have no fixations (skipped), e.g. empty.jpg" in caplog.text


def test_a_listed_stimulus_without_its_file_is_skipped_and_counted_or_an_error_when_strict(tmp_path, caplog):
    images = random_images(3, sizes=[(20, 30)], observers=[2], seed=3)
    images[0].write_file = False
    root = write_osie_layout(tmp_path, images)
    with caplog.at_level(logging.WARNING):
        data = load_osie(root)
    assert data.ids == ["0002", "0003"] and data.info["missing_images"] == ["0001.jpg"]
    assert "1 images listed in fixations.mat have no file" in caplog.text
    with pytest.raises(UserError, match="lists 0001.jpg, which is not in"):
        load_osie(root, strict=True)


def _write_mat(root, contents):
    """A fixations.mat of any ``contents`` beside one stimulus, a.png."""
    from PIL import Image as PILImage

    (root / "data" / "stimuli").mkdir(parents=True, exist_ok=True)
    (root / "data" / "eye").mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (30, 20)).save(root / "data" / "stimuli" / "a.png")
    savemat(str(root / "data" / "eye" / "fixations.mat"), contents)
    return root


def _struct(**fields):  # a MATLAB struct for savemat
    return {k: v for k, v in fields.items()}


@pytest.mark.parametrize(
    "contents, message",
    [
        ({"fixations": np.arange(6.0).reshape(2, 3)}, "fixations(1) has no field 'img' (a"),
        ({"fixes": np.zeros(3)}, "has no variable 'fixations' (variables: fixes)"),
        ({"fixations": np.array([[_struct(image="a.png", subjects=np.zeros(1))]], dtype=object)}, "no field 'img'"),
        ({"fixations": np.array([[_struct(img="a.png", observers=np.zeros(1))]], dtype=object)}, "no field 'subjects'"),
        (
            {"fixations": np.array([[_struct(img="a.png", subjects=np.array([[_struct(fix_x=np.ones((1, 2)))]]))]])},
            "fixations(1).subjects(1) has no field 'fix_y' (fix_x)",
        ),
    ],
    ids=["numeric", "no-variable", "no-img", "no-subjects", "no-fix_y"],
)
def test_a_fixations_mat_of_another_structure_is_one_line_naming_it(tmp_path, contents, message):
    root = _write_mat(tmp_path, contents)
    with pytest.raises(UserError) as info:
        load_osie(root)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert "expected fixations(i).img and fixations(i).subjects(s).fix_x/fix_y" in text or "variables" in text


def test_not_a_mat_file_and_mismatched_lengths_are_one_line(tmp_path):
    root = _write_mat(tmp_path, {"x": 1})
    (root / "data" / "eye" / "fixations.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(UserError, match="cannot read OSIE fixations from"):
        load_osie(root)
    other = write_osie_layout(tmp_path / "b", [Image("a.png", (20, 30), [(np.ones(3), np.ones(2))])])
    with pytest.raises(UserError, match="3 x values but 2 y values"):
        load_osie(other)


def test_a_bad_fixations_mat_through_the_benchmark_command_is_one_line(tmp_path, monkeypatch, capfd):
    import sys

    from attnlab.benchmark.__main__ import main

    root = _write_mat(tmp_path / "bad", {"fixations": np.array([[_struct(img="a.png")]], dtype=object)})
    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["attnlab-benchmark", "data=osie", f"data.root={root}", "attention=uniform"])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert info.value.code == 2 and "Traceback" not in out + err
    assert len(lines) == 1 and "no field 'subjects'" in lines[0], lines
