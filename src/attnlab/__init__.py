"""attnlab: an experiment framework for computational models of visual attention.

The commands are ``python -m attnlab.<train|eval|benchmark|leaderboard|scanpaths|analyze>``; from Python,
``attnlab.score(...)`` (:func:`attnlab.api.score`) scores maps, scanpaths, a callable or a registered source
against human fixations. It is imported on first use, so ``import attnlab`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["score", "Leaderboard"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from attnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
