"""The Python API for the common job: score saliency maps or scanpaths against human fixations.

>>> import attnlab
>>> board = attnlab.score("path/to/maps", data="osie")          # doctest: +SKIP
>>> print(board.to_markdown())                                    # doctest: +SKIP

:func:`score` is the command ``python -m attnlab.leaderboard`` called from Python: it composes the
same config (:func:`attnlab.utils.compose.compose_config`), checks it as the command does, runs
:func:`attnlab.benchmark.leaderboard.run_leaderboard` (one pass of :func:`attnlab.benchmark.run_benchmark`
plus bootstrap intervals and the paired comparison with the centre bias) and returns a
:class:`Leaderboard` whose numbers, markdown, CSV and HTML are the command's own. What it adds: a
source may also be a Python callable ``image -> map``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

import attnlab.metrics.statistics as stats
from attnlab.benchmark.leaderboard import run_leaderboard
from attnlab.benchmark.settings import LeaderboardSettings
from attnlab.sources import AttentionSource, BenchmarkContext
from attnlab.utils.compose import compose_config
from attnlab.utils.config import validate
from attnlab.utils.settings import check_command

__all__ = ["score", "Leaderboard", "FunctionSource"]

MapFunction = Callable[[np.ndarray], Any]
Source = Union[str, os.PathLike, MapFunction, AttentionSource]


class FunctionSource(AttentionSource):
    """A saliency map from a Python callable: ``function(image)`` with ``image`` the stimulus as an
    H×W×3 uint8 RGB array; it returns an H'×W' array (NumPy, a torch tensor or anything ``np.asarray``
    takes; any size, the benchmark resizes it; higher = more salient)."""

    def __init__(self, function: MapFunction, name: str) -> None:
        self.function = function
        self.name = name

    def saliency_map(self, ctx: BenchmarkContext, i: int) -> np.ndarray:
        value = self.function(ctx.data.load_image(i))
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        return np.squeeze(np.asarray(value, dtype=np.float64))


class Leaderboard:
    """The result of :func:`score`: the command's tables and files, in memory.

    - :attr:`sources`, :attr:`metrics`: column and row names; :attr:`reference`: the centre bias;
    - :meth:`mean`, :meth:`interval`: one cell; :attr:`table`: ``{source: {metric: entry}}`` with ``n``,
      ``mean``, ``low``, ``high`` and, for every source but the reference, ``difference``,
      ``difference_low``, ``difference_high``, ``p_value``, ``verdict`` (NaN where a metric does not apply);
    - :attr:`per_image`: ``{source: [{"stimulus": id, metric: value, ...}, ...]}``;
    - :meth:`to_markdown`, :meth:`to_csv`, :meth:`to_html`, :meth:`to_json`: ``leaderboard.md``,
      ``.csv``, ``.html`` and ``.json`` as the command writes them; :meth:`to_pandas` (pandas installed).
    """

    def __init__(self, result: dict[str, Any], files: dict[str, str]) -> None:
        self.result = result
        self._files = files

    @property
    def sources(self) -> list[str]:
        return list(self.result["sources"])

    @property
    def metrics(self) -> list[str]:
        return list(self.result["metrics"])

    @property
    def reference(self) -> str:
        return self.result["reference"]

    @property
    def images(self) -> int:
        return int(self.result["images"])

    @property
    def table(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.result["table"]

    @property
    def per_image(self) -> dict[str, list[dict[str, Any]]]:
        return self.result["per_image"]

    def mean(self, source: str, metric: str) -> float:
        """The mean of ``metric`` over images for ``source`` (NaN: the metric does not apply)."""
        return float(self.table[source][metric]["mean"])

    def interval(self, source: str, metric: str) -> tuple[float, float]:
        """The bootstrap interval of :meth:`mean`."""
        entry = self.table[source][metric]
        return float(entry["low"]), float(entry["high"])

    def to_markdown(self) -> str:
        return self._files["leaderboard.md"]

    def to_csv(self, path: Optional[Union[str, os.PathLike]] = None) -> str:
        return self._write(path, "leaderboard.csv")

    def to_html(self, path: Optional[Union[str, os.PathLike]] = None) -> str:
        return self._write(path, "leaderboard.html")

    def to_json(self, path: Optional[Union[str, os.PathLike]] = None) -> str:
        return self._write(path, "leaderboard.json")

    def to_pandas(self):
        """One row per source and metric (the CSV's columns) as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(io.StringIO(self._files["leaderboard.csv"]))

    def _write(self, path: Optional[Union[str, os.PathLike]], name: str) -> str:
        text = self._files[name]
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def _repr_markdown_(self) -> str:  # Jupyter shows the table
        return self.to_markdown()

    def __repr__(self) -> str:
        return f"Leaderboard({len(self.sources)} sources, {self.images} {self.result['split']} images)"


def _named(attention: Union[Source, Sequence[Source], Mapping[str, Source]]) -> list[tuple[Optional[str], Source]]:
    if isinstance(attention, Mapping):
        return [(str(k), v) for k, v in attention.items()]
    if isinstance(attention, (str, os.PathLike, AttentionSource)) or callable(attention):
        return [(None, attention)]
    return [(None, a) for a in attention]


def _split_sources(attention) -> tuple[list[str], list[AttentionSource]]:
    """Source specs for the command's ``attention=`` and sources built in Python (callables)."""
    specs: list[str] = []
    built: list[AttentionSource] = []
    for label, item in _named(attention):
        if isinstance(item, AttentionSource):
            if label:
                item.name = label
            built.append(item)
        elif isinstance(item, (str, os.PathLike)):
            spec = os.fspath(item)
            specs.append(f"{label}={spec}" if label else spec)
        elif callable(item):
            name = label or getattr(item, "__name__", "") or type(item).__name__
            built.append(FunctionSource(item, "function" if name == "<lambda>" else name))
        else:
            raise TypeError(f"attention: {item!r} is not a source spec, a path, a callable or an AttentionSource")
    return specs, built


def score(
    attention: Union[Source, Sequence[Source], Mapping[str, Source]],
    data: str = "osie",
    *,
    split: str = "test",
    max_images: Optional[int] = None,
    seed: int = 0,
    samples: int = stats.SAMPLES,
    level: float = stats.LEVEL,
    figure_images: int = 0,
    overrides: Iterable[str] = (),
    output_dir: Optional[Union[str, os.PathLike]] = None,
    progress: bool = False,
    verbose: bool = False,
) -> Leaderboard:
    """Score ``attention`` against the human fixations of ``data``, as ``python -m attnlab.leaderboard``.

    ``attention``: one source or a list, or ``{label: source}``. A source is anything the command's
    ``attention=`` takes — ``"centre_bias"``, ``"uniform"``, ``"inter_observer"``, a folder of maps
    (``<stimulus id>.png|.npy``), a scanpath ``.json``/``.csv`` file, a registered source such as
    ``"saliency:<ckpt>"`` or ``"cam:gradcam"``, with an optional ``"label=..."`` — or a callable
    ``image -> map`` (:class:`FunctionSource`), or an :class:`attnlab.sources.AttentionSource`. The
    centre bias is added when absent: every source is compared with it.

    ``data`` is the dataset config (``osie``, ``mit1003``, ``cat2000``, ``fixation_folder``, ...);
    ``overrides`` are further command-line overrides (``"data.root=..."``, ``"sigma_px=30"``).
    ``samples`` and ``level`` are the bootstrap's; ``figure_images`` rows of the figure in the HTML.
    The run's files are written into ``output_dir`` when given (else a temporary folder, removed).
    A bad setting or input raises :class:`attnlab.utils.config.UserError` with the command's message.
    """
    from omegaconf import open_dict

    specs, built = _split_sources(attention)
    with contextlib.ExitStack() as stack:
        out = Path(output_dir) if output_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        out.mkdir(parents=True, exist_ok=True)
        args = [
            f"data={data}",
            f"split={split}",
            f"seed={int(seed)}",
            f"bootstrap.samples={int(samples)}",
            f"bootstrap.level={float(level)}",
            f"figure_images={int(figure_images)}",
            f"progress={str(bool(progress)).lower()}",
            *([f"max_images={int(max_images)}"] if max_images is not None else []),
            *overrides,
        ]
        cfg = compose_config("leaderboard", args)
        with open_dict(cfg):
            cfg.attention = specs
            cfg.paths.output_dir = str(out)
        validate(cfg)
        check_command("leaderboard", cfg, LeaderboardSettings)
        sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with sink:
            result = run_leaderboard(cfg, sources=built)
        names = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html")
        files = {n: (out / n).read_text(encoding="utf-8") for n in names}
    return Leaderboard(result, files)
