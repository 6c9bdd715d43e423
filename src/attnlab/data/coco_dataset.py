"""COCO objects as a torch Dataset: the padded, resized photo, one target per object, the labels.

Items: the photo padded to a square with grey (127), resized (bilinear) to ``image_size`` and scaled
to [0, 1]; per object the target (1−s)·x + s·(x on the object, 0 elsewhere), which is what perfect
gating of strength s yields when it attends that object. Unlike the reference, targets are computed
in floating point (no uint8 truncation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from attnlab.data.checks import UnreadableImage, image_size
from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = ["PAD_FILL", "COCOObjects", "check_images", "inverse_frequency_weights"]

PAD_FILL = 127  # grey padding of the input, as in the reference


def inverse_frequency_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """w_c ∝ 1/count_c, normalised to sum to 1 over the classes seen (the reference's weights).

    A class absent from ``labels`` gets the largest weight of the classes seen (as rare as the
    rarest), so it neither crashes nor zeroes the loss of a batch containing only it.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes].astype(float)
    seen = counts > 0
    if not seen.any():
        return [1.0 / num_classes] * num_classes
    inverse = np.zeros(num_classes)
    inverse[seen] = 1.0 / counts[seen]
    inverse /= inverse.sum()
    inverse[~seen] = inverse[seen].max()
    return inverse.tolist()


def _square(image: np.ndarray, fill: int) -> np.ndarray:
    """H×W×C array centred on a square canvas of ``fill``."""
    h, w = image.shape[:2]
    side = max(h, w)
    out = np.full((side, side, image.shape[2]), fill, dtype=image.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def _resized_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """H×W×3 uint8 -> 3×size×size float in [0, 1] (PIL bilinear, as torchvision's Resize)."""
    resized = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@dataclass
class COCOObjects(Dataset):
    """Items ``(x 3×S×S, targets n×3×S×S, labels n)`` for selected images.

    Args:
        items: metadata image entries (see :func:`build_metadata`).
        image_dir: folder the ``file_name``s are relative to.
        class_index: label -> class index.
        image_size: side S of the square input.
        strength: gate strength s of the targets.
        strict: raise on an unreadable image instead of skipping it.
    """

    items: list[dict]
    image_dir: Path
    class_index: dict[str, int]
    image_size: int = 100
    strength: float = 0.3
    strict: bool = False
    unreadable: set = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> list[int]:
        """Class index of every object of every item."""
        return [self.class_index[o["label"]] for item in self.items for o in item["objects"]]

    def path(self, item: dict) -> Path:
        return self.image_dir / item["file_name"]

    def _masks(self, item: dict, height: int, width: int) -> list[np.ndarray]:
        from pycocotools import mask as mask_utils

        masks = []
        for obj in item["objects"]:
            m = mask_utils.decode({"size": [item["height"], item["width"]], "counts": obj["rle"].encode("ascii")})
            if m.shape != (height, width):  # annotation size disagrees with the file: follow the file
                m = np.asarray(Image.fromarray(m).resize((width, height), Image.NEAREST))
            masks.append(m)
        return masks

    def _make(self, item: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with Image.open(self.path(item)) as im:
            image = np.asarray(im.convert("RGB"))
        h, w = image.shape[:2]
        x = _resized_tensor(_square(image, PAD_FILL), self.image_size)
        s = self.strength
        targets = [
            (1 - s) * x + s * _resized_tensor(_square(image * m[..., None], 0), self.image_size)
            for m in self._masks(item, h, w)
        ]
        labels = torch.tensor([self.class_index[o["label"]] for o in item["objects"]], dtype=torch.long)
        return x, torch.stack(targets), labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for offset in range(len(self.items)):
            item = self.items[(index + offset) % len(self.items)]
            try:
                return self._make(item)
            except (OSError, ValueError, SyntaxError) as ex:  # truncated or undecodable image data
                if self.strict:
                    raise UserError(f"unreadable image {self.path(item)}: {ex} (data.strict=true)") from ex
                if item["file_name"] not in self.unreadable:
                    self.unreadable.add(item["file_name"])
                    log.warning("skipping unreadable image %s (%s); using the next item", self.path(item), ex)
        raise UserError(f"no readable image among {len(self.items)} in {self.image_dir}")


def check_images(items: list[dict], image_dir: Path, strict: bool) -> tuple[list[dict], list[Path]]:
    """Items whose image exists and opens; missing files are an error, corrupt ones are skipped.

    Returns:
        (readable items, corrupt paths). Raises :class:`UserError` naming the first missing file,
        or the first corrupt one when ``strict``.
    """
    missing = [image_dir / it["file_name"] for it in items if not (image_dir / it["file_name"]).is_file()]
    if missing:
        raise UserError(
            f"image file not found: {missing[0]} ({len(missing)} of {len(items)} images missing under {image_dir})"
        )
    ok, corrupt = [], []
    for it in items:
        path = image_dir / it["file_name"]
        try:
            image_size(path)  # decodes (verify() passes truncated JPEGs)
            ok.append(it)
        except UnreadableImage as ex:
            if strict:
                raise UserError(f"corrupt image {path}: {ex.reason} (set data.strict=false to skip it)") from None
            corrupt.append(path)
    if corrupt:
        log.warning("skipped %d corrupt image(s) in %s, e.g. %s", len(corrupt), image_dir, corrupt[0])
    return ok, corrupt
