"""What SALICON, DINet and TranSalNet share: a feature map f, optional bases, a head and a readout.

    f = features(x)                          B×D×h×w
    baseline (bases=0):  logits = head(f)
    phase 1:             P = σ(W f),  logits = head(Σ_k p_k w_k)
    phase 2:             P = σ(W f),  logits = basis_head(P)     (a 3×3 conv K→1, the only trained part)
    saliency = readout(logits)               B×1×H_out×W_out in (0, 1)
    with a log-prior (the centre bias, :mod:`.prior`):
    saliency = softmax_pixels(resize(logits) + log_prior)   B×1×H_out×W_out, sums to 1 (DeepGaze's readout)

In phase 2 every module but ``basis_head`` is frozen and kept in eval mode, so BatchNorm statistics
cannot drift away from the phase-1 model whose P maps the dissection analyses.
"""

from __future__ import annotations

import typing
from typing import Literal, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.saliency.factorization import Bases
from attnlab.utils.config import NonNegativeInt, Size2, UserError, check_arguments

__all__ = [
    "FactorizedSaliencyNet",
    "OutputStride",
    "Phase",
    "UpsampleMode",
    "resize",
    "UPSAMPLE_MODES",
    "BASES",
    "PHASE",
]

Phase = Literal[1, 2]  # 1: train through the reconstruction; 2: only the head over the K probability maps
# the factorisation's defaults, for every saliency net and the module: K bases, training phase 1
BASES = 512
PHASE: Phase = 1
UpsampleMode = Literal["bilinear", "nearest"]  # nearest: the reference code's
OutputStride = Literal[8, 16, 32]
UPSAMPLE_MODES = typing.get_args(UpsampleMode)


def resize(x: Tensor, size: Sequence[int], mode: str = "bilinear") -> Tensor:
    """Resize B×C×h×w to B×C×size; a no-op when the size already matches."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class FactorizedSaliencyNet(nn.Module):
    """Base class; a subclass builds its encoder, implements :meth:`features` and :meth:`make_head`,
    and calls :meth:`add_heads` with its feature width D at the end of ``__init__``.

    Args:
        bases: K, number of bases (0: the unfactorised baseline model).
        phase: 1 (train everything through the bases) or 2 (train only a conv over P).
        output_size: (H, W) of the saliency map; None: the input's size.
        upsample: "bilinear" (default) or "nearest" (the reference, for exact reproduction); used
            for the readout and every internal resize.
        sigmoid_first: apply the sigmoid before resizing the logits (SALICON, DINet) or after
            (TranSalNet).
    """

    def __init__(
        self,
        bases: NonNegativeInt = BASES,
        phase: Phase = PHASE,
        output_size: Optional[Size2] = None,
        upsample: UpsampleMode = "bilinear",
        sigmoid_first: bool = True,
    ) -> None:
        super().__init__()
        check_arguments(FactorizedSaliencyNet, {"bases": bases, "phase": phase, "upsample": upsample})
        if phase == 2 and bases == 0:
            raise UserError(
                f"model bases={bases} is not allowed in phase 2; expected K >= 1 (0 is the phase-1 baseline)"
            )
        self.num_bases, self.phase = int(bases), int(phase)
        self.output_size = tuple(int(s) for s in output_size) if output_size else None
        self.upsample, self.sigmoid_first = upsample, bool(sigmoid_first)
        self.feature_dim: int | None = None

    # --- to implement -----------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """B×3×H×W → f, B×D×h×w."""
        raise NotImplementedError

    def make_head(self, factorized: bool) -> nn.Module:
        """The model's own head over D channels, producing B×1×h×w logits."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------
    def add_heads(self, feature_dim: int) -> None:
        """Create the bases and the phase's head; in phase 2 freeze everything else."""
        self.feature_dim = int(feature_dim)
        self.bases = Bases(self.num_bases, self.feature_dim) if self.num_bases else None
        if self.phase == 1:
            self.head = self.make_head(factorized=self.bases is not None)
        else:
            self.basis_head = nn.Conv2d(self.num_bases, 1, 3, padding=1, bias=False)
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("basis_head."))
        # apply the frozen modes now: Lightning (>= 2.2) keeps the modes a model is built with
        # instead of calling .train() when fitting starts
        self.train(self.training)

    def train(self, mode: bool = True) -> "FactorizedSaliencyNet":
        super().train(mode)
        if self.phase == 2:
            for name, child in self.named_children():
                if name != "basis_head":
                    child.eval()
        return self

    def probabilities(self, x: Tensor) -> Tensor:
        """The basis probability maps P, B×K×h×w (the reference's ``probe=True``)."""
        if self.bases is None:
            raise UserError("this model has no bases (model.bases=0); dissection needs a factorised model")
        return self.bases.probabilities(self.features(x))

    def logits(self, x: Tensor) -> Tensor:
        """B×3×H×W → saliency logits at feature resolution, B×1×h×w."""
        f = self.features(x)
        if self.bases is None:
            return self.head(f)
        p, f_hat = self.bases(f)
        return self.head(f_hat) if self.phase == 1 else self.basis_head(p)

    def readout(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        if self.sigmoid_first:
            return resize(logits.sigmoid(), size, self.upsample)
        return resize(logits, size, self.upsample).sigmoid()

    def output_shape(self, x: Tensor) -> tuple[int, int]:
        """(H_out, W_out) of the saliency map for input ``x``."""
        return tuple(int(s) for s in (self.output_size or x.shape[-2:]))

    def forward(self, x: Tensor, log_prior: Optional[Tensor] = None) -> Tensor:
        """B×3×H×W (ImageNet-normalised) → saliency B×1×H_out×W_out in (0, 1).

        With ``log_prior`` (H_out×W_out, see :meth:`output_shape`) the logits are resized to the
        output, the prior is added and a softmax over the pixels makes each map a distribution.
        """
        size = self.output_shape(x)
        if log_prior is None:
            return self.readout(self.logits(x), size)
        z = resize(self.logits(x), size, self.upsample) + log_prior.to(x.dtype)
        return z.flatten(1).softmax(1).view_as(z)
