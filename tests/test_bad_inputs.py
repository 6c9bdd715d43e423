"""Bad input, tried as a new user would, across every command (issue 21).

Each row is one bad input: a config value, a file, a checkpoint or an output folder. A row either
ends with exit code 2 and ONE line ``attnlab: error: ...`` naming the bad value, with nothing written
under the project root and no input touched, or (``skip`` rows) finishes with exit code 0 while the
bad item is named and counted, and the results leave it out. Entry points run in-process (their
``main()``, as the console scripts call it) so the whole table takes seconds per row, not a Python
start-up each.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

MODULES = {
    "train": "attnlab.train",
    "eval": "attnlab.eval",
    "analyze": "attnlab.analyze",
    "scanpaths": "attnlab.scanpaths",
    "benchmark": "attnlab.benchmark.__main__",
}


@dataclass
class Result:
    rc: int
    out: str
    err: str


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime in ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def run(tmp_path, monkeypatch, capfd):
    """Run a command's ``main()`` in this process with ``args``, under ``tmp_path``."""
    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)

    def call(command: str, *args: str) -> Result:
        module = importlib.import_module(MODULES[command])
        capfd.readouterr()
        monkeypatch.setattr(sys, "argv", [f"attnlab-{command}", *args])
        try:
            module.main()
            rc = 0
        except SystemExit as ex:
            rc = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
        out, err = capfd.readouterr()
        return Result(rc, out, err)

    return call


def assert_one_line_error(result: Result, *names: str) -> None:
    """Exit code 2, no traceback, one error line on stderr naming every string in ``names``."""
    text = result.out + result.err
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in result.err.splitlines() if line.strip()]
    assert result.rc == 2, (result.rc, text[-3000:])
    assert len(errors) == 1 and errors[0].startswith("attnlab: error: "), errors
    for name in names:
        assert name in errors[0], (name, errors[0])


def assert_failed_cleanly(result: Result, root: Path, before: dict, *names: str) -> None:
    assert_one_line_error(result, *names)
    after = snapshot(root)
    assert after == before, sorted(set(after) ^ set(before)) or "an input file changed"


# --- files: tiny fixation folders --------------------------------------------------------------------

H, W = 48, 64


def fixation_folder(
    root: Path,
    images: int = 5,
    fix=None,
    broken: dict[str, bytes] | None = None,
    durations: bool = True,
    scanpath_text: str | None = None,
    info: str | None = None,
) -> Path:
    """``root`` as a ``data=fixation_folder`` dataset: ``images`` random JPEGs of H×W, three subjects with
    five fixations each (``fix(k, s, x, y)`` may edit them), ``broken`` {file name: bytes} written as is."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for k in range(images):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"im{k}.jpg")
    for name, data in (broken or {}).items():
        (root / "images" / name).write_bytes(data)
    records = []
    for k in range(images + len(broken or {})):
        stem = f"im{k}" if k < images else Path(sorted(broken)[k - images]).stem
        for s in range(3):
            x, y = rng.uniform(1, W - 1, 5).tolist(), rng.uniform(1, H - 1, 5).tolist()
            if fix:
                fix(k, s, x, y)
            record = {"stimulus": stem, "subject": f"s{s}", "x": x, "y": y}
            if durations:
                record["duration"] = [200.0] * 5
            records.append(record)
    (root / "scanpaths.json").write_text(scanpath_text if scanpath_text is not None else json.dumps(records))
    if info is not None:
        (root / "info.json").write_text(info)
    return root


def jpeg_bytes(truncate: int | None = None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((H, W, 3), 128, dtype=np.uint8)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data[:truncate] if truncate else data


BENCH = [
    "data=fixation_folder",
    "sigma_px=3",
    "split=all",
    "attention=uniform,centre_bias",
    "figure_images=1",
    "progress=false",
]


# --- 1. config values: reported before anything starts ------------------------------------------------

CONFIG_ROWS = [
    # (id, command, args, names the message must contain)
    ("train-lr-negative", "train", ["model.lr=-1"], ["model.lr", "-1"]),
    ("train-lr-not-a-number", "train", ["model.lr=fast"], ["model.lr", "fast"]),
    ("train-lr-nan", "train", ["model.lr=nan"], ["model.lr"]),
    ("train-max-epochs-zero", "train", ["trainer.max_epochs=0"], ["trainer.max_epochs", "0"]),
    ("train-max-epochs-text", "train", ["trainer.max_epochs=ten"], ["trainer.max_epochs", "ten"]),
    ("train-accelerator-unknown", "train", ["trainer.accelerator=tpu9"], ["trainer.accelerator", "tpu9"]),
    ("train-batch-size-zero", "train", ["data.batch_size=0"], ["data.batch_size", "0"]),
    ("train-batch-size-fraction", "train", ["data.batch_size=2.5"], ["data.batch_size", "2.5"]),
    ("train-num-workers-negative", "train", ["data.num_workers=-1"], ["data.num_workers", "-1"]),
    ("train-seed-text", "train", ["seed=abc"], ["seed", "abc"]),
    ("train-seed-negative", "train", ["seed=-1"], ["seed", "-1"]),
    ("train-gradient-clip-negative", "train", ["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val", "-1"]),
    ("train-accumulate-zero", "train", ["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches", "0"]),
    ("train-resume-from-a-folder", "train", ["ckpt_path=/"], ["checkpoint not found", "a folder"]),
    ("train-boolean-yes", "train", ["train=yes"], ["train", "yes"]),
    ("train-boolean-one", "train", ["test=1"], ["test", "1"]),
    (
        "train-resume-missing-checkpoint",
        "train",
        ["ckpt_path=/nonexistent/last.ckpt"],
        ["checkpoint not found", "/nonexistent/last.ckpt"],
    ),
    ("train-unknown-model", "train", ["model=gating_cifar"], ["model=gating_cifar", "gating_mnist"]),
    ("train-unknown-data", "train", ["data=imagenet"], ["data=imagenet", "osie"]),
    ("train-unknown-key", "train", ["model.learning_rate=0.1"], ["model.learning_rate", "lr"]),
    ("train-unknown-trainer-key", "train", ["trainer.max_epoch=1"], ["trainer.max_epoch"]),
    ("train-bad-override-syntax", "train", ["model.lr=="], ["model.lr"]),
    ("train-interpolation-to-nothing", "train", ["model.lr=${nowhere.lr}"], ["nowhere"]),
    ("train-gating-model-on-osie", "train", ["data=osie"], ["model=gating_mnist", "data=osie"]),
    (
        "train-saliency-on-multimnist",
        "train",
        ["model=saliency_dinet", "data=multimnist"],
        ["model=saliency_dinet", "data=multimnist"],
    ),
    (
        "train-gating-coco-on-images",
        "train",
        ["model=gating_coco", "data=images"],
        ["model=gating_coco", "data=images"],
    ),
    ("train-sweep-later-value-bad", "train", ["-m", "model.lr=1e-3,-5"], ["model.lr", "-5"]),
    ("train-split-negative", "train", ["model=autoencoder", "data.split=[0.5,-0.2,0.7]"], ["data.split"]),
    ("train-image-size-zero", "train", ["model=autoencoder", "data.image_size=[0,32]"], ["data.image_size"]),
    ("train-strict-not-boolean", "train", ["model=autoencoder", "data.strict=maybe"], ["data.strict", "maybe"]),
    ("train-devices-text", "train", ["trainer.devices=yes"], ["trainer.devices", "yes"]),  # found by test_properties
    ("eval-without-checkpoint", "eval", [], ["ckpt_path"]),
    ("eval-checkpoint-missing", "eval", ["ckpt_path=/nonexistent.ckpt"], ["checkpoint not found", "/nonexistent.ckpt"]),
    ("eval-seed-float", "eval", ["ckpt_path=/nonexistent.ckpt", "seed=1.5"], ["seed", "1.5"]),
    ("analyze-unknown-analysis", "analyze", ["analysis=attention_maps"], ["analysis=attention_maps", "inhibition"]),
    ("analyze-device-unknown", "analyze", ["device=tpu"], ["device", "tpu"]),
    (
        "analyze-checkpoint-missing",
        "analyze",
        ["ckpt_path=/nonexistent.pt"],
        ["checkpoint not found", "/nonexistent.pt"],
    ),
    ("scanpaths-split-unknown", "scanpaths", ["split=validation"], ["split", "validation"]),
    ("scanpaths-max-images-zero", "scanpaths", ["max_images=0"], ["max_images", "0"]),
    ("scanpaths-batch-size-negative", "scanpaths", ["batch_size=-4"], ["batch_size", "-4"]),
    ("scanpaths-overlays-not-boolean", "scanpaths", ["overlays=sometimes"], ["overlays", "sometimes"]),
    ("scanpaths-scoring-enabled-not-boolean", "scanpaths", ["scoring.enabled=2"], ["scoring.enabled", "2"]),
    ("scanpaths-overlay-humans-negative", "scanpaths", ["overlay_humans=-1"], ["overlay_humans", "-1"]),
    ("benchmark-max-images-negative", "benchmark", ["max_images=-1"], ["max_images", "-1"]),
    ("benchmark-max-images-text", "benchmark", ["max_images=all"], ["max_images", "all"]),
    ("benchmark-split-unknown", "benchmark", ["split=training"], ["split", "training"]),
    ("benchmark-sigma-zero", "benchmark", ["sigma_px=0"], ["sigma_px", "0"]),
    ("benchmark-sigma-inf", "benchmark", ["sigma_px=inf"], ["sigma_px"]),
    ("benchmark-progress-not-boolean", "benchmark", ["progress=on"], ["progress", "on"]),
    ("benchmark-drop-first-not-boolean", "benchmark", ["scanpath_drop_first=2"], ["scanpath_drop_first", "2"]),
    ("benchmark-figure-images-negative", "benchmark", ["figure_images=-2"], ["figure_images", "-2"]),
    ("benchmark-sigma-deg-negative", "benchmark", ["data.sigma_deg=-1"], ["data.sigma_deg", "-1"]),
    ("benchmark-pixels-per-degree-zero", "benchmark", ["data.pixels_per_degree=0"], ["data.pixels_per_degree", "0"]),
    ("benchmark-min-duration-negative", "benchmark", ["data.min_duration=-50"], ["data.min_duration", "-50"]),
    ("benchmark-drop-first-text", "benchmark", ["data.drop_first=yes"], ["data.drop_first", "yes"]),
]


@pytest.mark.parametrize("command,args,names", [pytest.param(c, a, n, id=i) for i, c, a, n in CONFIG_ROWS])
def test_bad_config_value_is_one_line_and_writes_nothing(run, tmp_path, command, args, names):
    before = snapshot(tmp_path)
    result = run(command, *args)
    assert_failed_cleanly(result, tmp_path, before, *names)
    assert not (tmp_path / "outputs").exists() or not any(p.is_file() for p in (tmp_path / "outputs").rglob("*"))


def test_monitored_metric_that_is_never_logged_is_one_line(run, tmp_path):
    """``optimized_metric`` names what the checkpoint callback monitors; a name never logged is found
    only once validation ran: one line listing the names logged, the run's log ends with it."""
    result = run(
        "train",
        "optimized_metric=val/bogus",
        "debug=tiny",
        "data.train_size=48",
        "data.val_size=32",
        "data.test_size=32",
        "data.batch_size=16",
    )
    assert_one_line_error(result, "val/bogus", "optimized_metric", "val/acc")
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert (
        (run_dir / "train.log")
        .read_text()
        .strip()
        .splitlines()[-1]
        .endswith(result.err.strip().splitlines()[0].split("error: ", 1)[1])
    )


def test_trainer_key_left_at_lightning_default_needs_no_plus(tmp_path, monkeypatch):
    """A Lightning trainer setting no YAML names is still a setting (rewritten to ``++``)."""
    from attnlab.utils.cli import compose_config

    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    cfg = compose_config("train", ["trainer.gradient_clip_val=0.5"])
    assert cfg.trainer.gradient_clip_val == 0.5


# --- 2. the output folder ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a-file", "below-a-file"])
def test_output_folder_that_cannot_be_written_is_one_line(run, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    log_dir = blocker if where == "a-file" else blocker / "outputs"
    before = snapshot(tmp_path)
    result = run("benchmark", f"paths.log_dir={log_dir}")
    assert_failed_cleanly(result, tmp_path, before, "run folder", str(blocker))


# --- 3. files: images and fixations ------------------------------------------------------------------

BROKEN_IMAGES = {
    "zero-byte-jpeg": b"",
    "random-bytes-jpeg": bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8)),
    "truncated-jpeg": None,  # filled in below (a valid header, the data cut off)
    "text-named-jpg": b"this is not an image\n",
}


def _broken_bytes(kind: str) -> bytes:
    return jpeg_bytes(truncate=400) if kind == "truncated-jpeg" else BROKEN_IMAGES[kind]


@pytest.mark.parametrize("kind", list(BROKEN_IMAGES))
def test_broken_image_is_skipped_and_counted(run, tmp_path, kind):
    data = fixation_folder(tmp_path / "mine", broken={"bad.jpg": _broken_bytes(kind)})
    result = run("benchmark", *BENCH, f"data.root={data}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"skipped 1 of 6 images that cannot be read, e\.g\. \S*bad\.jpg", text), text[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "benchmark" / "runs").iterdir()
    assert json.loads((run_dir / "benchmark.json").read_text())["images"] == 5


@pytest.mark.parametrize("kind", list(BROKEN_IMAGES))
def test_broken_image_with_strict_is_one_line(run, tmp_path, kind):
    data = fixation_folder(tmp_path / "mine", broken={"bad.jpg": _broken_bytes(kind)})
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={data}", "data.strict=true")
    assert_failed_cleanly(result, tmp_path, before, "bad.jpg", "data.strict")


def test_only_broken_images_is_one_line(run, tmp_path):
    data = fixation_folder(tmp_path / "mine", images=0, broken={"a.jpg": b"", "b.jpg": b"xx"})
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={data}")
    assert_failed_cleanly(result, tmp_path, before, "a.jpg")


def _scores(tmp_path: Path) -> dict:
    (run_dir,) = (tmp_path / "outputs" / "benchmark" / "runs").iterdir()
    return json.loads((run_dir / "benchmark.json").read_text())


def _nan_x(k, s, x, y):
    if k == 1 and s == 0:
        x[2] = float("nan")


def _outside(k, s, x, y):
    if k == 1 and s == 0:
        x[2] = W + 40.0  # right of the image


def _negative(k, s, x, y):
    if k == 1 and s == 0:
        y[2] = -3.0


def _all_outside(k, s, x, y):
    if k == 2:
        x[:] = [W + 10.0] * len(x)


def _inf(k, s, x, y):
    if k == 1 and s == 0:
        y[2] = float("inf")


FIXATION_ROWS = {"nan-coordinate": _nan_x, "inf-coordinate": _inf, "right-of-image": _outside, "above-image": _negative}


@pytest.mark.parametrize("kind", list(FIXATION_ROWS))
def test_bad_fixation_is_dropped_for_every_metric(run, tmp_path, kind):
    """A dropped fixation is gone for the maps AND the scanpath metrics: the scores equal those of the
    same data without it (removed from the file by hand)."""
    edit = FIXATION_ROWS[kind]
    bad = fixation_folder(tmp_path / "bad", fix=edit)
    records = json.loads((bad / "scanpaths.json").read_text(), parse_constant=float)
    for r in records:
        keep = [
            k
            for k in range(len(r["x"]))
            if np.isfinite(r["x"][k]) and np.isfinite(r["y"][k]) and 0 <= r["x"][k] < W and 0 <= r["y"][k] < H
        ]
        for c in ("x", "y", "duration"):
            r[c] = [r[c][k] for k in keep]
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "images").symlink_to(bad / "images")
    (clean / "scanpaths.json").write_text(json.dumps(records))
    result = run("benchmark", *BENCH, f"data.root={bad}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"dropped 1 of 75 fixations", text), text[-3000:]
    bad_scores = _scores(tmp_path)["metrics"]
    import shutil

    shutil.rmtree(tmp_path / "outputs")
    assert run("benchmark", *BENCH, f"data.root={clean}").rc == 0
    clean_scores = _scores(tmp_path)["metrics"]
    assert bad_scores == clean_scores


def test_image_whose_fixations_all_fall_outside_is_not_counted(run, tmp_path):
    data = fixation_folder(tmp_path / "mine", fix=_all_outside)
    result = run("benchmark", *BENCH, f"data.root={data}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text and "contains NaN or inf" not in text, text[-3000:]
    assert "1 images have no fixation left" in text and "im2" in text, text[-3000:]
    scores = _scores(tmp_path)
    assert scores["images"] == 4 and scores["skipped_images"] == 1


def test_no_fixation_inside_any_image_is_one_line(run, tmp_path):
    def swapped(k, s, x, y):
        x[:] = [v + W for v in x]  # e.g. another origin

    data = fixation_folder(tmp_path / "mine", fix=swapped)
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={data}")
    assert_failed_cleanly(result, tmp_path, before, "none of its 75 fixations lies inside its image")


SCANPATH_FILE_ROWS = [
    ("json-syntax-error", '[{"stimulus": "im0", ', None, ["scanpaths.json"]),
    ("json-missing-x", json.dumps([{"stimulus": "im0", "y": [1, 2]}]), None, ["scanpaths.json", "'x'"]),
    (
        "json-x-y-lengths-differ",
        json.dumps([{"stimulus": "im0", "x": [1, 2, 3], "y": [1, 2]}]),
        None,
        ["3 x values but 2 y values"],
    ),
    (
        "json-x-not-numbers",
        json.dumps([{"stimulus": "im0", "x": ["left", "right"], "y": [1, 2]}]),
        None,
        ["scanpaths.json"],
    ),
    (
        "json-durations-wrong-length",
        json.dumps([{"stimulus": "im0", "x": [1, 2], "y": [1, 2], "duration": [100]}]),
        None,
        ["1 durations for 2 fixations"],
    ),
    ("json-unknown-stimulus", json.dumps([{"stimulus": "nope", "x": [1], "y": [1]}]), None, ["nope"]),
    ("info-json-broken", None, "{name: mine", ["info.json"]),
    ("info-ppd-negative", None, json.dumps({"pixels_per_degree": -3}), ["pixels_per_degree", "-3"]),
    ("info-ppd-text", None, json.dumps({"pixels_per_degree": "wide"}), ["pixels_per_degree", "wide"]),
    ("json-list-of-numbers", json.dumps([1, 2, 3]), None, ["scanpaths.json"]),
    ("json-stimulus-map-of-numbers", json.dumps({"im0": 5}), None, ["scanpaths.json"]),
    ("info-json-a-list", None, json.dumps([35]), ["info.json"]),
    # found by tests/test_properties.py: values that were coerced instead of refused
    ("json-x-null", json.dumps([{"stimulus": "im0", "x": None, "y": [1]}]), None, ["scanpaths.json", "x must be"]),
    ("json-x-nested", json.dumps([{"stimulus": "im0", "x": [[1, 2]], "y": [1, 2]}]), None, ["x must be a list"]),
    ("json-y-booleans", json.dumps([{"stimulus": "im0", "x": [1], "y": [True]}]), None, ["y must be a list"]),
    (
        "json-duration-a-number",
        json.dumps([{"stimulus": "im0", "x": [1], "y": [1], "duration": 200}]),
        None,
        ["duration must be"],
    ),
    ("json-stimulus-null", json.dumps([{"stimulus": None, "x": [1], "y": [1]}]), None, ["scanpath 0 needs"]),
]


@pytest.mark.parametrize("text,info,names", [pytest.param(t, i, n, id=k) for k, t, i, n in SCANPATH_FILE_ROWS])
def test_bad_scanpath_file_is_one_line(run, tmp_path, text, info, names):
    data = fixation_folder(tmp_path / "mine", scanpath_text=text, info=info)
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={data}")
    assert_failed_cleanly(result, tmp_path, before, *names)


def test_csv_scanpaths_without_header_is_one_line(run, tmp_path):
    data = fixation_folder(tmp_path / "mine")
    (data / "scanpaths.json").unlink()
    (data / "scanpaths.csv").write_text("im0,s0,10,20\nim0,s0,11,21\n")
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={data}")
    assert_failed_cleanly(result, tmp_path, before, "scanpaths.csv", "stimulus, x, y")


@pytest.mark.parametrize("what", ["root-missing", "no-scanpath-file"])
def test_missing_dataset_is_one_line(run, tmp_path, what):
    root = tmp_path / "mine"
    if what == "no-scanpath-file":
        fixation_folder(root)
        (root / "scanpaths.json").unlink()
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH, f"data.root={root}")
    assert_failed_cleanly(result, tmp_path, before, str(root))


def test_osie_root_missing_is_one_line(run, tmp_path):
    before = snapshot(tmp_path)
    result = run("benchmark", f"data.root={tmp_path / 'osie'}")
    assert_failed_cleanly(result, tmp_path, before, "OSIE not found", str(tmp_path / "osie"))


def test_benchmark_source_file_missing_is_one_line(run, tmp_path):
    data = fixation_folder(tmp_path / "mine")
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH[:-3], f"data.root={data}", f"attention={tmp_path / 'model_scanpaths.json'}")
    assert_failed_cleanly(result, tmp_path, before, "model_scanpaths.json")


def _model_file(path: Path, fix=None, durations: bool = True) -> Path:
    """A model's scanpath file for the images of :func:`fixation_folder`: one scanpath of six
    fixations per image (``fix(k, x, y)`` may edit them)."""
    rng = np.random.default_rng(5)
    records = []
    for k in range(5):
        x, y = rng.uniform(1, W - 1, 6).tolist(), rng.uniform(1, H - 1, 6).tolist()
        duration = rng.uniform(100, 400, 6).tolist()
        if fix:
            fix(k, x, y)
        record = {"stimulus": f"im{k}", "subject": "model", "x": x, "y": y}
        if durations:
            record["duration"] = duration
        records.append(record)
    path.write_text(json.dumps(records))
    return path


def _model_scores(run, tmp_path: Path, data: Path, model: Path) -> tuple[Result, dict]:
    import shutil

    shutil.rmtree(tmp_path / "outputs", ignore_errors=True)
    result = run("benchmark", *BENCH[:-3], f"data.root={data}", f"attention={model}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    return result, _scores(tmp_path)["metrics"][model.stem]


def test_model_fixation_outside_is_dropped_for_every_metric(run, tmp_path):
    """A model's fixation outside the image is dropped as a human's is: its scores equal those of the
    same file without that fixation (DTW of 2.06 became 7.61 when such fixations were kept)."""
    data = fixation_folder(tmp_path / "mine")

    def outside(k, x, y):
        if k == 3:
            x[4] = W + 25.0

    bad = _model_file(tmp_path / "bad.json", outside)
    records = json.loads(bad.read_text())
    for c in ("x", "y", "duration"):
        del records[3][c][4]
    (tmp_path / "clean").mkdir()
    clean = tmp_path / "clean" / "bad.json"  # same stem: same column name
    clean.write_text(json.dumps(records))
    result, bad_scores = _model_scores(run, tmp_path, data, bad)
    assert re.search(r"source bad: dropped 1 of 30 fixations .*0 NaN/inf, 1 outside", result.out + result.err)
    _, clean_scores = _model_scores(run, tmp_path, data, clean)
    assert bad_scores == clean_scores and np.isfinite(bad_scores["DTW"])
    assert _scores(tmp_path)["dropped_model_fixations"]["bad"] == {"not_finite": 0, "outside_image": 0, "of": 29}


def test_model_scanpaths_all_outside_one_image_is_one_line(run, tmp_path):
    data = fixation_folder(tmp_path / "mine")

    def swapped(k, x, y):
        if k == 2:
            x[:], y[:] = [v + W for v in x], y

    model = _model_file(tmp_path / "model.json", swapped)
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH[:-3], f"data.root={data}", f"attention={model}")
    assert_failed_cleanly(result, tmp_path, before, "source model", "'im2'", "none of the 6 fixations")


def test_model_scanpaths_without_durations_have_no_duration_score(run, tmp_path):
    """No durations in the file: MultiMatch duration is not available (—), never a made-up number;
    the other dimensions are scored, and the same positions with durations score the same there."""
    data = fixation_folder(tmp_path / "mine")
    _, untimed = _model_scores(run, tmp_path, data, _model_file(tmp_path / "m.json", durations=False))
    assert untimed["MM_duration"] != untimed["MM_duration"]  # NaN
    (run_dir,) = (tmp_path / "outputs" / "benchmark" / "runs").iterdir()
    row = next(line for line in (run_dir / "benchmark.md").read_text().splitlines() if line.startswith("| m |"))
    assert "—" in row
    (tmp_path / "timed").mkdir()
    _, timed = _model_scores(run, tmp_path, data, _model_file(tmp_path / "timed" / "m.json"))
    assert 0 < timed["MM_duration"] <= 1
    for k in ("MM_vector", "MM_direction", "MM_position", "DTW"):  # ScanMatch uses durations when both have them
        assert untimed[k] == pytest.approx(timed[k], rel=1e-12, abs=1e-12), k


def test_constant_and_all_zero_maps_score_as_uniform_and_are_named(run, tmp_path):
    """A map source with a constant map (im1) and an all-zero map (im3): both are scored as the uniform
    map (never a NaN row), named once in the log and listed in benchmark.json."""
    data = fixation_folder(tmp_path / "mine")
    maps = tmp_path / "maps"
    maps.mkdir()
    rng = np.random.default_rng(2)
    for k in range(5):
        m = rng.random((H, W))
        m = np.full((H, W), 0.3) if k == 1 else np.zeros((H, W)) if k == 3 else m
        np.save(maps / f"im{k}.npy", m)
    result = run("benchmark", *BENCH[:-3], f"data.root={data}", f"attention=uniform,{maps}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"source maps: 2 constant or all-zero maps, scored as the uniform map .*e\.g\. stimulus im1", text)
    scores = _scores(tmp_path)
    assert scores["constant_maps"] == {"maps": ["im1", "im3"]}  # the uniform baseline is constant by design
    rows = {r["stimulus"]: r for r in scores["per_image"]["maps"]}
    uniform = {r["stimulus"]: r for r in scores["per_image"]["uniform"]}
    for sid in ("im1", "im3"):
        for metric in ("AUC_Judd", "NSS", "CC", "KLD", "SIM", "IG"):
            assert rows[sid][metric] == pytest.approx(uniform[sid][metric], abs=1e-12), (sid, metric)


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


_RNG = np.random.default_rng(4)
# found by tests/test_properties.py: (id, file name, bytes, names the one line must contain)
MAP_FILE_ROWS = [
    ("rendered-heat-map", "im2.png", _png(_RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)), ["im2.png", "colour"]),
    ("not-an-image", "im2.png", b"\x89PNG not really", ["cannot read saliency map", "im2.png"]),
    ("object-array", "im2.npy", _npy(np.array([{"a": 1}, None], dtype=object)), ["cannot read saliency map"]),
    ("complex-values", "im2.npy", _npy(np.ones((H, W), dtype=complex)), ["im2.npy", "complex"]),
    ("empty-array", "im2.npy", _npy(np.zeros((0, W))), ["im2.npy", "shape"]),
]


@pytest.mark.parametrize("name,data,names", [pytest.param(n, d, m, id=k) for k, n, d, m in MAP_FILE_ROWS])
def test_bad_map_file_is_one_line(run, tmp_path, name, data, names):
    folder = fixation_folder(tmp_path / "mine")
    maps = tmp_path / "maps"
    maps.mkdir()
    for k in range(5):
        np.save(maps / f"im{k}.npy", np.random.default_rng(k).random((H, W)))
    (maps / "im2.npy").unlink()
    (maps / name).write_bytes(data)
    before = snapshot(tmp_path)
    result = run("benchmark", *[a for a in BENCH if not a.startswith("attention=")], f"data.root={folder}",
                 f"attention={maps}")  # fmt: skip
    assert_failed_cleanly(result, tmp_path, before, *names)


def test_maps_of_another_size_are_resized_and_said_once(run, tmp_path):
    """Maps at half the image's size (and a grey map saved as RGB) score, with one line saying so."""
    data = fixation_folder(tmp_path / "mine")
    maps = tmp_path / "maps"
    maps.mkdir()
    for k in range(5):
        grey = np.random.default_rng(k).integers(0, 256, (H // 2, W // 2), dtype=np.uint8)
        (maps / f"im{k}.png").write_bytes(_png(np.stack([grey] * 3, -1) if k == 0 else grey))
    result = run("benchmark", *[a for a in BENCH if not a.startswith("attention=")], f"data.root={data}",
                 f"attention={maps}")  # fmt: skip
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if "not their image's size" in line]
    assert len(lines) == 1 and "5 of 5 maps" in lines[0] and f"{W // 2}×{H // 2} for a {W}×{H} image" in lines[0]
    assert len(_scores(tmp_path)["per_image"]["maps"]) == 5


# --- 4. checkpoints: the stored config decides the family ---------------------------------------------


def _checkpoint(path: Path, model_overrides: list[str], data: bool = True) -> Path:
    """A Lightning-style checkpoint of an untrained model of ``train`` composed with ``model_overrides``,
    carrying its config as attnlab.train stores it."""
    import hydra
    import torch
    from omegaconf import OmegaConf

    from attnlab.utils.checkpoint import CONFIG_KEY
    from attnlab.utils.cli import compose_config
    from attnlab.utils.config import validate

    cfg = compose_config("train", model_overrides)
    validate(cfg)  # imports the targets (their resolvers, e.g. ${multimnist_width:})
    stored = {"model": OmegaConf.to_container(cfg.model, resolve=True)}
    if data:
        stored["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    torch.save({"state_dict": model.state_dict(), CONFIG_KEY: stored}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    os.environ.setdefault("ATTNLAB_ROOT", str(folder))
    return {
        "gating_mnist": _checkpoint(folder / "mnist.ckpt", []),
        "autoencoder": _checkpoint(folder / "autoencoder.ckpt", ["model=autoencoder"]),
    }


CHECKPOINT_ROWS = [
    # (id, command, checkpoint, extra args, names)
    (
        "eval-mnist-checkpoint-with-coco-data",
        "eval",
        "gating_mnist",
        ["data=coco_objects"],
        ["data=coco_objects", "MultiMNIST"],
    ),
    ("eval-mnist-checkpoint-with-osie", "eval", "gating_mnist", ["data=osie"], ["data=osie", "MultiMNIST"]),
    (
        "eval-mnist-checkpoint-with-saliency-model",
        "eval",
        "gating_mnist",
        ["model=saliency_dinet"],
        ["model=saliency_dinet", "GatingModule"],
    ),
    (
        "analyze-autoencoder-checkpoint",
        "analyze",
        "autoencoder",
        [],
        ["analysis=inhibition", "gating", "AutoencoderModule"],
    ),
    (
        "analyze-tuning-autoencoder-checkpoint",
        "analyze",
        "autoencoder",
        ["analysis=tuning_curves"],
        ["analysis=tuning_curves", "gating"],
    ),
    (
        "analyze-autoencoder-checkpoint-with-mnist-data",
        "analyze",
        "autoencoder",
        ["data=multimnist"],
        ["data=multimnist", "ImagesDataModule"],
    ),
]


@pytest.mark.parametrize(
    "command,which,args,names", [pytest.param(c, w, a, n, id=i) for i, c, w, a, n in CHECKPOINT_ROWS]
)
def test_checkpoint_of_another_family_is_one_line(run, tmp_path, checkpoints, command, which, args, names):
    before = snapshot(tmp_path)
    result = run(command, f"ckpt_path={checkpoints[which]}", *args)
    assert_failed_cleanly(result, tmp_path, before, *names)


@pytest.mark.parametrize("command", ["analyze", "eval"])
def test_paper_checkpoint_with_data_of_another_model_is_one_line(run, tmp_path, command):
    """A paper .pt carries no config: model= (default gating_mnist) and data= must go together."""
    pt = shared_path("data", "gating_paper_checkpoints", "paper_mnist_model.pt")
    before = snapshot(tmp_path)
    result = run(command, f"ckpt_path={pt}", "data=coco_objects")
    assert_failed_cleanly(result, tmp_path, before, str(pt), "model=gating_mnist", "data=coco_objects")


def test_paper_checkpoint_for_another_architecture_is_one_line(run, tmp_path):
    pt = shared_path("data", "gating_paper_checkpoints", "paper_mnist_model.pt")
    before = snapshot(tmp_path)
    result = run("analyze", f"ckpt_path={pt}", "model=gating_coco", "data=coco_objects")
    assert_failed_cleanly(result, tmp_path, before, str(pt), "does not fit")


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"], ids=["zero-byte", "text", "broken-zip"]
)
def test_unreadable_checkpoint_is_one_line(run, tmp_path, content):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(content)
    before = snapshot(tmp_path)
    result = run("eval", f"ckpt_path={ckpt}")
    assert_failed_cleanly(result, tmp_path, before, "model.ckpt")


# found by tests/test_properties.py: a stored config is as untrusted as the file it is in
STORED_CONFIG_ROWS = [
    ("setting-out-of-range", lambda c: c["model"].update(glimpses=-3), ["stores an invalid config", "glimpses"]),
    ("setting-null", lambda c: c["model"].update(glimpses=None), ["glimpses"]),
    ("required-setting-missing", lambda c: c["model"].pop("net"), ["cannot be built", "net"]),
    ("no-target", lambda c: c["model"].pop("_target_"), ["without a _target_"]),
    ("not-a-mapping", lambda c: c.update(model=[1, 2]), ["not {model: ..., data: ...}"]),
]


@pytest.mark.parametrize("edit,names", [pytest.param(e, n, id=k) for k, e, n in STORED_CONFIG_ROWS])
def test_checkpoint_with_a_bad_stored_config_is_one_line(run, tmp_path, checkpoints, edit, names):
    import torch

    from attnlab.utils.checkpoint import CONFIG_KEY

    contents = torch.load(checkpoints["gating_mnist"], weights_only=True)
    edit(contents[CONFIG_KEY])
    ckpt = tmp_path / "edited.ckpt"
    torch.save(contents, ckpt)
    before = snapshot(tmp_path)
    result = run("eval", f"ckpt_path={ckpt}")
    assert_failed_cleanly(result, tmp_path, before, "edited.ckpt", *names)


def test_checkpoint_decides_the_data_and_keeps_data_overrides(tmp_path, checkpoints, monkeypatch):
    """No data= on the command line: the stored data config is used; data.key=value still applies."""
    import torch
    from omegaconf import OmegaConf

    from attnlab.utils.checkpoint import use_stored_config
    from attnlab.utils.cli import compose_config

    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    checkpoint = torch.load(checkpoints["autoencoder"], weights_only=False)
    cfg = compose_config("eval", [f"ckpt_path={checkpoints['autoencoder']}", "data.batch_size=3"])
    assert cfg.data._target_.endswith("MultiMNISTDataModule")  # what the YAML defaults say
    use_stored_config(cfg, checkpoint, "x", overrides=["data.batch_size=3"])
    assert cfg.data._target_.endswith("ImagesDataModule") and cfg.model._target_.endswith("AutoencoderModule")
    assert OmegaConf.select(cfg, "data.batch_size") != 3  # another class: its own stored settings, not MultiMNIST's
    cfg = compose_config("eval", ["model=autoencoder", "data=images", "data.batch_size=3"])
    use_stored_config(cfg, checkpoint, "x", overrides=["model=autoencoder", "data=images", "data.batch_size=3"])
    assert cfg.data.batch_size == 3


# --- 5. a failure after the run started: the folder stays, its log has the error ---------------------


def test_failure_inside_a_run_is_logged_and_an_empty_run_folder_removed(run, tmp_path):
    data = fixation_folder(tmp_path / "mine", broken={"bad.jpg": b""})
    result = run("benchmark", *BENCH, f"data.root={data}", "data.strict=true")
    assert_one_line_error(result, "bad.jpg")
    assert "writing to" in result.out.splitlines()[0]
    runs = tmp_path / "outputs" / "benchmark" / "runs"
    assert not runs.exists() or not list(runs.iterdir())


def test_run_folder_is_named_first_and_run_summed_up_last(run, tmp_path):
    data = fixation_folder(tmp_path / "mine")
    result = run("benchmark", *BENCH, f"data.root={data}")
    assert result.rc == 0, (result.out + result.err)[-3000:]
    lines = [line for line in result.out.splitlines() if line.strip()]
    (run_dir,) = (tmp_path / "outputs" / "benchmark" / "runs").iterdir()
    assert lines[0] == f"attnlab benchmark: writing to {run_dir}"
    assert lines[-1].startswith("attnlab benchmark: done in ") and str(run_dir) in lines[-1]
    assert "Tip:" not in result.out + result.err and "py.warnings" not in result.out + result.err


# --- 6. training on a folder with a broken image -------------------------------------------------------


def _image_folder(root: Path, broken: bytes) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    for k in range(6):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / f"im{k}.jpg")
    (root / "bad.jpg").write_bytes(broken)
    return root


TRAIN_TINY = [
    "model=autoencoder",
    "data.image_size=[32,32]",
    "debug=tiny",
    "data.batch_size=2",
    "callbacks=none",
    "logger=csv",
]


@pytest.mark.parametrize("kind", ["zero-byte-jpeg", "truncated-jpeg"])
def test_training_skips_and_counts_a_broken_image(run, tmp_path, kind, one_torch_thread):
    folder = _image_folder(tmp_path / "images", _broken_bytes(kind))
    result = run("train", *TRAIN_TINY, f"data.image_dir={folder}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"skipped 1 of 7 images that cannot be read, e\.g\. \S*bad\.jpg", text), text[-3000:]
    assert "images: 6 files" in text
    # quiet console: Lightning's banners and tips and the dependencies' warnings are in the log file only
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    log = (run_dir / "train.log").read_text()
    for noise in ("GPU available", "Tip:", "py.warnings"):
        assert noise not in text, noise
    assert "GPU available" in log
    lines = [line for line in result.out.splitlines() if line.strip()]
    assert lines[0] == f"attnlab train: writing to {run_dir}" and lines[-1].startswith("attnlab train: done in ")


@pytest.mark.parametrize("kind", ["zero-byte-jpeg", "random-bytes-jpeg"])
def test_training_on_a_broken_image_with_strict_is_one_line(run, tmp_path, kind):
    folder = _image_folder(tmp_path / "images", _broken_bytes(kind))
    before = snapshot(tmp_path)
    result = run("train", *TRAIN_TINY, f"data.image_dir={folder}", "data.strict=true")
    assert_failed_cleanly(result, tmp_path, before, "bad.jpg", "data.strict")


def test_training_on_a_missing_image_folder_is_one_line(run, tmp_path):
    before = snapshot(tmp_path)
    result = run("train", *TRAIN_TINY, f"data.image_dir={tmp_path / 'nowhere'}")
    assert_failed_cleanly(result, tmp_path, before, str(tmp_path / "nowhere"))


def test_failure_after_real_work_keeps_the_folder_and_logs_the_error(tmp_path, monkeypatch, capfd):
    """A task that wrote results and then hits bad input: the folder stays, its log ends with the error."""
    from attnlab.utils.cli import entry_point
    from attnlab.utils.config import UserError

    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def task(cfg):
        (Path(cfg.paths.output_dir) / "partial.csv").write_text("a,b\n")
        raise UserError("image 7 of the split is broken: /data/im7.jpg")

    monkeypatch.setattr(sys, "argv", ["attnlab-benchmark", "progress=false"])
    with pytest.raises(SystemExit) as exit_info:
        entry_point("benchmark")(task)()
    out, err = capfd.readouterr()
    assert exit_info.value.code == 2
    assert_one_line_error(Result(2, out, err), "/data/im7.jpg")
    (run_dir,) = (tmp_path / "outputs" / "benchmark" / "runs").iterdir()
    assert (run_dir / "partial.csv").is_file()
    log_lines = (run_dir / "benchmark.log").read_text().strip().splitlines()
    assert log_lines[-1].endswith("attnlab: error: image 7 of the split is broken: /data/im7.jpg")


# --- 7. scanpaths on an image folder with a broken image -----------------------------------------------

SCANPATHS_FAST = [
    "data=images",
    "model.search.length=2",
    "model.search.steps=1",
    "model.image_size=[32,32]",
    "overlays=false",
]


def test_scanpaths_skip_and_count_a_broken_image(run, tmp_path, one_torch_thread):
    folder = _image_folder(tmp_path / "images", b"")
    result = run("scanpaths", *SCANPATHS_FAST, f"data.image_dir={folder}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"skipped 1 of 7 images that cannot be read, e\.g\. \S*bad\.jpg", text), text[-3000:]
    assert "6 scanpaths written" in text


@pytest.mark.parametrize("what", ["strict-broken-image", "missing-folder"])
def test_scanpaths_bad_image_folder_is_one_line(run, tmp_path, what):
    folder = _image_folder(tmp_path / "images", b"") if what == "strict-broken-image" else tmp_path / "nowhere"
    before = snapshot(tmp_path)
    result = run("scanpaths", *SCANPATHS_FAST, f"data.image_dir={folder}", "data.strict=true")
    assert_failed_cleanly(result, tmp_path, before, "bad.jpg" if what == "strict-broken-image" else str(folder))


# --- 8. model scanpath files and sources given to the benchmark ---------------------------------------


def test_model_scanpath_with_nan_is_dropped_and_counted(run, tmp_path):
    data = fixation_folder(tmp_path / "mine")
    model = [
        {"stimulus": f"im{k}", "subject": "m", "x": [10.0, float("nan"), 30.0], "y": [5.0, 6.0, 7.0]} for k in range(5)
    ]
    source = tmp_path / "model.json"
    source.write_text(json.dumps(model))
    result = run("benchmark", *BENCH[:-3], "progress=false", f"data.root={data}", f"attention={source}")
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    assert re.search(r"model\.json: dropped 5 of 15 fixations with a NaN/inf coordinate", text), text[-3000:]


@pytest.mark.parametrize("attention", ["bogus_source", "[]"], ids=["unknown-source", "empty-list"])
def test_unknown_benchmark_source_is_one_line(run, tmp_path, attention):
    data = fixation_folder(tmp_path / "mine")
    before = snapshot(tmp_path)
    result = run("benchmark", *BENCH[:-3], "progress=false", f"data.root={data}", f"attention={attention}")
    assert_failed_cleanly(result, tmp_path, before, "attention" if attention == "[]" else attention)


def test_checkpoint_path_that_is_a_folder_is_one_line(run, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    before = snapshot(tmp_path)
    result = run("eval", f"ckpt_path={folder}")
    assert_failed_cleanly(result, tmp_path, before, "checkpoint not found", str(folder), "a folder")


# --- 9. OSIE with a broken stimulus --------------------------------------------------------------------


def _osie_copy(tmp_path: Path, broken: bytes) -> tuple[Path, str]:
    """OSIE's layout under tmp_path: the shared subset's files linked, the first stimulus replaced."""
    source = shared_path("data", "osie_subset", "data")
    root = tmp_path / "osie"
    (root / "data" / "stimuli").mkdir(parents=True)
    (root / "data" / "eye").mkdir()
    (root / "data" / "eye" / "fixations.mat").symlink_to(source / "eye" / "fixations.mat")
    stimuli = sorted((source / "stimuli").iterdir())
    for image in stimuli[1:]:
        (root / "data" / "stimuli" / image.name).symlink_to(image)
    (root / "data" / "stimuli" / stimuli[0].name).write_bytes(broken)
    return root, stimuli[0].name


@pytest.mark.parametrize("kind", ["zero-byte-jpeg", "truncated-jpeg"])
def test_osie_with_a_broken_stimulus_skips_and_counts_it(run, tmp_path, kind):
    root, name = _osie_copy(tmp_path, _broken_bytes(kind))
    result = run(
        "benchmark", f"data.root={root}", "max_images=1", "attention=uniform", "figure_images=1", "progress=false"
    )
    text = result.out + result.err
    assert result.rc == 0 and "Traceback" not in text, text[-3000:]
    total = len(list((root / "data" / "stimuli").iterdir()))
    assert re.search(rf"osie: skipped 1 of {total} images that cannot be read, e\.g\. \S*{re.escape(name)}", text), (
        text[-3000:]
    )
    assert f"{total - 1} stimuli" in text


def test_osie_with_a_broken_stimulus_and_strict_is_one_line(run, tmp_path):
    root, name = _osie_copy(tmp_path, b"")
    before = snapshot(tmp_path)
    result = run("benchmark", f"data.root={root}", "data.strict=true", "attention=uniform")
    assert_failed_cleanly(result, tmp_path, before, name, "data.strict")
