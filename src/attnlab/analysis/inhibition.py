"""Inhibition analysis: input-gate values on vs off the attended object.

For every test image and glimpse, the input gate going into the last step (``g1`` after step T−1)
is averaged over the attended object's pixels ("attended") and over all other pixels ("not
attended": background, the other objects, and locations forced to 1 by inhibition of return).
Per image the two means are averaged over glimpses, then compared over images with a paired
t-test (the reference's ``graphs.inhibition_plot``). A gate is an inhibition map: high = suppressed.

Gain: the input is multiplied by 1 − s·g, so the mean gates give the mean gain on and off the
attended object, 1 − s·ḡ (linear in g, so the mean of the gain is the gain of the mean), and their
ratio: how much more of the attended object than of the rest reaches the first convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Ge
from scipy import stats

from attnlab.models.gating.evaluation import object_mask
from attnlab.models.gating.module import run_glimpses
from attnlab.utils.config import PositiveInt, UserError

__all__ = ["InhibitionAnalysis", "gate_means", "summarize_inhibition"]


@torch.inference_mode()
def gate_means(
    net, loader, glimpses: int, device: str | torch.device = "cpu", max_images: int | None = None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean input gate on (attended) and off (not attended) the attended object.

    Returns:
        two arrays glimpses×N (NaN where a region is empty).
    """
    from tqdm import tqdm

    attended, not_attended = [], []
    seen = 0
    net = net.to(device).eval()
    for x, targets, labels in tqdm(loader, desc="inhibition", unit="batch", disable=None if progress else True):
        if max_images is not None and seen >= max_images:
            break
        x, targets, labels = x.to(device), targets.to(device), labels.to(device)
        at, na = [], []
        for r in run_glimpses(net, x, targets, labels, glimpses):
            gate = r.output.gates[0][:, 0].double()  # B×H×W, the gate the last step used
            on = object_mask(x, r.target_image, net.strength)
            off = ~on
            at.append((gate * on).flatten(1).sum(1) / on.flatten(1).sum(1))  # 0/0 -> NaN when empty
            na.append((gate * off).flatten(1).sum(1) / off.flatten(1).sum(1))
        attended.append(torch.stack(at).cpu().numpy())
        not_attended.append(torch.stack(na).cpu().numpy())
        seen += x.shape[0]
    if not attended:
        raise UserError("inhibition analysis: the data split is empty")
    a, n = np.concatenate(attended, axis=1), np.concatenate(not_attended, axis=1)
    if max_images is not None:
        a, n = a[:, :max_images], n[:, :max_images]
    return a, n


def _describe(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        "median": float(np.median(values)),
        "n": int(len(values)),
    }


def summarize_inhibition(
    attended: np.ndarray, not_attended: np.ndarray, strength: float | None = None
) -> dict[str, Any]:
    """Means ± SD per image (glimpse-averaged) and per glimpse, and the paired t-test.

    Args:
        attended, not_attended: glimpses×N mean gates (:func:`gate_means`).
        strength: the gate strength s; when given, adds ``gain`` (mean 1 − s·g on and off the
            attended object over images, and the mean per-image ratio on/off).
    """
    with np.errstate(invalid="ignore"):
        a_img, n_img = np.nanmean(attended, axis=0), np.nanmean(not_attended, axis=0)
    both = np.isfinite(a_img) & np.isfinite(n_img)
    out: dict[str, Any] = {
        "attended": _describe(a_img),
        "not_attended": _describe(n_img),
        "images": int(attended.shape[1]),
        "per_glimpse": [
            {"glimpse": k + 1, "attended": _describe(attended[k]), "not_attended": _describe(not_attended[k])}
            for k in range(attended.shape[0])
        ],
    }
    if both.sum() >= 2:
        t = stats.ttest_rel(n_img[both], a_img[both])
        diff = n_img[both] - a_img[both]
        out["paired_t_test"] = {
            "t": float(t.statistic),
            "p": float(t.pvalue),
            "df": int(both.sum() - 1),
            "mean_difference": float(diff.mean()),
            "cohens_dz": float(diff.mean() / diff.std(ddof=1)),
        }
    else:
        out["paired_t_test"] = None  # fewer than two images: no test (the reference divided by zero)
    out["fraction_images_attended_lower"] = float((a_img[both] < n_img[both]).mean()) if both.any() else None
    if strength is not None:
        gain_on, gain_off = 1 - strength * a_img[both], 1 - strength * n_img[both]
        out["gain"] = {
            "strength": float(strength),
            "attended": _describe(gain_on),
            "not_attended": _describe(gain_off),
            "ratio": _describe(gain_on / gain_off),
        }
    return out


@dataclass
class InhibitionAnalysis:
    """``analysis=inhibition``: histogram + numbers of input-gate values on vs off the attended object.

    Args:
        split: data split to analyse.
        max_images: analyse at most this many images (null: the whole split).
        bins: histogram bins.
    """

    split: Literal["train", "val", "test"] = "test"
    max_images: PositiveInt | None = None
    bins: Annotated[int, Ge(2)] = 50
    name: str = field(default="inhibition", init=False)
    needs_model: bool = field(default=True, init=False)

    def run(self, module, datamodule, out_dir: Path, device: str = "cpu") -> dict[str, Any]:
        from attnlab.viz.inhibition import plot_inhibition

        datamodule.setup("test" if self.split == "test" else "fit")
        loader = getattr(datamodule, f"{self.split}_dataloader")()
        attended, not_attended = gate_means(module.net, loader, module.glimpses, device, self.max_images)
        results = summarize_inhibition(attended, not_attended, strength=float(module.net.strength))
        results["split"] = self.split
        results["figure"] = str(
            plot_inhibition(
                np.nanmean(attended, axis=0),
                np.nanmean(not_attended, axis=0),
                Path(out_dir) / "inhibition.png",
                bins=self.bins,
            )
        )
        np.savez_compressed(Path(out_dir) / "inhibition_values.npz", attended=attended, not_attended=not_attended)
        return results

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        a, n, t = results["attended"], results["not_attended"], results["paired_t_test"]
        lines = [
            f"input gate, attended:     {a['mean']:.4f} ± {a['sd']:.4f} (n={a['n']})",
            f"input gate, not attended: {n['mean']:.4f} ± {n['sd']:.4f}",
        ]
        if t:
            lines.append(f"paired t-test: t={t['t']:.1f}, p={t['p']:.3g}, df={t['df']}")
        gain = results.get("gain")
        if gain:
            lines.append(
                f"input gain 1 - s*g (s={gain['strength']:g}): attended {gain['attended']['mean']:.4f}, "
                f"not attended {gain['not_attended']['mean']:.4f}, ratio {gain['ratio']['mean']:.4f}"
            )
        return lines
