"""MultiMNIST stimuli: canvas, targets, noise, deterministic composites, disjoint digit splits."""

import numpy as np
import pytest
import torch

from attnlab.data.digits import DigitSet, load_embedded_digits, split_digits
from attnlab.data.multimnist import MultiMNIST, MultiMNISTDataModule, canvas_width, compose


def test_canvas_width_grows_by_14_per_digit():
    assert [canvas_width(n) for n in (1, 2, 3)] == [28, 42, 56]


def test_targets_are_what_perfect_gating_yields():
    torch.manual_seed(0)
    digits = (torch.rand(2, 28, 28) > 0.7).float()
    noise = torch.full((28, 42), 0.25)
    x, targets = compose(digits, np.array([1, 0]), noise, strength=0.2)
    assert x.shape == (1, 28, 42) and targets.shape == (2, 1, 28, 42)
    placed0 = torch.zeros(28, 42)
    placed0[:, 14:42] = digits[0]  # digit 0 went to slot 1
    placed1 = torch.zeros(28, 42)
    placed1[:, 0:28] = digits[1]
    clean = (placed0 + placed1).clamp(0, 1)
    expected_x = torch.where(clean <= 0, noise, clean)
    assert torch.allclose(x[0], expected_x)
    assert torch.allclose(targets[0, 0], 0.8 * expected_x + 0.2 * placed0)
    assert torch.allclose(targets[1, 0], 0.8 * expected_x + 0.2 * placed1)
    # noise only where no digit ink
    ink = clean > 0
    assert torch.all(x[0][~ink] == 0.25) and torch.all(x[0][ink] == clean[ink])


def small_digits(n=50) -> DigitSet:
    g = torch.Generator().manual_seed(1)
    return DigitSet(torch.rand(n, 28, 28, generator=g), torch.arange(n) % 10, "test")


def test_composites_are_reproducible_and_redrawn_per_epoch():
    ds1, ds2 = MultiMNIST(small_digits(), seed=3), MultiMNIST(small_digits(), seed=3)
    a, b = ds1[7], ds2[7]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    ds2.set_epoch(1)
    assert not torch.equal(ds2[7][0], a[0])
    other_seed = MultiMNIST(small_digits(), seed=4)
    assert not torch.equal(other_seed[7][0], a[0])


def test_fixed_evaluation_set_is_generated_once():
    ds = MultiMNIST(small_digits(), seed=5, length=10, fixed=True)
    first = ds[3][0].clone()
    ds.set_epoch(9)
    assert torch.equal(ds[3][0], first)
    assert len(ds) == 10


def test_items_have_targets_and_labels_per_object():
    ds = MultiMNIST(small_digits(), num_objects=3, strength=0.3, noise=0.1, seed=0)
    x, targets, labels = ds[0]
    assert x.shape == (1, 28, 56) and targets.shape == (3, 1, 28, 56) and labels.shape == (3,)
    assert labels[0] in labels  # the item's own digit is among the objects
    # every target differs from x only by the strength-scaled object difference
    assert torch.all(targets <= x.unsqueeze(0) + 1e-6 + 0.3)


def test_embedded_digits_are_real_mnist():
    digits = load_embedded_digits()
    assert digits.images.shape == (5000, 28, 28)
    assert digits.images.min() >= 0 and digits.images.max() <= 1
    assert set(digits.labels.tolist()) == set(range(10))
    assert digits.images.mean() == pytest.approx(0.13, abs=0.02)  # MNIST's mean intensity


def test_splits_share_no_source_digit():
    digits = small_digits(100)
    digits.images[:, 0, 0] = torch.arange(100).float()  # tag every digit
    train, val, test = split_digits(digits, (0.7, 0.1, 0.2), seed=0)
    tags = [set(s.images[:, 0, 0].tolist()) for s in (train, val, test)]
    assert [len(t) for t in tags] == [70, 10, 20]
    assert not (tags[0] & tags[1]) and not (tags[0] & tags[2]) and not (tags[1] & tags[2])


def test_datamodule_uses_embedded_digits_offline(tmp_path):
    dm = MultiMNISTDataModule(data_dir=str(tmp_path), val_size=8, test_size=8, batch_size=4)
    dm.setup()
    assert "embedded" in dm.source
    x, targets, labels = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 1, 28, 42) and targets.shape == (4, 2, 1, 28, 42)
    assert dm.image_size == (28, 42)
