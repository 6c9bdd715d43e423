"""NeVA as a LightningModule: ``predict_step`` turns a batch of images into scanpaths.

The task model is frozen; there is nothing to train. Use it with ``trainer.predict`` (as
``python -m attnlab.scanpaths`` does) or call :meth:`NevaModule.scanpaths` directly.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.models.neva.blur import BLUR_KERNEL, BLUR_SIGMA, GaussianBlur
from attnlab.models.neva.foveation import Foveation
from attnlab.models.neva.search import SearchConfig, SearchResult, search_scanpath
from attnlab.models.neva.tasks import NevaTask
from attnlab.utils.config import Check, NonNegativeInt, PositiveFloat, Size2, UserError, check_arguments

OddKernel = Annotated[int, Check(lambda v: v >= 1 and v % 2 == 1, "a positive odd number")]

__all__ = ["NevaModule", "split_batch"]


def split_batch(batch: Any) -> dict[str, Any]:
    """Normalise a batch to a dict with ``image`` (B×C×H×W in [0, 1]) and optional ``label``, ``size``,
    ``name``, ``path``.

    Accepts the dicts of :mod:`attnlab.data.images`, ``(images, labels)`` tuples or a bare tensor.
    """
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, (tuple, list)):
        out = {"image": batch[0]}
        if len(batch) > 1 and torch.is_tensor(batch[1]) and batch[1].dim() == 1:
            out["label"] = batch[1]
        return out
    return {"image": batch}


class NevaModule(L.LightningModule):
    """Neural Visual Attention (Schwinn et al., TMLR 2022): task-driven scanpaths.

    Args:
        task: the frozen task model with its target and per-sample loss (:mod:`attnlab.models.neva.tasks`).
        search: :class:`SearchConfig` (length, steps, lr, σ_f, forgetting, start, restarts) or a dict of it.
        image_size: (H, W) the task model sees; other inputs are resized (``resize_inputs``) or rejected.
        blur_kernel, blur_sigma: k_b and σ_b of the peripheral blur, in pixels of ``image_size``.
        resize_inputs: resize inputs of another size (True) or raise a clear error (False).
        seed: seeds the random start/jitter/restarts; batch i uses seed + i, so runs repeat exactly.
        precision: ``fp32`` or ``bf16`` (autocast of the task model; bookkeeping stays float32).
        channels_last: run the task model on channels-last tensors.
        compile: ``torch.compile`` the task model's loss.
    """

    def __init__(
        self,
        task: NevaTask,
        search: SearchConfig | dict | None = None,
        image_size: Size2 = (224, 224),
        blur_kernel: OddKernel = BLUR_KERNEL,
        blur_sigma: PositiveFloat = BLUR_SIGMA,
        resize_inputs: bool = True,
        seed: NonNegativeInt = 0,
        precision: Literal["fp32", "bf16"] = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(search, dict):
            search = SearchConfig(**search)
        self.search_config = search or SearchConfig()
        check_arguments(type(self), {"precision": precision, "image_size": tuple(image_size)})
        self.task = task
        self.blur = GaussianBlur(blur_kernel, blur_sigma)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.resize_inputs = bool(resize_inputs)
        self.seed = int(seed)
        self.precision = precision
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        self._compiled_loss = None
        if self.channels_last:
            self.task.to(memory_format=torch.channels_last)

    # -- pieces ----------------------------------------------------------------------------------

    def prepare(self, images: Tensor) -> Tensor:
        """Check and resize a batch to ``image_size``: B×C×h×w → B×C×H×W float."""
        if images.dim() != 4:
            raise UserError(f"images must be a B×C×H×W batch, got shape {tuple(images.shape)}")
        images = images.float()
        if not torch.isfinite(images).all():
            raise UserError("input images contain NaN or infinite values; check the image files or the transform")
        if tuple(images.shape[-2:]) != self.image_size:
            if not self.resize_inputs:
                raise UserError(
                    f"image size {tuple(images.shape[-2:])} does not match model.image_size={list(self.image_size)}; "
                    "resize the data (data.image_size) or set model.resize_inputs=true"
                )
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return images

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loss_fn(self, target: Tensor):
        """perceived B×C×H×W → per-sample float32 loss, with the configured layout, precision and compilation."""
        loss_of = self.task.loss
        if self.compile:
            if self._compiled_loss is None:
                self._compiled_loss = torch.compile(self.task.loss, dynamic=False)
            loss_of = self._compiled_loss

        def loss(perceived: Tensor) -> Tensor:
            if self.channels_last:
                perceived = perceived.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                return loss_of(perceived, target).float()

        return loss

    def scanpaths(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        on_fixation=None,
        search: SearchConfig | None = None,
    ) -> tuple[SearchResult, Tensor]:
        """Scanpaths for images in [0, 1] (B×C×h×w, resized to ``image_size``): (SearchResult, targets).

        ``generator``: one CPU generator, or one per image (:func:`search_scanpath`); ``search``: search
        settings for this call instead of the module's ``search_config`` (e.g. another start).
        """
        search = search or self.search_config
        images = self.prepare(images.to(self.device))
        with torch.no_grad(), self._autocast():
            target = self.task.target(images, labels)
        residual = self.blur.residual(images)
        foveation = Foveation(search.sigma_fovea)  # stateless: follows the current search config
        path = search_scanpath(self._loss_fn(target), images, residual, search, foveation, generator, on_fixation)
        return path, target

    # -- Lightning -------------------------------------------------------------------------------

    def forward(self, images: Tensor, labels: Tensor | None = None) -> SearchResult:
        return self.scanpaths(images, labels)[0]

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Scanpaths of one batch.

        Returns a dict: ``fixations`` B×L×2 pixel (x, y) on each ORIGINAL image (``batch['size']`` =
        (H, W) per image, else the input size), ``positions`` B×L×2 normalised (x, y), ``best_loss``
        B×L float32, ``target`` (JSON-able per image), and ``name`` / ``path`` / ``size`` passed through.
        """
        batch = split_batch(batch)
        images = batch["image"]
        # trainer.predict runs under inference mode; the search needs autograd (w.r.t. the fixation only)
        with torch.inference_mode(False), torch.enable_grad():
            images = images.clone()
            labels = batch.get("label")
            labels = labels.clone() if torch.is_tensor(labels) else None
            generator = torch.Generator().manual_seed(self.seed + int(batch_idx))
            path, target = self.scanpaths(images, labels, generator)
        sizes = batch.get("size")
        if sizes is None:
            sizes = torch.tensor([list(images.shape[-2:])] * len(images))
        sizes = torch.as_tensor(sizes).to(path.positions.device)
        n = len(images)
        return {
            "fixations": path.pixels(sizes).cpu(),
            "positions": path.positions.cpu(),
            "best_loss": path.best_loss.cpu(),
            "target": self.task.describe_target(target),
            "size": sizes.cpu(),
            "name": list(batch.get("name", [str(batch_idx * n + i) for i in range(n)])),
            "path": list(batch.get("path", [None] * n)),
        }

    def configure_optimizers(self) -> None:  # nothing to train
        return None
