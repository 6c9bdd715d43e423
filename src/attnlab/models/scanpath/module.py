"""Lightning wrapper of :class:`~attnlab.models.scanpath.net.ScanpathNet`: trained by the log-likelihood of
the humans' real next fixations (teacher forcing), checkpointed on the validation log-likelihood.

Logged: ``{train,val,test}/loss`` (nats per fixation) and ``{train,val,test}/ll`` (bits per fixation over
the uniform density on the model's grid, the unit of the benchmark's ``LL``). The frozen image features
of each image are computed once and kept (by stimulus id) for later epochs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch
from torch import Tensor

from attnlab.models.scanpath.net import ScanpathNet
from attnlab.utils.config import PositiveFloat, UserError

log = logging.getLogger(__name__)

__all__ = ["ScanpathModule"]


def target_cells(target: Tensor, grid: tuple[int, int]) -> Tensor:
    """Flat grid index of each normalised (x, y) in [0, 1)."""
    h, w = grid
    rows = (target[:, 1] * h).long().clamp(0, h - 1)
    cols = (target[:, 0] * w).long().clamp(0, w - 1)
    return rows * w + cols


class ScanpathModule(L.LightningModule):
    """Args:
    net: the scanpath network.
    lr: Adam's learning rate for the readout, history and combination networks.
    """

    def __init__(self, net: ScanpathNet, lr: PositiveFloat = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self._features: dict[str, Tensor] = {}

    def setup(self, stage: str) -> None:
        if stage == "fit":
            dm = getattr(self.trainer, "datamodule", None)
            train = getattr(dm, "train_split", None)
            if train is None:
                raise UserError("model=scanpath_deepgaze trains on next-fixation samples: use data=osie_steps")
            self.net.prior.fit(train)
            log.info("centre prior fitted on %d training images: %s", len(train), self.net.prior.extra_repr())

    def features(self, item: dict[str, Any]) -> Tensor:
        key = item["stimulus"]
        if key not in self._features:
            self._features[key] = self.net.features(item["image"][None].to(self.device))
        return self._features[key]

    def item_log_likelihoods(self, item: dict[str, Any]) -> Tensor:
        """log p (nats) of each of the item's target fixations given its history."""
        image = item["image"]
        aspect = image.shape[-1] / image.shape[-2]
        priority = self.net.priority(self.features(item))
        log_p = self.net.log_density(priority, item["history"].to(self.device), item["mask"].to(self.device), aspect)
        cells = target_cells(item["target"].to(self.device), tuple(log_p.shape[-2:]))
        return log_p.reshape(log_p.shape[0], -1).gather(1, cells[:, None])[:, 0]

    def _step(self, batch: list[dict[str, Any]], stage: str) -> Tensor:
        lls = torch.cat([self.item_log_likelihoods(item) for item in batch if len(item["target"])])
        loss = -lls.mean()
        grid = self._features[batch[0]["stimulus"]].shape[-2:]
        bits = (lls.mean() + math.log(grid[0] * grid[1])) / math.log(2)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "train", batch_size=len(lls))
        self.log(f"{stage}/ll", bits, on_epoch=True, prog_bar=stage != "train", batch_size=len(lls))
        return loss

    def training_step(self, batch: list[dict[str, Any]], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(trainable, lr=self.hparams.lr)
