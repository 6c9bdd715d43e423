"""logger=wandb without a key: offline, no network, and the offline run holds the config, the metrics,
the figures the run wrote and the best checkpoint as a model artifact (what `wandb sync` uploads)."""

from __future__ import annotations

import json
from pathlib import Path

TINY = [
    "debug=tiny",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=16",
    "data.train_size=48",
    "callbacks.rich_progress_bar=null",
]


def test_offline_wandb_run_holds_config_metrics_figures_and_best_checkpoint(run_cli, tmp_path):
    # no key, and any attempt to reach a server goes to a closed port
    env = {
        "WANDB_MODE": "",
        "WANDB_API_KEY": "",
        "HOME": str(tmp_path),
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "OMP_NUM_THREADS": "1",
    }
    result = run_cli("attnlab.train", "logger=wandb", *TINY, "model.lr=0.00123", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = sorted((tmp_path / "outputs" / "train" / "runs").glob("*"))
    (offline,) = (run / "wandb").glob("offline-run-*")
    assert f"wandb sync {offline}" in result.stdout + result.stderr
    blob = b"".join(p.read_bytes() for p in offline.rglob("*.wandb"))
    assert b"0.00123" in blob and b"multimnist" in blob.lower()  # the config
    assert b"val/acc" in blob and b"test/acc" in blob and b"train/acc_step" in blob  # the metrics
    assert b"attention" in blob  # the gated-input images per glimpse
    written = {p.stem for p in run.glob("*.png")}
    assert {"confusion_matrix_test", "attention_test"} <= written
    sent = {p.name.rsplit("_", 2)[0] for p in (offline / "files" / "media" / "images" / "figures").glob("*.png")}
    assert sent == written
    best = Path(json.loads((run / "metrics.json").read_text())["best_checkpoint"])
    assert b"model-" + offline.name.rsplit("-", 1)[1].encode() in blob  # the artifact, named after the run
    assert b"best.ckpt" in blob and str(best).encode() in blob  # referencing the checkpoint in the run folder
