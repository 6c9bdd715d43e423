"""Every metric the benchmark reports, declared once: its name, what it compares, its direction.

The benchmark's column order, its groups (against fixations, against a density, between scanpaths,
fixation-conditional), the leaderboard's better/worse arrows and the torchmetrics wrappers read this
table instead of keeping lists of their own. Adding a metric: its definition beside the others in
:mod:`attnlab.metrics`, a row here, and its kernel where the benchmark computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MetricInfo", "METRICS", "names", "LOWER_IS_BETTER"]

Compares = Literal["fixations", "density", "scanpaths", "conditional"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    compares: Compares  # the human data it is computed against
    lower_is_better: bool = False
    what: str = ""


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("AUC_Judd", "fixations", what="ROC area, thresholds at the fixated values"),
        MetricInfo("AUC_Borji", "fixations", what="ROC area against random pixels (MIT)"),
        MetricInfo("sAUC", "fixations", what="ROC area against other images' fixations"),
        MetricInfo("NSS", "fixations", what="mean z-scored map at the fixations"),
        MetricInfo("CC", "density", what="Pearson correlation with the human density"),
        MetricInfo("KLD", "density", lower_is_better=True, what="KL divergence of the human density"),
        MetricInfo("SIM", "density", what="histogram intersection with the human density"),
        MetricInfo("IG", "fixations", what="bits per fixation over the centre bias"),
        MetricInfo("LL", "conditional", what="bits per fixation over uniform, given the true history"),
        MetricInfo("IG_cond", "conditional", what="bits per fixation over the centre bias, given the history"),
        MetricInfo("NSS_cond", "conditional", what="NSS of each fixation's conditional map"),
        MetricInfo("AUC_cond", "conditional", what="AUC of each fixation's conditional map"),
        MetricInfo("SED", "scanpaths", what="string edit similarity on a 4×4 grid"),
        MetricInfo("ScanMatch", "scanpaths"),
        MetricInfo("MM_vector", "scanpaths", what="MultiMatch vector"),
        MetricInfo("MM_direction", "scanpaths", what="MultiMatch direction"),
        MetricInfo("MM_length", "scanpaths", what="MultiMatch length"),
        MetricInfo("MM_position", "scanpaths", what="MultiMatch position"),
        MetricInfo("MM_duration", "scanpaths", what="MultiMatch duration"),
        MetricInfo("DTW", "scanpaths", lower_is_better=True, what="dynamic time warping / image diagonal"),
        MetricInfo("TDE", "scanpaths", what="scaled time-delay embedding"),
        MetricInfo("SS", "scanpaths", what="Sequence Score"),
    )
}


def names(*compares: Compares) -> tuple[str, ...]:
    """The metrics computed against any of ``compares``, in the table's order."""
    return tuple(m.name for m in METRICS.values() if m.compares in compares)


LOWER_IS_BETTER = frozenset(m.name for m in METRICS.values() if m.lower_is_better)
