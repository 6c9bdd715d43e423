"""Synthetic COCO-format instance datasets: for tests, benchmarks and smoke runs without COCO.

Each image has random polygon objects (convex, 8–16 vertices) of categories grouped into
supercategories, drawn in a colour per category on a noisy background, with a standard COCO
instances JSON (polygon segmentations, areas from the rasterised masks, some crowd annotations).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["CATEGORIES", "write_synthetic_coco"]

# (name, supercategory): three supercategories, two categories each
CATEGORIES = [("cat", "animal"), ("dog", "animal"), ("bus", "vehicle"), ("car", "vehicle"),
              ("chair", "furniture"), ("sofa", "furniture")]


def _polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A convex polygon: sorted random angles around a random centre, radius 5–35 % of the image."""
    r = rng.uniform(0.05, 0.35) * min(width, height)
    cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(8, 17))))
    radii = r * rng.uniform(0.8, 1.0, len(angles))
    xs = np.clip(cx + radii * np.cos(angles), 0, width - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, height - 1)
    return np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()


def write_synthetic_coco(
    root: str | Path,
    num_images: int = 20,
    instances_per_image: int = 4,
    image_size: tuple[int, int] = (64, 48),
    supercategories: bool = True,
    write_images: bool = True,
    crowd_fraction: float = 0.05,
    annotation_file: str = "annotations.json",
    image_dir: str = "",
    seed: int = 0,
) -> Path:
    """Write a dataset under ``root``; return the annotation file's path.

    Args:
        num_images, instances_per_image: size of the dataset.
        image_size: (width, height) of every image.
        supercategories: give categories a supercategory (else ``null``, like many exports).
        write_images: also draw the JPEG images (the metadata build alone does not need them).
        crowd_fraction: fraction of annotations marked ``iscrowd``.
        annotation_file, image_dir: where the JSON and images go, relative to ``root``; ``file_name``
            is relative to ``image_dir``.
    """
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    root = Path(root)
    images_path = root / image_dir
    images_path.mkdir(parents=True, exist_ok=True)
    width, height = image_size
    colors = rng.integers(40, 255, size=(len(CATEGORIES), 3))
    categories = [{"id": i + 1, "name": name, "supercategory": sup if supercategories else None}
                  for i, (name, sup) in enumerate(CATEGORIES)]
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        file_name = f"{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        canvas = Image.fromarray(rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)) if write_images else None
        draw = ImageDraw.Draw(canvas) if canvas is not None else None
        for _ in range(instances_per_image):
            category = int(rng.integers(len(CATEGORIES)))
            poly = _polygon(rng, width, height)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
            xs, ys = poly[0::2], poly[1::2]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category + 1,
                "segmentation": [poly], "area": float(mask_utils.area(rle)),
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                "iscrowd": int(rng.random() < crowd_fraction),
            })
            if draw is not None:
                draw.polygon(list(zip(xs, ys)), fill=tuple(int(c) for c in colors[category]))
        if canvas is not None:
            canvas.save(images_path / file_name, quality=90)
    path = root / annotation_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {"description": "attnlab synthetic COCO"}, "licenses": [],
                                "images": images, "annotations": annotations, "categories": categories}))
    return path
