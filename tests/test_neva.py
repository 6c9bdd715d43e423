"""NeVA core: blur, foveation window and memory, the sign-gradient search, pixel coordinates, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from attnlab.models.neva import (
    Foveation,
    GaussianBlur,
    NevaModule,
    SearchConfig,
    SearchResult,
    from_pixels,
    gaussian_kernel1d,
    pixel_centres,
    position_bounds,
    search_scanpath,
    to_pixels,
)
from attnlab.models.neva.tasks import ClassifierTask
from attnlab.utils.config import UserError


class RecordingFoveation(Foveation):
    """Foveation that remembers every candidate fixation the search evaluates."""

    def __init__(self, sigma: float) -> None:
        super().__init__(sigma)
        self.seen: list[torch.Tensor] = []

    def forward(self, image, residual, memory, p):
        self.seen.append(p.detach().clone())
        return super().forward(image, residual, memory, p)


def quadrant_loss(image: torch.Tensor, rows: slice, cols: slice):
    """A task whose loss only sees one region: squared error to the clean image there."""

    def loss(perceived: torch.Tensor) -> torch.Tensor:
        return (perceived[..., rows, cols] - image[..., rows, cols]).pow(2).flatten(1).sum(1)

    return loss


# --- blur -------------------------------------------------------------------------------------


def test_blur_matches_scipy_with_mirror_borders():
    k = gaussian_kernel1d(5, 2.0).double()
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(k, k.flip(0))
    x = torch.rand(2, 3, 13, 17, generator=torch.Generator().manual_seed(0))
    out = GaussianBlur(5, 2.0)(x)
    kernel2d = np.outer(k.numpy(), k.numpy())
    for b in range(2):
        for c in range(3):
            ref = ndimage.correlate(x[b, c].double().numpy(), kernel2d, mode="mirror")
            np.testing.assert_allclose(out[b, c].numpy(), ref, atol=1e-5)
    blur = GaussianBlur(5, 2.0)
    assert torch.allclose(x + blur.residual(x), blur(x), atol=1e-6)


def test_blur_of_an_image_smaller_than_the_kernel_radius_keeps_its_shape():
    x = torch.rand(1, 3, 4, 6)
    y = GaussianBlur(41, 10.0)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_blur_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(4, 1.0)


# --- foveation window and memory --------------------------------------------------------------


@pytest.mark.parametrize("height,width", [(30, 50), (48, 20)])
def test_window_peaks_at_one_on_the_fixated_pixel_of_non_square_images(height, width):
    fov = Foveation(sigma=0.15)
    col, row = 7, 11  # a pixel in (x, y)
    p = torch.stack([pixel_centres(width)[col], pixel_centres(height)[row]])[None]
    win = fov.window(p, height, width)[0, 0]
    assert win.shape == (height, width)
    assert win.max().item() == pytest.approx(1.0, abs=1e-6)
    assert tuple(np.unravel_index(int(win.argmax()), win.shape)) == (row, col)  # (row, col) = (y, x)
    # along the row, the value k pixels away is exp(-(2k/W)^2 / sigma): sigma divides the squared distance
    for k in (1, 3, 5):
        assert win[row, col + k].item() == pytest.approx(np.exp(-((2 * k / width) ** 2) / 0.15), rel=1e-5)


def test_larger_sigma_gives_a_wider_window():
    p = torch.zeros(1, 2)
    narrow = Foveation(0.05).window(p, 40, 40)
    wide = Foveation(0.3).window(p, 40, 40)
    assert wide.sum() > narrow.sum()
    assert (wide >= narrow - 1e-7).all()


def test_perceived_image_is_sharp_at_the_fixation_and_blurred_far_away():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    blur = GaussianBlur(5, 3.0)
    beta = blur.residual(x)
    fov = Foveation(0.01)
    p = torch.stack([pixel_centres(32)[4], pixel_centres(32)[20]])[None]  # column 4, row 20
    out = fov(x, beta, torch.zeros(1, 1, 32, 32), p)
    assert torch.allclose(out[..., 20, 4], x[..., 20, 4], atol=1e-6)
    assert torch.allclose(out[..., 2, 30], blur(x)[..., 2, 30], atol=1e-5)
    # a fully remembered image is entirely sharp
    assert torch.allclose(fov(x, beta, torch.ones(1, 1, 32, 32), p), x, atol=1e-6)


@pytest.mark.parametrize("forgetting", [0.0, 0.3, 1.0])
def test_memory_update_forgets_geometrically(forgetting):
    fov = Foveation(0.1)
    ps = [torch.tensor([[-0.5, 0.2]]), torch.tensor([[0.4, -0.4]]), torch.tensor([[0.1, 0.6]])]
    memory = torch.zeros(1, 1, 20, 24)
    for p in ps:
        memory = fov.remember(memory, p, forgetting)
    windows = [fov.window(p, 20, 24) for p in ps]
    expected = forgetting**2 * windows[0] + forgetting * windows[1] + windows[2]
    assert torch.allclose(memory, expected, atol=1e-6)


def test_search_perceives_with_the_memory_of_earlier_fixations():
    """steps=1 and random starts: every fixation is one evaluation, so the perceived images are known."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 32)
    beta = GaussianBlur(5, 3.0).residual(x)
    seen = []

    def loss(perceived):
        seen.append(perceived.detach().clone())
        return perceived.pow(2).flatten(1).mean(1)

    cfg = SearchConfig(length=3, steps=1, forgetting=0.5, start="random", sigma_fovea=0.1)
    fov = Foveation(0.1)
    path = search_scanpath(loss, x, beta, cfg, fov, torch.Generator().manual_seed(3))
    memory = torch.zeros(2, 1, 24, 32)
    for t in range(3):
        p = path.positions[:, t]
        assert torch.allclose(seen[t], x + beta * (1 - (memory + fov.window(p, 24, 32))).clamp(0, 1), atol=1e-6)
        assert torch.allclose(path.best_loss[:, t], loss(seen[t]), atol=1e-6)
        memory = 0.5 * memory + fov.window(p, 24, 32)


# --- the search -------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["centre", "random", "previous"])
def test_search_finds_the_only_quadrant_the_task_needs(start):
    """The loss depends only on the top-right quadrant: x > 0 (right), y < 0 (top)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 64, generator=gen)
    beta = GaussianBlur(9, 4.0).residual(x)
    loss = quadrant_loss(x, slice(0, 20), slice(32, 64))
    cfg = SearchConfig(length=4, steps=20, lr=0.1, sigma_fovea=0.05, forgetting=0.0, start=start)
    path = search_scanpath(loss, x, beta, cfg, generator=torch.Generator().manual_seed(1))
    assert path.positions.shape == (2, 4, 2)
    assert (path.positions[..., 0] > 0).all(), path.positions
    assert (path.positions[..., 1] < 0).all(), path.positions
    # the fixations beat staying blurred: the loss with nothing sharp
    blurred = loss(x + beta)
    assert (path.best_loss < blurred[:, None]).all()


def test_best_loss_is_the_minimum_seen_and_its_position_is_the_fixation():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 32, 32, generator=gen)
    beta = GaussianBlur(7, 3.0).residual(x)
    losses: list[torch.Tensor] = []
    base = quadrant_loss(x, slice(16, 32), slice(0, 16))

    def loss(perceived):
        value = base(perceived)
        losses.append(value.detach().clone())
        return value

    fov = RecordingFoveation(0.1)
    cfg = SearchConfig(length=2, steps=6, lr=0.2, sigma_fovea=0.1)
    path = search_scanpath(loss, x, beta, cfg, fov, torch.Generator().manual_seed(0))
    assert path.best_loss.dtype == torch.float32
    for t in range(2):
        evals = torch.stack(losses[t * 6 : (t + 1) * 6])  # steps × B
        candidates = torch.stack(fov.seen[t * 6 : (t + 1) * 6])  # steps × B × 2
        assert torch.allclose(path.best_loss[:, t], evals.min(0).values)
        best = evals.argmin(0)
        assert torch.allclose(path.positions[:, t], candidates[best, torch.arange(3)])


def test_jitter_moves_stuck_samples_by_at_most_half_a_step():
    x = torch.rand(4, 3, 16, 16)
    fov = RecordingFoveation(0.1)
    cfg = SearchConfig(length=1, steps=5, lr=0.2, random_restarts=False)
    path = search_scanpath(
        lambda im: im.sum((1, 2, 3)) * 0, x, torch.zeros_like(x), cfg, fov, torch.Generator().manual_seed(0)
    )
    seen = torch.stack(fov.seen)  # steps × B × 2; zero gradient → only the jitter moves p
    moves = (seen[1:] - seen[:-1]).abs()
    assert (moves <= 0.1 + 1e-6).all() and (moves > 0).any()
    assert torch.equal(path.positions[:, 0], torch.zeros(4, 2))  # never strictly better than the start
    assert torch.equal(path.best_loss, torch.zeros(4, 1))


def test_random_restarts_jump_anywhere_in_the_image():
    x = torch.rand(8, 3, 16, 16)
    fov = RecordingFoveation(0.1)
    cfg = SearchConfig(length=1, steps=4, lr=0.05, random_restarts=True)
    search_scanpath(
        lambda im: im.sum((1, 2, 3)) * 0, x, torch.zeros_like(x), cfg, fov, torch.Generator().manual_seed(0)
    )
    seen = torch.stack(fov.seen)
    assert seen[1:].abs().max() > 0.5  # far beyond what jitter (0.025) or a step (0.05) could reach
    low, high = position_bounds(16, 16)
    assert (seen >= low - 1e-6).all() and (seen <= high + 1e-6).all()


def test_positions_are_clamped_to_the_image():
    x = torch.rand(2, 3, 20, 30)
    # blurring ADDS brightness (beta = 1) and the loss is the brightness of the top-left pixel:
    # only a window centred on that pixel removes all of it, so the search runs into the corner

    def corner_loss(perceived):
        return perceived[:, :, 0, 0].sum(1)

    cfg = SearchConfig(length=1, steps=8, lr=0.5, sigma_fovea=0.5)
    path = search_scanpath(corner_loss, x, torch.ones_like(x), cfg, generator=torch.Generator().manual_seed(0))
    low, high = position_bounds(20, 30)
    assert (path.positions >= low - 1e-6).all() and (path.positions <= high + 1e-6).all()
    assert torch.allclose(path.positions[:, 0], low.expand(2, 2), atol=1e-6)  # the top-left pixel centre
    assert torch.allclose(to_pixels(path.positions[:, 0], (20, 30)), torch.tensor([[0.5, 0.5]] * 2), atol=1e-5)


def test_search_is_deterministic_with_a_seed():
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    beta = GaussianBlur(5, 2.0).residual(x)
    loss = quadrant_loss(x, slice(0, 12), slice(0, 12))
    cfg = SearchConfig(length=3, steps=5, start="random", random_restarts=True)
    a = search_scanpath(loss, x, beta, cfg, generator=torch.Generator().manual_seed(7))
    b = search_scanpath(loss, x, beta, cfg, generator=torch.Generator().manual_seed(7))
    c = search_scanpath(loss, x, beta, cfg, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.positions, b.positions) and torch.equal(a.best_loss, b.best_loss)
    assert not torch.equal(a.positions, c.positions)


# --- pixel coordinates ------------------------------------------------------------------------


def test_pixel_conversion_round_trip_and_conventions():
    p = torch.rand(5, 7, 2) * 2 - 1
    sizes = torch.tensor([[600, 800], [375, 500], [224, 224], [10, 31], [1, 1]])
    px = to_pixels(p, sizes)
    assert torch.allclose(from_pixels(px, sizes), p, atol=1e-6)
    # (x, y): x follows the width, y the height; the image spans [0, W] x [0, H]
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    assert torch.allclose(to_pixels(corners, (600, 800)), torch.tensor([[0.0, 0.0], [800.0, 600.0], [800.0, 0.0]]))
    # the centre of pixel j is at j + 0.5, as in attnlab.data.fixations (pixel j covers [j, j+1))
    centres = torch.stack([pixel_centres(800), pixel_centres(800)], 1)
    assert torch.allclose(to_pixels(centres, (600, 800))[:, 0], torch.arange(800) + 0.5, atol=1e-3)


# --- the LightningModule and bad inputs -------------------------------------------------------


class TinyClassifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, 2, 1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32, 5),
        )

    def forward(self, x):
        return self.net(x)


def tiny_module(**kwargs) -> NevaModule:
    search = SearchConfig(length=kwargs.pop("length", 2), steps=3)
    return NevaModule(
        ClassifierTask(TinyClassifier(), target=kwargs.pop("target", "prediction")),
        search,
        image_size=(32, 32),
        blur_kernel=5,
        blur_sigma=2.0,
        **kwargs,
    )


def test_predict_step_under_inference_mode_returns_pixels_on_the_original_images():
    module = tiny_module()
    batch = {"image": torch.rand(2, 3, 32, 32), "size": torch.tensor([[600, 800], [100, 50]]), "name": ["a", "b"]}
    with torch.inference_mode():  # what trainer.predict does
        out = module.predict_step(batch, 0)
    assert out["fixations"].shape == (2, 2, 2) and out["best_loss"].shape == (2, 2)
    assert torch.allclose(out["fixations"], to_pixels(out["positions"], batch["size"]))
    assert (out["fixations"][0, :, 0] < 800).all() and (out["fixations"][1, :, 0] < 50).all()
    assert out["name"] == ["a", "b"] and all(param.grad is None for param in module.parameters())


def test_other_image_sizes_are_resized_or_rejected():
    images = torch.rand(1, 3, 48, 40)
    path, _ = tiny_module().scanpaths(images)
    assert path.positions.shape == (1, 2, 2)
    with pytest.raises(UserError, match=r"image size \(48, 40\) does not match model.image_size=\[32, 32\]"):
        tiny_module(resize_inputs=False).scanpaths(images)


def test_nan_images_and_empty_scanpaths_are_clear_errors():
    images = torch.rand(2, 3, 32, 32)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        tiny_module().scanpaths(images)
    with pytest.raises(UserError, match="length=0 is not allowed; expected an integer > 0"):
        SearchConfig(length=0)
    with pytest.raises(UserError, match="start='corner' is not allowed; expected one of centre, random, previous"):
        SearchConfig(start="corner")


def test_label_targets_need_labels():
    module = tiny_module(target="label")
    with pytest.raises(UserError, match="no label"):
        module.scanpaths(torch.rand(1, 3, 32, 32))
    path, target = module.scanpaths(torch.rand(2, 3, 32, 32), labels=torch.tensor([1, 4]))
    assert target.tolist() == [1, 4] and torch.isfinite(path.best_loss).all()


def test_search_results_become_the_data_layers_scanpaths():
    from attnlab.data.gaze import Scanpath

    result = SearchResult(torch.tensor([[[-1.0, -1.0], [0.0, 0.5]], [[1.0, 1.0], [0.5, 0.0]]]), torch.zeros(2, 2))
    paths = result.scanpaths((100, 200), stimuli=["a", "b"])
    assert all(isinstance(p, Scanpath) for p in paths) and [p.stimulus for p in paths] == ["a", "b"]
    np.testing.assert_allclose(np.stack([paths[0].x, paths[0].y]), [[0.0, 100.0], [0.0, 75.0]])
    np.testing.assert_allclose(np.stack([paths[1].x, paths[1].y]), [[200.0, 150.0], [100.0, 50.0]])
