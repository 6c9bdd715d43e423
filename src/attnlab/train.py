"""Train any attnlab model: ``python -m attnlab.train model=<name> [overrides]``.

The default trains the object-based gating model on MultiMNIST on the CPU, tests it on held-out
composites and prints the test accuracy. Returns the optimised metric for sweepers (Optuna).
``resume=<run folder>`` continues a run in its own folder with its stored config; a run folder that
already holds checkpoints (a requeued cluster job) continues from the newest one.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import hydra
import lightning as L
from omegaconf import DictConfig

from attnlab.utils.checkpoint import StoreConfig, read_checkpoint
from attnlab.utils.checkpoint_io import (
    FlushLogs,
    RandomState,
    continue_csv_logs,
    epoch_shuffling,
    logged_step,
    newest_checkpoint,
)
from attnlab.utils.cli import entry_point
from attnlab.utils.config import UserError
from attnlab.utils.distributed import distributed_eval_loaders, sync_batchnorm_setting
from attnlab.utils.instantiate import instantiate_trainer, log_hyperparameters, to_float_dict, write_json
from attnlab.utils.resume import checkpoint_config_differences
from attnlab.utils.settings import ResumeFrom, Seed
from attnlab.utils.wandb_run import publish_run

log = logging.getLogger(__name__)


# annotations as objects, not strings (no `from __future__ import annotations` here): run as __main__,
# this class reaches sweep jobs (submitit) pickled by value, where this module's names do not exist
@dataclass
class TrainSettings:
    """The command's own keys (their defaults: ``conf/train.yaml``); ``ckpt_path`` resumes from a checkpoint."""

    seed: Seed
    train: bool
    test: bool
    ckpt_path: Optional[ResumeFrom]
    optimized_metric: Optional[str]


def resume_checkpoint(cfg: DictConfig) -> tuple[str | None, dict | None]:
    """The checkpoint ``fit`` continues from: ``ckpt_path=PATH`` as given; ``ckpt_path=last`` (or
    ``resume=<run>``, or a run folder that already holds checkpoints, as a requeued SLURM job finds
    its own) the newest one in this run's folder. A checkpoint stored with another model or data
    config than this run's is refused, naming the keys. Returns the path and the loaded checkpoint."""
    asked, run_dir = cfg.get("ckpt_path"), Path(cfg.paths.output_dir)
    if asked and asked != "last":
        path = str(asked)
    else:
        newest = newest_checkpoint(run_dir)
        if newest is None and cfg.get("resume"):
            raise UserError(f"resume={cfg.resume}: the run folder holds no checkpoint to continue from")
        if newest is None:
            return None, None
        path = str(newest)
        log.info("continuing from the newest checkpoint of the run folder: %s", path)
    checkpoint = read_checkpoint(path)
    changed = checkpoint_config_differences(checkpoint, cfg)
    if changed:
        raise UserError(f"ckpt_path={path} was trained with another config; differing keys: {', '.join(changed)}")
    return path, checkpoint


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; return validation and test metrics."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model: L.LightningModule = hydra.utils.instantiate(cfg.model, _convert_="all")
    ckpt_path, checkpoint = resume_checkpoint(cfg) if cfg.get("train", True) else (None, None)
    callbacks = [StoreConfig(cfg), RandomState(), FlushLogs()]
    trainer = instantiate_trainer(cfg, extra_callbacks=callbacks, **sync_batchnorm_setting(cfg.trainer, model))
    run_dir = Path(cfg.paths.output_dir).resolve()
    if checkpoint is not None and trainer.is_global_zero and Path(ckpt_path).resolve().is_relative_to(run_dir):
        # continuing this run: its CSV log continues where the checkpoint left it
        continue_csv_logs(trainer.loggers, int(checkpoint["epoch"]), logged_step(checkpoint))
    del checkpoint  # Lightning loads it again onto the right device
    distributed_eval_loaders(trainer, datamodule)
    if trainer.world_size == 1:  # DDP's DistributedSampler already shuffles by seed and epoch
        epoch_shuffling(datamodule)  # resumed epochs see the batches the uninterrupted run saw
    log_hyperparameters(trainer, cfg)

    metrics: dict[str, float] = {}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics |= to_float_dict(trainer.callback_metrics)
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics |= to_float_dict(results[0]) if results else {}
        if best:
            metrics["best_checkpoint"] = best  # type: ignore[assignment]
    if trainer.is_global_zero:  # every DDP process has the synced metrics; one writes them
        write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        publish_run(trainer.loggers, cfg.paths.output_dir, best or None)  # logger=wandb: figures, best checkpoint
    return metrics


@entry_point("train", TrainSettings, resumable=True)
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0 and "test/acc" in metrics:  # DDP: one process prints
        print(f"test accuracy: {metrics['test/acc']:.4f}  (run folder: {cfg.paths.output_dir})")
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
