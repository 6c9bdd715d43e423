"""The benchmark command end to end: a folder-format fixture, the OSIE subset, sources and errors."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from attnlab.data.fixations import Scanpath

SIZE = (60, 80)


@pytest.fixture
def folder_data(tmp_path):
    """8 images, 5 subjects looking near the centre and at an image-specific spot."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fix"
    (root / "images").mkdir(parents=True)
    records = []
    for k in range(8):
        Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(root / "images" / f"im{k}.png")
        spot = rng.uniform([10, 10], [70, 50])
        for s in range(5):
            n = 6
            centre = rng.normal([40, 30], 8, (n, 2))
            target = spot + rng.normal(0, 3, (n, 2))
            xy = np.where(rng.random((n, 1)) < 0.5, centre, target).clip([0, 0], [79.9, 59.9])
            records.append(
                dict(
                    stimulus=f"im{k}",
                    subject=f"s{s}",
                    x=xy[:, 0].tolist(),
                    y=xy[:, 1].tolist(),
                    duration=rng.uniform(100, 400, n).tolist(),
                )
            )
    (root / "scanpaths.json").write_text(json.dumps(records))
    return root


def run_benchmark_cli(run_cli, root, *extra):
    return run_cli(
        "attnlab.benchmark",
        "data=fixation_folder",
        f"data.root={root}",
        "data.split=[0.5,0,0.5]",
        "sigma_px=4",
        "progress=false",
        *extra,
    )


def output_folder(tmp_path) -> Path:
    runs = sorted((tmp_path / "outputs" / "benchmark" / "runs").iterdir())
    return runs[-1]


def test_benchmark_on_a_folder_dataset(run_cli, tmp_path, folder_data):
    # a map folder (the human density of each image) and a scanpath file as extra sources
    from attnlab.data.folder import load_folder, write_scanpaths

    data = load_folder(folder_data)
    maps = tmp_path / "oracle_maps"
    maps.mkdir()
    for i, sid in enumerate(data.ids):
        np.save(maps / f"{sid}.npy", data.density(i, sigma_px=4))
    model_paths = [
        Scanpath([40, 45, 35], [30, 25, 35], [200, 200, 200], subject="model", stimulus=sid) for sid in data.ids
    ]
    write_scanpaths(tmp_path / "model.json", model_paths)

    result = run_benchmark_cli(
        run_cli, folder_data, f"attention=centre_bias,uniform,inter_observer,{maps},{tmp_path / 'model.json'}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| source | AUC_Judd |" in result.stdout and "| inter_observer |" in result.stdout
    out = output_folder(tmp_path)
    assert {"benchmark.md", "benchmark.csv", "benchmark.json", "saliency_grid.png"} <= {p.name for p in out.iterdir()}
    table = json.loads((out / "benchmark.json").read_text())["metrics"]
    rows = list(csv.DictReader((out / "benchmark.csv").open()))
    assert [r["source"] for r in rows] == ["centre_bias", "uniform", "inter_observer", "oracle_maps", "model"]
    uniform, centre, oracle = table["uniform"], table["centre_bias"], table["oracle_maps"]
    assert uniform["AUC_Judd"] == 0.5 and uniform["NSS"] == 0 and uniform["CC"] == 0
    assert centre["AUC_Judd"] > 0.5 and centre["NSS"] > 0
    # the images' own human density predicts their fixations best
    assert oracle["CC"] == pytest.approx(1.0) and oracle["KLD"] < centre["KLD"] and oracle["NSS"] > centre["NSS"]
    assert np.isfinite(table["model"]["ScanMatch"]) and "AUC_Judd" in table["model"]  # scanpaths also give a map
    assert table["oracle_maps"].get("ScanMatch") is None or np.isnan(table["oracle_maps"]["ScanMatch"])


def compose(*overrides: str):
    """The benchmark config as the command line would build it, writing into the given output_dir."""
    from attnlab.utils.cli import compose_config

    return compose_config("benchmark", overrides)


def test_bad_maps_and_bad_options_name_the_culprit(tmp_path, folder_data):
    from attnlab.benchmark import run_benchmark
    from attnlab.utils.config import UserError, validate

    maps = tmp_path / "bad_maps"
    maps.mkdir()
    for k in range(8):
        m = np.ones(SIZE)
        m[3, 3] = np.nan
        np.save(maps / f"im{k}.npy", m)
    common = [
        f"data.root={folder_data}",
        "data=fixation_folder",
        "data.split=[0.5,0,0.5]",
        "sigma_px=4",
        "progress=false",
        f"paths.output_dir={tmp_path}",
    ]
    cfg = compose(*common, f"attention=[{maps}]", "max_images=1")
    with pytest.raises(UserError, match=r"saliency map of stimulus 'im\d' contains NaN or inf"):
        run_benchmark(cfg)
    with pytest.raises(UserError, match=r"data.split=\[1, 2\]"):
        validate(compose(*common, "data.split=[1,2]"))
    with pytest.raises(UserError, match="unknown attention source 'not_a_source'"):
        run_benchmark(compose(*common, "attention=[centre_bias,not_a_source]"))
    with pytest.raises(UserError, match="split='nope'"):
        run_benchmark(compose(*common, "attention=[uniform]", "split=nope"))


def test_models_register_as_sources():
    from attnlab.benchmark import SOURCES, AttentionSource, BenchmarkContext, register_source, resolve_source
    from attnlab.data.fixations import FixationDataset, Stimulus

    @register_source("test_constant")
    class Constant(AttentionSource):
        def __init__(self, argument, ctx):
            self.value = float(argument or 1)

        def saliency_map(self, ctx, i):
            return np.full(ctx.data.stimuli[i].size, self.value)

    try:
        data = FixationDataset("d", [Stimulus("a", None, (4, 5))], [[]])
        ctx = BenchmarkContext(data, data, 1.0, 0)
        source = resolve_source("test_constant:3", ctx)
        assert source.name == "test_constant:3" and source.saliency_map(ctx, 0).max() == 3
    finally:
        SOURCES.pop("test_constant")


def test_osie_baselines(tmp_path):
    root = os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))
    if not os.path.isdir(root):
        pytest.skip(f"OSIE subset not found at {root} (set ATTNLAB_OSIE_ROOT)")
    from attnlab.benchmark import run_benchmark

    os.environ.setdefault("ATTNLAB_OSIE_ROOT", root)
    cfg = compose(
        "data=osie",
        f"data.root={root}",
        "attention=[centre_bias,uniform]",
        "max_images=1",
        "figure_images=1",
        "progress=false",
        f"paths.output_dir={tmp_path}",
    )
    table = run_benchmark(cfg)["metrics"]
    centre, uniform = table["centre_bias"], table["uniform"]
    for metric in ("AUC_Judd", "AUC_Borji", "NSS", "CC", "SIM", "IG"):
        assert centre[metric] > uniform[metric], metric
    assert centre["KLD"] < uniform["KLD"]


def test_model_sources_come_from_entry_points_only_when_named():
    # a fresh interpreter: scoring the baselines must not import any model package (torch models)
    import subprocess
    import sys

    code = (
        "import sys; from attnlab.benchmark import resolve_source, BenchmarkContext, SOURCES;"
        "from attnlab.sources import lookup_source, source_names;"
        "assert 'saliency' in source_names() and 'saliency' not in SOURCES;"
        "assert not [m for m in sys.modules if m.startswith('attnlab.models')], 'models imported early';"
        "f = lookup_source('saliency');"
        "assert f.__module__ == 'attnlab.models.saliency.source' and SOURCES['saliency'] is f;"
        "assert lookup_source('no_such_source') is None"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
