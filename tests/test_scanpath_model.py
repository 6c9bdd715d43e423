"""The learned scanpath model: next-fixation samples, training by teacher forcing, the benchmark sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path

from attnlab.data.fixations import Scanpath
from attnlab.utils.config import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_samples_carry_the_last_k_fixations_most_recent_first_and_drop_those_outside():
    from attnlab.data.scanpath_steps import next_fixation_samples

    path = Scanpath(np.array([10.0, 20, 500, 30, 40]), np.array([5.0, 6, 7, 8, 9]))  # x=500 is outside
    hist, mask, target, dropped = next_fixation_samples([path], (100, 200), history=2)
    assert dropped == 1 and len(target) == 4
    np.testing.assert_allclose(target[:, 0], [0.05, 0.1, 0.15, 0.2])
    np.testing.assert_array_equal(mask, [[False, False], [True, False], [True, True], [True, True]])
    np.testing.assert_allclose(hist[3], [[0.15, 0.08], [0.1, 0.06]])  # fixation 3 (x=30), then x=20


@pytest.fixture(scope="module")
def osie_steps():
    from attnlab.data.osie import OSIEDataModule
    from attnlab.data.scanpath_steps import ScanpathStepsDataModule

    fixations = OSIEDataModule(str(shared_path("data", "osie_subset")), drop_first=True, seed=100)
    dm = ScanpathStepsDataModule(fixations, history=2, image_size=(96, 128), batch_size=2)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def trained(osie_steps):
    """A model fitted for a few steps on 4 training images; (module, loss before, loss after)."""
    from attnlab.models.scanpath import ScanpathModule, ScanpathNet

    torch.manual_seed(0)
    module = ScanpathModule(ScanpathNet(history=2), lr=1e-2)
    module.net.prior.fit(osie_steps.train_split)
    batch = [osie_steps.splits["train"][k] for k in range(4)]
    optimiser = module.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = -torch.cat([module.item_log_likelihoods(item) for item in batch]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return module, losses[0], losses[-1]


def test_training_by_teacher_forcing_lowers_the_loss(trained):
    module, before, after = trained
    assert after < before - 0.05
    assert not any(p.requires_grad for p in module.net.backbone.parameters())  # the features stay frozen


@pytest.fixture(scope="module")
def checkpoint(trained, osie_steps, tmp_path_factory):
    from attnlab.utils.checkpoint import CONFIG_KEY

    module = trained[0]
    path = tmp_path_factory.mktemp("ckpt") / "scanpath.ckpt"
    config = {
        "model": {
            "_target_": "attnlab.models.scanpath.ScanpathModule",
            "lr": 1e-2,
            "net": {"_target_": "attnlab.models.scanpath.ScanpathNet", "history": 2},
        },
        "data": {
            "_target_": "attnlab.data.scanpath_steps.ScanpathStepsDataModule",
            "history": 2,
            "image_size": [96, 128],
        },
    }
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: config}, path)
    return path


def context(osie_steps, images=2, seed=0):
    from attnlab.benchmark import BenchmarkContext

    data = osie_steps.fixations.splits["test"].subset(range(images))
    return BenchmarkContext(data, osie_steps.train_split, 24.0, seed, data.scanpaths)


def test_sampling_is_deterministic_under_a_seed_and_conditions_on_its_own_history(checkpoint, osie_steps):
    from attnlab.models.scanpath.source import ScanpathModelSource

    source = ScanpathModelSource(str(checkpoint), context(osie_steps))
    ctx = context(osie_steps)
    first, again = source.scanpaths(ctx, 0), source.scanpaths(ctx, 0)
    humans = ctx.human_scanpaths[0]
    assert [len(p.x) for p in first] == [len(h.x) for h in humans]
    assert all(np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) for a, b in zip(first, again))
    other = source.scanpaths(context(osie_steps, seed=1), 0)
    assert not all(np.array_equal(a.x, b.x) for a, b in zip(first, other))
    h, w = ctx.data.stimuli[0].size
    assert all((p.x >= 0).all() and (p.x < w).all() and (p.y >= 0).all() and (p.y < h).all() for p in first)


def test_the_history_free_part_is_the_model_with_an_empty_history(checkpoint, osie_steps):
    from attnlab.models.scanpath.source import HistoryFreeScanpathSource, ScanpathModelSource

    ctx = context(osie_steps)
    full, free = ScanpathModelSource(str(checkpoint), ctx), HistoryFreeScanpathSource(str(checkpoint), ctx)
    assert full.conditional and not free.conditional
    empty = full.conditional_log_density(ctx, 0, np.array([]), np.array([]))
    np.testing.assert_allclose(empty, free.log_density(ctx, 0), rtol=1e-6)
    np.testing.assert_allclose(np.exp(empty).sum(), 1.0, rtol=1e-6)
    path = ctx.human_scanpaths[0][0]
    longer = full.conditional_log_density(ctx, 0, path.x[:5], path.y[:5])  # cut to the last 2
    np.testing.assert_allclose(longer, full.conditional_log_density(ctx, 0, path.x[3:5], path.y[3:5]), rtol=1e-6)


def test_the_benchmark_scores_both_rows(checkpoint, osie_steps, one_torch_thread):
    from attnlab.benchmark.scoring import score_chunk
    from attnlab.metrics.saliency import ShuffledNegatives
    from attnlab.models.scanpath.source import HistoryFreeScanpathSource, ScanpathModelSource

    ctx = context(osie_steps)
    negatives = ShuffledNegatives(
        [(f.x, f.y) for f in (ctx.data.fixations(i) for i in range(len(ctx.data)))], [s.size for s in ctx.data.stimuli]
    )
    full, free = ScanpathModelSource(str(checkpoint), ctx), HistoryFreeScanpathSource(str(checkpoint), ctx)
    full.name, free.name = "full", "free"
    rows = score_chunk([full, free], ctx, [0, 1], negatives)[0]
    for k in range(2):
        assert np.isfinite(rows["full"][k]["LL"]) and np.isfinite(rows["full"][k]["ScanMatch"])
        assert rows["full"][k]["NSS"] == rows["free"][k]["NSS"]  # same history-free density
        assert "ScanMatch" not in rows["free"][k]


def test_a_checkpoint_of_another_family_is_one_line(tmp_path):
    from attnlab.models.scanpath.source import ScanpathModelSource
    from attnlab.utils.checkpoint import CONFIG_KEY

    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, CONFIG_KEY: {"model": {"_target_": "attnlab.models.saliency.SaliencyModule"}}}, path)
    with pytest.raises(UserError, match="not a checkpoint of the scanpath model") as error:
        ScanpathModelSource(str(path), None)
    assert "\n" not in str(error.value)


def test_a_lower_temperature_draws_likelier_places(checkpoint, osie_steps):
    from attnlab.models.scanpath.source import ScanpathModelSource, ScanpathSamplingSettings

    with pytest.raises(UserError, match="temperature"):
        ScanpathSamplingSettings(temperature=0)
    ctx = context(osie_steps)
    free = ScanpathModelSource(str(checkpoint), ctx).log_density(ctx, 0)
    h, w = ctx.data.stimuli[0].size
    gh, gw = free.shape

    def mean_log_density(temperature):
        ctx.options["scanpath"] = ScanpathSamplingSettings(temperature=temperature)
        paths = ScanpathModelSource(str(checkpoint), ctx).scanpaths(ctx, 0)
        first = np.array([[p.x[0], p.y[0]] for p in paths])  # the first fixation has no history
        return free[(first[:, 1] / h * gh).astype(int), (first[:, 0] / w * gw).astype(int)].mean()

    assert mean_log_density(0.2) > mean_log_density(1.0)
