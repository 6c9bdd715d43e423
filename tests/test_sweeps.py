"""Sweeps off the laptop: a two-job multirun through submitit's local launcher (the SLURM launcher's
twin), the SLURM launcher's resources, and an Optuna sweep that continues after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from attnlab.utils.cli import compose_config

TINY = [
    "debug=tiny",
    "data.val_size=16",
    "data.test_size=16",
    "data.batch_size=16",
    "data.train_size=32",
    "test=false",
    "callbacks.rich_progress_bar=null",
]


def _sweeps(root: Path) -> list[Path]:
    return sorted((root / "outputs" / "train" / "multiruns").glob("*"))


def _jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def test_two_job_multirun_through_submitit_local(run_cli, tmp_path):
    result = run_cli(
        "attnlab.train",
        "-m",
        "hydra/launcher=local",
        "model.lr=1e-3,1e-4",
        *TINY,
        env={"OMP_NUM_THREADS": "1"},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = _sweeps(tmp_path)
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    lrs = {(j / ".hydra" / "overrides.yaml").read_text().split("model.lr=")[1].split()[0] for j in jobs}
    assert lrs == {"0.001", "0.0001"}
    for job in jobs:
        assert 0.0 <= json.loads((job / "metrics.json").read_text())["val/acc"] <= 1.0
    # submitit ran each job as its own process and kept its logs and pickled result
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2


def test_slurm_launcher_holds_the_resources_and_the_requeue_signal():
    cfg = compose_config(
        "train",
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"],
        return_hydra_config=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 4, 4)
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0
    # Lightning's SLURMEnvironment requeues on SIGUSR1 (submitit's own default would be USR2)
    assert launcher.additional_parameters.signal.startswith("USR1@")
    # the sbatch header submitit writes from these settings (what SlurmExecutor renders; no srun here)
    from submitit.slurm.slurm import _make_sbatch_string

    header = _make_sbatch_string(
        command="python -m attnlab.train",
        folder="/tmp/x/%j",
        job_name="train",
        partition=launcher.partition,
        gpus_per_node=launcher.gpus_per_node,
        ntasks_per_node=launcher.tasks_per_node,
        cpus_per_task=launcher.cpus_per_task,
        mem=f"{launcher.mem_gb}GB",
        time=launcher.timeout_min,
        signal_delay_s=launcher.signal_delay_s,
        additional_parameters=dict(launcher.additional_parameters),
    )
    assert "#SBATCH --signal=USR1@120" in header and "USR2" not in header
    assert "#SBATCH --requeue" in header and "#SBATCH --gpus-per-node=4" in header
    assert "#SBATCH --ntasks-per-node=4" in header and "#SBATCH --partition=gpu" in header


def test_killed_optuna_sweep_continues_with_the_trials_already_done(tmp_path):
    db = tmp_path / "study.db"
    command = [
        sys.executable,
        "-m",
        "attnlab.train",
        "hparams_search=gating_mnist_optuna",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=killed",
        *TINY,
    ]
    env = os.environ.copy()
    env.update({"ATTNLAB_ROOT": str(tmp_path), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:  # kill once the third trial has started
            sweeps = _sweeps(tmp_path)
            if sweeps and (sweeps[0] / "2").is_dir():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    states = [t.state for t in optuna.load_study(study_name="killed", storage=f"sqlite:///{db}").trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and states[-1] == optuna.trial.TrialState.RUNNING

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{db}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3, [t.state for t in study.trials]
    assert study.trials[2].state == optuna.trial.TrialState.FAIL  # the killed one
    second = _sweeps(tmp_path)[-1]
    assert [j.name for j in _jobs(second)] == ["3"], "one more trial, numbered after the study's trials"
    summary = (second / "optimization_results.yaml").read_text()
    assert f"best_value: {max(t.value for t in complete)}" in summary
