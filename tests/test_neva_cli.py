"""``python -m attnlab.scanpaths``: per-image outputs, scoring against OSIE humans, clean errors.

The OSIE run composes the config and calls :func:`attnlab.benchmark.scanpaths.generate` in this process (the
subprocess start-up costs more than the run); the image-folder run goes through the real command line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import hydra
import numpy as np
import pytest
from conftest import shared_path
from omegaconf import open_dict
from PIL import Image

from attnlab.utils.cli import compose_config
from attnlab.utils.config import ConfigError, validate

FAST = ["model.search.length=3", "model.search.steps=2", "model.image_size=[64,64]"]


def compose_scanpaths(tmp_path: Path, *overrides: str):
    cfg = compose_config("scanpaths", overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


def run_folder(tmp_path: Path) -> Path:
    runs = sorted((tmp_path / "outputs" / "scanpaths" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_scanpaths_on_osie_are_written_and_scored_against_humans(tmp_path, capsys):
    from attnlab.benchmark.scanpaths import generate

    root = shared_path("data", "osie_subset")
    cfg = compose_scanpaths(tmp_path, "data=osie", f"data.root={root}", "max_images=2", *FAST)
    validate(cfg)
    summary = generate(cfg)
    out = tmp_path / "run"
    records = [json.loads(p.read_text()) for p in sorted((out / "scanpaths").glob("*.json"))]
    assert len(records) == 2
    for rec in records:
        assert (rec["width"], rec["height"]) == (800, 600)  # pixels of the ORIGINAL OSIE image
        assert [f["fixation"] for f in rec["fixations"]] == [1, 2, 3]
        assert all(0 <= f["x"] < 800 and 0 <= f["y"] < 600 for f in rec["fixations"])
        assert isinstance(rec["target"]["class"], int)
        rows = list(csv.DictReader(open(out / "scanpaths" / f"{rec['name']}.csv")))
        assert [float(r["x"]) for r in rows] == [round(f["x"], 2) for f in rec["fixations"]]
        with Image.open(out / "overlays" / f"{rec['name']}.png") as im:
            assert im.size[0] > 100
    bench = json.loads((out / "benchmark.json").read_text())
    scores = bench["metrics"]
    assert set(scores) == {"NeVA", "centre", "centre_bias", "uniform", "inter_observer"}
    assert bench["images"] == 2 and bench["split"] == "all"
    assert 0 <= scores["NeVA"]["ScanMatch"] <= 1 and 0 <= scores["NeVA"]["AUC_Judd"] <= 1
    # humans agree with each other more than uniform random fixations do
    assert scores["inter_observer"]["ScanMatch"] > scores["uniform"]["ScanMatch"]
    # the scored model scanpaths are the ones written per image; NeVA has no timing, so no durations
    # and no MultiMatch duration (not available), while the baselines have one
    scored = json.loads((out / "benchmark_sources" / "NeVA.json").read_text())
    assert {r["stimulus"] for r in scored} == {r["name"] for r in records}
    first = next(r for r in scored if r["stimulus"] == records[0]["name"])
    assert first["x"] == [f["x"] for f in records[0]["fixations"]] and "duration" not in first
    assert scores["NeVA"]["MM_duration"] != scores["NeVA"]["MM_duration"]
    assert 0 < scores["centre_bias"]["MM_duration"] <= 1
    centre = json.loads((out / "benchmark_sources" / "centre.json").read_text())
    assert all(c["x"] == [400.0] * 3 and c["y"] == [300.0] * 3 for c in centre)
    printed = capsys.readouterr().out
    for row in scores:
        assert f"| {row} |" in printed
    assert json.dumps(summary["scores"], sort_keys=True) == json.dumps(scores, sort_keys=True)  # NaN-aware
    check_written_scanpaths_are_benchmark_sources(tmp_path, out, root, records, bench, cfg.seed)


def check_written_scanpaths_are_benchmark_sources(tmp_path, out, root, records, bench, seed):
    """Round trip: every scanpath file the command writes is read by ``attention=<file>``, and
    scoring the written model file gives the scores of the scanpaths handed over in memory."""
    from attnlab.benchmark import run_benchmark
    from attnlab.data.folder import read_scanpaths

    for rec in records:
        (one,) = read_scanpaths(out / "scanpaths" / f"{rec['name']}.json")[rec["name"]]
        assert one.x.tolist() == [f["x"] for f in rec["fixations"]] and one.y.tolist() == [
            f["y"] for f in rec["fixations"]
        ]
    table = read_scanpaths(out / "scanpaths.csv")
    assert set(table) == {r["name"] for r in records}
    for rec in records:
        assert np.allclose(
            table[rec["name"]][0].x, [f["x"] for f in rec["fixations"]], atol=0.005
        )  # written to 2 decimals
    cfg = compose_config(
        "benchmark",
        [
            "data=osie",
            f"data.root={root}",
            f"attention=[{out / 'benchmark_sources' / 'NeVA.json'}]",
            "split=all",
            "max_images=2",
            f"seed={seed}",
            "figure_images=0",
            "progress=false",
            f"paths.output_dir={tmp_path / 'again'}",
        ],
    )
    (tmp_path / "again").mkdir()
    again = run_benchmark(cfg)
    for got, expected in zip(again["per_image"]["NeVA"], bench["per_image"]["NeVA"]):
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert got[k] == (pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True) if isinstance(v, float) else v), k


def test_scanpaths_on_an_image_folder_from_the_command_line(run_cli, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in [("wide", (40, 90)), ("tall", (70, 30))]:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    result = run_cli(
        "attnlab.scanpaths",
        "data=images",
        f"data.image_dir={folder}",
        "overlays=false",
        "model.search.start=random",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = run_folder(tmp_path)
    wide = json.loads((out / "scanpaths" / "wide.json").read_text())
    assert (wide["height"], wide["width"]) == (40, 90)
    assert all(0 <= f["x"] < 90 and 0 <= f["y"] < 40 for f in wide["fixations"])
    assert not (out / "benchmark.json").exists() and not (out / "overlays").exists()
    assert len((out / "scanpaths.csv").read_text().strip().splitlines()) == 1 + 2 * 3


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.search.length=0", "model.search.length"),
        ("model.search.forgetting=1.5", "model.search.forgetting"),
        ("model.search.start=corner", "model.search.start"),
        ("model.blur_kernel=4", "model.blur_kernel"),
        ("model.precision=fp16", "model.precision"),
    ],
)
def test_bad_search_settings_are_config_errors_naming_the_key(tmp_path, override, key):
    cfg = compose_scanpaths(tmp_path, override)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.key == key


@pytest.mark.parametrize("model", ["neva_classifier", "neva_reconstruction", "neva_clip"])
def test_every_neva_config_validates_and_defaults_to_image_folders(tmp_path, model):
    cfg = compose_scanpaths(tmp_path, f"model={model}")
    validate(cfg)
    assert cfg.data._target_ == "attnlab.data.images.ImagesDataModule"
    search = hydra.utils.instantiate(cfg.model.search)  # the paper's L, S and lr: the constructor's defaults
    assert search.length == 10 and search.steps == 20 and search.lr == 0.1
