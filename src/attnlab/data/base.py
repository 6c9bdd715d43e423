"""The loader plumbing every attnlab datamodule shares: one dataset per split, seeded shuffling."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["SplitDataModule", "INPUT_SIZE"]

# [height, width] of the images the saliency and scanpath networks see: the one default of every
# ``image_size`` (data modules, models, the sources that rebuild a checkpoint's input)
INPUT_SIZE = (240, 320)


class SplitDataModule(L.LightningDataModule):
    """A datamodule whose loaders all come from :meth:`split_dataset`.

    Subclasses build their splits in ``setup`` and implement ``split_dataset(name)`` for
    ``train``/``val``/``test`` (``predict`` defaults to the test split). ``batch_size``,
    ``num_workers`` and ``seed`` are read from the saved hyperparameters or the instance.
    Training batches are shuffled by a generator seeded from ``seed``, so runs repeat exactly.
    """

    collate_fn = None  # how a batch is put together (None: torch's default stacking)

    def split_dataset(self, split: str) -> Dataset:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _setting(self, name: str, default):
        if name in self.hparams:
            return self.hparams[name]
        return getattr(self, name, default)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup(None)
        workers = int(self._setting("num_workers", 0))
        generator = torch.Generator().manual_seed(int(self._setting("seed", 0))) if shuffle else None
        return DataLoader(
            self.split_dataset(split),
            batch_size=int(self._setting("batch_size", 1)),
            shuffle=shuffle,
            generator=generator,
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
