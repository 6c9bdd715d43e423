"""Lightning wrapper of the factorised saliency models: loss, two-phase training, validation metrics.

Phase 1 trains the whole network (through the bases when ``bases > 0``). Phase 2
(``model.phase=2 model.init_from=<phase-1 checkpoint>``) loads the phase-1 weights, checking that
exactly the expected keys are missing (the new basis head) and left over (the phase-1 head), and
trains only the 3×3 conv over the K probability maps; everything else stays frozen in eval mode.

Validation and test report CC, NSS, KLD, SIM, AUC-Judd and sAUC (the torchmetrics of
attnlab.metrics, pysaliency conventions, mean over images) for the raw prediction (``val/cc`` …)
and for the prediction multiplied by the reference's centre-bias prior (``val/cb_cc`` …).
"""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import lightning as L
import torch
from torch import Tensor, nn

from attnlab.baselines import CentreBias
from attnlab.metrics.torchmetrics import saliency_metric_collection
from attnlab.models.saliency.loss import SaliencyLoss
from attnlab.models.saliency.net import BASES, PHASE, FactorizedSaliencyNet, Phase
from attnlab.models.saliency.prior import CentreLogPrior
from attnlab.utils.checkpoint import load_trained, read_checkpoint
from attnlab.utils.config import Check, Fraction, NonNegativeInt, PositiveFloat, PositiveInt, UserError

log = logging.getLogger(__name__)

__all__ = [
    "SaliencyModule",
    "centre_bias_prior",
    "load_phase1_weights",
    "load_saliency_model",
    "lr_factor",
    "LR_SCHEDULES",
]

LRSchedule = Literal["step", "constant", "repo_compounding"]  # repo_compounding: the reference's, reproduction only
LR_SCHEDULES = typing.get_args(LRSchedule)
PhaseOneCheckpoint = Check(lambda v: Path(str(v)).expanduser().is_file(), "an existing phase-1 checkpoint file")


def lr_factor(epoch: int, schedule: str, step_epochs: int = 2, gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate during 0-based ``epoch``.

    "step": gamma^⌊epoch/step_epochs⌋ (what the reference meant). "repo_compounding": the
    reference's lr ← lr·0.1^(E/2) before each epoch E = 1, 2, …, i.e. 0.1^((e+1)(e+2)/4), which
    all but stops training after three epochs; only for exact reproduction.
    """
    if schedule == "step":
        return gamma ** (epoch // max(1, step_epochs))
    if schedule == "constant":
        return 1.0
    if schedule == "repo_compounding":
        return 0.1 ** ((epoch + 1) * (epoch + 2) / 4)
    raise UserError(f"model.lr_schedule={schedule!r} is not allowed; choose one of: {', '.join(LR_SCHEDULES)}")


def centre_bias_prior(size: tuple[int, int], sigma: float = 0.3, device: Any = None) -> Tensor:
    """The reference's validation prior, H×W summing to 1: an isotropic Gaussian with σ = ``sigma``
    × each side (its 200×200 map with σ = 60 px, stretched to the map), via attnlab.baselines."""

    return torch.as_tensor(CentreBias.isotropic(sigma).map(tuple(size)), dtype=torch.float32, device=device)


def load_phase1_weights(net: FactorizedSaliencyNet, checkpoint: dict, source: str = "checkpoint") -> None:
    """Load a phase-1 checkpoint into a phase-2 net, insisting on exactly the expected key changes.

    Missing may only be the phase-2 ``basis_head``; left over may only be the phase-1 ``head``.
    Anything else (another architecture, a baseline without bases, a phase-2 checkpoint) is an
    error naming the keys, instead of silently keeping random layers as ``strict=False`` would.
    """
    state = checkpoint.get("state_dict", checkpoint)
    state = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    if not state:
        raise UserError(f"{source} has no 'net.*' weights; expected a saliency phase-1 checkpoint")
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as ex:  # shape mismatch: other K, D or backbone
        first = str(ex).strip().splitlines()
        raise UserError(f"{source} does not fit this model: {' '.join(first[1:3]) or first[0]}") from ex
    expected_missing = {k for k in net.state_dict() if k.startswith("basis_head.")}
    bad_missing = sorted(set(missing) - expected_missing)
    bad_unexpected = sorted(k for k in unexpected if not k.startswith("head."))
    if bad_missing or bad_unexpected or set(missing) != expected_missing:
        raise UserError(
            f"{source} is not a phase-1 checkpoint of this model: missing {bad_missing[:4]}, "
            f"unexpected {bad_unexpected[:4]} (only basis_head.* may be missing and head.* left over)"
        )


class SaliencyModule(L.LightningModule):
    """Trains a :class:`FactorizedSaliencyNet` on (image, density, fixations) batches.

    Args:
        net: the network (its ``phase``/``bases`` decide what trains).
        optimizer: partial optimiser, given the trainable parameters only.
        loss: the saliency loss (default: −NSS + 10·KLD − 2·CC).
        phase, bases: echoed from the net's config (for logging and sweeps).
        init_from: phase-1 Lightning checkpoint loaded when phase-2 training starts.
        lr: base learning rate (echo; the optimiser config uses it).
        lr_schedule: "step" (×``lr_gamma`` every ``lr_step_epochs``), "constant" or
            "repo_compounding" (the reference's formula, for exact reproduction only).
        center_bias_sigma: σ (fraction of each side) of the prior multiplied into the ``cb_`` metrics.
        centre_prior: add the log of the centre bias fitted on the training split's fixations to the
            logits, then a softmax over the pixels (DeepGaze's readout; :mod:`.prior`): each map is a
            distribution, and a network that outputs zeros predicts the centre bias. Fitted when
            training starts, stored in the checkpoint.
    """

    def __init__(
        self,
        net: FactorizedSaliencyNet,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: Optional[SaliencyLoss] = None,
        phase: Phase = PHASE,
        bases: NonNegativeInt = BASES,
        init_from: Optional[Annotated[str, PhaseOneCheckpoint]] = None,
        lr: PositiveFloat = 1e-4,
        lr_schedule: LRSchedule = "step",
        lr_step_epochs: PositiveInt = 2,
        lr_gamma: Fraction = 0.1,
        center_bias_sigma: PositiveFloat = 0.3,
        centre_prior: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "loss"], logger=False)
        if net.phase != phase or net.num_bases != bases:
            raise UserError(
                f"model.phase={phase}/model.bases={bases} disagree with the net's "
                f"phase={net.phase}/bases={net.num_bases}"
            )
        if phase == 2 and not init_from:
            log.warning("phase 2 without model.init_from: the frozen bases are untrained")
        lr_factor(0, lr_schedule)  # validates the name
        self.net = net
        self.optimizer_factory = optimizer
        self.loss = loss if loss is not None else SaliencyLoss()
        self.prior = CentreLogPrior() if centre_prior else None
        self._initialised = False

        # attnlab.metrics (pysaliency conventions), raw and with the centre-bias prior multiplied in
        self.metrics = nn.ModuleDict(
            {
                f"{stage}{tag}": saliency_metric_collection(prefix=f"{stage}/{tag[1:] + '_' if tag else ''}")
                for stage in ("val", "test")
                for tag in ("", "_cb")
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → saliency B×1×H'×W' in (0, 1) (with the centre prior: summing to 1)."""
        if self.prior is None:
            return self.net(x)
        return self.net(x, log_prior=self.prior(self.net.output_shape(x)))

    # --- phase 2 initialisation, the centre prior ----------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.prior is not None:
            self.fit_prior()
        if stage == "fit" and self.hparams.init_from and not self._initialised:
            load_phase1_weights(self.net, read_checkpoint(self.hparams.init_from), str(self.hparams.init_from))
            log.info("phase %d: weights loaded from %s", self.hparams.phase, self.hparams.init_from)
            self._initialised = True

    def fit_prior(self) -> None:
        """Fit the centre prior on the training split of the trainer's fixation data module."""
        splits = getattr(self.trainer.datamodule, "splits", None) or {}
        if "train" not in splits:
            raise UserError(
                "model.centre_prior=true needs fixation data to fit the prior on (data=osie, mit1003, "
                "salicon_fixations, cat2000 or fixation_folder)"
            )
        self.prior.fit(splits["train"])
        log.info("centre prior fitted on %d training images: %s", len(splits["train"]), self.prior.extra_repr())

    # --- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        h = self.hparams
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: lr_factor(e, h.lr_schedule, h.lr_step_epochs, h.lr_gamma)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @staticmethod
    def _targets(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        density = batch["density"]
        fixations = batch["fixations"]
        if density.dim() == 3:
            density, fixations = density.unsqueeze(1), fixations.unsqueeze(1)
        return batch["image"], density, fixations

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x, density, fixations = self._targets(batch)
        pred = self(x)
        loss, parts = self.loss(pred, density, fixations)
        n = x.shape[0]
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=n)
        return loss

    # --- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, stage: str, batch: dict[str, Tensor]) -> None:
        x, density, fixations = self._targets(batch)
        pred = self(x)
        loss, _ = self.loss(pred, density, fixations)
        # DDP: over all images, with a float count (Lightning's integer one loses images, utils.distributed)
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=float(x.shape[0]), sync_dist=True)
        prior = centre_bias_prior(tuple(pred.shape[-2:]), self.hparams.center_bias_sigma, pred.device)
        targets = {"fixations": fixations[:, 0], "density": density[:, 0]}
        raw, with_prior = self.metrics[stage], self.metrics[f"{stage}_cb"]
        raw.update(pred[:, 0].detach(), **targets)
        with_prior.update((pred[:, 0] * prior).detach(), **targets)
        # Lightning computes (mean over images) and resets the metrics at the end of the epoch
        self.log_dict(raw, on_step=False, on_epoch=True)
        self.log_dict(with_prior, on_step=False, on_epoch=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self(batch["image"])


def load_saliency_model(path: str, device: str | torch.device = "cpu") -> tuple[SaliencyModule, Any]:
    """A trained :class:`SaliencyModule` (eval mode) and the config stored in its checkpoint.

    The network is rebuilt from the stored config (so K, D and the backbone match) without reading
    any other file (no ImageNet weights, no phase-1 checkpoint), then every weight is loaded strictly.
    """
    import warnings

    def rebuild_only(cfg: Any) -> None:  # no ImageNet weights, no phase-1 checkpoint read again
        cfg.model.init_from = None
        cfg.model.net.backbone_weights = "none"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, cfg = load_trained(
            path, SaliencyModule.__name__, "a saliency model (model=saliency_*)", prepare=rebuild_only
        )
    return model.to(device), cfg
