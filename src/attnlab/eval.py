"""Evaluate a checkpoint on the test split: ``python -m attnlab.eval ckpt_path=PATH``.

The model AND the data are rebuilt from the config stored in the checkpoint (so the architecture and
the inputs always match); ``data.key=value`` overrides still apply, and ``model=``/``data=`` naming
another class than the checkpoint's is reported. Writes ``metrics.json`` into the run folder.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from attnlab.utils.checkpoint import load_model, read_checkpoint
from attnlab.utils.cli import entry_point
from attnlab.utils.config import UserError
from attnlab.utils.instantiate import instantiate_trainer, to_float_dict, write_json
from attnlab.utils.settings import Checkpoint, Seed

log = logging.getLogger(__name__)


# annotations as objects, not strings (no `from __future__ import annotations` here): run as __main__,
# this class reaches sweep jobs (submitit) pickled by value, where this module's names do not exist
@dataclass
class EvalSettings:
    """The command's own keys (their defaults: ``conf/eval.yaml``)."""

    seed: Seed
    ckpt_path: Checkpoint


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test metrics of ``cfg.ckpt_path`` on ``cfg.data``'s test split."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.get("ckpt_path"):
        raise UserError(
            "eval needs ckpt_path=PATH (a checkpoint written by attnlab.train, e.g. <run folder>/checkpoints/last.ckpt)"
        )
    checkpoint = read_checkpoint(cfg.ckpt_path)
    model = load_model(cfg, checkpoint, cfg.ckpt_path)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    trainer = instantiate_trainer(cfg)
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = to_float_dict(results[0]) if results else {}
    metrics_path = write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics | {"ckpt_path": str(cfg.ckpt_path)})
    log.info("metrics written to %s", metrics_path)
    stats = getattr(datamodule, "stats", None)  # e.g. which photos the COCO selection kept, and why not the others
    if stats:
        log.info("data selection written to %s", write_json(Path(cfg.paths.output_dir) / "data_selection.json", stats))
    return metrics


def format_metrics(metrics: dict[str, float]) -> list[str]:
    """One line per score; ``<key>_ci_low/_ci_high/_chance`` go on their score's line."""
    suffixes = ("_ci_low", "_ci_high", "_chance")
    lines = []
    for key, value in sorted(metrics.items()):
        if key.endswith(suffixes):
            continue
        line = f"{key}: {value:.4f}"
        if f"{key}_ci_low" in metrics:
            line += f"  [95% CI {metrics[key + '_ci_low']:.4f}, {metrics[key + '_ci_high']:.4f}]"
        if f"{key}_chance" in metrics:
            line += f"  (chance {metrics[key + '_chance']:.4f})"
        lines.append(line)
    return lines


@entry_point("eval", EvalSettings)
def main(cfg: DictConfig) -> None:
    metrics = evaluate(cfg)
    for line in format_metrics(metrics):
        print(line)
    print(f"(run folder: {cfg.paths.output_dir})")


if __name__ == "__main__":
    main()
