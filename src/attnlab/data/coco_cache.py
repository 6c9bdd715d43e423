"""The object-selection cache: :func:`~attnlab.data.coco_selection.build_metadata` stored as JSON.

Selecting objects decodes every polygon of the annotation file (minutes for all of COCO), so the result
is cached in ``cache_dir`` (masks as compressed RLE), keyed by the annotation file and the selection
settings, rebuilt when the file's contents change, and written atomically (:mod:`attnlab.utils.io`) so
that a run killed mid-write leaves the previous cache whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from attnlab.data.coco_selection import build_metadata
from attnlab.utils.config import UserError
from attnlab.utils.io import open_atomic

log = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "cache_path", "load_metadata"]

CACHE_FORMAT = 2  # 2: counts of dropped images per reason


def _fingerprint(path: Path) -> str:
    """Hash of the file's bytes: a changed file (not just a newer mtime) rebuilds the cache."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _params(min_area: float, max_overlap: float, num_objects: int, use_supercategory: bool) -> dict[str, Any]:
    return {
        "min_area": float(min_area),
        "max_overlap": float(max_overlap),
        "num_objects": int(num_objects),
        "use_supercategory": bool(use_supercategory),
        "format": CACHE_FORMAT,
    }


def cache_path(annotation_file: Path, cache_dir: str | Path, params: dict[str, Any]) -> Path:
    """``cache_dir/coco_objects_<file stem>_<hash of path and settings>.json``."""
    key = hashlib.sha1(json.dumps([str(annotation_file), params], sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"coco_objects_{annotation_file.stem}_{key}.json"


def load_metadata(
    annotation_file: str | Path,
    cache_dir: str | Path,
    min_area: float,
    max_overlap: float,
    num_objects: int = 2,
    use_supercategory: bool = True,
) -> dict[str, Any]:
    """:func:`build_metadata`, from the cache when it matches the file's contents and the settings."""
    path = Path(annotation_file).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"COCO annotation file not found: {path}")
    params = _params(min_area, max_overlap, num_objects, use_supercategory)
    cache = cache_path(path, cache_dir, params)
    fingerprint = _fingerprint(path)
    if cache.is_file():
        try:
            with open(cache) as f:
                cached = json.load(f)
            if cached.get("fingerprint") == fingerprint and cached.get("params") == params:
                log.info("COCO objects metadata from cache %s", cache)
                return cached
            log.info("annotation file %s changed: rebuilding %s", path, cache)
        except (OSError, json.JSONDecodeError) as ex:
            log.warning("ignoring unreadable metadata cache %s (%s)", cache, ex)
    metadata = build_metadata(path, min_area, max_overlap, num_objects, use_supercategory)
    metadata |= {"annotation_file": str(path), "fingerprint": fingerprint, "params": params}
    with open_atomic(cache, "w") as f:
        json.dump(metadata, f, separators=(",", ":"))  # compact: the RLEs make it large
    log.info("COCO objects metadata written to %s", cache)
    return metadata
