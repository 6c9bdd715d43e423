"""``analysis=scanpath_statistics``: how model scanpaths differ from the humans' (issue 32 item 4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import shared_path

from attnlab.analysis.scanpath_statistics import scanpath_statistics


def test_statistics_of_a_scanpath_that_goes_out_and_comes_back():
    """Three fixations 1 deg apart on a 2×2 deg image (24 px a degree): there and back again."""
    s = scanpath_statistics(np.array([[0, 0], [24, 0], [0, 0]]), (48, 48), pixels_per_degree=24)
    assert s["amplitudes"].tolist() == [1.0, 1.0]
    assert s["centre_distances"] == pytest.approx([math.sqrt(2), 1.0, math.sqrt(2)])
    assert s["spread"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3)  # distances from the centroid (1/3, 0)
    assert s["returns"] == 1.0  # the third fixation lands on the first
    onward = scanpath_statistics(np.array([[0, 0], [24, 0], [48, 0], [72, 0]]), (48, 96), pixels_per_degree=24)
    assert onward["returns"] == 0.0 and onward["fixations"] == 4
    assert math.isnan(scanpath_statistics(np.array([[0, 0], [24, 0]]), (48, 48), 24)["returns"])


def test_the_humans_written_as_a_scanpath_file_score_as_the_humans(run_cli, tmp_path):
    """A file holding the humans' own scanpaths (first fixation dropped) gets the humans' row exactly;
    a file without a scanpath of the split is one line."""
    import hydra

    from attnlab.data.folder import write_scanpaths
    from attnlab.utils.compose import compose_config

    root = shared_path("data", "osie_subset")
    cfg = compose_config("analyze", ["analysis=scanpath_statistics", "data=osie", f"data.root={root}"])
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("test")
    humans = dm.splits["test"].filtered(drop_first=True)
    write_scanpaths(tmp_path / "copy.json", [p for paths in humans.scanpaths for p in paths])
    write_scanpaths(tmp_path / "train.json", list(dm.splits["train"].scanpaths[0]))
    common = ["analysis=scanpath_statistics", "data=osie", f"data.root={root}", "analysis.bootstrap=200"]
    result = run_cli("attnlab.analyze", *common, f"+analysis.scanpaths={{copy: {tmp_path / 'copy.json'}}}")
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "outputs" / "analyze" / "runs").glob("*")
    table = json.loads((folder / "scanpath_statistics.json").read_text())["table"]
    assert table["copy"] == table["humans"] and 0 < table["humans"]["amplitude"]["mean"] < 30
    assert (folder / "scanpath_statistics.png").stat().st_size > 10_000
    result = run_cli("attnlab.analyze", *common, f"+analysis.scanpaths={{train: {tmp_path / 'train.json'}}}")
    assert result.returncode == 2 and "has no scanpath of a test stimulus" in result.stderr
