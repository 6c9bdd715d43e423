"""Amortised NeVA (``model=neva_amortised``): α trained by the frozen task's loss, scanpaths in L passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from test_neva_autoencoder import make_images  # the same tiny image folder

from attnlab.models.neva import ClassifierTask, NevaModule, ReconstructionTask, SearchConfig
from attnlab.models.neva.amortised import AmortisedNevaModule, FixationNet
from attnlab.utils.cli import compose_config
from attnlab.utils.config import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def block_images(n: int, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Black images with one textured 10×10 block in the top-left part; (images, block centres (x, y) normalised)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 3, size, size)
    centres = torch.zeros(n, 2)
    for i in range(n):
        r, c = (int(v) for v in torch.randint(0, 8, (2,), generator=g))
        images[i, :, r : r + 10, c : c + 10] = torch.rand(3, 10, 10, generator=g)
        centres[i] = torch.tensor([(c + 5) / size * 2 - 1, (r + 5) / size * 2 - 1])
    return images, centres


def identity_reconstruction(seed: int = 0, length: int = 3) -> AmortisedNevaModule:
    """The task 'reconstruct the image by looking': loss = MSE(perceived, clean) (a parameter-free task model),
    which fixating the only textured block lowers most."""
    torch.manual_seed(seed)
    net = FixationNet(hidden=(8, 8), grid=4, input_size=None)
    return AmortisedNevaModule(
        ReconstructionTask(model=torch.nn.Identity()),
        net,
        length=length,
        image_size=(32, 32),
        blur_kernel=5,
        blur_sigma=2.0,
        lr=0.03,
    )


def train_steps(module: AmortisedNevaModule, images: torch.Tensor, steps: int) -> list[float]:
    """Plain optimisation of the training objective (training_step's loss without a Trainer)."""
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(steps):
        prepared, target, residual = module._inputs({"image": images})
        loss = module.rollout(prepared, target, residual).best_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_soft_argmax_lands_on_the_peak_cell_in_x_y_order():
    net = FixationNet(hidden=(4,), grid=4, input_size=None)
    with torch.no_grad():
        net.prior.zero_()
        net.prior[0, 0, 3, 1] = 50.0  # row 3 (bottom), column 1
    p, logits = net(torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16))
    assert logits.shape == (2, 4, 4)
    assert torch.allclose(p, torch.tensor([[-0.25, 0.75]] * 2), atol=1e-4)  # (x, y) of that cell's centre
    # an untrained α (zero head, zero prior) looks at the centre
    p0, _ = FixationNet(grid=4)(torch.rand(1, 3, 40, 40), torch.zeros(1, 1, 40, 40))
    assert torch.allclose(p0, torch.zeros(1, 2), atol=1e-6)


def test_task_loss_trains_alpha_end_to_end_and_the_loss_falls():
    module = identity_reconstruction(seed=0)
    images, centres = block_images(8)
    task_params = list(module.task.parameters())
    before = {k: v.clone() for k, v in module.task.state_dict().items()}

    prepared, target, residual = module._inputs({"image": images})
    loss = module.rollout(prepared, target, residual).best_loss.mean()
    loss.backward()
    # the only path from α's weights to the loss is the fixation → foveation → perceived image → task loss
    assert module.net.head.weight.grad.abs().sum() > 0 and module.net.prior.grad.abs().sum() > 0
    assert all(p.grad is None for p in task_params)

    module.net.zero_grad()
    start = module.scanpaths(images)[0].positions
    losses = train_steps(module, images, 25)
    assert np.mean(losses[-5:]) < 0.9 * losses[0], losses
    end = module.scanpaths(images)[0].positions
    # the first fixations moved towards the textured blocks (the only place where looking helps)
    distance = lambda p: (p[:, 0] - centres).norm(dim=1).mean()  # noqa: E731
    assert distance(end) < distance(start)
    assert all(torch.equal(before[k], v) for k, v in module.task.state_dict().items())  # the task stays frozen


def test_scanpaths_are_deterministic_under_a_seed_with_L_fixations_inside_the_image():
    images, _ = block_images(4, seed=1)

    def trained(seed: int) -> AmortisedNevaModule:
        module = identity_reconstruction(seed=seed, length=4)
        train_steps(module, images, 3)
        return module.eval()

    batch = {"image": images, "size": torch.tensor([[600, 800]] * 4), "name": list("abcd")}
    modules = [trained(5), trained(5), trained(6)]
    with torch.inference_mode():  # what trainer.predict does
        first, again, other = (m.predict_step(batch, 0) for m in modules)
    assert torch.equal(first["fixations"], again["fixations"]) and torch.equal(first["best_loss"], again["best_loss"])
    assert not torch.equal(first["fixations"], other["fixations"])
    xy = first["fixations"]
    assert xy.shape == (4, 4, 2) and first["best_loss"].shape == (4, 4)
    assert ((xy[..., 0] >= 0) & (xy[..., 0] < 800) & (xy[..., 1] >= 0) & (xy[..., 1] < 600)).all()


class TinyClassifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten()
        )
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(self.net(x))


def test_predict_gives_the_keys_of_per_image_neva_and_the_scanpath_writer_reads_them(tmp_path):
    from attnlab.benchmark.scanpaths import ScanpathWriter

    torch.manual_seed(0)
    task = ClassifierTask(TinyClassifier())
    amortised = AmortisedNevaModule(task, FixationNet(hidden=(4,), grid=4), length=3, image_size=(32, 32))
    search = NevaModule(task, SearchConfig(length=3, steps=2), image_size=(32, 32))
    batch = {"image": torch.rand(2, 3, 48, 40), "size": torch.tensor([[48, 40]] * 2), "name": ["a", "b"]}
    with torch.inference_mode():
        out = amortised.predict_step(batch, 0)
        reference = search.predict_step(batch, 0)
    assert set(out) == set(reference)
    for key in ("fixations", "positions", "best_loss", "size"):
        assert out[key].shape == reference[key].shape and out[key].dtype == reference[key].dtype
    assert out["target"] == reference["target"]  # the same frozen task and targets
    writer = ScanpathWriter(tmp_path, overlays=False)
    record = writer.write_one(out, 1, batch)
    written = json.loads((tmp_path / "scanpaths" / "b.json").read_text())
    assert written == record and [f["fixation"] for f in written["fixations"]] == [1, 2, 3]


def test_train_command_writes_a_checkpoint_that_scanpaths_loads_and_bad_checkpoints_are_one_line(run_cli, tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder)
    tiny = ["model.image_size=[32,32]", "model.length=2", "model.net.grid=4", "model.net.input_size=null"]
    result = run_cli(
        "attnlab.train",
        "model=neva_amortised",
        "data=images",
        f"data.image_dir={folder}",
        "data.image_size=[32,32]",
        "data.batch_size=4",
        "debug=tiny",
        "logger=csv",
        *tiny,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"train/loss_epoch", "val/loss", "val/gain", "test/loss"} <= set(metrics)
    ckpt = run / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    from attnlab.benchmark.scanpaths import generate, scanpath_model

    cfg = compose_config("scanpaths", ["model=neva_amortised", f"data.image_dir={folder}", f"ckpt_path={ckpt}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "scan")
    model = scanpath_model(cfg)
    assert model.length == 2 and model.image_size == (32, 32)  # the stored config decides, not the defaults
    assert torch.equal(model.net.head.weight, state["net.head.weight"])
    summary = generate(cfg)
    assert summary["images"] == 8
    record = json.loads((tmp_path / "scan" / "scanpaths" / "img0.json").read_text())
    assert (record["width"], record["height"]) == (44, 36) and len(record["fixations"]) == 2
    assert all(0 <= f["x"] < 44 and 0 <= f["y"] < 36 for f in record["fixations"])

    # bad input: a checkpoint of another model, where a task checkpoint or a NeVA model is expected
    with pytest.raises(UserError) as err:
        ReconstructionTask(checkpoint=str(ckpt))
    assert "not a checkpoint of the autoencoder" in str(err.value) and "\n" not in str(err.value)
    cfg = compose_config("scanpaths", ["model=neva_classifier", f"ckpt_path={ckpt}"])
    with pytest.raises(UserError) as err:
        scanpath_model(cfg)
    assert "AmortisedNevaModule" in str(err.value) and "\n" not in str(err.value)


def test_config_composes_with_settings_in_constructor_signatures():
    from attnlab.utils.config import validate

    cfg = compose_config("train", ["model=neva_amortised", "model.net.grid=6", "model.length=4"])
    validate(cfg)
    assert cfg.optimized_metric == "val/gain"
    assert compose_config("scanpaths", ["model=neva_amortised"]).optimized_metric is None  # not a sweep metric
    with pytest.raises(UserError):
        validate(compose_config("train", ["model=neva_amortised", "model.length=0"]))


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def autoencoder_checkpoint(path: Path) -> Path:
    """A checkpoint as ``attnlab.train model=autoencoder`` writes it (stored config + state_dict)."""
    from attnlab.models.neva import ConvAutoencoder
    from attnlab.utils.checkpoint import CONFIG_KEY

    torch.manual_seed(0)
    net = ConvAutoencoder(channels=(4,))
    config = {
        "model": {
            "_target_": "attnlab.models.neva.AutoencoderModule",
            "net": {"_target_": "attnlab.models.neva.ConvAutoencoder", "channels": [4]},
        }
    }
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, CONFIG_KEY: config}, path)
    return path


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("task", ["classifier", "reconstruction", "clip"])
def test_every_neva_task_trains_alpha_from_the_config(task, tmp_path):
    import hydra

    tasks = {
        "classifier": [],
        "reconstruction": [
            "~model.task",
            "+model.task={_target_: attnlab.models.neva.ReconstructionTask, "
            f"checkpoint: {autoencoder_checkpoint(tmp_path / 'ae.ckpt')}}}",
        ],
        "clip": [
            "~model.task",
            "+model.task={_target_: attnlab.models.neva.ClipTask, weights: random}",
            f"+model.task.model_cfg={json.dumps(TINY_CLIP).replace(chr(34), '')}",
        ],
    }
    overrides = ["model=neva_amortised", "model.image_size=[32,32]", "model.length=2", *tasks[task]]
    torch.manual_seed(0)
    module = hydra.utils.instantiate(compose_config("train", overrides).model, _convert_="all")
    images, _ = block_images(2)
    before = {k: v.clone() for k, v in module.task.state_dict().items()}
    optimizer = module.configure_optimizers()
    loss = module.training_step({"image": images}, 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert module.net.head.weight.grad.abs().sum() > 0  # the task's loss reaches α through the fixation
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in module.task.state_dict().items())


def test_a_reconstruction_task_given_both_a_model_and_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not both"):
        ReconstructionTask(model=torch.nn.Identity(), checkpoint=str(autoencoder_checkpoint(tmp_path / "ae.ckpt")))


def test_scanpath_validation_logs_the_benchmarks_val_scanmatch_and_refuses_data_without_humans(
    osie_benchmark, tmp_path
):  # osie_benchmark: ATTNLAB_OSIE_ROOT set to the OSIE subset (or skipped)
    """α's model selection on human likeness: the callback's val/ScanMatch is the benchmark's ScanMatch
    of the same scanpaths on the val split (first human fixation dropped); without humans, one line."""
    import hydra
    import lightning as L

    from attnlab.benchmark import ScanpathSource, run_benchmark
    from attnlab.models.neva.validation import ScanpathValidation
    from attnlab.utils.compose import compose_config

    cfg = compose_config("train", ["model=neva_amortised", "data=osie", "data.image_size=[32,32]", "data.batch_size=4"])
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    callback = ScanpathValidation()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=1, callbacks=[callback], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(identity_reconstruction(), datamodule=datamodule)
    logged = float(trainer.callback_metrics["val/ScanMatch"])
    val = datamodule.splits["val"]
    assert set(callback.scanpaths) == {s.id for s in val.stimuli} and len(val) > 1
    by_image = {k: [p] for k, p in callback.scanpaths.items()}
    common = ["data=osie", "seed=100", "split=val", "progress=false", "figure_images=0", "attention=[]"]
    bench = compose_config("benchmark", [*common, f"paths.output_dir={tmp_path}"])
    result = run_benchmark(bench, [ScanpathSource(by_image, "alpha")], reports=False)
    assert logged == pytest.approx(result["metrics"]["alpha"]["ScanMatch"], abs=1e-6)  # Lightning logs float32

    images = compose_config("train", ["model=neva_amortised", "data=images", "data.image_size=[32,32]"])
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, callbacks=[ScanpathValidation()])
    with pytest.raises(UserError, match="needs human scanpaths on the val split"):
        trainer.fit(identity_reconstruction(), datamodule=hydra.utils.instantiate(images.data, _convert_="all"))
