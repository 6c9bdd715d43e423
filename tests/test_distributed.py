"""Two CPU processes (DDP over gloo) write one run and report the metrics one process reports.

Gating has no BatchNorm, so two processes with half the batch each train exactly what one process
with the whole batch trains (gradients are averaged): validation and test metrics agree up to the
order of float sums (tolerance 1e-5). The autoencoder and DINet have BatchNorm, which cannot be
synchronised between CPU processes, so their training differs by design; for them the test is that
the distributed evaluation of the trained checkpoint equals a one-process evaluation of the same
checkpoint (no image counted twice, none lost, means weighted by images).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "callbacks.rich_progress_bar=null"]
ONE = ["callbacks.rich_progress_bar=null"]
TOL = 1e-5


def _runs(root: Path, task: str = "train") -> list[Path]:
    return sorted((root / "outputs" / task / "runs").glob("*"))


def _scores(metrics: dict, prefix: str) -> dict[str, float]:
    # bootstrap intervals resample records whose order differs between one and two processes
    return {
        k: v
        for k, v in metrics.items()
        if k.startswith(prefix) and isinstance(v, float) and not k.endswith(("_ci_low", "_ci_high", "_chance"))
    }


def _assert_close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a and set(a) == set(b)
    far = {k: (a[k], b[k]) for k in a if not math.isclose(a[k], b[k], rel_tol=TOL, abs_tol=TOL)}
    assert not far, far


def _written_once(run: Path) -> None:
    """One metrics.json, one copy of each checkpoint, each logged step once, no second rank folder."""
    assert (run / "metrics.json").is_file()
    assert not list(run.glob(".pl_hydra*")) or all(not (p / "config.yaml").exists() for p in run.glob(".pl_hydra*"))
    names = [p.name for p in (run / "checkpoints").iterdir()]
    assert "latest.ckpt" in names and len(names) == len(set(names))
    assert not [n for n in names if "-v1" in n], names  # a second process saving would add versioned copies
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    keys = [(r["step"], tuple(k for k, v in r.items() if v and k not in ("step", "epoch"))) for r in rows]
    assert len(keys) == len(set(keys)), "a step logged twice"


def test_gating_two_processes_match_one_with_the_same_global_batch(run_cli, tmp_path):
    sizes = [
        "debug=tiny",
        "trainer.limit_train_batches=null",
        "trainer.limit_val_batches=null",
        "trainer.limit_test_batches=null",
        "data.train_size=64",
        "data.val_size=33",
        "data.test_size=33",
        "seed=5",
    ]
    one = run_cli("attnlab.train", *sizes, "data.batch_size=16", *ONE, env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli("attnlab.train", *sizes, "data.batch_size=8", *DDP, env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("test accuracy:") == 1, "one process prints"
    run_one, run_two = _runs(tmp_path)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (run_one, run_two))
    assert a["test/images"] == b["test/images"] == 33  # 17 + 16: none repeated to even out the processes
    _assert_close(_scores(a, "val/"), _scores(b, "val/"))
    _assert_close(_scores(a, "test/"), _scores(b, "test/"))
    _written_once(run_two)
    assert len(list(csv.reader((run_two / "test_per_image.csv").open()))) == 1 + 2 * 33  # glimpses x images
    assert "sync_batchnorm" not in (run_two / "train.log").read_text()  # no BatchNorm: nothing to say


def _ddp_then_one_process_eval(run_cli, tmp_path, train: list[str], evaluate: list[str], env: dict):
    """Train with two processes, then evaluate the best checkpoint in one; both metrics.json."""
    two = run_cli("attnlab.train", *train, *DDP, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    (run,) = _runs(tmp_path)
    _written_once(run)
    assert "sync_batchnorm needs GPUs" in (run / "train.log").read_text()
    trained = json.loads((run / "metrics.json").read_text())
    ckpt = trained["best_checkpoint"]
    one = run_cli("attnlab.eval", f"ckpt_path={ckpt}", *evaluate, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    (eval_run,) = _runs(tmp_path, "eval")
    return trained, json.loads((eval_run / "metrics.json").read_text())


def test_autoencoder_ddp_test_metrics_equal_one_process_eval_of_the_checkpoint(run_cli, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(50):  # split 40/5/5: 5 test images over 2 processes
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    data = [
        "model=autoencoder",
        "data=images",
        f"data.image_dir={folder}",
        "data.image_size=[16,16]",
        "data.batch_size=2",
        "model.net.channels=[4,8]",
        "trainer.limit_test_batches=null",
    ]
    trained, evaluated = _ddp_then_one_process_eval(
        run_cli, tmp_path, [*data, "debug=tiny"], [*data, "debug=tiny"], {"OMP_NUM_THREADS": "1"}
    )
    _assert_close(_scores(trained, "test/"), _scores(evaluated, "test/"))


def test_dinet_ddp_test_metrics_equal_one_process_eval_of_the_checkpoint(run_cli, tmp_path):
    osie = shared_path("data", "osie_subset")
    env = {"ATTNLAB_OSIE_ROOT": str(osie), "OMP_NUM_THREADS": "1"}
    net = [
        "model=saliency_dinet",
        "data.image_size=[32,48]",
        "data.batch_size=2",
        "model.bases=6",
        "model.net.width=8",
        "model.net.backbone_weights=none",
    ]
    # two processes x 1 test batch of 2 images are the first 2 batches of one process
    train = [
        *net,
        "debug=tiny",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    ]
    evaluate = [*net, "debug=tiny", "trainer.limit_test_batches=2"]
    trained, evaluated = _ddp_then_one_process_eval(run_cli, tmp_path, train, evaluate, env)
    # sAUC takes its negatives from the other images of the batch and AUC-Judd draws its tie-breaking
    # jitter per batch: both depend on which images share a batch, which differs between 2x2 and 1x4
    per_image = lambda m: {k: v for k, v in _scores(m, "test/").items() if not k.endswith(("sauc", "auc_judd"))}  # noqa: E731
    assert {"test/cc", "test/nss", "test/kld", "test/sim", "test/loss"} <= set(per_image(trained))
    _assert_close(per_image(trained), per_image(evaluated))


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
