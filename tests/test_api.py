"""``attnlab.score``: the Python API returns the command's numbers (OSIE subset, 2 test images), and a
callable ``image -> map`` scores exactly as a folder of the same maps does."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import ONE_THREAD, shared_path

COMMON = {"max_images": 2, "samples": 300, "seed": 1}


def osie_root() -> str:
    return os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))


def brightness(image: np.ndarray) -> np.ndarray:
    """A map from the photo: its brightness (any H×W map will do)."""
    return image.astype(np.float64).mean(-1)


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, str) or b is None:
        return a == b
    return abs(float(a) - float(b)) <= 1e-12


def test_score_returns_the_command_numbers(run_cli, tmp_path, monkeypatch, one_torch_thread):
    import attnlab

    root = osie_root()
    monkeypatch.setenv("ATTNLAB_OSIE_ROOT", root)
    maps = tmp_path / "bright_maps"
    maps.mkdir()
    stimuli = Path(root) / "data" / "stimuli"
    from PIL import Image

    for path in sorted(stimuli.glob("*.jpg")):
        with Image.open(path) as im:
            np.save(maps / f"{path.stem}.npy", brightness(np.asarray(im.convert("RGB"))))

    result = run_cli(
        "attnlab.leaderboard",
        "data=osie",
        f"attention=CB=centre_bias,uniform,{maps}",
        "max_images=2",
        "figure_images=0",
        "bootstrap.samples=300",
        "seed=1",
        env=ONE_THREAD,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = Path(result.stdout.strip().splitlines()[0].split("writing to ", 1)[1])
    command = json.loads((out / "leaderboard.json").read_text())

    board = attnlab.score(["CB=centre_bias", "uniform", maps], **COMMON)
    assert board.sources == command["sources"] == ["CB", "uniform", "bright_maps"]
    assert board.reference == "CB" and board.images == 2
    for source in board.sources:
        for metric in board.metrics:
            for key, value in command["table"][source][metric].items():
                assert same(board.table[source][metric][key], value), (source, metric, key)
    assert board.to_markdown() == (out / "leaderboard.md").read_text()
    assert board.to_csv() == (out / "leaderboard.csv").read_text()
    assert [r["stimulus"] for r in board.per_image["CB"]] == [r["stimulus"] for r in command["per_image"]["CB"]]

    # a callable image -> map gives the folder's numbers, placed first, named by its label
    called = attnlab.score({"bright": brightness, "CB": "centre_bias"}, **COMMON)
    assert called.sources == ["bright", "CB"]
    for metric in called.metrics:
        a, b = called.table["bright"][metric], board.table["bright_maps"][metric]
        assert same(a["mean"], b["mean"]) and same(a["low"], b["low"]) and same(a["p_value"], b["p_value"]), metric
    assert math.isclose(called.mean("bright", "NSS"), board.mean("bright_maps", "NSS"), abs_tol=1e-12)


def test_score_writes_files_html_and_reports_bad_input(tmp_path, monkeypatch, one_torch_thread):
    import attnlab
    from attnlab.utils.config import UserError

    monkeypatch.setenv("ATTNLAB_OSIE_ROOT", osie_root())
    board = attnlab.score(lambda im: brightness(im), max_images=2, samples=50, figure_images=1, output_dir=tmp_path)
    assert board.sources == ["function", "centre_bias"]  # the centre bias is added as the reference
    assert {p.name for p in tmp_path.iterdir()} >= {"leaderboard.html", "leaderboard.png", "leaderboard.csv"}
    page = board.to_html(tmp_path / "copy.html")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert (tmp_path / "copy.html").read_text() == page
    low, high = board.interval("function", "CC")
    assert low <= board.mean("function", "CC") <= high
    with pytest.raises(UserError, match="unknown attention source"):
        attnlab.score("no_such_source", max_images=1, samples=10)
    with pytest.raises(UserError, match="max_images"):
        attnlab.score("uniform", max_images=-3)
