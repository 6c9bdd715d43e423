"""Object-based attention through internal gating (KordingLab), as one configurable network.

A stack of conv + max-pool stages classifies the image; after every step a top-down path turns the
logits and the pooled maps into multiplicative gates for the input of every stage. A gate ``g`` in
(-1, 1) multiplies its input by ``1 - strength * g``: high values *inhibit* (unattended), low values
leave the input unchanged. MNIST and COCO variants are two stage lists of this one class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Sequence

import torch
import torch.nn.functional as F
from annotated_types import Ge, Interval
from torch import Tensor, nn

from attnlab.utils.config import Fraction, PositiveInt, Size2, check_arguments

__all__ = ["GatingNet", "StepOutput", "GlimpseOutput"]


@dataclass
class StepOutput:
    """One recurrent step.

    logits: B×classes. gated_input: B×C×H×W (the input after its gate, ``u0``).
    gates: per stage, B×c×h×w, the gates produced for the NEXT step (stage 0: B×1×H×W).
    conv_outputs: per stage, B×c_i×h_i×w_i, after ReLU and before pooling.
    """

    logits: Tensor
    gated_input: Tensor
    gates: list[Tensor]
    conv_outputs: list[Tensor]


@dataclass
class GlimpseOutput:
    """One glimpse of ``steps`` recurrent steps.

    logits, gated_input, conv_outputs: from the last step. gates: the gates the last step used
    (produced by the step before it, after the IOR override). ior: the updated IOR masks.
    """

    logits: Tensor
    gated_input: Tensor
    gates: list[Tensor]
    conv_outputs: list[Tensor]
    ior: list[Tensor]


class GatingNet(nn.Module):
    """Recurrent CNN whose top-down feedback gates its own input and feature maps.

    Args:
        in_channels: image channels (1 for MNIST, 3 for COCO).
        input_size: (H, W) of the input image.
        channels: output channels of each conv stage, e.g. ``[20, 50]`` (MNIST) or
            ``[30, 60, 100, 20]`` (COCO).
        num_classes: number of logits.
        kernel_size: conv and transposed-conv kernel (stride 1, no padding).
        pool: max-pool kernel and stride (floor mode).
        upsample: interpolation mode of the feedback path (``nearest`` MNIST, ``bicubic`` COCO).
        strength: largest fractional suppression ``s`` of a gate, in [0, 1].
        steps: recurrent steps per glimpse (T).
        ior_threshold: gates below it at step T-1 mark locations as visited.
    """

    def __init__(
        self,
        in_channels: PositiveInt,
        input_size: Size2,
        channels: Sequence[PositiveInt],
        num_classes: Annotated[int, Ge(2)],
        kernel_size: PositiveInt = 4,
        pool: PositiveInt = 2,
        upsample: Literal["nearest", "bilinear", "bicubic"] = "nearest",
        strength: Fraction = 0.2,
        steps: Annotated[int, Ge(2)] = 5,  # IOR is read at step T-1
        ior_threshold: Annotated[float, Interval(ge=-1, le=1)] = 0.5,
    ) -> None:
        super().__init__()
        check_arguments(GatingNet, {"strength": strength, "steps": steps})
        self.in_channels = in_channels
        self.input_size = tuple(int(s) for s in input_size)
        self.channels = [int(c) for c in channels]
        self.num_classes = num_classes
        self.pool = pool
        self.upsample = upsample
        self.strength = float(strength)
        self.steps = steps
        self.ior_threshold = ior_threshold

        ins = [in_channels, *self.channels[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, kernel_size) for i, o in zip(ins, self.channels))
        # Stage i's gate multiplies that stage's input: 1 channel for the image, c_{i-1} after.
        gate_channels = [1, *self.channels[:-1]]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(2 * c, g, kernel_size) for c, g in zip(self.channels, gate_channels)
        )
        self.conv_sizes, self.pooled_sizes = self._stage_sizes(kernel_size)
        top_c = self.channels[-1]
        top_h, top_w = self.pooled_sizes[-1]
        if top_h < 1 or top_w < 1:
            raise ValueError(f"input_size {self.input_size} is too small for {len(channels)} stages")
        self.classifier = nn.Linear(top_c * top_h * top_w, num_classes)
        self.feedback = nn.Linear(num_classes, top_c * top_h * top_w)
        self.gate_shapes = [(1, *self.input_size)] + [
            (c, *s) for c, s in zip(self.channels[:-1], self.pooled_sizes[:-1])
        ]

    def _stage_sizes(self, k: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        conv_sizes, pooled_sizes = [], []
        h, w = self.input_size
        for _ in self.channels:
            h, w = h - k + 1, w - k + 1
            conv_sizes.append((h, w))
            h, w = h // self.pool, w // self.pool
            pooled_sizes.append((h, w))
        return conv_sizes, pooled_sizes

    def initial_state(self, x: Tensor) -> list[Tensor]:
        """Zero gates (an ungated first step) or zero IOR masks for a batch like ``x``."""
        return [x.new_zeros(x.shape[0], *shape) for shape in self.gate_shapes]

    def _up(self, t: Tensor, size: tuple[int, int]) -> Tensor:
        if self.upsample == "nearest":
            return F.interpolate(t, size=size, mode="nearest")
        return F.interpolate(t, size=size, mode=self.upsample, align_corners=False)

    def step(self, x: Tensor, gates: list[Tensor], feedback: bool = True) -> StepOutput:
        """One feed-forward pass with ``gates`` applied, then the top-down pass.

        Args:
            x: B×C×H×W input in [0, 1].
            gates: per stage, gates from the previous step (shapes in ``gate_shapes``).
            feedback: compute the next gates (the last step of a glimpse does not need them).
        """
        s = self.strength
        gated_input = x * (1 - s * gates[0])  # 1-channel gate broadcast over colour channels
        h = gated_input
        conv_outputs, pooled = [], []
        for i, conv in enumerate(self.convs):
            if i > 0:
                h = h * (1 - s * gates[i])
            c = F.relu(conv(h))
            conv_outputs.append(c)
            h = F.max_pool2d(c, self.pool)
            pooled.append(h)
        logits = self.classifier(h.flatten(1))
        if not feedback:
            return StepOutput(logits, gated_input, [], conv_outputs)

        top = torch.tanh(self.feedback(logits)).view_as(h)
        new_gates: list[Tensor] = [x] * len(self.convs)
        for i in reversed(range(len(self.convs))):
            size = self.conv_sizes[i]
            z = torch.cat([self._up(top, size), self._up(pooled[i], size)], dim=1)
            top = torch.tanh(self.deconvs[i](z))
            new_gates[i] = top
        return StepOutput(logits, gated_input, new_gates, conv_outputs)

    def glimpse(self, x: Tensor, ior: list[Tensor] | None = None) -> GlimpseOutput:
        """Run ``steps`` recurrent steps from zero gates with inhibition of return.

        Every new gate is overridden to 1 (full suppression) where ``ior`` is set. The IOR
        update marks locations whose gate going into the last step is below ``ior_threshold``.

        Args:
            x: B×C×H×W input.
            ior: per stage, binary masks shaped like the gates (``None``: nothing visited).
        """
        ior = self.initial_state(x) if ior is None else ior
        gates = self.initial_state(x)
        new_ior = ior
        for t in range(self.steps):
            if t == self.steps - 1:
                new_ior = [torch.maximum(m, (g < self.ior_threshold).to(m.dtype)) for m, g in zip(ior, gates)]
            last = t == self.steps - 1
            out = self.step(x, gates, feedback=not last)
            if not last:
                gates = [g * (1 - m) + m for g, m in zip(out.gates, ior)]
        new_ior = [m.detach() for m in new_ior]
        return GlimpseOutput(out.logits, out.gated_input, gates, out.conv_outputs, new_ior)

    def forward(self, x: Tensor, glimpses: int = 2) -> Tensor:
        """Logits for ``glimpses`` successive glimpses, B×glimpses×classes (inference helper)."""
        ior, logits = None, []
        for _ in range(glimpses):
            out = self.glimpse(x, ior)
            ior = out.ior
            logits.append(out.logits)
        return torch.stack(logits, dim=1)
