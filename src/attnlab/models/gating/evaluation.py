"""Evaluation of the gating model: classification per glimpse and where the input gate attends.

Classification is scored against the object each glimpse actually attended (the nearest target, as
in the reference): accuracy, balanced accuracy (mean recall over the classes present, as
``sklearn.metrics.balanced_accuracy_score``) and macro F1 (mean over classes that occur in targets
or predictions, as ``sklearn.metrics.f1_score(average="macro")``), per glimpse and over all glimpses.

Object-attention IoU, which the reference never measured: the input gate going into the last step,
thresholded (``gate < threshold`` = let through, i.e. attended), against the attended object's mask.
The mask is recovered from the object's target: t = (1−s)·x + s·d with d the object's pixels, so a
pixel belongs to the object where d ≥ x/2 — the complement of the reference's off-object set.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from attnlab.models.gating.intervals import summarize
from attnlab.utils.io import write_csv, write_json

__all__ = [
    "GlimpseMetrics",
    "accuracy",
    "attention_iou",
    "balanced_accuracy",
    "macro_f1",
    "object_mask",
]

EPS = 1e-6


def accuracy(confmat: Tensor) -> Tensor:
    """Fraction correct from a C×C confusion matrix (rows = true class, columns = predicted)."""
    total = confmat.sum()
    return confmat.diagonal().sum() / total if total > 0 else confmat.new_tensor(float("nan"), dtype=torch.float)


def balanced_accuracy(confmat: Tensor) -> Tensor:
    """Mean recall over the classes that occur as targets."""
    confmat = confmat.double()
    support = confmat.sum(1)
    present = support > 0
    if not present.any():
        return torch.tensor(float("nan"))
    return (confmat.diagonal()[present] / support[present]).mean().float()


def macro_f1(confmat: Tensor) -> Tensor:
    """Mean F1 over the classes that occur as targets or predictions (F1 = 0 for a class never right)."""
    confmat = confmat.double()
    tp = confmat.diagonal()
    support, predicted = confmat.sum(1), confmat.sum(0)
    present = (support + predicted) > 0
    if not present.any():
        return torch.tensor(float("nan"))
    f1 = 2 * tp / (support + predicted).clamp_min(1)
    return f1[present].mean().float()


def object_mask(x: Tensor, target: Tensor, strength: float) -> Tensor:
    """Pixels of the object a target was built for, B×H×W bool.

    Args:
        x: B×C×H×W input. target: B×C×H×W, (1−s)·x + s·(object pixels). strength: s.
    """
    x_sum, t_sum = x.sum(1), target.sum(1)
    off = ((x_sum - t_sum + EPS) / (x_sum + EPS)) / strength > 0.5
    return ~off


def attention_iou(gate: Tensor, mask: Tensor, threshold: float = 0.5) -> Tensor:
    """IoU of the attended region (``gate < threshold``) with ``mask``, per image.

    Args:
        gate: B×1×H×W (or B×H×W) input gate. mask: B×H×W bool.

    Returns:
        B IoUs; NaN where both regions are empty.
    """
    attended = gate.reshape(mask.shape) < threshold
    inter = (attended & mask).flatten(1).sum(1).float()
    union = (attended | mask).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))


class GlimpseMetrics(Metric):
    """Confusion matrix per glimpse and object-attention IoU, accumulated over an epoch (DDP-safe).

    Args:
        num_classes: number of logits.
        glimpses: glimpses per image.
        strength: gate strength s (recovers object masks from targets).
        gate_threshold: gates below it count as attended (the IOR threshold).
    """

    full_state_update = False

    def __init__(self, num_classes: int, glimpses: int, strength: float, gate_threshold: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.glimpses = int(num_classes), int(glimpses)
        self.strength, self.gate_threshold = float(strength), float(gate_threshold)
        self.add_state("confmat", torch.zeros(glimpses, num_classes, num_classes, dtype=torch.long), "sum")
        self.add_state("iou_sum", torch.zeros(glimpses, dtype=torch.double), "sum")
        self.add_state("iou_count", torch.zeros(glimpses, dtype=torch.long), "sum")
        # per image (B×glimpses each), for bootstrap intervals over images and the per-image CSV
        for name in ("sample_target", "sample_pred", "sample_iou", "sample_mask_fraction"):
            self.add_state(name, [], "cat")

    def update(self, x: Tensor, glimpse_results: Sequence) -> None:  # GlimpseResult, from module.py
        """Add one batch: ``x`` B×C×H×W and the glimpse loop's results."""
        c = self.num_classes
        per_image: dict[str, list[Tensor]] = {"target": [], "pred": [], "iou": [], "mask_fraction": []}
        for k, r in enumerate(glimpse_results):
            pred = r.output.logits.argmax(1)
            index = r.target_class * c + pred
            self.confmat[k] += torch.bincount(index, minlength=c * c).view(c, c)
            mask = object_mask(x, r.target_image, self.strength)
            iou = attention_iou(r.output.gates[0], mask, self.gate_threshold)
            valid = ~torch.isnan(iou)
            self.iou_sum[k] += iou[valid].double().sum()
            self.iou_count[k] += valid.sum()
            for name, value in (
                ("target", r.target_class),
                ("pred", pred),
                ("iou", iou),
                ("mask_fraction", mask.flatten(1).float().mean(1)),
            ):
                per_image[name].append(value.detach().double())
        for name, values in per_image.items():
            getattr(self, f"sample_{name}").append(torch.stack(values, 1))  # B×glimpses

    def samples(self) -> dict[str, np.ndarray]:
        """Per-image records as glimpses×N NumPy arrays: target, pred (int), iou, mask_fraction.

        These are this process's records; under DDP call it inside ``metric.sync_context()`` for all
        processes' records (as :func:`log_epoch_metrics` does).
        """
        out = {}
        for name in ("target", "pred", "iou", "mask_fraction"):
            state = getattr(self, f"sample_{name}")
            if isinstance(state, list):  # not yet synchronised into one tensor
                state = torch.cat(state) if state else torch.zeros(0, self.glimpses, dtype=torch.double)
            values = state.cpu().numpy().T
            out[name] = values.astype(np.int64) if name in ("target", "pred") else values
        return out

    def compute(self) -> dict[str, Tensor]:
        """``acc``, ``bacc``, ``f1``, ``iou`` over all glimpses and with suffix ``_g{k}`` per glimpse."""
        out: dict[str, Tensor] = {}
        for k in range(self.glimpses):
            out |= self._scores(self.confmat[k], self.iou_sum[k], self.iou_count[k], f"_g{k + 1}")
        out |= self._scores(self.confmat.sum(0), self.iou_sum.sum(), self.iou_count.sum(), "")
        return out

    @staticmethod
    def _scores(confmat: Tensor, iou_sum: Tensor, iou_count: Tensor, suffix: str) -> dict[str, Tensor]:
        iou = (iou_sum / iou_count).float() if iou_count > 0 else torch.tensor(float("nan"))
        return {
            f"acc{suffix}": accuracy(confmat).float(),
            f"bacc{suffix}": balanced_accuracy(confmat),
            f"f1{suffix}": macro_f1(confmat),
            f"iou{suffix}": iou,
        }


def log_epoch_metrics(module, stage: str) -> dict[str, float]:
    """Log a GatingModule's epoch metrics for ``stage`` (val/test), reset them, and save the test
    confusion matrix (all glimpses) as ``confusion_matrix_test.png`` in the trainer's root folder.

    For the test stage also: a bootstrap interval over images and the chance level of every score
    (logged as ``test/<score>_ci_low``, ``_ci_high``, ``_chance``; see :mod:`.intervals`), and, in the
    root folder, ``test_intervals.json`` and ``test_per_image.csv`` (one row per image and glimpse).

    Accuracy is not logged again here: the module already logs it per batch, averaged per epoch.
    """
    from pathlib import Path

    metric: GlimpseMetrics = module.eval_metrics[stage]
    if int(metric.confmat.sum()) == 0:
        metric.reset()
        return {}
    records = None
    if stage == "test":  # every DDP process's images (gathered, rank after rank); a no-op in one process
        with metric.sync_context():
            records = metric.samples()
    values = {k: float(v) for k, v in metric.compute().items()}
    for key, value in values.items():
        if not key.startswith("acc"):
            module.log(f"{stage}/{key}", value)
    trainer = module.trainer
    if records is not None:
        summary = summarize(
            records["target"],
            records["pred"],
            records["iou"],
            records["mask_fraction"],
            metric.num_classes,
            samples=int(getattr(module, "bootstrap_samples", 1000)),
            seed=int(getattr(module, "bootstrap_seed", 0)),
        )
        for key, entry in summary.items():
            if isinstance(entry, dict):
                for part, name in (("low", "ci_low"), ("high", "ci_high"), ("chance", "chance")):
                    module.log(f"test/{key}_{name}", entry[part])
        module.log("test/images", float(summary["images"]))
        if trainer.is_global_zero and trainer.default_root_dir:
            _write_test_records(Path(trainer.default_root_dir), summary, records)
    if stage == "test" and trainer.is_global_zero and trainer.default_root_dir:
        from attnlab.viz.confusion_matrix import save_confusion_matrix

        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        path = Path(trainer.default_root_dir) / "confusion_matrix_test.png"
        save_confusion_matrix(
            metric.confmat.sum(0).cpu().numpy(),
            names,
            path,
            title=f"test, all glimpses (balanced accuracy {values['bacc']:.3f})",
        )
    metric.reset()
    return values


def _write_test_records(folder, summary: dict, records: dict[str, np.ndarray]) -> None:
    """``test_intervals.json`` (scores, intervals, chance) and ``test_per_image.csv`` (the records the
    intervals were computed from: image = position in the test split, glimpse from 1)."""

    write_json(folder / "test_intervals.json", summary)
    glimpses, n = records["target"].shape
    rows = [
        (
            i,
            k + 1,
            int(records["target"][k, i]),
            int(records["pred"][k, i]),
            float(records["iou"][k, i]),
            float(records["mask_fraction"][k, i]),
        )
        for i in range(n)
        for k in range(glimpses)
    ]
    write_csv(folder / "test_per_image.csv", ["image", "glimpse", "target", "pred", "iou", "mask_fraction"], rows)
