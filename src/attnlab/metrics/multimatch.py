"""MultiMatch (Jarodzka et al., 2010; Dewhurst et al., 2012): five-dimensional scanpath similarity.

``multimatch(a, b, image_size, simplify=False, t_amplitude=0, t_direction=0, t_duration=0)`` →
``{"vector", "direction", "length", "position", "duration"}``, each in [0, 1] (1 = identical).

Follows ``multimatch_gaze.docomparison`` (v0.1.3) step by step, so values are equal:

1. Scanpaths (x, y, duration) become saccade vectors starting at each fixation but the last.
2. Optional simplification (``simplify=True``, multimatch's ``grouping``): repeat until nothing
   changes — merge consecutive saccades whose angle is below ``t_direction`` degrees when the
   fixation between them is shorter than ``t_duration``; then merge saccades shorter than
   ``t_amplitude`` px when one adjacent fixation is shorter than ``t_duration``. The reference's
   handling of the LAST short saccade is reproduced as it is (it merges the last two original
   vectors into the previous simplified one and records one extra duration). Where the reference
   raises (a single remaining saccade that should merge), the saccade is kept instead.
3. Alignment: the cheapest monotone path (right, down, diagonal) through the matrix of vector
   differences ‖v1_i − v2_j‖ — the reference runs Dijkstra on that grid graph, here a dynamic
   programme finds the same path.
4. Along the path, the median of: vector difference / (2·diag), angle difference / π, length
   difference / diag, start-position distance / diag, |Δduration| / max duration; similarity =
   1 − each. ``diag`` = the image (screen) diagonal; ``image_size`` = (height, width).

Scanpaths with fewer than 3 fixations give NaN for all five (as the reference). Durations are in
the unit of ``t_duration`` (attnlab: ms); only their ratios enter the duration similarity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["multimatch", "has_durations", "MULTIMATCH_DIMENSIONS"]

MULTIMATCH_DIMENSIONS = ("vector", "direction", "length", "position", "duration")


@dataclass
class _Saccades:
    """Saccade vectors (start, components, length, angle) and the fixation durations around them."""

    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    dx: list = field(default_factory=list)
    dy: list = field(default_factory=list)
    rho: list = field(default_factory=list)
    theta: list = field(default_factory=list)
    dur: list = field(default_factory=list)

    @classmethod
    def from_fixations(cls, x: np.ndarray, y: np.ndarray, dur: np.ndarray) -> "_Saccades":
        dx, dy = np.diff(x), np.diff(y)
        return cls(
            list(x[:-1]), list(y[:-1]), list(dx), list(dy), list(np.hypot(dx, dy)), list(np.arctan2(dy, dx)), list(dur)
        )

    def __len__(self) -> int:
        return len(self.x)

    def keep(self, src: "_Saccades", i: int) -> None:
        """Copy saccade i of ``src`` and the duration of the fixation it starts from."""
        for name in ("x", "y", "dx", "dy", "rho", "theta"):
            getattr(self, name).append(getattr(src, name)[i])
        self.dur.append(src.dur[i])

    def merged(self, src: "_Saccades", i: int) -> None:
        """Saccades i and i+1 of ``src`` as one vector starting where i starts."""
        dx, dy = src.dx[i] + src.dx[i + 1], src.dy[i] + src.dy[i + 1]
        self.x.append(src.x[i])
        self.y.append(src.y[i])
        self.dx.append(dx)
        self.dy.append(dy)
        self.rho.append(math.hypot(dx, dy))
        self.theta.append(math.atan2(dy, dx))
        self.dur.append(src.dur[i])


def _angle_deg(ax: float, ay: float, bx: float, by: float) -> float:
    """Angle between two vectors in degrees (NaN for a zero vector, like the reference)."""
    norm = math.hypot(ax, ay) * math.hypot(bx, by)
    if norm == 0:
        return float("nan")
    return math.degrees(math.acos(max(-1.0, min(1.0, (ax * bx + ay * by) / norm))))


def _simplify_direction(p: _Saccades, t_dir: float, t_dur: float) -> _Saccades:
    if len(p) < 1:
        return p
    out, i, n = _Saccades(), 0, len(p)
    while i < n:
        if i < n - 1 and _angle_deg(p.dx[i], p.dy[i], p.dx[i + 1], p.dy[i + 1]) < t_dir and p.dur[i + 1] < t_dur:
            out.merged(p, i)
            i += 2
        else:
            out.keep(p, i)
            i += 1
    out.dur.append(p.dur[-1])
    return out


def _simplify_length(p: _Saccades, t_amp: float, t_dur: float) -> _Saccades:
    if len(p) < 1:
        return p
    out, i, n = _Saccades(), 0, len(p)
    while i < n:
        if i == n - 1:
            short = p.rho[i] < t_amp and (p.dur[-1] < t_dur or p.dur[-2] < t_dur)
            if short and n >= 2 and len(out) >= 1:
                # the reference folds the last two ORIGINAL vectors into the previous output saccade
                dx, dy = p.dx[-2] + p.dx[-1], p.dy[-2] + p.dy[-1]
                out.dx[-1], out.dy[-1] = dx, dy
                out.rho[-1], out.theta[-1] = math.hypot(dx, dy), math.atan2(dy, dx)
                out.dur.append(p.dur[i - 1])
            else:
                out.keep(p, i)
            i += 1
        elif p.rho[i] < t_amp and (p.dur[i + 1] < t_dur or p.dur[i] < t_dur):
            out.merged(p, i)
            i += 2
        else:
            out.keep(p, i)
            i += 1
    out.dur.append(p.dur[-1])
    return out


def _simplify(p: _Saccades, t_amp: float, t_dir: float, t_dur: float) -> _Saccades:
    length = len(p.dur)
    while True:
        p = _simplify_length(_simplify_direction(p, t_dir, t_dur), t_amp, t_dur)
        if len(p.dur) == length:
            return p
        length = len(p.dur)


def _align(cost: np.ndarray) -> list[tuple[int, int]]:
    """Cheapest monotone path from (0, 0) to (n−1, m−1) entering each cell at its cost."""
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    acc[0, 0] = 0.0
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                continue
            best = min(
                acc[i - 1, j] if i else np.inf,
                acc[i, j - 1] if j else np.inf,
                acc[i - 1, j - 1] if i and j else np.inf,
            )
            acc[i, j] = best + cost[i, j]
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while (i, j) != (0, 0):
        options = []
        if i and j:
            options.append((acc[i - 1, j - 1], i - 1, j - 1))
        if i:
            options.append((acc[i - 1, j], i - 1, j))
        if j:
            options.append((acc[i, j - 1], i, j - 1))
        _, i, j = min(options, key=lambda o: o[0])
        path.append((i, j))
    return path[::-1]


def has_durations(s) -> bool:
    """Whether scanpath ``s`` (Scanpath or n×2/n×3 array) carries fixation durations."""
    if hasattr(s, "x") and hasattr(s, "y"):
        return getattr(s, "duration", None) is not None
    return np.ndim(s) == 2 and np.shape(s)[1] > 2


def _fixation_arrays(s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if hasattr(s, "x") and hasattr(s, "y"):
        dur = s.duration if getattr(s, "duration", None) is not None else np.ones(len(s.x))
        return np.asarray(s.x, float), np.asarray(s.y, float), np.asarray(dur, float)
    a = np.asarray(s, dtype=float)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"a scanpath must be a Scanpath or an n×2/n×3 array (x, y[, duration]); got shape {a.shape}")
    dur = a[:, 2] if a.shape[1] > 2 else np.ones(len(a))
    return a[:, 0], a[:, 1], dur


def multimatch(
    a,
    b,
    image_size: tuple[int, int],
    simplify: bool = False,
    t_amplitude: float = 0.0,
    t_direction: float = 0.0,
    t_duration: float = 0.0,
) -> dict[str, float]:
    """MultiMatch similarities of scanpaths ``a`` and ``b`` (Scanpath or n×3 arrays x, y, duration).

    The duration similarity is NaN (not available) unless both scanpaths have durations."""
    xa, ya, da = _fixation_arrays(a)
    xb, yb, db = _fixation_arrays(b)
    if len(xa) < 3 or len(xb) < 3:
        return {k: float("nan") for k in MULTIMATCH_DIMENSIONS}
    p, q = _Saccades.from_fixations(xa, ya, da), _Saccades.from_fixations(xb, yb, db)
    if simplify:
        p, q = _simplify(p, t_amplitude, t_direction, t_duration), _simplify(q, t_amplitude, t_direction, t_duration)
    vp, vq = np.stack([p.dx, p.dy], 1), np.stack([q.dx, q.dy], 1)
    cost = np.linalg.norm(vp[:, None, :] - vq[None, :, :], axis=2)
    path = np.array(_align(cost))
    i, j = path[:, 0], path[:, 1]
    two_pi = 2 * math.pi
    ta, tb = np.mod(np.asarray(p.theta)[i], two_pi), np.mod(np.asarray(q.theta)[j], two_pi)
    dtheta = np.abs(ta - tb)
    dtheta = np.where(dtheta > math.pi, two_pi - dtheta, dtheta)
    dur_a, dur_b = np.asarray(p.dur)[i], np.asarray(q.dur)[j]
    h, w = image_size
    diag = math.hypot(w, h)
    return {
        "vector": 1 - float(np.median(cost[i, j])) / (2 * diag),
        "direction": 1 - float(np.median(dtheta)) / math.pi,
        "length": 1 - float(np.median(np.abs(np.asarray(p.rho)[i] - np.asarray(q.rho)[j]))) / diag,
        "position": 1
        - float(np.median(np.hypot(np.asarray(p.x)[i] - np.asarray(q.x)[j], np.asarray(p.y)[i] - np.asarray(q.y)[j])))
        / diag,
        "duration": 1 - float(np.median(np.abs(dur_a - dur_b) / np.abs(np.maximum(dur_a, dur_b))))
        if has_durations(a) and has_durations(b)
        else float("nan"),
    }
