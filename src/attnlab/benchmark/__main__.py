"""The command ``python -m attnlab.benchmark data=<dataset> attention=<source>[,<source>...]``.

``attention=a,b`` means a list of sources here, not a Hydra sweep: it is rewritten as ``[a,b]``
before Hydra parses the command line.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

__all__ = ["main", "quote_attention"]


def quote_attention(argv: list[str]) -> list[str]:
    """``attention=a,b`` → ``attention=[a,b]`` (items that are not plain words are quoted)."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "attention" and "," in value and value[:1] not in "[\"'":
            arg = f"{key}=[{','.join(_escape(v) for v in value.split(','))}]"
        out.append(arg)
    return out


def _escape(item: str) -> str:
    plain = item.replace("_", "").replace("-", "").replace(".", "").isalnum()
    return item if plain else "'" + item.replace("'", "\\'") + "'"


def _task(cfg: DictConfig) -> None:
    from attnlab.benchmark.run import run_benchmark

    run_benchmark(cfg)


def main() -> Any:
    from attnlab.utils.cli import entry_point

    sys.argv = [sys.argv[0], *quote_attention(sys.argv[1:])]
    return entry_point("benchmark")(_task)()


if __name__ == "__main__":
    main()
