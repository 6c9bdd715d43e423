"""Two-phase training of DINet through ``python -m attnlab.train`` on the OSIE subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path

# tiny test models: a second thread gains nothing, and OpenMP waits dominate on a busy machine
# (a 32x48 ResNet-50 forward: 0.06 s on one thread, 3 s on two)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = [
    "debug=tiny",
    "data.image_size=[32,48]",
    "data.batch_size=2",
    "model.bases=6",
    "model.net.width=8",
    "model.net.backbone_weights=none",
    "callbacks.rich_progress_bar=null",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def _net_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.")}


def _latest_metrics(root: Path) -> dict:
    runs = sorted((root / "outputs" / "train" / "runs").glob("*/metrics.json"))
    return json.loads(runs[-1].read_text())


def test_dinet_phase1_then_phase2_through_the_train_entry_point(run_cli, tmp_path):
    osie = shared_path("data", "osie_subset")
    env = {"ATTNLAB_OSIE_ROOT": str(osie), "OMP_NUM_THREADS": "1"}
    first = run_cli("attnlab.train", "model=saliency_dinet", *TINY, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    out = _latest_metrics(tmp_path)
    # validation and test numbers, raw and with the centre-bias prior multiplied in
    for key in (
        "val/cc",
        "test/cc",
        "test/nss",
        "test/kld",
        "test/sim",
        "test/auc_judd",
        "test/sauc",
        "test/cb_cc",
        "test/cb_nss",
    ):
        assert key in out and np.isfinite(out[key]), key
    ckpt1 = Path(out["best_checkpoint"])
    second = run_cli(
        "attnlab.train", "model=saliency_dinet", *TINY, "model.phase=2", f"model.init_from={ckpt1}", env=env
    )
    assert second.returncode == 0, second.stderr[-3000:]
    ckpt2 = Path(_latest_metrics(tmp_path)["best_checkpoint"])
    assert ckpt2 != ckpt1
    s1, s2 = _net_state(ckpt1), _net_state(ckpt2)
    # phase 2 changed nothing but its head: frozen weights and BatchNorm statistics are identical
    assert {k for k in s1 if not k.startswith("net.head.")} == {k for k in s2 if not k.startswith("net.basis_head.")}
    for k, v in s1.items():
        if not k.startswith("net.head."):
            assert torch.equal(v, s2[k]), k
    assert s2["net.basis_head.weight"].shape == (1, 6, 3, 3)

    # the trained model as a benchmark source, next to the baselines
    from attnlab.benchmark import BenchmarkContext, resolve_source
    from attnlab.data.osie import load_osie

    data = load_osie(osie)
    ctx = BenchmarkContext(data, data, 24.0, 0)
    saliency = resolve_source(f"saliency:{ckpt1}", ctx).saliency_map(ctx, 0)
    assert saliency.shape == (32, 48) and np.isfinite(saliency).all() and saliency.min() > 0


def test_phase2_with_a_missing_checkpoint_is_a_one_line_error(run_cli, tmp_path):
    result = run_cli(
        "attnlab.train", "model=saliency_dinet", "model.phase=2", f"model.init_from={tmp_path / 'nope.ckpt'}"
    )
    assert result.returncode == 2
    assert "model.init_from" in result.stderr and len(result.stderr.strip().splitlines()) == 1
