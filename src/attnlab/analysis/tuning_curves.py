"""Orientation tuning of conv units with and without attention (spec §5), quantified.

Stimuli: an oriented Gaussian bar on the left of the MultiMNIST canvas beside a distractor digit on
the right (no clamp, no noise), over a grid of orientations, widths and positions. The 2-glimpse loop
runs on each; in the glimpse that selects the bar the sample counts as "attended", in the other as
"not attended". Per orientation, each unit's response (conv output after ReLU, before pooling, at
the last step) is the maximum over all samples of the group, giving one attended and one unattended
tuning curve per unit.

The reference only plotted these curves. Here the two claims are measured over every unit that
responds and is tuned in both conditions:

- attention-invariant tuning: Pearson correlation of the peak-normalised attended and unattended
  curves (and their mean absolute difference);
- attention-mediated scaling: the gain, the least-squares slope through the origin of attended vs
  unattended responses across orientations (> 1: attention scales responses up), with the OLS slope
  and intercept alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Sequence

import numpy as np
import torch
from PIL import Image

from attnlab.models.gating.module import run_glimpses
from attnlab.utils.config import Check, Fraction, NonNegativeInt, PositiveInt, UserError

# [start, stop, count] of numpy.linspace
Grid = Annotated[
    tuple[float, float, float], Check(lambda v: int(v[2]) >= 1 and float(v[2]) == int(v[2]), "[start, stop, count]")
]

__all__ = ["TuningCurveAnalysis", "bar_stimuli", "gaussian_bar", "place_bar", "tuning_statistics", "unit_statistics"]

BAR_LENGTH = 20  # columns of the unrotated bar
DIGIT = 28


def gaussian_bar(sigma: float, height: int = DIGIT, length: int = BAR_LENGTH) -> np.ndarray:
    """A horizontal bar, height×length: a Gaussian profile over rows (σ in units of linspace(−10, 10))."""
    t = np.linspace(-10, 10, height)
    profile = np.exp(-0.5 * (t / sigma) ** 2)  # the pdf up to a constant
    profile /= profile.max()  # peak-normalised: the grid misses 0, so the sampled peak is below the pdf's
    return np.repeat(profile[:, None], length, axis=1).astype(np.float32)


def rotate(bar: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre, same size, nearest neighbour (PIL, as the reference)."""
    return np.asarray(Image.fromarray(bar).rotate(degrees, resample=Image.NEAREST), dtype=np.float32)


def place_bar(bar: np.ndarray, width: int, x: float, y: float) -> np.ndarray:
    """Paste ``bar`` into a height×width canvas: out[Y, X] = bar[Y + y, X + c], c = int(−x + 10 − 21)."""
    h, w = bar.shape
    c, dy = int(-x + 10 - 21), int(round(y))
    out = np.zeros((h, width), dtype=np.float32)
    rows = np.arange(h) + dy
    cols = np.arange(width) + c
    rv, cv = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    out[np.ix_(rv, cv)] = bar[np.ix_(rows[rv], cols[cv])]
    return out


def bar_stimuli(
    degrees: float, sigmas: Sequence[float], xs: Sequence[float], ys: Sequence[float], width: int
) -> np.ndarray:
    """All bars of one orientation, len(sigmas)·len(xs)·len(ys) × 28 × width."""
    bars = []
    for sigma in sigmas:
        rotated = rotate(gaussian_bar(sigma), degrees)
        bars += [place_bar(rotated, width, x, y) for x in xs for y in ys]
    return np.stack(bars)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def unit_statistics(attended: np.ndarray, unattended: np.ndarray, min_modulation: float = 0.1) -> dict[str, np.ndarray]:
    """Per-unit statistics of tuning curves O×U (orientations × units).

    Returns arrays over units: ``r`` (correlation of peak-normalised curves), ``shape_diff`` (mean
    |difference| of peak-normalised curves), ``gain`` (slope through the origin of attended on
    unattended), ``slope``/``intercept`` (OLS), and ``valid``: the unit responds in both conditions
    and both curves are tuned, (max − min) ≥ ``min_modulation``·max (flat curves have no shape).
    """
    a, u = attended.astype(np.float64), unattended.astype(np.float64)
    a_peak, u_peak = a.max(0), u.max(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tuned = ((a_peak - a.min(0)) >= min_modulation * a_peak) & ((u_peak - u.min(0)) >= min_modulation * u_peak)
    valid = (a_peak > 0) & (u_peak > 0) & (a.std(0) > 1e-12) & (u.std(0) > 1e-12) & tuned
    with np.errstate(invalid="ignore", divide="ignore"):
        an, un = a / a_peak, u / u_peak
        r = _pearson(an, un)
        shape_diff = np.abs(an - un).mean(0)
        gain = (a * u).sum(0) / (u * u).sum(0)
        uc = u - u.mean(0)
        slope = (uc * (a - a.mean(0))).sum(0) / (uc * uc).sum(0)
        intercept = a.mean(0) - slope * u.mean(0)
    return {"r": r, "shape_diff": shape_diff, "gain": gain, "slope": slope, "intercept": intercept, "valid": valid}


def _distribution(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0}
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return {
        "n": int(len(values)),
        "mean": float(values.mean()),
        "sd": float(values.std()),
        "p5": float(q[0]),
        "q25": float(q[1]),
        "median": float(q[2]),
        "q75": float(q[3]),
        "p95": float(q[4]),
    }


def tuning_statistics(attended: np.ndarray, unattended: np.ndarray, min_modulation: float = 0.1) -> dict[str, Any]:
    """Distributions of the two claims over units (columns of O×U curves) that respond and are tuned."""
    s = unit_statistics(attended, unattended, min_modulation)
    v = s["valid"]
    r, gain = s["r"][v], s["gain"][v]
    return {
        "units": int(len(v)),
        "units_analysed": int(v.sum()),
        "min_modulation": float(min_modulation),
        "invariant_tuning": {
            "r": _distribution(r),
            "fraction_r_above_0.9": float((r > 0.9).mean()) if len(r) else None,
            "fraction_r_above_0.5": float((r > 0.5).mean()) if len(r) else None,
            "shape_difference": _distribution(s["shape_diff"][v]),
        },
        "scaling": {
            "gain": _distribution(gain),
            "fraction_gain_above_1": float((gain > 1).mean()) if len(gain) else None,
            "ols_slope": _distribution(s["slope"][v]),
            "ols_intercept": _distribution(s["intercept"][v]),
        },
    }


@torch.inference_mode()
def tuning_responses(
    net,
    distractor: np.ndarray,
    orientations: np.ndarray,
    sigmas,
    xs,
    ys,
    glimpses: int = 2,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Max responses per orientation, attended and unattended, per layer: O×C×H×W arrays."""
    from tqdm import tqdm

    height, width = net.input_size
    if net.in_channels != 1 or height != DIGIT:
        raise UserError(
            f"tuning curves need a 1-channel MultiMNIST gating net (28×W input); got {net.in_channels}×{height}×{width}"
        )
    digit = np.zeros((height, width), dtype=np.float32)
    digit[:, width - DIGIT :] = distractor
    s = net.strength
    net = net.to(device).eval()
    n_layers = len(net.channels)
    att = [np.zeros((len(orientations), c, *hw), dtype=np.float32) for c, hw in zip(net.channels, net.conv_sizes)]
    unatt = [a.copy() for a in att]
    counts = np.zeros((len(orientations), 2), dtype=np.int64)
    for o, degrees in enumerate(tqdm(orientations, desc="tuning curves", unit="orientation", disable=None)):
        bars = torch.from_numpy(bar_stimuli(degrees, sigmas, xs, ys, width))
        d = torch.from_numpy(digit).expand_as(bars)
        for start in range(0, len(bars), batch_size):
            bar, dig = bars[start : start + batch_size].to(device), d[start : start + batch_size].to(device)
            x = (bar + dig).unsqueeze(1)
            targets = torch.stack([(1 - s) * x + s * bar.unsqueeze(1), (1 - s) * x + s * dig.unsqueeze(1)], dim=1)
            labels = torch.zeros(len(x), 2, dtype=torch.long, device=device)
            for r in run_glimpses(net, x, targets, labels, glimpses):
                on_bar = (r.selected == 0).cpu().numpy()
                counts[o] += [on_bar.sum(), (~on_bar).sum()]
                for layer in range(n_layers):
                    out = r.output.conv_outputs[layer].cpu().numpy()
                    for mask, store in ((on_bar, att), (~on_bar, unatt)):
                        if mask.any():
                            np.maximum(store[layer][o], out[mask].max(0), out=store[layer][o])
    if (counts == 0).any():
        empty = [float(orientations[i]) for i in np.flatnonzero((counts == 0).any(1))]
        raise UserError(f"tuning curves: an attention group is empty at orientations {empty} (no curve there)")
    return att, unatt


@dataclass
class TuningCurveAnalysis:
    """``analysis=tuning_curves``: orientation tuning of conv units, attended vs unattended.

    Args:
        orientations, sigmas, xs, ys: the stimulus grid as [start, stop, count] (numpy linspace).
        distractor_index: index of the distractor digit in the training split.
        units: per layer, the (row, column) of the unit plotted per channel (spec: (12, 8), (4, 3)).
        unit_plots: save one plot per channel and layer.
        min_modulation: units enter the statistics when both curves vary by at least this fraction
            of their peak over orientations.
        batch_size: stimuli per forward pass.
    """

    orientations: Grid = (0.0, 180.0, 21)
    sigmas: Grid = (0.5, 2.0, 6)
    xs: Grid = (-15.0, -10.0, 11)
    ys: Grid = (-10.0, 10.0, 11)
    distractor_index: NonNegativeInt = 6
    units: Sequence[Sequence[NonNegativeInt]] = ((12, 8), (4, 3))
    unit_plots: bool = True
    min_modulation: Fraction = 0.1
    batch_size: PositiveInt = 256
    name: str = field(default="tuning_curves", init=False)
    needs_model: bool = field(default=True, init=False)

    @staticmethod
    def _grid(spec: Sequence[float]) -> np.ndarray:
        start, stop, count = spec
        return np.linspace(float(start), float(stop), int(count))

    def run(self, module, datamodule, out_dir: Path, device: str = "cpu") -> dict[str, Any]:
        from attnlab.viz.tuning_curves import plot_tuning_summary, plot_unit_curves

        net = module.net
        datamodule.setup("fit")
        digits = getattr(datamodule, "datasets", {}).get("train")
        if digits is None or not hasattr(digits, "digits"):
            raise UserError("tuning curves need MultiMNIST data (data=multimnist) for the distractor digit")
        if not 0 <= self.distractor_index < len(digits.digits):
            raise UserError(
                f"analysis.distractor_index={self.distractor_index} is outside the {len(digits.digits)} training digits"
            )
        distractor = digits.digits.images[self.distractor_index].numpy()
        orientations = self._grid(self.orientations)
        sigmas, xs, ys = self._grid(self.sigmas), self._grid(self.xs), self._grid(self.ys)
        att, unatt = tuning_responses(
            net, distractor, orientations, sigmas, xs, ys, module.glimpses, self.batch_size, device
        )
        out_dir = Path(out_dir)
        results: dict[str, Any] = {
            "stimuli_per_orientation": int(len(sigmas) * len(xs) * len(ys)),
            "orientations": orientations.tolist(),
            "distractor_label": int(digits.digits.labels[self.distractor_index]),
            "layers": {},
        }
        for layer, (a, u) in enumerate(zip(att, unatt)):
            name = f"conv{layer + 1}"
            o, c, h, w = a.shape
            all_units = tuning_statistics(a.reshape(o, -1), u.reshape(o, -1), self.min_modulation)
            layer_results: dict[str, Any] = {"all_units": all_units}
            if layer < len(self.units):
                row, col = (int(v) for v in self.units[layer])
                if not (0 <= row < h and 0 <= col < w):
                    raise UserError(f"analysis.units[{layer}]=({row}, {col}) is outside {name}'s {h}×{w} map")
                ca, cu = a[:, :, row, col], u[:, :, row, col]
                layer_results["plotted_unit"] = {
                    "position": [row, col],
                    **tuning_statistics(ca, cu, self.min_modulation),
                }
                if self.unit_plots:
                    plot_unit_curves(orientations, ca, cu, out_dir / "tuning_curves" / name)
            results["layers"][name] = layer_results
        np.savez_compressed(
            out_dir / "tuning_curves.npz",
            orientations=orientations,
            **{f"conv{i + 1}_attended": a for i, a in enumerate(att)},
            **{f"conv{i + 1}_unattended": u for i, u in enumerate(unatt)},
        )
        stats_per_layer = {
            f"conv{i + 1}": unit_statistics(
                a.reshape(len(orientations), -1), u.reshape(len(orientations), -1), self.min_modulation
            )
            for i, (a, u) in enumerate(zip(att, unatt))
        }
        results["figure"] = str(plot_tuning_summary(stats_per_layer, out_dir / "tuning_summary.png"))
        return results

    @staticmethod
    def summary(results: dict[str, Any]) -> list[str]:
        lines = []
        for name, layer in results["layers"].items():
            s = layer["all_units"]
            r, g = s["invariant_tuning"]["r"], s["scaling"]["gain"]
            if not r.get("n"):
                lines.append(f"{name}: no unit responds and is tuned in both conditions")
                continue
            lines.append(
                f"{name}: {s['units_analysed']}/{s['units']} units; tuning r median {r['median']:.3f} "
                f"(IQR {r['q25']:.3f}-{r['q75']:.3f}); gain median {g['median']:.3f} "
                f"(IQR {g['q25']:.3f}-{g['q75']:.3f}), gain > 1 in {100 * s['scaling']['fraction_gain_above_1']:.1f}%"
            )
        return lines
