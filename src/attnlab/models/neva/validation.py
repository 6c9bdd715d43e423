"""Model selection of amortised NeVA on human likeness: ``val/ScanMatch`` after every validation epoch.

α is trained by the task's loss alone, which says nothing about people; with a fixation dataset
(``data=osie``) this callback scores α's scanpaths on the validation images against the humans as
the benchmark does (first human fixation dropped; each scanpath against every human scanpath of its
image, mean over the humans, then over the images), so that checkpoints can be chosen on it
(``optimized_metric: val/ScanMatch``, experiment ``neva_amortised_osie``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from attnlab.metrics.scanpath import scanmatch, score_against_humans
from attnlab.utils.config import UserError

__all__ = ["ScanpathValidation"]


class ScanpathValidation(L.Callback):
    """Logs ``val/ScanMatch`` of the model's scanpaths (``pl_module.scanpaths(images)``) on the val split.

    Args:
        drop_first_human: drop each human's first (central start) fixation, as the benchmark does.

    Needs a :class:`~attnlab.data.fixation_datamodule.FixationDataModule` (batches carry ``index``
    into ``splits["val"]``); any other datamodule is one line at the start of fitting. The scanpaths
    of the last epoch stay in ``self.scanpaths`` (stimulus id → Scanpath), for inspection and tests.
    """

    def __init__(self, drop_first_human: bool = True) -> None:
        self.drop_first_human = bool(drop_first_human)
        self.scanpaths: dict[str, Any] = {}
        self._scores: list[float] = []
        self._data = None
        self._humans: list = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        splits = getattr(trainer.datamodule, "splits", None)
        if not splits or "val" not in splits or not hasattr(splits["val"], "scanpaths"):
            raise UserError(
                "callbacks.scanpath_validation needs human scanpaths on the val split: use a fixation dataset "
                "(data=osie, mit1003, ...) or drop the callback (~callbacks.scanpath_validation)"
            )
        self._data = splits["val"]
        humans = self._data.filtered(drop_first=True) if self.drop_first_human else self._data
        self._humans = humans.scanpaths

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._scores, self.scanpaths = [], {}

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        data = self._data
        indices = [int(i) for i in batch["index"]]
        sizes = torch.tensor([data.stimuli[i].size for i in indices])
        path, _ = pl_module.scanpaths(batch["image"])
        ids = [data.stimuli[i].id for i in indices]
        for i, stimulus, pred in zip(indices, ids, path.scanpaths(sizes, ids, subject="model")):
            self.scanpaths[stimulus] = pred
            humans = self._humans[i]
            if humans:  # an image without human scanpaths is skipped, as in the benchmark
                self._scores.append(score_against_humans(scanmatch, pred, humans, image_size=data.stimuli[i].size))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scores = [s for s in self._scores if s == s]
        if scores:
            pl_module.log("val/ScanMatch", float(np.mean(scores)), prog_bar=True, sync_dist=True)
