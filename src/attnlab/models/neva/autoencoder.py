"""A convolutional autoencoder: the task model of ``neva_reconstruction``, trained with attnlab.train.

``python -m attnlab.train model=autoencoder data=images`` fits it on any image folder; the
checkpoint then feeds ``python -m attnlab.scanpaths model=neva_reconstruction
model.task.checkpoint=<run>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.utils.checkpoint import load_trained
from attnlab.utils.config import PositiveFloat, PositiveInt
from attnlab.utils.logging import log_image_grid

__all__ = ["ConvAutoencoder", "AutoencoderModule", "load_autoencoder", "psnr"]


class ConvAutoencoder(nn.Module):
    """Strided-conv encoder and transposed-conv decoder with a sigmoid output.

    Args:
        in_channels: C. channels: widths of the encoder stages (each halves H and W).

    Shapes: ``forward(x)``: B×C×H×W in [0, 1] → B×C×H×W in [0, 1], any H, W (inputs are padded
    by reflection to a multiple of 2^stages and the output is cropped back).
    """

    def __init__(self, in_channels: PositiveInt = 3, channels: Sequence[PositiveInt] = (32, 64, 128)) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("autoencoder needs at least one stage")
        widths = [int(in_channels)] + channels
        enc: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        dec: list[nn.Module] = []
        rev = widths[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(rev) - 2:
                dec += [nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.multiple = 2 ** len(channels)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = torch.sigmoid(self.decoder(self.encoder(x)))
        return y[..., :h, :w]


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1], averaged over the batch."""
    mse = (prediction.float() - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return (-10 * torch.log10(mse)).mean()


def _images(batch: Any) -> Tensor:
    if isinstance(batch, dict):
        return batch["image"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


class AutoencoderModule(L.LightningModule):
    """Trains a :class:`ConvAutoencoder` with per-pixel MSE; logs ``{stage}/loss`` and ``{stage}/psnr``.

    Args:
        net: the autoencoder. optimizer: partial optimiser (``_partial_: true``).
        lr: echoed for logging and sweeps.
    """

    def __init__(
        self,
        net: ConvAutoencoder,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr: PositiveFloat | None = None,
        log_images_every_n_steps: PositiveInt = 200,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        self.net = net
        self.optimizer_factory = optimizer

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.parameters())

    def _step(self, stage: str, batch: Any, batch_idx: int) -> Tensor:
        x = _images(batch)
        y = self.net(x)
        loss = F.mse_loss(y, x)
        on_step = stage == "train"
        # evaluation metrics are summed over DDP processes with a float image count (Lightning's integer
        # one loses images, see attnlab.utils.distributed); training steps are not synced
        n, sync = (len(x), False) if on_step else (float(len(x)), True)
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=sync)
        self.log(f"{stage}/psnr", psnr(y.detach(), x), on_step=on_step, on_epoch=True, batch_size=n, sync_dist=sync)
        every = max(1, int(self.hparams.log_images_every_n_steps))
        if batch_idx == 0 and (stage == "val" or self.global_step % every == 0):
            log_image_grid(self.loggers, f"{stage}/reconstruction", {"input": x[:4], "output": y[:4]}, self.global_step)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step("train", batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step("val", batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step("test", batch, batch_idx)


def load_autoencoder(checkpoint: str | Path) -> ConvAutoencoder:
    """The autoencoder network of a checkpoint written by ``python -m attnlab.train model=autoencoder``."""

    hint = " (train model=autoencoder)"
    net, _ = load_trained(checkpoint, AutoencoderModule.__name__, "the autoencoder", hint, part="net")
    return net
