"""The gating analyses: inhibition, tuning curves and training curves, and the analyze entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ONE_THREAD, shared_path
from scipy import stats

from attnlab.analysis.inhibition import InhibitionAnalysis, gate_means, summarize_inhibition
from attnlab.analysis.training_curves import TrainingCurveAnalysis, find_runs, smooth
from attnlab.analysis.tuning_curves import (
    TuningCurveAnalysis,
    gaussian_bar,
    place_bar,
    rotate,
    tuning_statistics,
    unit_statistics,
)
from attnlab.utils.config import UserError

PAPER_MNIST = ("data", "gating_paper_checkpoints", "paper_mnist_model.pt")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def paper_module():
    from attnlab.models.gating import GatingModule
    from attnlab.models.gating.paper import load_paper_checkpoint

    net = load_paper_checkpoint(shared_path(*PAPER_MNIST), "mnist")
    return GatingModule(net, torch.optim.Adam, glimpses=2).eval()


@pytest.fixture(scope="module")
def mnist_data():
    from attnlab.data.multimnist import MultiMNISTDataModule

    dm = MultiMNISTDataModule(val_size=1, test_size=48, batch_size=48, seed=100)
    dm.setup("fit")
    return dm


# --- inhibition ----------------------------------------------------------------------------------


def test_inhibition_summary_statistics():
    rng = np.random.default_rng(0)
    attended = rng.normal(0.1, 0.03, size=(2, 50))
    not_attended = rng.normal(0.9, 0.01, size=(2, 50))
    attended[1, 3] = np.nan  # an image whose attended region is empty in one glimpse
    s = summarize_inhibition(attended, not_attended)
    a_img, n_img = np.nanmean(attended, 0), np.nanmean(not_attended, 0)
    assert s["attended"]["mean"] == pytest.approx(a_img.mean())
    assert s["not_attended"]["sd"] == pytest.approx(n_img.std(ddof=1))
    ref = stats.ttest_rel(n_img, a_img)
    assert s["paired_t_test"]["t"] == pytest.approx(ref.statistic) and s["paired_t_test"]["df"] == 49
    assert s["per_glimpse"][1]["attended"]["n"] == 49
    assert summarize_inhibition(attended[:, :1], not_attended[:, :1])["paired_t_test"] is None  # no crash


def test_paper_model_inhibits_off_the_attended_object(paper_module, mnist_data, tmp_path):
    """The reference's finding (attended 0.113 vs not attended 0.907) holds on seeded composites."""
    results = InhibitionAnalysis().run(paper_module, mnist_data, tmp_path)
    values = np.load(tmp_path / "inhibition_values.npz")
    attended, not_attended = values["attended"], values["not_attended"]
    assert attended.shape == (2, 48)
    assert np.nanmean(attended) < 0.3 and np.nanmean(not_attended) > 0.8
    assert (np.nanmean(attended, 0) < np.nanmean(not_attended, 0)).all()
    assert results["attended"]["mean"] == pytest.approx(np.nanmean(attended, 0).mean())
    assert results["attended"]["n"] == 48 and results["paired_t_test"]["p"] < 1e-6
    assert (tmp_path / "inhibition.png").stat().st_size > 1000
    a20, _ = gate_means(paper_module.net, mnist_data.test_dataloader(), 2, max_images=20, progress=False)
    np.testing.assert_allclose(a20, attended[:, :20])  # seeded composites: the same values again


# --- tuning curves -------------------------------------------------------------------------------


def test_bar_stimuli_follow_the_spec():
    bar = gaussian_bar(1.0)
    assert bar.shape == (28, 20) and bar.max() == pytest.approx(1.0, abs=0.01)
    assert np.allclose(bar, bar[:, :1])  # horizontal: the same profile in every column
    assert np.argmax(bar[:, 0]) in (13, 14) and gaussian_bar(2.0)[:, 0].sum() > bar[:, 0].sum()
    # x = -15 puts the bar in columns 0..15, x = -10 in columns 1..20 (c = int(-x + 10 - 21))
    for x, cols in ((-15, (0, 15)), (-10, (1, 20))):
        placed = place_bar(bar, 42, x, 0)
        on = np.flatnonzero(placed.max(0) > 0)
        assert (on.min(), on.max()) == cols
    shifted = place_bar(bar, 42, -10, 4)  # y shifts rows: out[Y] = bar[Y + y]
    np.testing.assert_array_equal(shifted[:24, 1:21], bar[4:, :])
    vertical = rotate(gaussian_bar(0.5, 28, 28), 90)
    assert vertical.max(0).argmax() in (13, 14) and (vertical.max(1) > 0.5).sum() >= 27


def test_tuning_statistics_quantify_invariance_and_gain():
    o = np.linspace(0, np.pi, 21)[:, None]
    unattended = 1 + np.cos(2 * (o - np.array([[0.0, 0.5, 1.0, 1.5]])))  # 4 tuned units
    attended = unattended * np.array([[1.5, 2.0, 1.0, 0.5]])  # pure gain: same shape
    s = unit_statistics(attended, unattended)
    np.testing.assert_allclose(s["r"], 1.0, atol=1e-9)
    np.testing.assert_allclose(s["gain"], [1.5, 2.0, 1.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(s["shape_diff"], 0.0, atol=1e-9)
    shifted = 1 + np.cos(2 * (o - 1.2))  # different preferred orientation
    s2 = unit_statistics(np.hstack([shifted, np.full_like(o, 3.0)]), np.hstack([unattended[:, :1], unattended[:, :1]]))
    assert s2["r"][0] < 0 and s2["valid"].tolist() == [True, False]  # flat curve: not tuned
    summary = tuning_statistics(attended, unattended)
    assert summary["units_analysed"] == 4 and summary["scaling"]["fraction_gain_above_1"] == 0.5
    assert summary["invariant_tuning"]["r"]["median"] == pytest.approx(1.0)


def test_tuning_curve_analysis_on_the_paper_model(paper_module, mnist_data, tmp_path):
    analysis = TuningCurveAnalysis(
        orientations=(0, 180, 4), sigmas=(1.0, 1.0, 1), xs=(-15, -10, 2), ys=(-4, 4, 3), units=((12, 8),)
    )
    results = analysis.run(paper_module, mnist_data, tmp_path)
    assert results["stimuli_per_orientation"] == 6
    assert results["layers"]["conv1"]["all_units"]["units"] == 20 * 25 * 39
    assert results["layers"]["conv2"]["all_units"]["units"] == 50 * 9 * 16
    assert (
        results["layers"]["conv1"]["plotted_unit"]["units"] == 20 and "plotted_unit" not in results["layers"]["conv2"]
    )
    assert len(list((tmp_path / "tuning_curves" / "conv1").glob("*.png"))) == 20
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed after saving
    arrays = np.load(tmp_path / "tuning_curves.npz")
    assert arrays["conv1_attended"].shape == (4, 20, 25, 39)
    # the recorded maxima are real responses: non-negative (after ReLU) and not all zero
    assert arrays["conv1_attended"].min() >= 0 and arrays["conv2_unattended"].max() > 0
    with pytest.raises(UserError, match="outside"):
        TuningCurveAnalysis(
            orientations=(0, 90, 2),
            sigmas=(1, 1, 1),
            xs=(-15, -15, 1),
            ys=(0, 0, 1),
            units=((30, 8),),
            unit_plots=False,
        ).run(paper_module, mnist_data, tmp_path)


# --- training curves ----------------------------------------------------------------------------


def fake_sweep(root, finals):
    """Run folders as a Hydra multirun leaves them: .hydra/overrides.yaml and a CSVLogger log."""
    from lightning.pytorch.loggers import CSVLogger

    for num, (overrides, final) in enumerate(finals):
        run = root / str(num)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        logger = CSVLogger(str(run), name="csv", version="")
        for step in range(0, 40, 2):
            logger.log_metrics({"train/acc_step": final * step / 38, "train/loss_g1_step": 1.0}, step=step)
        for step in (19, 39):
            logger.log_metrics({"val/acc": final * (step + 1) / 40}, step=step)
        logger.save()


def test_training_curves_group_runs_by_setting(tmp_path):
    sweep = tmp_path / "multirun"
    fake_sweep(
        sweep,
        [
            (["model.recon_weight=0", "seed=1"], 0.6),
            (["model.recon_weight=0", "seed=2"], 0.7),
            (["model.recon_weight=1000", "seed=1"], 0.9),
        ],
    )
    runs = find_runs(sweep)
    assert [r.group for r in runs] == ["model.recon_weight=0"] * 2 + ["model.recon_weight=1000"]
    results = TrainingCurveAnalysis(runs=str(sweep), smoothing=1).run(tmp_path / "out")
    g0, g1 = results["groups"]["model.recon_weight=0"], results["groups"]["model.recon_weight=1000"]
    assert g0["runs"] == 2 and g0["final_val_mean"] == pytest.approx(0.65) and g0["final_val_sd"] > 0
    assert g1["final_val_mean"] == pytest.approx(0.9) and g1["final_train_mean"] == pytest.approx(0.9)
    for fig in results["figures"]:
        assert (tmp_path / "out").joinpath(fig.split("/")[-1]).stat().st_size > 1000
    with pytest.raises(UserError, match="no logged runs"):
        TrainingCurveAnalysis(runs=str(tmp_path / "out")).run(tmp_path / "out2")


def test_smoothing_is_a_running_mean():
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


# --- entry point ---------------------------------------------------------------------------------


def test_analyze_needs_a_checkpoint_for_model_analyses():
    from hydra import compose, initialize_config_dir

    from attnlab.analyze import analyze
    from attnlab.utils.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("analyze", overrides=["analysis=tuning_curves", "paths.output_dir=unused"])
    with pytest.raises(UserError, match="needs ckpt_path"):
        analyze(cfg)


def test_analyze_cli_writes_figure_and_numbers(run_cli, tmp_path):
    ckpt = shared_path(*PAPER_MNIST)
    proc = run_cli(
        "attnlab.analyze",
        "analysis=inhibition",
        f"ckpt_path={ckpt}",
        "data.test_size=32",
        "data.val_size=1",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = next((tmp_path / "outputs" / "analyze").rglob("inhibition.json"))
    numbers = json.loads(out.read_text())
    assert numbers["attended"]["mean"] < numbers["not_attended"]["mean"] and numbers["images"] == 32
    assert (out.parent / "inhibition.png").is_file() and "not attended" in proc.stdout
