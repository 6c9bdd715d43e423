"""Lightning wrapper of the gating network: the glimpse loop, its loss and per-glimpse metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.models.gating.evaluation import GlimpseMetrics, log_epoch_metrics, object_mask
from attnlab.models.gating.net import GatingNet, GlimpseOutput
from attnlab.models.gating.paper import load_gating_checkpoint
from attnlab.utils.checkpoint import read_checkpoint
from attnlab.utils.config import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from attnlab.utils.logging import log_image_grid

__all__ = ["GatingModule", "GlimpseResult", "attention_figure_batch", "run_glimpses", "select_targets"]

TAKEN = 1e10  # error given to already-attended objects so they are never selected twice
FIGURE_IMAGES = 4  # test photos shown in attention_test.png

log = logging.getLogger(__name__)


def select_targets(gated_input: Tensor, targets: Tensor, taken: Tensor) -> Tensor:
    """Index of the object the gated input is closest to, among those not yet attended.

    Args:
        gated_input: B×C×H×W. targets: B×n×C×H×W. taken: B×n bool (updated in place).

    Returns:
        B indices into the n objects. No gradient flows through the choice.
    """
    with torch.no_grad():
        err = (gated_input.unsqueeze(1) - targets).pow(2).flatten(2).sum(-1)
        err = err.masked_fill(taken, TAKEN)
        sel = err.argmin(dim=1)
        taken[torch.arange(len(sel), device=sel.device), sel] = True
    return sel


@dataclass
class GlimpseResult:
    """One glimpse scored against the object it attended."""

    output: GlimpseOutput
    selected: Tensor  # B, index of the attended object
    target_class: Tensor  # B
    target_image: Tensor  # B×C×H×W
    ce: Tensor
    mse: Tensor


def run_glimpses(
    net: GatingNet,
    x: Tensor,
    targets: Tensor,
    labels: Tensor,
    glimpses: int,
    on_glimpse: Callable[[int, GlimpseResult], None] | None = None,
) -> list[GlimpseResult]:
    """The glimpse loop: attend, infer the attended object by nearest target, inhibit, repeat.

    ``on_glimpse`` runs after each glimpse (training uses it to step the optimiser), before the
    next glimpse starts from the updated IOR masks.
    """
    taken = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    ior = None
    results = []
    batch = torch.arange(len(labels), device=labels.device)
    for k in range(glimpses):
        out = net.glimpse(x, ior)
        sel = select_targets(out.gated_input, targets, taken)
        target_class, target_image = labels[batch, sel], targets[batch, sel]
        ce = F.cross_entropy(out.logits, target_class)
        mse = F.mse_loss(out.gated_input, target_image)
        result = GlimpseResult(out, sel, target_class, target_image, ce, mse)
        if on_glimpse is not None:
            on_glimpse(k, result)
        results.append(result)
        ior = out.ior
    return results


def attention_figure_batch(x: Tensor, results: list[GlimpseResult], strength: float, count: int) -> dict[str, Any]:
    """The first ``count`` images of a batch for :func:`attnlab.viz.gating_attention.save_attention_figure`:
    ``image`` n×C×H×W, and per glimpse (lists of length G) ``gate`` n×H×W (the input gate the last step
    used), ``mask`` n×H×W bool (the attended object), ``target`` and ``pred`` n class indices (CPU)."""
    n = min(count, x.shape[0])
    return {
        "image": x[:n].detach().cpu(),
        "gate": [r.output.gates[0][:n, 0].detach().cpu() for r in results],
        "mask": [object_mask(x[:n], r.target_image[:n], strength).cpu() for r in results],
        "target": [r.target_class[:n].cpu() for r in results],
        "pred": [r.output.logits[:n].argmax(1).cpu() for r in results],
    }


class GatingModule(L.LightningModule):
    """Trains a :class:`GatingNet` with one optimiser step per glimpse (manual optimisation).

    Args:
        net: the gating network.
        optimizer: partial optimiser (``_partial_: true`` in the config).
        recon_weight: φ, weight of the gated-input MSE in the per-glimpse loss CE + φ·MSE.
        glimpses: glimpses per image (the number of objects).
        class_weights: optional CE class weights, or ``"inverse_frequency"`` to take them from the
            datamodule's ``class_weights()`` when fitting.
        lr, strength: echoed from the config for logging and sweeps (the optimiser and net use them).
        init_from: weights to start training from (fine-tuning): a Lightning checkpoint of this model or
            the reference's published state dict (e.g. ``paper_coco_model.pt``). Loaded when fitting
            starts; a resumed run (``ckpt_path``) then restores its own weights over them.
        bootstrap_samples, bootstrap_seed: draws and seed of the test scores' bootstrap intervals over
            images (see :mod:`attnlab.models.gating.intervals`).
    """

    def __init__(
        self,
        net: GatingNet,
        optimizer: Callable[..., torch.optim.Optimizer],
        recon_weight: NonNegativeFloat = 1000.0,
        glimpses: PositiveInt = 2,
        class_weights: list[NonNegativeFloat] | Literal["inverse_frequency"] | None = None,
        lr: PositiveFloat | None = None,
        strength: Fraction | None = None,
        log_images_every_n_steps: PositiveInt = 500,
        init_from: str | None = None,
        bootstrap_samples: NonNegativeInt = 1000,
        bootstrap_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        self.net = net
        self.optimizer_factory = optimizer
        self.automatic_optimization = False
        self.recon_weight = float(recon_weight)
        self.glimpses = int(glimpses)
        self.init_from = init_from
        self.bootstrap_samples, self.bootstrap_seed = int(bootstrap_samples), int(bootstrap_seed)
        self._figure_batch: dict[str, Any] | None = None  # first test images, for the attention figure
        self.auto_class_weights = class_weights == "inverse_frequency"
        if self.auto_class_weights:  # a placeholder of the right shape; filled from the data in setup()
            class_weights = [1.0] * net.num_classes
        self.eval_metrics = torch.nn.ModuleDict(
            {
                s: GlimpseMetrics(net.num_classes, self.glimpses, net.strength, net.ior_threshold)
                for s in ("val", "test")
            }
        )
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float) if class_weights else None)

    def forward(self, x: Tensor) -> Tensor:
        """Logits per glimpse, B×glimpses×classes."""
        return self.net(x, self.glimpses)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and self.auto_class_weights and hasattr(datamodule, "class_weights"):
            self.class_weights.copy_(torch.tensor(datamodule.class_weights(), dtype=torch.float))
        if stage == "fit" and self.init_from:
            self._load_initial_weights(self.init_from)

    def _load_initial_weights(self, path: str) -> None:
        """Fine-tuning: the net's weights from ``path`` (class weights stay the ones of this data)."""

        checkpoint = read_checkpoint(path)
        if "state_dict" in checkpoint:  # a Lightning checkpoint: take the net only
            net_state = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
            self.net.load_state_dict(net_state)
        else:
            load_gating_checkpoint(self, checkpoint)
        log.info("initialised the gating net from %s", path)

    def load_checkpoint_state(self, checkpoint: dict) -> None:
        """Weights from a Lightning checkpoint or from the reference's published state dict (.pt)."""
        load_gating_checkpoint(self, checkpoint)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.parameters())

    def _loss(self, r: GlimpseResult) -> Tensor:
        ce = (
            r.ce
            if self.class_weights is None
            else F.cross_entropy(r.output.logits, r.target_class, weight=self.class_weights)
        )
        return ce + self.recon_weight * r.mse

    def on_train_epoch_start(self) -> None:
        dataset = self.trainer.train_dataloader.dataset if self.trainer.train_dataloader else None
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x, targets, labels = batch
        opt = self.optimizers()

        def step(k: int, r: GlimpseResult) -> None:
            loss = self._loss(r)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            self.log(f"train/loss_g{k + 1}", loss.detach(), on_step=True, on_epoch=True)

        results = run_glimpses(self.net, x, targets, labels, self.glimpses, on_glimpse=step)
        self._log_accuracy("train", results, on_step=True)
        if self.global_step % max(1, self.hparams.log_images_every_n_steps) == 0:
            self._log_images("train", x, results)

    def _eval_step(self, stage: str, batch: Any, batch_idx: int) -> None:
        x, targets, labels = batch
        results = run_glimpses(self.net, x, targets, labels, self.glimpses)
        loss = torch.stack([self._loss(r) for r in results]).mean()
        # DDP: summed over all images; a float count (Lightning's integer one loses images, utils.distributed)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=False, sync_dist=True, batch_size=float(len(x)))
        self._log_accuracy(stage, results, on_step=False)
        self.eval_metrics[stage].update(x, results)
        if batch_idx == 0 and stage == "val":
            self._log_images(stage, x, results)
        if batch_idx == 0 and stage == "test":
            self._figure_batch = attention_figure_batch(x, results, self.net.strength, FIGURE_IMAGES)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        log_epoch_metrics(self, "val")

    def on_test_epoch_end(self) -> None:
        log_epoch_metrics(self, "test")
        trainer = self.trainer
        if self._figure_batch is not None and trainer.is_global_zero and trainer.default_root_dir:
            from pathlib import Path

            from attnlab.viz.gating_attention import save_attention_figure

            names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
            save_attention_figure(self._figure_batch, Path(trainer.default_root_dir) / "attention_test.png", names)
        self._figure_batch = None

    def _log_accuracy(self, stage: str, results: list[GlimpseResult], on_step: bool) -> None:
        correct = [(r.output.logits.argmax(1) == r.target_class).float() for r in results]
        # evaluation (on_step False) is summed over DDP processes with a float image count (see
        # attnlab.utils.distributed); training steps stay per process (cheap)
        sync = {} if on_step else {"sync_dist": True, "batch_size": float(len(correct[0]))}
        for k, c in enumerate(correct):
            self.log(f"{stage}/acc_g{k + 1}", c.mean(), on_step=on_step, on_epoch=True, **sync)
        self.log(f"{stage}/acc", torch.cat(correct).mean(), on_step=on_step, on_epoch=True, prog_bar=True, **sync)

    def _log_images(self, stage: str, x: Tensor, results: list[GlimpseResult]) -> None:
        """Gated input per glimpse for the first images, for dashboards that show images."""

        images = {"input": x[:4]} | {f"glimpse{k + 1}": r.output.gated_input[:4] for k, r in enumerate(results)}
        log_image_grid(self.loggers, f"{stage}/attention", images, step=self.global_step)
