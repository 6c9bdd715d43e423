"""Analyse a trained model or a sweep: ``python -m attnlab.analyze analysis=<name> [ckpt_path=PATH]``.

Analyses (``conf/analysis/``): ``inhibition`` and ``tuning_curves`` need a checkpoint (a Lightning
checkpoint or the paper's .pt, with ``model=`` naming its architecture when it carries no config);
``training_curves`` reads the logged metrics of ``analysis.runs``. Each writes its figures and
``<analysis>.json`` with the numbers into the run folder.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import hydra
import lightning as L
from omegaconf import DictConfig

from attnlab.utils.checkpoint import load_model, read_checkpoint
from attnlab.utils.cli import entry_point
from attnlab.utils.config import Device, UserError, resolve_device
from attnlab.utils.io import write_json
from attnlab.utils.settings import Checkpoint, Seed

log = logging.getLogger(__name__)


# annotations as objects, not strings (no `from __future__ import annotations` here): run as __main__,
# this class reaches sweep jobs (submitit) pickled by value, where this module's names do not exist
@dataclass
class AnalyzeSettings:
    """The command's own keys (their defaults: ``conf/analyze.yaml``)."""

    seed: Seed
    ckpt_path: Optional[Checkpoint]
    device: Device


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.analysis``; return its numbers (also written to ``<name>.json`` in the run folder)."""
    L.seed_everything(cfg.seed, verbose=False)
    analysis = hydra.utils.instantiate(cfg.analysis, _convert_="all")
    out_dir = Path(cfg.paths.output_dir)
    results: dict[str, Any]
    if analysis.needs_model:
        if not cfg.get("ckpt_path"):
            raise UserError(f"analysis={analysis.name} needs ckpt_path=PATH (a Lightning checkpoint or a paper .pt)")
        checkpoint = read_checkpoint(cfg.ckpt_path)
        module = load_model(cfg, checkpoint, cfg.ckpt_path).eval()
        if not (hasattr(module, "net") and hasattr(module, "glimpses")):
            raise UserError(
                f"analysis={analysis.name} needs a checkpoint of a gating model (model=gating_mnist or gating_coco); "
                f"ckpt_path={cfg.ckpt_path} holds {type(module).__module__}.{type(module).__name__}"
            )
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        results = analysis.run(module=module, datamodule=datamodule, out_dir=out_dir, device=resolve_device(cfg.device))
        results["ckpt_path"] = str(cfg.ckpt_path)
    else:
        results = analysis.run(out_dir=out_dir)
    path = write_json(out_dir / f"{analysis.name}.json", results)
    log.info("%s numbers written to %s", analysis.name, path)
    return results


@entry_point("analyze", AnalyzeSettings)
def main(cfg: DictConfig) -> None:
    analysis_cls = hydra.utils.get_class(cfg.analysis._target_)
    results = analyze(cfg)
    for line in analysis_cls.summary(results):
        print(line)
    print(f"(run folder: {cfg.paths.output_dir})")


if __name__ == "__main__":
    main()
