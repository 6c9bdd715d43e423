"""CAM attention sources (``attention=cam:<method>[+prior]``) against grad-cam itself, on OSIE images.

The oracle is grad-cam's own class called directly on one image (the source batches images and
backpropagates only from the output to the target layer); a tiny random timm CNN keeps the slow
methods fast, and the default EfficientNet-Lite0 is checked once.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import shared_path

from attnlab.utils.config import ConfigError, UserError

METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
}
TINY = "test_resnet"  # timm's test network: a ResNet of 470k parameters
SIZE = (96, 128)  # layer4 of the tiny net: 3×4


@pytest.fixture(scope="module")
def osie():
    from attnlab.data.osie import load_osie

    return load_osie(shared_path("data", "osie_subset"))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cam") / "tiny.pth"
    torch.save(timm.create_model(TINY).state_dict(), path)
    return path


def context(osie, images: int = 2, **settings):
    from attnlab.models.cam import CamSettings
    from attnlab.sources import BenchmarkContext

    data = osie.subset(range(images))
    return BenchmarkContext(data, osie, 24.0, 0, [], {"cam": CamSettings(**settings)} if settings else {})


def tiny(osie, weights, images: int = 2, **settings):
    return context(osie, images, model=TINY, weights=str(weights), input_size=SIZE, batch_size=2, **settings)


def grad_cam(method: str, net, layer, image: np.ndarray, size, mean, std) -> np.ndarray:
    """grad-cam's map of the top-1 class of one image, resized and normalised as given."""
    import pytorch_grad_cam
    from PIL import Image

    x = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BILINEAR), dtype=np.float32) / 255.0
    x = (torch.from_numpy(x).permute(2, 0, 1)[None] - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    with getattr(pytorch_grad_cam, METHODS[method])(model=net, target_layers=[layer]) as cam:
        return cam(input_tensor=x.float(), targets=None)[0]


def tiny_net(weights):
    import timm

    net = timm.create_model(TINY)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_is_grad_cams_own_map(osie, tiny_weights, method, one_torch_thread):
    from attnlab.models.cam.source import CamSource

    ctx = tiny(osie, tiny_weights)
    source = CamSource(method, ctx)
    assert source.layer_name == "layer4"  # the default: the last block before the global pooling
    net = tiny_net(tiny_weights)
    cfg = net.pretrained_cfg
    for i in range(2):  # both images from one batch of 2
        got = source.saliency_map(ctx, i)
        want = grad_cam(method, net, net.layer4, ctx.data.load_image(i), SIZE, cfg["mean"], cfg["std"])
        assert got.shape == SIZE and want.max() > 0.5  # a real map, not the uniform fallback
        np.testing.assert_allclose(got, want, atol=2e-4)


def test_default_is_efficientnet_lite0_at_its_last_conv_block(osie, one_torch_thread):
    from attnlab.models.cam.source import CamSource
    from attnlab.models.pretrained import EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, efficientnet_lite0

    ctx = context(osie, images=1)
    source = CamSource("gradcam", ctx)
    assert source.layer_name == "bn2" and source.settings.input_size == (224, 224)
    net = efficientnet_lite0().eval()
    want = grad_cam(
        "gradcam", net, net.bn2, ctx.data.load_image(0), (224, 224), EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD
    )
    np.testing.assert_allclose(source.saliency_map(ctx, 0), want, atol=2e-4)
    assert all(p.requires_grad for p in source.classifier.net.parameters())  # unfrozen again


def test_prior_is_the_cam_times_the_fitted_centre_bias(osie, tiny_weights, one_torch_thread):
    from attnlab.baselines import CentreBias
    from attnlab.models.cam.source import CamSource

    ctx = tiny(osie, tiny_weights, floor=0.01)
    plain, prior = CamSource("gradcam", ctx), CamSource("gradcam+prior", ctx)
    calls = []
    predict = plain.predict
    plain.predict = prior.predict = lambda x: calls.append(len(x)) or predict(x)
    centre = CentreBias.fit(osie)
    for i in range(2):
        size = ctx.data.stimuli[i].size
        cam = F.interpolate(torch.from_numpy(plain.saliency_map(ctx, i)).double()[None, None], size, mode="bilinear")
        want = (cam[0, 0].numpy() + 0.01) * centre.map(size)
        got = prior.saliency_map(ctx, i)
        assert got.shape == size and np.isfinite(got).all()
        np.testing.assert_allclose(got, want / want.sum(), rtol=1e-6, atol=1e-12)
        assert not np.allclose(got, centre.map(size))  # the CAM matters
    assert calls == [2]  # one CAM computation (a batch of both images) for both sources


def test_a_constant_cam_is_named_and_scored_as_uniform(osie, tmp_path, caplog, one_torch_thread):
    import timm

    from attnlab.baselines import CentreBias
    from attnlab.models.cam.source import CamSource

    zero = tmp_path / "zero.pth"
    torch.save({k: torch.zeros_like(v) for k, v in timm.create_model(TINY).state_dict().items()}, zero)
    ctx = tiny(osie, zero, images=1)
    with caplog.at_level(logging.WARNING):
        plain = CamSource("gradcam", ctx).saliency_map(ctx, 0)
    assert f"stimulus {ctx.data.stimuli[0].id!r} is constant" in caplog.text
    np.testing.assert_allclose(plain, np.full(SIZE, 1 / plain.size))
    prior = CamSource("gradcam+prior", ctx).saliency_map(ctx, 0)
    np.testing.assert_allclose(prior, CentreBias.fit(osie).map(ctx.data.stimuli[0].size), rtol=1e-9)


def test_bad_inputs_are_one_line_user_errors(osie, tiny_weights, tmp_path):
    from attnlab.models.cam import CamSettings
    from attnlab.models.cam.source import CamSource

    methods = "gradcam, gradcam\\+\\+, eigencam, layercam, scorecam, ablationcam"
    missing = tmp_path / "missing.pth"
    cases = [
        (lambda: CamSource(None, context(osie, 1)), f"attention=cam needs a method: .*{methods}"),
        (lambda: CamSource("gradcan", context(osie, 1)), f"unknown CAM method 'gradcan'; use one of: {methods}"),
        (lambda: CamSource("gradcam+priors", context(osie, 1)), "unknown CAM method 'gradcam\\+priors'"),
        (
            lambda: CamSource("gradcam", tiny(osie, tiny_weights, layer="layer9")),
            r"cam.layer='layer9' is no layer of test_resnet; layers: conv1, .*layer3, layer3.0, layer4",
        ),
        (lambda: CamSource("gradcam", tiny(osie, tiny_weights, layer="fc")), "cam.layer='fc' has no B×C×h×w output"),
        (lambda: CamSource("gradcam", tiny(osie, missing)), f"cam.weights='{missing}': no such file"),
        (
            lambda: CamSource("gradcam", context(osie, 1, model="resnet18")),
            "cam.model='resnet18' needs a local weights file",
        ),
        (
            lambda: CamSource("gradcam", context(osie, 1, model="no_such_net", weights=str(tiny_weights))),
            "cam.model='no_such_net' is no torchvision or timm classifier",
        ),
        (
            lambda: CamSource("gradcam", context(osie, 1, model="resnet18", weights=str(tiny_weights))),
            "does not fit cam.model='resnet18'",
        ),
        (lambda: CamSource("gradcam", tiny(osie, tiny_weights, device="gpu0")), "cam.device='gpu0' is no torch device"),
        (lambda: CamSettings(batch_size=0), "CamSettings.batch_size=0 is not allowed"),
    ]
    if not torch.cuda.is_available():
        cases.append((lambda: CamSource("gradcam", tiny(osie, tiny_weights, device="cuda")), "no CUDA device here"))
    for build, message in cases:
        with pytest.raises(UserError, match=message) as info:
            build()
        assert "\n" not in str(info.value), str(info.value)


def compose(tmp_path, *overrides: str):
    from attnlab.utils.compose import compose_config

    root = str(shared_path("data", "osie_subset"))
    os.environ.setdefault("ATTNLAB_OSIE_ROOT", root)
    common = ["data=osie", f"data.root={root}", "progress=false", f"paths.output_dir={tmp_path}"]
    return compose_config("benchmark", [*common, *overrides])


def test_settings_come_from_the_command_line(tmp_path):
    from attnlab.benchmark.run import source_options
    from attnlab.models.cam import CamSettings
    from attnlab.utils.config import validate

    cfg = compose(tmp_path, "cam.layer=blocks.6", "cam.input_size=[120,160]", "cam.device=cpu")
    validate(cfg)
    options = source_options(cfg)["cam"]
    assert isinstance(options, CamSettings)
    assert (options.layer, options.input_size, options.batch_size) == ("blocks.6", (120, 160), 8)
    with pytest.raises(ConfigError, match="cam.batch_size=0"):
        validate(compose(tmp_path, "cam.batch_size=0"))
    with pytest.raises(ConfigError, match="cam.lyer"):
        compose(tmp_path, "cam.lyer=bn2")


def test_benchmark_scores_cam_and_cam_with_prior_end_to_end(tmp_path, one_torch_thread):
    from attnlab.benchmark import run_benchmark

    cfg = compose(
        tmp_path,
        "attention=[cam:gradcam,cam:gradcam+prior]",
        "max_images=2",
        "figure_images=1",
        "cam.batch_size=2",
        "cam.input_size=[120,160]",
    )
    result = run_benchmark(cfg)
    table = result["metrics"]
    assert set(table) >= {"cam:gradcam", "cam:gradcam+prior"}
    for name in ("cam:gradcam", "cam:gradcam+prior"):
        values = [table[name][m] for m in ("AUC_Judd", "NSS", "CC", "KLD", "SIM")]
        assert np.isfinite(values).all(), (name, values)
    assert table["cam:gradcam+prior"]["NSS"] != table["cam:gradcam"]["NSS"]
    written = json.loads((tmp_path / "benchmark.json").read_text())["metrics"]
    for name in ("cam:gradcam", "cam:gradcam+prior"):
        assert np.isfinite([written[name][m] for m in ("AUC_Judd", "NSS", "CC", "KLD", "SIM")]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
def test_cuda_maps_equal_the_cpu_maps(osie, tiny_weights, method):
    from attnlab.models.cam.source import CamSource

    cpu, gpu = tiny(osie, tiny_weights), tiny(osie, tiny_weights, device="cuda")
    a, b = CamSource(method, cpu), CamSource(method, gpu)
    assert next(b.classifier.net.parameters()).is_cuda
    for i in range(2):
        np.testing.assert_allclose(b.saliency_map(gpu, i), a.saliency_map(cpu, i), atol=1e-3)


def test_cams_predicted_in_the_parent_score_as_in_one_process(tmp_path, monkeypatch, one_torch_thread):
    """With a model source the benchmark still scores in forked workers: the parent computes each
    chunk's CAMs (the next chunk while the workers score) and the workers score them; same values."""
    import attnlab.benchmark.run as run

    settings = ["attention=[centre_bias,cam:gradcam+prior]", "max_images=6", "figure_images=0"]
    settings += ["cam.batch_size=2", "cam.input_size=[120,160]"]
    processes = []
    score_images = run.score_images
    monkeypatch.setattr(run, "score_images", lambda *a: processes.append(a[-1]) or score_images(*a))
    monkeypatch.setattr(run, "workers", lambda sources, images: 2)
    forked = run.run_benchmark(compose(tmp_path / "forked", *settings), reports=False)
    monkeypatch.setattr(run, "workers", lambda sources, images: 1)
    single = run.run_benchmark(compose(tmp_path / "single", *settings), reports=False)
    assert processes == [2, 1]
    rows = lambda result: result["per_image"]["cam:gradcam+prior"]  # noqa: E731
    assert [r["stimulus"] for r in rows(forked)] == [r["stimulus"] for r in rows(single)] and len(rows(single)) == 6
    for a, b in zip(rows(forked), rows(single)):  # the same bits: the CAMs are computed on one thread in both
        assert a.keys() == b.keys()
        for metric, value in a.items():
            assert value == b[metric] or (value != value and b[metric] != b[metric]), (metric, value, b[metric])


def test_a_model_source_no_longer_keeps_the_benchmark_in_one_process(osie, tiny_weights):
    from attnlab.benchmark.run import workers
    from attnlab.models.cam.source import CamSource

    cam = CamSource("gradcam", tiny(osie, tiny_weights))
    assert not cam.parallel_safe and workers([cam], 32) == min(32, len(os.sched_getaffinity(0)))
