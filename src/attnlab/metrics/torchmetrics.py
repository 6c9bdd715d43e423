"""The saliency metrics as torchmetrics ``Metric``s, for Lightning validation loops.

Each metric keeps the sum of its per-image values and the number of images scored (images without
fixations are skipped), so it reduces correctly across batches and DDP processes; ``compute()``
returns the mean over images, the convention of the MIT benchmark and of
``attnlab.benchmark``. All take keyword targets so one call site serves every metric::

    from attnlab.metrics.torchmetrics import saliency_metric_collection

    self.val_metrics = saliency_metric_collection(prefix="val/")          # in __init__
    self.val_metrics.update(pred, fixations=batch["fixations"], density=batch["density"])
    self.log_dict(self.val_metrics.compute())                             # on epoch end

``fixations`` = fixation counts (B×H×W), ``density`` = human density (B×H×W), ``baseline`` = the
centre-bias map for IG (H×W or B×H×W), ``nonfixations`` = negatives for sAUC (B×H×W; when omitted,
the union of the OTHER images' fixations in the same batch, an approximation of the dataset-wide
negatives that :func:`attnlab.metrics.auc.shuffled_nonfixations` builds).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torchmetrics import Metric, MetricCollection

from attnlab.metrics import saliency as S

__all__ = [
    "SaliencyMetric",
    "AUCJudd",
    "AUCBorji",
    "ShuffledAUC",
    "NSS",
    "CC",
    "KLD",
    "SIM",
    "InformationGain",
    "saliency_metric_collection",
]


class SaliencyMetric(Metric):
    """Mean over images of a per-image saliency metric; subclasses define :meth:`per_image`."""

    full_state_update = False
    higher_is_better: Optional[bool] = True
    is_differentiable = False
    needs: tuple[str, ...] = ("fixations",)

    def __init__(self, **kwargs: Any) -> None:
        self.options = {k: kwargs.pop(k) for k in list(kwargs) if k in self.option_names()}
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ()

    def per_image(self, pred: torch.Tensor, **targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, pred: torch.Tensor, **targets: Optional[torch.Tensor]) -> None:
        missing = [k for k in self.needs if targets.get(k) is None]
        if missing:
            raise ValueError(f"{type(self).__name__}.update needs {', '.join(missing)}=")
        values = self.per_image(pred.detach(), **{k: v for k, v in targets.items() if v is not None})
        ok = ~torch.isnan(values)
        self.total += values[ok].sum().to(self.total)
        self.count += ok.sum().to(self.count)
        self.skipped += (~ok).sum().to(self.skipped)

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))


class AUCJudd(SaliencyMetric):
    @classmethod
    def option_names(cls):
        return ("jitter", "seed", "variant")

    def per_image(self, pred, fixations, **_):
        return S.auc_judd(pred, fixations, **self.options)


class AUCBorji(SaliencyMetric):
    @classmethod
    def option_names(cls):
        return ("splits", "step", "seed")

    def per_image(self, pred, fixations, **_):
        return S.auc_borji(pred, fixations, **self.options)


class ShuffledAUC(SaliencyMetric):
    @classmethod
    def option_names(cls):
        return ("variant", "splits", "step", "seed")

    def per_image(self, pred, fixations, nonfixations=None, **_):
        if nonfixations is None:  # the other images of this batch
            f = torch.as_tensor(fixations, dtype=torch.float64)
            nonfixations = f.sum(0, keepdim=True) - f
        return S.auc_shuffled(pred, fixations, nonfixations, **self.options)


class NSS(SaliencyMetric):
    @classmethod
    def option_names(cls):
        return ("variant",)

    def per_image(self, pred, fixations, **_):
        return S.nss(pred, fixations, **self.options)


class InformationGain(SaliencyMetric):
    needs = ("fixations", "baseline")

    @classmethod
    def option_names(cls):
        return ("eps", "variant")

    def per_image(self, pred, fixations, baseline, **_):
        return S.information_gain(pred, fixations, baseline, **self.options)


class CC(SaliencyMetric):
    needs = ("density",)

    def per_image(self, pred, density, **_):
        return S.cc(pred, density)


class KLD(SaliencyMetric):
    needs = ("density",)
    higher_is_better = False

    @classmethod
    def option_names(cls):
        return ("eps",)

    def per_image(self, pred, density, **_):
        return S.kld(pred, density, **self.options)


class SIM(SaliencyMetric):
    needs = ("density",)

    @classmethod
    def option_names(cls):
        return ("variant",)

    def per_image(self, pred, density, **_):
        return S.sim(pred, density, **self.options)


def saliency_metric_collection(
    prefix: str = "", information_gain: bool = False, borji: bool = False
) -> MetricCollection:
    """AUC-Judd, sAUC, NSS, CC, KLD, SIM (+ IG when a baseline is passed, + AUC-Borji) under ``prefix``."""
    metrics: dict[str, Metric] = {
        "auc_judd": AUCJudd(),
        "sauc": ShuffledAUC(),
        "nss": NSS(),
        "cc": CC(),
        "kld": KLD(),
        "sim": SIM(),
    }
    if borji:
        metrics["auc_borji"] = AUCBorji()
    if information_gain:
        metrics["ig"] = InformationGain()
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)
