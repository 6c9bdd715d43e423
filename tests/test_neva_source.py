"""``attention=neva:<config or checkpoint>``: NeVA searched in the benchmark's process.

Cheap NeVA as in tests/test_neva_cli.py: 64×64 inputs, 3 fixations of 2 steps; two OSIE-subset images.
Amortised NeVA: a tiny ``model=neva_amortised`` checkpoint trained by the train command's code (in
this process), as tests/test_neva_amortised.py trains one.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from conftest import shared_path
from test_neva_amortised import make_images  # the tiny image folder the amortised train test uses

from attnlab.data.fixations import gaussian_density
from attnlab.data.images import ImageFolder
from attnlab.models.neva import ReconstructionTask, to_pixels
from attnlab.models.neva.source import NevaSource, NevaSourceSettings, build_neva, start_generator
from attnlab.sources import BenchmarkContext
from attnlab.utils.compose import compose_config
from attnlab.utils.config import ConfigError, UserError, validate

FAST = ["model.search.length=3", "model.search.steps=2", "model.image_size=[64,64]"]
QUOTED = "[" + ",".join(f'"{o}"' for o in FAST) + "]"


@pytest.fixture(scope="module")
def osie_root():
    return shared_path("data", "osie_subset")


@pytest.fixture(scope="module")
def data(osie_root):
    cfg = compose_config("benchmark", ["data=osie", f"data.root={osie_root}"])
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("test")
    return dm.splits["test"].subset(range(2)), dm.splits["train"], dm.sigma_px


def context(data, seed: int = 0, **settings) -> BenchmarkContext:
    images, train, sigma = data
    options = {"neva": NevaSourceSettings(**({"starts": 2, "batch_size": 2, "overrides": FAST} | settings))}
    return BenchmarkContext(images, train, sigma, seed, [], options)


@pytest.fixture(scope="module")
def searched(data, one_torch_thread):  # tiny searches: one thread (a loaded CPU stalls more)
    ctx = context(data)
    source = NevaSource("neva_classifier", ctx)
    paths = [source.scanpaths(ctx, i) for i in range(len(ctx.data))]
    return source, ctx, paths


def test_scanpaths_are_those_of_the_module_run_directly_on_each_image_and_start(searched):
    source, ctx, paths = searched
    module = source.module
    assert (module.search_config.length, module.search_config.steps, module.image_size) == (3, 2, (64, 64))
    for i, got in enumerate(paths):
        stimulus = ctx.data.stimuli[i]
        assert len(got) == 1 + 2 and all(p.stimulus == stimulus.id for p in got)
        image = ImageFolder([stimulus.path], module.image_size)[0]["image"][None]
        for k, path in enumerate(got):
            search = module.search_config if k == 0 else dataclasses.replace(module.search_config, start="random")
            with torch.enable_grad():
                alone, _ = module.scanpaths(image, generator=start_generator(ctx.seed, i, k), search=search)
            expected = to_pixels(alone.positions[0], stimulus.size).double().numpy()
            np.testing.assert_allclose(path.xy, expected, rtol=0, atol=1e-3)
            h, w = stimulus.size
            assert len(path) == 3 and path.duration is None
            assert ((path.x >= 0) & (path.x < w) & (path.y >= 0) & (path.y < h)).all()
        assert not np.allclose(got[1].xy, got[2].xy)  # the random starts are different searches


def test_the_map_is_the_density_of_every_starts_fixations_at_the_image_size(searched):
    source, ctx, paths = searched
    m = source.saliency_map(ctx, 1)
    x = np.concatenate([p.x for p in paths[1]])
    y = np.concatenate([p.y for p in paths[1]])
    assert m.shape == ctx.data.stimuli[1].size and len(x) == 9
    np.testing.assert_array_equal(m, gaussian_density(x, y, ctx.data.stimuli[1].size, ctx.sigma_px))
    assert np.isclose(m.sum(), 1.0)


def test_deterministic_under_the_seed_whatever_the_batch(searched, data):
    source, ctx, paths = searched
    again = copy.copy(source)  # the same NeVA model, searching afresh one image at a time
    again.settings = dataclasses.replace(source.settings, batch_size=1)
    again._paths, again.seconds = {}, []
    for i in reversed(range(len(ctx.data))):
        for got, want in zip(again.scanpaths(ctx, i), paths[i]):
            np.testing.assert_allclose(got.xy, want.xy, rtol=0, atol=1e-3)
    assert len(again.seconds) == 2 and min(again.seconds) > 0  # the time per image is kept (and logged)
    again._paths = {}
    moved = again.scanpaths(context(data, seed=1), 0)  # another benchmark seed: other random starts
    assert len(moved) == 3 and not np.allclose(moved[1].xy, paths[0][1].xy)


def test_scored_by_the_benchmark_with_settings_from_the_command_line(osie_root, tmp_path, one_torch_thread):
    from attnlab.benchmark import run_benchmark

    cfg = compose_config(
        "benchmark",
        [
            "data=osie",
            f"data.root={osie_root}",
            "attention=[centre_bias,neva:neva_classifier]",
            "max_images=2",
            "figure_images=0",
            "progress=false",
            "neva.starts=1",
            f"neva.overrides={QUOTED}",
            f"paths.output_dir={tmp_path}",
        ],
    )
    validate(cfg)
    result = run_benchmark(cfg)
    rows = result["per_image"]["neva:neva_classifier"]
    assert len(rows) == 2
    scores = result["metrics"]["neva:neva_classifier"]
    for metric in ("AUC_Judd", "NSS", "CC", "KLD", "SIM", "ScanMatch", "SED", "MM_position", "DTW"):
        assert np.isfinite(scores[metric]), metric
    assert 0 <= scores["AUC_Judd"] <= 1 and 0 <= scores["ScanMatch"] <= 1
    assert np.isnan(scores["MM_duration"])  # NeVA has no durations: not made up


@pytest.mark.parametrize(
    "argument, message",
    [
        ("neva_nothing", "no model config 'neva_nothing'; use one of: neva_classifier, neva_classifier_osie, "),
        ("saliency_dinet", r"model config saliency_dinet builds attnlab.models.saliency.* \(saliency family\), not "),
        ("missing/last.ckpt", "checkpoint not found"),
    ],
)
def test_bad_arguments_are_one_line(argument, message):
    with pytest.raises(UserError, match=message):
        build_neva(argument)


def test_a_checkpoint_of_another_family_names_it(tmp_path):
    path = tmp_path / "saliency.ckpt"
    torch.save({"attnlab_config": {"model": {"_target_": "attnlab.models.saliency.module.SaliencyModule"}}}, path)
    with pytest.raises(UserError, match=r"is a saliency checkpoint .*attention=saliency:"):
        build_neva(str(path))
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": {}}, bare)
    with pytest.raises(UserError, match="carries no stored model config"):
        build_neva(str(bare))


def test_an_autoencoder_checkpoint_is_the_reconstruction_task_model(tmp_path):
    from attnlab.models.neva import ConvAutoencoder

    net = ConvAutoencoder(channels=[4])
    model = {
        "_target_": "attnlab.models.neva.autoencoder.AutoencoderModule",
        "net": {"_target_": "attnlab.models.neva.ConvAutoencoder", "channels": [4]},
    }
    path = tmp_path / "last.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"attnlab_config": {"model": model}, "state_dict": state}, path)
    module, name = build_neva(str(path), 0, FAST)
    assert name == "neva_reconstruction" and isinstance(module.task, ReconstructionTask)
    assert torch.equal(module.task.model.encoder[0].weight, net.encoder[0].weight)
    with torch.enable_grad():
        path_, _ = module.scanpaths(torch.rand(1, 3, 80, 100))
    assert path_.positions.shape == (1, 3, 2)


def test_bad_settings_are_config_errors_naming_the_key(data):
    with pytest.raises(ConfigError, match="neva.starts"):
        validate(compose_config("benchmark", ["neva.starts=-1"]))
    with pytest.raises(ConfigError, match="device"):
        NevaSourceSettings(device="gpu0")
    with pytest.raises(UserError, match="neva.overrides"):
        build_neva("neva_classifier", 0, ["model.search.steps=="])


def test_the_model_config_composes_inside_a_running_hydra_job():
    """``python -m attnlab.benchmark attention=neva`` builds the source while the benchmark's Hydra runs."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from attnlab.utils.compose import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        running = GlobalHydra.instance().hydra
        module, name = build_neva(None, 0, FAST)
        assert name == "neva_classifier" and module.search_config.length == 3
        assert GlobalHydra.instance().hydra is running  # the job's Hydra is back


# --- amortised NeVA checkpoints ---------------------------------------------------------------

# the amortised train test's tiny run (tests/test_neva_amortised.py: 32×32, a 4×4 grid, 3 batches), with L=3
# (MultiMatch needs 3 fixations) and a large learning rate (so that 3 steps move α off the image centre)
AMORTISED_TRAIN = [
    "model=neva_amortised",
    "data=images",
    "data.image_size=[32,32]",
    "data.batch_size=4",
    "debug=tiny",
    "logger=csv",
    "model.image_size=[32,32]",
    "model.length=3",
    "model.net.grid=4",
    "model.net.input_size=null",
    "model.lr=0.05",
]


@pytest.fixture(scope="module")
def amortised_ckpt(tmp_path_factory, one_torch_thread) -> Path:
    """last.ckpt of ``python -m attnlab.train model=neva_amortised`` (its train function, in this process)."""
    from attnlab.train import train

    root = tmp_path_factory.mktemp("amortised")
    make_images(root / "imgs")
    overrides = [*AMORTISED_TRAIN, f"data.image_dir={root / 'imgs'}", f"paths.output_dir={root / 'run'}"]
    train(compose_config("train", overrides))
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def test_an_amortised_checkpoint_is_scored_by_the_benchmark(osie_benchmark, amortised_ckpt, caplog):
    with caplog.at_level(logging.INFO, logger="attnlab.models.neva.source"):
        result = osie_benchmark(f"attention=[centre_bias,'neva:{amortised_ckpt}']")
    name = "neva:last"  # the benchmark names a checkpoint by its stem
    assert "no start position" in caplog.text  # neva.starts (default 4) does not apply, and it says so
    assert len(result["per_image"][name]) == 2
    scores = result["metrics"][name]
    for metric in ("AUC_Judd", "NSS", "CC", "ScanMatch", "SED", "MM_position", "DTW"):
        assert np.isfinite(scores[metric]), metric
    assert np.isnan(scores["MM_duration"])  # no durations: not made up


@pytest.fixture(scope="module")
def amortised(data, amortised_ckpt):
    ctx = context(data, overrides=())
    source = NevaSource(str(amortised_ckpt), ctx)
    return source, ctx, [source.scanpaths(ctx, i) for i in range(len(ctx.data))]


def test_amortised_scanpaths_are_those_the_module_gives_on_each_image(amortised, amortised_ckpt):
    from attnlab.benchmark.scanpaths import scanpath_model
    from attnlab.models.neva.amortised import AmortisedNevaModule

    source, ctx, paths = amortised
    assert isinstance(source.module, AmortisedNevaModule) and source.config_name == "neva_amortised"
    assert not source.module.training and not source.module.task.training
    assert not any(p.requires_grad for p in source.module.parameters())  # α and the task model frozen
    # the module as `python -m attnlab.scanpaths ckpt_path=` loads it, run on one image at a time
    cfg = compose_config("scanpaths", ["model=neva_amortised", f"ckpt_path={amortised_ckpt}"])
    direct = scanpath_model(cfg).eval()
    trained = torch.load(amortised_ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(source.module.net.head.weight, trained["net.head.weight"])  # α's trained weights
    assert direct.length == 3 and direct.image_size == (32, 32)
    for i, got in enumerate(paths):
        stimulus = ctx.data.stimuli[i]
        assert len(got) == 1 and got[0].stimulus == stimulus.id  # no start position: one scanpath
        image = ImageFolder([stimulus.path], direct.image_size)[0]["image"][None]
        with torch.inference_mode():
            alone, _ = direct.scanpaths(image)
        expected = to_pixels(alone.positions[0], stimulus.size).double().numpy()
        np.testing.assert_allclose(got[0].xy, expected, rtol=0, atol=1e-3)
        h, w = stimulus.size
        path = got[0]
        assert len(path) == 3 and path.duration is None
        assert ((path.x >= 0) & (path.x < w) & (path.y >= 0) & (path.y < h)).all()
        assert np.ptp(path.xy, axis=0).max() > 1  # α moves: not L fixations of the centre
        m = source.saliency_map(ctx, i)
        np.testing.assert_array_equal(m, gaussian_density(path.x, path.y, stimulus.size, ctx.sigma_px))
    assert not np.allclose(paths[0][0].xy, paths[1][0].xy)  # α looks at what is in each image


def test_amortised_scanpaths_repeat_under_a_seed(amortised, data, amortised_ckpt):
    _, _, paths = amortised
    # the same seed and settings: the same bits; another seed, one image a batch: the same scanpaths (α has
    # no randomness, so the seed does not enter)
    for seed, batch_size in ((0, 2), (1, 1)):
        ctx = context(data, seed=seed, overrides=(), batch_size=batch_size)
        again = NevaSource(str(amortised_ckpt), ctx)  # built afresh from the file
        for i in range(len(ctx.data)):
            (got,) = again.scanpaths(ctx, i)
            if seed == 0:
                np.testing.assert_array_equal(got.xy, paths[i][0].xy)
            else:
                np.testing.assert_allclose(got.xy, paths[i][0].xy, rtol=0, atol=1e-3)


def test_wrong_checkpoints_for_neva_are_one_line_naming_the_file(tmp_path, amortised_ckpt):
    gating = tmp_path / "gating.ckpt"
    torch.save(
        {"attnlab_config": {"model": {"_target_": "attnlab.models.gating.GatingModule"}}, "state_dict": {}}, gating
    )
    with pytest.raises(UserError) as err:
        build_neva(str(gating))
    message = str(err.value)
    assert "\n" not in message and str(gating) in message and "is a gating checkpoint" in message
    assert (
        "model=neva_amortised" in message and "model=autoencoder" in message and f"attention=gating:{gating}" in message
    )
    with pytest.raises(UserError, match=r"stored config decides every setting") as err:
        build_neva(str(amortised_ckpt), 0, FAST)  # the checkpoint, not neva.overrides, decides
    assert "\n" not in str(err.value)
