"""The command ``python -m attnlab.benchmark data=<dataset> attention=<source>[,<source>...]``.

``attention=a,b`` means a list of sources here, not a Hydra sweep: it is rewritten as ``[a,b]``
before Hydra parses the command line.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from attnlab.benchmark.run import run_benchmark
from attnlab.benchmark.settings import BenchmarkSettings
from attnlab.utils.cli import entry_point

__all__ = ["main", "quote_attention"]


def quote_attention(argv: list[str]) -> list[str]:
    """``attention=a,b`` → ``attention=[a,b]``, items that are not plain words quoted, also inside
    ``[...]`` (``attention=[CB=centre_bias,DINet=saliency:/x.ckpt]``: Hydra's grammar allows no
    unquoted ``=`` in a value); a value that starts with a quote is left to Hydra."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "attention" and value[:1] not in "\"'":
            inner = value[1:-1] if value[:1] == "[" and value[-1:] == "]" else None
            if inner is not None:
                arg = f"{key}=[{','.join(_escape(v) for v in _items(inner))}]"
            elif "," in value or "=" in value:
                arg = f"{key}=[{','.join(_escape(v) for v in value.split(','))}]"
        out.append(arg)
    return out


def _items(inner: str) -> list[str]:
    """The comma-separated items of a list's inside; commas inside quotes belong to their item."""
    items, current, quote = [], "", ""
    for c in inner:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == ",":
            items.append(current.strip())
            current = ""
            continue
        current += c
    return [i for i in [*items, current.strip()] if i]


def _escape(item: str) -> str:
    if len(item) > 1 and item[0] == item[-1] and item[0] in "\"'":  # quoted already
        return item
    plain = item.replace("_", "").replace("-", "").replace(".", "").isalnum()
    return item if plain else "'" + item.replace("'", "\\'") + "'"


def _task(cfg: DictConfig) -> None:
    run_benchmark(cfg)


def main() -> Any:
    sys.argv = [sys.argv[0], *quote_attention(sys.argv[1:])]
    return entry_point("benchmark", BenchmarkSettings)(_task)()


if __name__ == "__main__":
    main()
