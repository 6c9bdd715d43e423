"""Benchmarks: ``python scripts/bench.py [--only NAME ...] [--repeats N] [--device cpu|cuda]``.

Every module in ``scripts/benchmarks/`` exposes ``BENCHMARKS = {name: fn(args) -> dict}``; each
function times its work with :func:`timing.measure` (scripts/timing.py) and returns a JSON-able dict.
Results go to ``outputs/bench/<name>.json`` together with the machine they ran on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def discover() -> dict:
    benchmarks = {}
    for path in sorted((HERE / "benchmarks").glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        benchmarks.update(getattr(module, "BENCHMARKS", {}))
    return benchmarks


def main() -> int:
    benchmarks = discover()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(benchmarks), help="benchmarks to run (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions after one warm-up")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or sorted(benchmarks)
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.time()
        result = benchmarks[name](args)
        record = {
            "name": name,
            "machine": machine(),
            "device": args.device,
            "repeats": args.repeats,
            "wall_s": time.time() - t0,
            "result": result,
        }
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(record, indent=2))
        print(json.dumps(result, indent=2))
        print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
