"""``gating:<checkpoint>``: the gating network's input gate after the first glimpse as a benchmark map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from attnlab.utils.config import UserError


@pytest.fixture(scope="module")
def coco_pt():
    return shared_path("data", "gating_paper_checkpoints", "paper_coco_model.pt")


def photo_context(tmp_path, photos: dict[str, np.ndarray]):
    """A benchmark context whose stimuli are the given H×W×3 uint8 photos (saved as lossless PNGs)."""
    from attnlab.benchmark import BenchmarkContext
    from attnlab.data.fixations import FixationDataset, Stimulus

    stimuli = []
    for name, photo in photos.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(photo).save(path)
        stimuli.append(Stimulus(name, path, photo.shape[:2]))
    data = FixationDataset("photos", stimuli, [[] for _ in stimuli])
    return BenchmarkContext(data, data, sigma_px=5.0, seed=0)


def osie_photo(size: tuple[int, int]) -> np.ndarray:
    """A real photo (the first OSIE subset stimulus) resized to ``size`` (H, W)."""
    folder = shared_path("data", "osie_subset", "data", "stimuli")
    first = sorted(folder.glob("*.jpg"))[0]
    with Image.open(first) as im:
        return np.asarray(im.convert("RGB").resize(size[::-1], Image.BILINEAR))


def test_the_map_is_one_minus_the_input_gate_of_the_first_glimpse(tmp_path, coco_pt, one_torch_thread):
    from attnlab.benchmark import resolve_source
    from attnlab.models.gating.paper import load_paper_checkpoint

    photo = osie_photo((100, 100))  # the paper net's input size: no padding, no resizing
    ctx = photo_context(tmp_path, {"p": photo})
    got = resolve_source(f"gating:{coco_pt}", ctx).saliency_map(ctx, 0)

    net = load_paper_checkpoint(coco_pt, "coco")
    x = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():  # the first glimpse by hand: steps 1..T-1 from zero gates (nothing visited yet)
        gates = net.initial_state(x)
        for _ in range(net.steps - 1):
            gates = net.step(x, gates).gates
    expected = 1 - gates[0][0, 0].double().numpy()
    assert got.shape == (100, 100)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert (got >= 0).all() and got.std() > 0.01  # a map with structure, not a constant


def test_a_non_square_photo_is_padded_like_the_training_data_and_cropped_back(tmp_path, coco_pt, one_torch_thread):
    from attnlab.benchmark import resolve_source
    from attnlab.data.coco_dataset import PAD_FILL

    photo = osie_photo((60, 100))
    square = np.full((100, 100, 3), PAD_FILL, dtype=np.uint8)
    square[20:80] = photo  # what the source must build itself: the photo centred on grey
    ctx = photo_context(tmp_path, {"wide": photo, "square": square})
    source = resolve_source(f"gating:{coco_pt}", ctx)
    wide, padded = source.saliency_map(ctx, 0), source.saliency_map(ctx, 1)
    assert wide.shape == (60, 100)
    np.testing.assert_allclose(wide, padded[20:80], rtol=0, atol=1e-6)


def test_a_lightning_checkpoint_of_the_gating_model_gives_the_same_map(tmp_path, coco_pt, one_torch_thread):
    import hydra
    from omegaconf import OmegaConf

    from attnlab.benchmark import resolve_source
    from attnlab.models.gating.paper import convert_paper_state_dict
    from attnlab.utils.checkpoint import CONFIG_KEY
    from attnlab.utils.compose import compose_config
    from attnlab.utils.config import validate

    cfg = compose_config("train", ["model=gating_coco"])
    validate(cfg)  # imports the targets (and the resolvers they register)
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    paper_state = torch.load(coco_pt, map_location="cpu", weights_only=True)
    module.net.load_state_dict(convert_paper_state_dict(paper_state, module.net))
    stored = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "data")}
    ckpt = tmp_path / "gating_coco.ckpt"
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: stored}, ckpt)

    ctx = photo_context(tmp_path, {"p": osie_photo((75, 100))})
    ours = resolve_source(f"gating:{ckpt}", ctx).saliency_map(ctx, 0)
    paper = resolve_source(f"gating:{coco_pt}", ctx).saliency_map(ctx, 0)
    np.testing.assert_allclose(ours, paper, rtol=0, atol=1e-6)


def _stored_checkpoint(path, train_overrides):
    from omegaconf import OmegaConf

    from attnlab.utils.checkpoint import CONFIG_KEY
    from attnlab.utils.compose import compose_config
    from attnlab.utils.config import validate

    cfg = compose_config("train", train_overrides)
    validate(cfg)  # imports the targets (and the resolvers they register, e.g. ${multimnist_width:})
    torch.save({"state_dict": {}, CONFIG_KEY: {"model": OmegaConf.to_container(cfg.model, resolve=True)}}, path)
    return path


def test_checkpoints_of_other_families_are_one_line(tmp_path):
    from attnlab.benchmark import resolve_source

    mnist_pt = shared_path("data", "gating_paper_checkpoints", "paper_mnist_model.pt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    cases = [
        (f"gating:{mnist_pt}", "MNIST checkpoint"),
        (f"gating:{_stored_checkpoint(tmp_path / 'sal.ckpt', ['model=saliency_dinet'])}", "SaliencyModule.*saliency:"),
        (f"gating:{_stored_checkpoint(tmp_path / 'mnist.ckpt', ['model=gating_mnist'])}", "1-channel digit"),
        (f"gating:{tmp_path / 'missing.pt'}", "checkpoint not found"),
        (f"gating:{garbage}", "cannot read checkpoint"),
        (f"gating:{plain}", "not a gating checkpoint"),
        ("gating", "needs a checkpoint"),
    ]
    ctx = photo_context(tmp_path, {"p": np.zeros((8, 8, 3), dtype=np.uint8)})
    for spec, match in cases:
        with pytest.raises(UserError, match=match) as ex:
            resolve_source(spec, ctx)
        assert "\n" not in str(ex.value), spec


def test_gating_through_the_benchmark_on_osie(tmp_path, osie_benchmark, coco_pt):
    result = osie_benchmark(f"attention=[gating:{coco_pt}]")
    (rows,) = result["per_image"].values()
    assert len(rows) == 2
    for row in rows:
        for metric in ("AUC_Judd", "NSS", "CC", "KLD", "SIM"):
            assert np.isfinite(row[metric]), metric
    assert (tmp_path / "saliency_grid.png").is_file()
