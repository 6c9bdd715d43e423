"""What a run sends to Weights & Biases besides its metrics: the figures it wrote and its best checkpoint.

Lightning's ``WandbLogger`` sends the config (``log_hyperparameters``) and every logged metric. The
figures each command already saves in its run folder (``confusion_matrix_test.png``,
``attention_test.png``, ``saliency_grid.png``, ``overlays/*.png``) go to W&B as images, and the best
checkpoint as a ``model`` artifact with the alias ``best``. Without an API key all of it stays in the
offline run folder (``<run>/wandb/offline-run-*``) until ``wandb sync`` uploads it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

__all__ = ["publish_run", "wandb_loggers"]

MAX_OVERLAYS = 16  # a scanpath run over a whole dataset writes one overlay per image


def wandb_loggers(loggers: Iterable) -> list:
    return [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]


def publish_run(loggers: Iterable, run_dir: str | Path, best_checkpoint: str | Path | None = None) -> int:
    """Send ``run_dir``'s figures (and ``best_checkpoint``) to every W&B logger; returns the figures sent.
    Call it on one process only (DDP rank 0)."""
    targets = wandb_loggers(loggers)
    if not targets:
        return 0
    run_dir = Path(run_dir)
    figures = sorted(run_dir.glob("*.png")) + sorted(run_dir.glob("overlays/*.png"))[:MAX_OVERLAYS]
    for logger in targets:
        for path in figures:
            key = f"overlays/{path.stem}" if path.parent.name == "overlays" else f"figures/{path.stem}"
            logger.log_image(key=key, images=[str(path)])
        if best_checkpoint and Path(best_checkpoint).is_file():
            import wandb

            run = logger.experiment
            artifact = wandb.Artifact(
                name=f"model-{run.id}",
                type="model",
                metadata={"run_folder": str(run_dir), "file": Path(best_checkpoint).name},
            )
            # immutable: W&B reads the file from the run folder at sync time instead of copying it to a
            # staging folder in the home directory (which an offline run on a cluster may not keep)
            artifact.add_file(str(best_checkpoint), name="best.ckpt", policy="immutable")
            run.log_artifact(artifact, aliases=["best", "latest"])
    log.info("W&B: %d figure(s)%s sent", len(figures), " and the best checkpoint" if best_checkpoint else "")
    return len(figures)
