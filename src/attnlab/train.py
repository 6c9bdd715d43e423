"""Train any attnlab model: ``python -m attnlab.train model=<name> [overrides]``.

The default trains the object-based gating model on MultiMNIST on the CPU, tests it on held-out
composites and prints the test accuracy. Returns the optimised metric for sweepers (Optuna).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from attnlab.utils.checkpoint import StoreConfig
from attnlab.utils.cli import entry_point
from attnlab.utils.instantiate import instantiate_trainer, log_hyperparameters, to_float_dict, write_json

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; return validation and test metrics."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model: L.LightningModule = hydra.utils.instantiate(cfg.model, _convert_="all")
    trainer = instantiate_trainer(cfg, extra_callbacks=[StoreConfig(cfg)])
    log_hyperparameters(trainer, cfg)

    metrics: dict[str, float] = {}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics |= to_float_dict(trainer.callback_metrics)
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics |= to_float_dict(results[0]) if results else {}
        if best:
            metrics["best_checkpoint"] = best  # type: ignore[assignment]
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    if "test/acc" in metrics:
        print(f"test accuracy: {metrics['test/acc']:.4f}  (run folder: {cfg.paths.output_dir})")
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
