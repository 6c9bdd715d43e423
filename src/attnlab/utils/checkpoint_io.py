"""Run state that survives a kill: checkpoints written atomically, the random generators a resumed
run needs to draw what an uninterrupted one draws, and the newest checkpoint of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from attnlab.utils.io import atomic_path, write_csv

__all__ = [
    "AtomicCheckpointIO",
    "EpochRandomSampler",
    "FlushLogs",
    "RandomState",
    "continue_csv_logs",
    "epoch_shuffling",
    "logged_step",
    "newest_checkpoint",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with the write going to a temporary file renamed into place.

    Lightning's own writer opens the destination and streams into it, so a kill during the write
    leaves a truncated ``last.ckpt`` where the previous, good one was; a rename replaces it whole.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class RandomState(L.Callback):
    """Carry the random generators over a resume, so a resumed run draws what the uninterrupted one draws.

    Saved: torch's, NumPy's and Python's global generators (dropout, augmentation), put back at the
    first epoch start after loading. The training order needs no state: :func:`epoch_shuffling`
    makes it a function of the seed and the epoch.
    """

    KEY = "attnlab_random_state"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        import random

        import numpy as np

        checkpoint[self.KEY] = {
            "torch": torch.get_rng_state(),
            # plain types and tensors only: Lightning loads checkpoints with weights_only=True
            "numpy": _numpy_state(np.random.get_state()),
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._pending = checkpoint.get(self.KEY)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        import random

        import numpy as np

        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
        random.setstate(state["python"])


def _numpy_state(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return name, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The most recently written checkpoint of a run folder: ``checkpoints/*.ckpt`` or a SLURM
    requeue's ``hpc_ckpt_*.ckpt`` (Lightning writes those to the run folder itself); None if none."""
    run_dir = Path(run_dir)
    found = [
        p
        for p in (*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt"))
        if p.is_file() and not p.name.startswith(".")
    ]  # .name.*.tmp.ckpt: a write that was killed
    # last.ckpt is written right after the epoch checkpoint of the same step: prefer it on a tie
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"), default=None)


class EpochRandomSampler(torch.utils.data.Sampler[int]):
    """A random order drawn from ``seed`` and the epoch alone (Lightning calls ``set_epoch``), the way
    ``DistributedSampler`` draws it: a run resumed at epoch k shuffles epoch k as the first run did,
    whatever its loader drew before."""

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = int(length), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())


def epoch_shuffling(datamodule: L.LightningDataModule) -> None:
    """Give ``datamodule``'s shuffled training loader an :class:`EpochRandomSampler` with the seed of its
    generator. The shuffling generator of a loader advances from epoch to epoch and is restarted
    by a resume, so the resumed epochs would see other batches. Loaders with other samplers, and
    DDP (Lightning's ``DistributedSampler`` is already per epoch), are left as they are."""
    make = getattr(datamodule, "train_dataloader", None)
    if not callable(make):
        return

    def train_dataloader():
        from torch.utils.data import DataLoader, RandomSampler

        dl = make()
        if not isinstance(dl, DataLoader) or type(dl.sampler) is not RandomSampler or dl.generator is None:
            return dl
        if dl.sampler.replacement or dl.sampler._num_samples is not None:
            return dl
        seed = dl.generator.initial_seed()
        # the loader keeps a generator of its own for its worker seeds, so the global one is not drawn from
        return DataLoader(
            dl.dataset,
            batch_size=dl.batch_size,
            sampler=EpochRandomSampler(len(dl.dataset), seed),
            num_workers=dl.num_workers,
            collate_fn=dl.collate_fn,
            pin_memory=dl.pin_memory,
            drop_last=dl.drop_last,
            generator=torch.Generator().manual_seed(seed),
            worker_init_fn=dl.worker_init_fn,
            timeout=dl.timeout,
            persistent_workers=dl.persistent_workers if dl.num_workers else False,
        )

    datamodule.train_dataloader = train_dataloader


class FlushLogs(L.Callback):
    """Write the loggers' pending rows with every checkpoint: the CSV logger holds up to 100 steps in
    memory, which a kill would lose while the checkpoint after them survives."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()


def continue_csv_logs(loggers, epoch: int, step: int) -> None:
    """Before a resumed run logs: keep the CSV rows written up to the checkpoint it continues from
    (epoch ``epoch``, logged step ``step``) and drop the later ones, so no step appears twice.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it is created and rewrites the file
    with only the columns it has seen; so the rows are read first, written back after the writer
    exists, and the writer is told their columns.
    """
    import csv

    for logger in loggers:
        if type(logger).__name__ != "CSVLogger":
            continue
        path = Path(logger.log_dir) / "metrics.csv"  # log_dir does not create the writer
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)

        def before(row: dict) -> bool:
            s, e = row.get("step") or "", row.get("epoch") or ""
            return (not s or float(s) <= step) and (not e or float(e) <= epoch)

        writer = logger.experiment  # deletes metrics.csv
        write_csv(Path(writer.metrics_file_path), header, [[r.get(k, "") for k in header] for r in rows if before(r)])
        writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))


def logged_step(checkpoint: dict) -> int:
    """The step Lightning's loggers had reached at ``checkpoint``: batches that stepped the optimiser
    (a checkpoint's ``global_step`` counts optimiser steps, several per batch with manual optimisation)."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(loop.get("_batches_that_stepped", checkpoint.get("global_step", 0)))
