"""MultiMNIST composites for object-based attention: n overlapping digits, one target per digit.

Digit k sits at column offset 14·k of a 28×(28+14(n−1)) canvas in a random left-to-right order.
The composite is clamp(Σ digits, 0, 1) with U[0, noise) added where it is 0. The target of digit k
is what perfect gating yields when it attends k: (1−s)·x + s·d_k.

Unlike the reference, every composite is a function of (seed, epoch, index): training composites
are re-drawn each epoch yet reproducible, and evaluation composites are generated once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from attnlab.data.base import SplitDataModule
from attnlab.data.digits import DigitSet, DigitSource, check_source, load_digits
from attnlab.utils.config import Fraction, NonNegativeFloat, NonNegativeInt, PositiveInt

log = logging.getLogger(__name__)

__all__ = ["canvas_width", "compose", "MultiMNIST", "MultiMNISTDataModule"]

DIGIT = 28
STRIDE = 14


def canvas_width(num_objects: int) -> int:
    """Width of the canvas holding ``num_objects`` digits that overlap by 14 columns."""
    return DIGIT + STRIDE * (int(num_objects) - 1)


# Configs derive the network's input width from the data instead of repeating it; registered here,
# next to the formula (config validation imports every target's module before resolving).
OmegaConf.register_new_resolver("multimnist_width", canvas_width, replace=True)


def compose(
    digits: torch.Tensor, positions: np.ndarray, noise_field: torch.Tensor, strength: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place digits on the canvas and build the per-object targets.

    Args:
        digits: n×28×28 digit images in [0, 1].
        positions: n slot indices (a permutation of 0..n−1), digit k goes to column 14·positions[k].
        noise_field: 28×W values added where the composite is 0.
        strength: gate strength s used to build the targets.

    Returns:
        x: 1×28×W composite; targets: n×1×28×W, in the order of ``digits``.
    """
    n = digits.shape[0]
    width = canvas_width(n)
    placed = digits.new_zeros(n, DIGIT, width)
    for k in range(n):
        c = STRIDE * int(positions[k])
        placed[k, :, c : c + DIGIT] = digits[k]
    x = placed.sum(0).clamp_(0, 1)
    x = torch.where(x <= 0, noise_field, x)
    targets = (1 - strength) * x.unsqueeze(0) + strength * placed
    return x.unsqueeze(0), targets.unsqueeze(1)


class MultiMNIST(Dataset):
    """Composites of ``num_objects`` digits drawn from ``digits``.

    Item ``i`` starts from digit ``i`` (mod the number of digits); the others are drawn uniformly
    with replacement. Items are ``(x 1×28×W, targets n×1×28×W, labels n)``.

    Args:
        digits: the split's source digits.
        num_objects: digits per composite (n ≥ 1).
        strength: gate strength s for the targets.
        noise: upper bound of the background noise.
        length: number of composites (default: one per source digit).
        seed: base seed; with ``fixed=True`` the composites are generated once here.
        fixed: pre-generate (evaluation) instead of drawing per epoch (training).
    """

    def __init__(
        self,
        digits: DigitSet,
        num_objects: int = 2,
        strength: float = 0.2,
        noise: float = 0.3,
        length: int | None = None,
        seed: int = 0,
        fixed: bool = False,
    ) -> None:
        if len(digits) == 0:
            raise ValueError("MultiMNIST needs at least one source digit")
        self.digits = digits
        self.num_objects = int(num_objects)
        self.strength = float(strength)
        self.noise = float(noise)
        self.length = int(length) if length else len(digits)
        self.seed = int(seed)
        self.epoch = 0
        self._cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        if fixed:
            self._cache = [self._make(i) for i in range(self.length)]

    def set_epoch(self, epoch: int) -> None:
        """Draw a new, reproducible set of training composites."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _make(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        n = self.num_objects
        others = rng.integers(0, len(self.digits), size=n - 1)
        idx = np.concatenate([[index % len(self.digits)], others])
        positions = rng.permutation(n)
        noise_field = torch.from_numpy(rng.uniform(0, self.noise, size=(DIGIT, canvas_width(n))).astype(np.float32))
        x, targets = compose(self.digits.images[idx], positions, noise_field, self.strength)
        order = np.argsort(positions)  # targets listed left to right
        return x, targets[order], self.digits.labels[idx][order]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._cache is not None:
            return self._cache[index]
        return self._make(index)


class MultiMNISTDataModule(SplitDataModule):
    """Train/val/test MultiMNIST with disjoint source digits.

    Args:
        data_dir: where full MNIST lives (``MNIST/raw``) or is downloaded to.
        download: download full MNIST into ``data_dir`` (the only code path that goes online).
        source: ``auto`` (full MNIST when present, else the embedded 5k digits), ``torchvision``, ``embedded``.
        num_objects, strength, noise: composite parameters (paper: 2, 0.2, 0.3).
        split: fractions of the source digits for train/val/test (embedded digits).
        train_size, val_size, test_size: composites per split (train: per epoch; null = one per digit).
        seed: seeds the digit split and every composite.
        batch_size, num_workers: loader settings.
    """

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = False,
        source: DigitSource = "auto",
        num_objects: PositiveInt = 2,
        strength: Fraction = 0.2,
        noise: Fraction = 0.3,
        split: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (0.7, 0.1, 0.2),
        train_size: Optional[PositiveInt] = None,
        val_size: PositiveInt = 1000,
        test_size: PositiveInt = 2000,
        seed: int = 100,
        batch_size: PositiveInt = 32,  # the paper's 64 is in experiment=gating_mnist_paper
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        check_source(self.data_dir, download, source)  # fail before any training starts
        self.datasets: dict[str, MultiMNIST] = {}
        self.source = ""

    @property
    def image_size(self) -> tuple[int, int]:
        return DIGIT, canvas_width(self.hparams.num_objects)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        train, val, test = load_digits(self.data_dir, hp.download, tuple(hp.split), hp.seed, hp.source)
        self.source = train.source
        common = dict(num_objects=hp.num_objects, strength=hp.strength, noise=hp.noise)
        self.datasets = {
            "train": MultiMNIST(train, length=hp.train_size, seed=hp.seed, **common),
            "val": MultiMNIST(val, length=hp.val_size, seed=hp.seed + 1, fixed=True, **common),
            "test": MultiMNIST(test, length=hp.test_size, seed=hp.seed + 2, fixed=True, **common),
        }

    def split_dataset(self, split: str) -> Dataset:
        return self.datasets["test" if split == "predict" else split]
