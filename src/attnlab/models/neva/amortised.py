"""Amortised NeVA: an attention network α that emits the next fixation in one forward pass.

Per-image NeVA (:mod:`attnlab.models.neva.search`) finds every fixation by S gradient steps of the
frozen task model. Here a small network α learns to do the same for any image: it looks at what the
observer perceives now (the foveated image) and at where it has looked (the foveation memory), and
puts a heatmap over a coarse G×G grid of the image; the next fixation is its soft-argmax, the
expected cell centre under the softmax of the heatmap. That keeps the whole rollout differentiable,

    p_t = α(x̃_{t−1}, M_{t−1}) → x̃_t = Foveation(x, β, M_{t−1}, p_t) → loss_t = task.loss(x̃_t)
    M_t = forgetting · M_{t−1} + F_{p_t},   x̃_0 = x + β (nothing fixated yet: fully blurred),

so α is trained by the task's error signal alone: the mean of loss_t over the L fixations (the
per-image search's objective) is minimised over α's weights, the task model staying frozen, on
unlabeled images. A scanpath then costs L forward passes of α and of the task model (no search).
The perception model (blur, foveation window, memory) and the task adapters are NeVA's own.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.neva.blur import BLUR_KERNEL, BLUR_SIGMA
from attnlab.models.neva.foveation import (
    SIGMA_FOVEA,
    Foveation,
    pixel_centres,
    position_bounds,
)
from attnlab.models.neva.module import NevaModule, OddKernel, split_batch
from attnlab.models.neva.search import SearchConfig, SearchResult
from attnlab.models.neva.tasks import NevaTask
from attnlab.utils.config import (
    Fraction,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Size2,
    UserError,
    check_arguments,
)

__all__ = ["FixationNet", "AmortisedNevaModule", "rollout"]


def coordinate_channels(batch: int, height: int, width: int, like: Tensor) -> Tensor:
    """B×2×H×W normalised (x, y) of every pixel centre (NeVA's convention), so convolutions know where they are."""
    xs = pixel_centres(width, like.device, like.dtype)
    ys = pixel_centres(height, like.device, like.dtype)
    grid = torch.stack([xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(height, width)])
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


class FixationNet(nn.Module):
    """α: the perceived image and the fixation memory → the next fixation, by soft-argmax over a grid.

    Args:
        in_channels: C of the images.
        hidden: widths of the conv stages (3×3, stride 2, ReLU; each halves H and W).
        grid: G, the heatmap has G×G cells over the image.
        input_size: inputs are resized to ``input_size``² first (α works at a coarse resolution, so its
            cost does not grow with the task model's input size); None: as given.

    The input also carries two coordinate channels (x, y); a learned G×G bias (``prior``, zero at
    the start) is added to the heatmap, so a spatial preference such as a centre bias is one parameter
    per cell. The head starts at zero weights: an untrained α fixates the image centre.

    Shapes: ``forward(perceived B×C×H×W, memory B×1×H×W)`` → (p B×2 normalised (x, y) in [−1, 1],
    logits B×G×G); ``p`` is the softmax-weighted mean of the cell centres.
    """

    def __init__(
        self,
        in_channels: PositiveInt = 3,
        hidden: Sequence[PositiveInt] = (16, 32, 32),
        grid: PositiveInt = 8,
        input_size: PositiveInt | None = 64,
    ) -> None:
        super().__init__()
        widths = [int(in_channels) + 1 + 2] + [int(h) for h in hidden]
        if len(widths) < 2:
            raise UserError("model.net.hidden must name at least one stage width, got []")
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.grid = int(grid)
        self.input_size = int(input_size) if input_size else None
        self.prior = nn.Parameter(torch.zeros(1, 1, self.grid, self.grid))
        self.register_buffer("centres", pixel_centres(self.grid), persistent=False)

    def heatmap(self, perceived: Tensor, memory: Tensor) -> Tensor:
        """Logits B×G×G of the next fixation."""
        x = torch.cat([perceived, memory.to(perceived.dtype)], 1)
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        b, _, h, w = x.shape
        x = torch.cat([x, coordinate_channels(b, h, w, x)], 1)
        f = F.adaptive_avg_pool2d(self.features(x), self.grid)
        return (self.head(f) + self.prior).squeeze(1)

    def forward(self, perceived: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.heatmap(perceived, memory)
        b = len(logits)
        weights = logits.float().flatten(1).softmax(1).view(b, self.grid, self.grid)  # rows (y) × columns (x)
        centres = self.centres.to(weights.dtype)
        p = torch.stack([(weights.sum(1) * centres).sum(1), (weights.sum(2) * centres).sum(1)], 1)
        return p, logits

    def extra_repr(self) -> str:
        return f"grid={self.grid}, input_size={self.input_size}"


def rollout(
    net: FixationNet,
    loss_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    residual: Tensor,
    foveation: Foveation,
    length: int,
    forgetting: float,
    on_fixation: Callable[[int], None] | None = None,
) -> SearchResult:
    """L fixations of α, each from what was perceived after the previous one (differentiable end to end).

    Args:
        net: α. loss_fn: perceived B×C×H×W → per-sample task loss B (target bound, task model frozen).
        image, residual: B×C×H×W clean images and blur residual β. foveation: the perception model.
        length: L. forgetting: memory decay between fixations.

    Returns:
        :class:`SearchResult`: B×L×2 positions and the B×L task loss at each fixation (with the graph
        when called with gradients enabled: their mean is the training loss).
    """
    b, _, h, w = image.shape
    low, high = position_bounds(h, w, image.device, torch.float32)
    memory = torch.zeros(b, 1, h, w, device=image.device, dtype=image.dtype)
    seen = image + residual  # nothing fixated yet: the fully blurred image
    positions, losses = [], []
    for t in range(int(length)):
        p, _ = net(seen, memory)
        p = torch.maximum(torch.minimum(p.float(), high), low)
        seen = foveation(image, residual, memory, p.to(image.dtype))
        losses.append(loss_fn(seen).float())
        positions.append(p)
        memory = foveation.remember(memory, p.to(memory.dtype), float(forgetting))
        if on_fixation is not None:
            on_fixation(t)
    return SearchResult(torch.stack(positions, 1), torch.stack(losses, 1))


class AmortisedNevaModule(NevaModule):
    """Amortised NeVA: trains α on unlabeled images by the frozen task model's loss; predicts scanpaths.

    ``training_step`` minimises the mean task loss over the L fixations of α's rollout; validation
    logs ``val/loss`` and ``val/gain`` (the loss of the fully blurred image minus that of the rollout:
    how much α's fixations help the task, higher is better). ``predict_step`` is NeVA's (same keys:
    ``fixations``, ``positions``, ``best_loss`` — here the loss at each fixation —, ``target``,
    ``size``, ``name``, ``path``), computed in L forward passes; α has no randomness, so scanpaths
    depend only on its weights (and the seed that initialised them).

    Args:
        task: the frozen task model (:mod:`attnlab.models.neva.tasks`).
        net: α (:class:`FixationNet`; default one if None).
        length: L, fixations per scanpath. sigma_fovea: σ_f of the foveation window. forgetting: memory decay.
        image_size, blur_kernel, blur_sigma, resize_inputs, precision, channels_last: as :class:`NevaModule`.
        optimizer: partial optimiser (``_partial_: true``) for α's weights; None: Adam with ``lr``.
        lr: the learning rate, echoed for logging and sweeps (the config's optimiser reads it); without an
            optimiser, Adam's with this lr (None: Adam's default).
        seed: kept for the config (α is deterministic).
    """

    def __init__(
        self,
        task: NevaTask,
        net: FixationNet | None = None,
        length: PositiveInt = 10,
        sigma_fovea: PositiveFloat = SIGMA_FOVEA,
        forgetting: Fraction = 0.1,
        image_size: Size2 = (224, 224),
        blur_kernel: OddKernel = BLUR_KERNEL,
        blur_sigma: PositiveFloat = BLUR_SIGMA,
        resize_inputs: bool = True,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        lr: PositiveFloat | None = None,
        seed: NonNegativeInt = 0,
        precision: Literal["fp32", "bf16"] = "fp32",
        channels_last: bool = False,
    ) -> None:
        check_arguments(type(self), {"length": length, "sigma_fovea": sigma_fovea, "forgetting": forgetting})
        if not isinstance(task, NevaTask):
            raise UserError(
                f"model.task must be a NeVA task (ClassifierTask, ReconstructionTask, ClipTask), got {task!r}"
            )
        perception = SearchConfig(length=length, sigma_fovea=sigma_fovea, forgetting=forgetting)
        super().__init__(
            task,
            perception,
            image_size=image_size,
            blur_kernel=blur_kernel,
            blur_sigma=blur_sigma,
            resize_inputs=resize_inputs,
            seed=seed,
            precision=precision,
            channels_last=channels_last,
        )
        self.save_hyperparameters(ignore=["task", "net", "optimizer"], logger=False)
        self.net = net if net is not None else FixationNet()
        self.foveation = Foveation(sigma_fovea)
        self.length = int(length)
        self.forgetting = float(forgetting)
        self.optimizer_factory = optimizer
        self.lr = float(lr) if lr is not None else None

    # -- the rollout -------------------------------------------------------------------------------

    def _inputs(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        """(images B×C×H×W at ``image_size``, targets, blur residual) of a batch."""
        batch = split_batch(batch)
        images = self.prepare(batch["image"].to(self.device))
        labels = batch.get("label")
        with torch.no_grad(), self._autocast():
            target = self.task.target(images, labels if torch.is_tensor(labels) else None)
        return images, target, self.blur.residual(images)

    def rollout(self, images: Tensor, target: Tensor, residual: Tensor, on_fixation=None) -> SearchResult:
        """α's L fixations on prepared images (see :func:`rollout`)."""
        return rollout(
            self.net, self._loss_fn(target), images, residual, self.foveation, self.length, self.forgetting, on_fixation
        )

    def scanpaths(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        generator: Any = None,
        on_fixation=None,
        search: SearchConfig | None = None,
    ) -> tuple[SearchResult, Tensor]:
        """Scanpaths for images in [0, 1] (B×C×h×w): (SearchResult, targets), in L forward passes.

        ``generator`` is accepted for NeVA's interface and unused (α is deterministic); a ``search``
        config has no meaning here and is refused.
        """
        if search is not None:
            raise UserError("amortised NeVA has no search settings; set model.length / sigma_fovea / forgetting")
        images, target, residual = self._inputs({"image": images, "label": labels})
        with torch.no_grad():
            path = self.rollout(images, target, residual, on_fixation)
        return path, target

    # -- Lightning -------------------------------------------------------------------------------

    def _step(self, stage: str, batch: Any) -> Tensor:
        images, target, residual = self._inputs(batch)
        path = self.rollout(images, target, residual)
        loss = path.best_loss.mean()
        n = len(images)
        train = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=not train)
        if not train:
            with torch.no_grad():
                blurred = self._loss_fn(target)(images + residual).mean()
            self.log(f"{stage}/gain", blurred - loss, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            self._step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            self._step("test", batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            return torch.optim.Adam(params) if self.lr is None else torch.optim.Adam(params, lr=self.lr)
        return self.optimizer_factory(params=params)
