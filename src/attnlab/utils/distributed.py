"""Several processes (DDP) giving the metrics one process gives.

Lightning's distributed sampler pads validation and test sets to a multiple of the number of
processes by repeating images, so a test metric would count some images twice. The evaluation
loaders here get a sampler that splits the images without repeating any; the metrics are then
summed over processes (``self.log(..., sync_dist=True, batch_size=float(n))``, torchmetrics),
weighted by the images each process saw. ``sync_batchnorm`` is only asked of Lightning where a
BatchNorm layer exists and the devices can synchronise it (PyTorch's SyncBatchNorm runs on GPUs, not
on CPU processes).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from torch import nn

log = logging.getLogger(__name__)

__all__ = ["distributed_eval_loaders", "has_batchnorm", "sync_batchnorm_setting"]

# Why the models pass ``batch_size=float(n)`` to ``self.log(..., sync_dist=True)``: Lightning sums the
# image counts in an integer tensor and averages it over processes, so with 17 and 16 test images per
# process the summed values are divided by 32, not 33; a float count makes the mean exact.


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def sync_batchnorm_setting(trainer_cfg: Any, model: nn.Module) -> dict[str, bool]:
    """``{"sync_batchnorm": ...}`` when the trainer config asks for it, decided by the model and devices."""
    if not trainer_cfg.get("sync_batchnorm"):
        return {}
    if not has_batchnorm(model):
        return {"sync_batchnorm": False}  # nothing to convert
    if str(trainer_cfg.get("accelerator")) == "cpu":
        log.warning("sync_batchnorm needs GPUs; on CPU processes each keeps its own BatchNorm batch statistics")
        return {"sync_batchnorm": False}
    return {"sync_batchnorm": True}


def _unrepeated(make_loader):
    """Wrap a ``*_dataloader`` method so that, with several processes, each gets a disjoint share."""

    def loader():
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
        from torch.distributed import get_rank, get_world_size, is_available, is_initialized
        from torch.utils.data import DataLoader, SequentialSampler

        dl = make_loader()
        if not (is_available() and is_initialized() and get_world_size() > 1):
            return dl
        if not isinstance(dl, DataLoader) or not isinstance(dl.sampler, SequentialSampler) or dl.batch_sampler is None:
            return dl  # a loader with its own sampling: Lightning's default handling
        sampler = UnrepeatedDistributedSampler(
            dl.dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=False
        )
        return DataLoader(
            dl.dataset,
            batch_size=dl.batch_size,
            sampler=sampler,
            num_workers=dl.num_workers,
            collate_fn=dl.collate_fn,
            pin_memory=dl.pin_memory,
            drop_last=dl.drop_last,
            worker_init_fn=dl.worker_init_fn,
            timeout=dl.timeout,
            persistent_workers=dl.persistent_workers if dl.num_workers else False,
        )

    return loader


def distributed_eval_loaders(trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
    """Give ``datamodule``'s validation and test loaders unrepeated shares when ``trainer`` runs several processes.

    The loaders are replaced when Lightning asks for them, once the process group exists.
    """
    if trainer.world_size <= 1:
        return
    for name in ("val_dataloader", "test_dataloader"):
        method = getattr(datamodule, name, None)
        if callable(method):
            setattr(datamodule, name, _unrepeated(method))
