"""A run killed mid-epoch and resumed ends with the metrics of the run that was never killed; resume
refuses another config; a kill during a checkpoint save leaves the previous checkpoint loadable."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from attnlab.utils.checkpoint_io import newest_checkpoint

# 6 training batches an epoch, 3 epochs, a checkpoint after each; 33 test images (not a batch multiple)
RUN = [
    "debug=tiny",
    "trainer.limit_train_batches=null",
    "trainer.max_epochs=3",
    "data.train_size=96",
    "data.val_size=32",
    "data.test_size=33",
    "data.batch_size=16",
    "trainer.limit_test_batches=null",
    "seed=11",
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update({"ATTNLAB_ROOT": str(tmp_path), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _runs(root: Path) -> list[Path]:
    return sorted((root / "outputs" / "train" / "runs").glob("*"))


def _comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "best_checkpoint"}


@pytest.mark.parametrize("how", ["resume", "requeue"])
def test_killed_run_resumes_in_its_folder_to_the_metrics_of_an_uninterrupted_run(run_cli, tmp_path, how):
    """``resume=<run>``, or the job's own command again in its run folder (a requeued SLURM job)."""
    whole_root, killed_root = tmp_path / "whole", tmp_path / "killed"
    whole_root.mkdir(), killed_root.mkdir()
    whole = subprocess.run(
        [sys.executable, "-m", "attnlab.train", *RUN],
        cwd=whole_root,
        env=_env(whole_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = json.loads((_runs(whole_root)[0] / "metrics.json").read_text())

    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab.train", *RUN],
        cwd=killed_root,
        env=_env(killed_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            runs = _runs(killed_root)
            if runs and (runs[0] / "checkpoints" / "latest.ckpt").is_file():
                break
            time.sleep(0.05)
        time.sleep(0.3)  # into the second epoch
        assert proc.poll() is None, "the run finished before it could be killed; give it more batches"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = _runs(killed_root)
    assert not (run / "metrics.json").exists()
    killed_at = torch.load(newest_checkpoint(run), map_location="cpu", weights_only=False)["epoch"]
    assert killed_at < 2, "killed before the last epoch ended"
    print(f"killed with the newest checkpoint at epoch {killed_at}; val/acc uninterrupted {expected['val/acc']}")

    again = [f"resume={run}"] if how == "resume" else [*RUN, f"hydra.run.dir={run}"]
    resumed = subprocess.run(
        [sys.executable, "-m", "attnlab.train", *again],
        cwd=killed_root,
        env=_env(killed_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _runs(killed_root) == [run], "continued in its own folder"
    # continued, not started again (which would give the same numbers too)
    assert "continuing from the newest checkpoint of the run folder" in (run / "train.log").read_text()
    got = json.loads((run / "metrics.json").read_text())
    assert Path(got["best_checkpoint"]).parent == run / "checkpoints"
    # same seed, same batches in the same order, same random draws: the same numbers, exactly
    assert _comparable(got) == _comparable(expected)
    # one log, as the uninterrupted run's: the rows before the checkpoint kept, none after it twice
    logs = [
        sorted(tuple(sorted((k, v) for k, v in row.items() if v)) for row in csv.DictReader(p.open()))
        for p in (run / "csv" / "metrics.csv", _runs(whole_root)[0] / "csv" / "metrics.csv")
    ]
    assert logs[0] == logs[1]
    last = [
        torch.load(r / "checkpoints" / "latest.ckpt", map_location="cpu", weights_only=False)
        for r in (run, _runs(whole_root)[0])
    ]
    assert last[0]["epoch"] == last[1]["epoch"] and last[0]["global_step"] == last[1]["global_step"]
    assert all(torch.equal(w, last[1]["state_dict"][k]) for k, w in last[0]["state_dict"].items())


def test_resume_with_another_config_is_one_line_naming_the_keys(run_cli, tmp_path):
    first = run_cli(
        "attnlab.train",
        "debug=tiny",
        "data.train_size=32",
        "data.val_size=16",
        "data.test_size=16",
        "data.batch_size=16",
        "test=false",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = _runs(tmp_path)
    result = run_cli("attnlab.train", f"resume={run}", "model.lr=0.5", "data.train_size=48")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("attnlab: error:"), result.stderr
    assert "model.lr" in lines[0] and "data.train_size" in lines[0]
    same = run_cli("attnlab.train", f"resume={run}", "data.train_size=32", "trainer.max_epochs=2")
    assert same.returncode == 2 and "trainer.max_epochs" in same.stderr and "data.train_size" not in same.stderr
    assert _runs(tmp_path) == [run]


def test_a_kill_during_a_checkpoint_save_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from attnlab.utils.checkpoint_io import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        io.save_checkpoint({{"epoch": 0, "w": torch.arange(1000.0)}}, {str(path)!r})
        real_save = torch.save
        def dying_save(obj, f, *args, **kwargs):  # half the bytes reach the disk, then the job is killed
            import io as stdio
            buffer = stdio.BytesIO()
            real_save(obj, buffer)
            with open(f, "wb") as out:
                out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                out.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        io.save_checkpoint({{"epoch": 1, "w": torch.zeros(1000)}}, {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert leftovers, "the killed write left its temporary file (the kill hit the write)"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0 and torch.equal(checkpoint["w"], torch.arange(1000.0))
    assert newest_checkpoint(tmp_path) == path  # the half-written temporary file is never picked
