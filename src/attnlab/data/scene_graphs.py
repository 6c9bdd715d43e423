"""Visual Genome scene graphs in GQA's layout, the concept vocabulary built from them, and concept
masks at a model's feature resolution (for the semantic dissection of saliency bases).

Layout (GQA's cleaned Visual Genome, ``train_sceneGraphs.json``)::

    {"<imageId>": {"width": W, "height": H,
                   "objects": {"<objId>": {"name": "man", "x": 10, "y": 20, "w": 30, "h": 40,
                                           "attributes": ["standing", "young"], "relations": [...]}}}}
    images: <image_dir>/<imageId>.jpg

A *concept* is a lemmatised object name (spaces → ``_``, plural → singular) or a raw attribute
(which inherits its object's box). Its region in an image is the union of its boxes (relations are
ignored). Unlike the reference, small objects do not vanish at feature resolution: a cell belongs to
the mask when the boxes cover at least ``coverage`` of it, and every box keeps at least the cell of
its centre.

Usage::

    graphs = load_scene_graphs("gqa/train_sceneGraphs.json")
    vocab = build_vocabulary(graphs, min_images=10, max_concepts=300)
    masks = ConceptMaskDataset(graphs, vocab, "gqa/images", image_size=INPUT_SIZE, grid=(30, 40))
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from attnlab.utils.config import UserError

log = logging.getLogger(__name__)

__all__ = [
    "Box",
    "SceneGraph",
    "Vocabulary",
    "ConceptMaskDataset",
    "build_vocabulary",
    "collate_concepts",
    "concept_masks",
    "lemmatize_noun",
    "load_scene_graphs",
    "normalize_object_name",
]


@dataclass(frozen=True)
class Box:
    """An object's box in pixels of the original image: top-left (x, y), width, height."""

    x: float
    y: float
    w: float
    h: float


@dataclass
class SceneGraph:
    """One image: its id, size (height, width) and the boxes of every concept name it contains.

    ``objects`` holds (name, attributes, box) as read; ``boxes`` is filled by the vocabulary.
    """

    image_id: str
    height: int
    width: int
    objects: list[tuple[str, tuple[str, ...], Box]]


def load_scene_graphs(path: str | Path, limit: int | None = None) -> list[SceneGraph]:
    """Read a GQA ``*_sceneGraphs.json`` file (images sorted by id; ``limit`` keeps the first N)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"scene graphs not found: {path}; expected a GQA train_sceneGraphs.json")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as ex:
        raise UserError(f"cannot read scene graphs {path}: {ex}") from ex
    if not isinstance(raw, dict):
        raise UserError(f"{path} is not a GQA scene-graph file: expected an object mapping imageId to its graph")
    if {"images", "annotations", "categories"} <= set(raw):
        raise UserError(f"{path} is a COCO instances file, not GQA scene graphs: pass it as analysis.annotations")
    graphs = []
    for image_id in sorted(raw):
        g = raw[image_id]
        try:
            objects = [
                (
                    str(o["name"]),
                    tuple(str(a) for a in o.get("attributes", ())),
                    Box(float(o["x"]), float(o["y"]), float(o["w"]), float(o["h"])),
                )
                for o in g.get("objects", {}).values()
            ]
            graphs.append(SceneGraph(str(image_id), int(g["height"]), int(g["width"]), objects))
        except (KeyError, TypeError, ValueError) as ex:
            raise UserError(
                f"{path}: image {image_id} is not in the GQA layout (needs width, height, objects with "
                f"name/x/y/w/h): {ex!r}"
            ) from ex
        if limit is not None and len(graphs) >= limit:
            break
    return graphs


# --- names -------------------------------------------------------------------------------------

# Irregular plurals frequent in Visual Genome; WordNet's lemmatiser is not available offline.
_IRREGULAR = {
    "men": "man",
    "women": "woman",
    "people": "person",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "leaves": "leaf",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "shelves": "shelf",
    "wolves": "wolf",
    "halves": "half",
    "loaves": "loaf",
    "calves": "calf",
    "scarves": "scarf",
    "hooves": "hoof",
    "oxen": "ox",
    "dice": "die",
    "sheep": "sheep",
    "deer": "deer",
    "fish": "fish",
    "series": "series",
    "species": "species",
    "police": "police",
    "glasses": "glasses",
    "pants": "pants",
    "jeans": "jeans",
    "shorts": "shorts",
    "trousers": "trousers",
    "scissors": "scissors",
    "clothes": "clothes",
    "stairs": "stairs",
    "skis": "ski",
    "buses": "bus",
    "gas": "gas",
    "grass": "grass",
    "glass": "glass",
    "dress": "dress",
    "bus": "bus",
    "cross": "cross",
    "boss": "boss",
    "moss": "moss",
    "mattress": "mattress",
    "lens": "lens",
    "news": "news",
    "tennis": "tennis",
    "cactus": "cactus",
    "cacti": "cactus",
    "octopus": "octopus",
    "canvas": "canvas",
    "christmas": "christmas",
    "dishes": "dish",
    "bushes": "bush",
    "benches": "bench",
    "boxes": "box",
    "foxes": "fox",
    "watches": "watch",
    "sandwiches": "sandwich",
    "tomatoes": "tomato",
    "potatoes": "potato",
    "heroes": "hero",
}
_KEEP_S = ("ss", "us", "is", "ous")
# nouns ending in -ie, whose plural -ies must not become -y
_IE_NOUNS = {
    "cookie",
    "movie",
    "brownie",
    "hoodie",
    "pie",
    "tie",
    "zombie",
    "goalie",
    "beanie",
    "smoothie",
    "veggie",
    "birdie",
    "necktie",
    "bowtie",
    "rookie",
    "selfie",
    "lie",
    "magpie",
    "sweetie",
}


def lemmatize_noun(word: str) -> str:
    """Singular of an English noun (rules + irregular table; close to WordNet's for VG names)."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or not w.endswith("s") or w.endswith(_KEEP_S):
        return w
    if w.endswith("ies") and w[:-1] in _IE_NOUNS:
        return w[:-1]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "zzes", "sses")):
        return w[:-2]
    return w[:-1]


def normalize_object_name(name: str) -> str:
    """'Tennis Rackets ' → 'tennis_racket': lower case, last word singular, spaces → '_'."""
    words = name.strip().lower().split()
    if not words:
        return ""
    words[-1] = lemmatize_noun(words[-1])
    return "_".join(words)


def normalize_attribute(name: str) -> str:
    """Attributes stay raw apart from case and surrounding spaces ('having meeting')."""
    return " ".join(name.strip().lower().split())


# --- vocabulary --------------------------------------------------------------------------------


@dataclass
class Vocabulary:
    """Concept names (index = concept id), their kind(s) and in how many images each occurs."""

    names: list[str]
    kinds: list[str]
    image_counts: list[int]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def concepts_of(self, graph: SceneGraph, include_attributes: bool = True) -> dict[int, list[Box]]:
        """Boxes of each vocabulary concept in one image."""
        out: dict[int, list[Box]] = {}
        for name, attributes, box in graph.objects:
            keys = [normalize_object_name(name)]
            if include_attributes:
                keys += [normalize_attribute(a) for a in attributes]
            for key in keys:
                c = self.index.get(key)
                if c is not None:
                    out.setdefault(c, []).append(box)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "kinds": self.kinds, "image_counts": self.image_counts}


def _read_names(spec: Any, what: str) -> set[str] | None:
    """An allow/block list: None, a list of names, or a JSON file (list, or {name: bool})."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple, set)):
        return {str(s).strip().lower() for s in spec}
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        raise UserError(
            f"{what} not found: {path}; give a JSON list of names, a JSON {{name: true}} map, or a list in the config"
        )
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        return {str(k).strip().lower() for k, v in data.items() if v}
    return {str(s).strip().lower() for s in data}


def build_vocabulary(
    graphs: Sequence[SceneGraph],
    include_attributes: bool = True,
    min_images: int = 1,
    max_concepts: int | None = None,
    object_allowlist: Any = None,
    attribute_allowlist: Any = None,
    blocklist: Any = None,
) -> Vocabulary:
    """Concepts occurring in at least ``min_images`` images, most frequent first.

    Object names are lemmatised (``normalize_object_name``); attributes are kept raw. Allowlists
    (the reference's ``filtered_vg_obj.json`` / ``filtered_vg_attr.json`` / COCO names, or a list)
    restrict each kind; names in ``blocklist`` are dropped. An object and an attribute with the same
    name are one concept. ``max_concepts`` keeps the most frequent (ties by name).
    """
    objects_ok = _read_names(object_allowlist, "object allowlist")
    attributes_ok = _read_names(attribute_allowlist, "attribute allowlist")
    blocked = _read_names(blocklist, "blocklist") or set()
    counts: Counter[str] = Counter()
    kinds: dict[str, set[str]] = {}
    for g in graphs:
        seen: set[str] = set()
        for name, attributes, _ in g.objects:
            key = normalize_object_name(name)
            if key and (objects_ok is None or key in objects_ok or key.replace("_", " ") in objects_ok):
                seen.add(key)
                kinds.setdefault(key, set()).add("object")
            if include_attributes:
                for a in attributes:
                    akey = normalize_attribute(a)
                    if akey and (attributes_ok is None or akey in attributes_ok):
                        seen.add(akey)
                        kinds.setdefault(akey, set()).add("attribute")
        counts.update(seen - blocked)
    kept = sorted((n for n, c in counts.items() if c >= max(1, min_images)), key=lambda n: (-counts[n], n))
    if max_concepts is not None:
        kept = kept[: int(max_concepts)]
    if not kept:
        raise UserError(
            f"no concept occurs in at least min_images={min_images} of the {len(graphs)} images; "
            "lower the dissection's vocabulary.min_images or relax its allowlists"
        )
    return Vocabulary(kept, ["+".join(sorted(kinds[n])) for n in kept], [counts[n] for n in kept])


# --- masks -------------------------------------------------------------------------------------


def concept_masks(
    boxes: dict[int, list[Box]],
    image_size: tuple[int, int],
    grid: tuple[int, int],
    coverage: float = 0.5,
    supersample: int = 4,
) -> tuple[Tensor, Tensor]:
    """Masks of each concept's box union on an h×w feature grid.

    Args:
        boxes: concept id → its boxes, in pixels of an image of ``image_size`` = (H, W).
        grid: (h, w) of the feature map.
        coverage: a cell is in the mask when the boxes cover at least this fraction of it
            (measured on ``supersample``² points per cell).

    Returns:
        (ids n, masks n×h×w bool) for the concepts whose mask is not empty.
    """
    h, w = grid
    H, W = image_size
    if not boxes:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, h, w, dtype=torch.bool)
    ids = sorted(boxes)
    s = supersample
    # sample points at the centres of an (h·s)×(w·s) grid, in original pixels
    ys = (torch.arange(h * s, dtype=torch.float32) + 0.5) * (H / (h * s))
    xs = (torch.arange(w * s, dtype=torch.float32) + 0.5) * (W / (w * s))
    owner, coords = [], []
    for i, c in enumerate(ids):
        for b in boxes[c]:
            owner.append(i)
            coords.append((b.x, b.y, b.x + b.w, b.y + b.h))
    box = torch.tensor(coords, dtype=torch.float32)  # n_boxes × 4
    inside_y = (ys[None, :] >= box[:, 1:2]) & (ys[None, :] < box[:, 3:4])  # n_boxes × hs
    inside_x = (xs[None, :] >= box[:, 0:1]) & (xs[None, :] < box[:, 2:3])  # n_boxes × ws
    covered = inside_y[:, :, None] & inside_x[:, None, :]  # n_boxes × hs × ws
    owner_t = torch.tensor(owner)
    union = torch.zeros(len(ids), h * s, w * s, dtype=torch.int32)
    union.index_add_(0, owner_t, covered.to(torch.int32))
    frac = (union > 0).float().reshape(len(ids), h, s, w, s).mean(dim=(2, 4))
    masks = frac >= coverage - 1e-6
    # every box keeps the cell of its centre, so objects smaller than a cell do not vanish
    cy = ((box[:, 1] + box[:, 3]) / 2 * (h / H)).long().clamp(0, h - 1)
    cx = ((box[:, 0] + box[:, 2]) / 2 * (w / W)).long().clamp(0, w - 1)
    masks[owner_t, cy, cx] = True
    keep = masks.flatten(1).any(1)
    return torch.tensor(ids)[keep], masks[keep]


class ConceptMaskDataset(Dataset):
    """Images of the scene graphs with their concept masks at feature resolution.

    Items are dicts: ``image`` 3×H×W in [0, 1] (resized to ``image_size`` ignoring aspect ratio, like
    the models' training data), ``concepts`` n (ids), ``masks`` n×h×w bool, ``image_id``. Images
    without any vocabulary concept are dropped; so are graphs whose image file is missing (logged).
    """

    def __init__(
        self,
        graphs: Sequence[SceneGraph],
        vocabulary: Vocabulary,
        image_dir: str | Path,
        image_size: Sequence[int],
        grid: Sequence[int],
        include_attributes: bool = True,
        coverage: float = 0.5,
        image_ext: str = ".jpg",
    ) -> None:
        self.image_dir = Path(image_dir).expanduser()
        if not self.image_dir.is_dir():
            raise UserError(f"scene-graph image folder not found: {self.image_dir}")
        self.vocabulary = vocabulary
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.grid = (int(grid[0]), int(grid[1]))
        self.coverage = coverage
        self.items: list[tuple[SceneGraph, dict[int, list[Box]]]] = []
        missing = 0
        for g in graphs:
            boxes = vocabulary.concepts_of(g, include_attributes)
            if not boxes:
                continue
            if not (self.image_dir / f"{g.image_id}{image_ext}").is_file():
                missing += 1
                continue
            self.items.append((g, boxes))
        self.image_ext = image_ext
        if missing:
            log.warning("%d scene-graph images are missing from %s (skipped)", missing, self.image_dir)
        if not self.items:
            raise UserError(f"no scene-graph image with a vocabulary concept found in {self.image_dir}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        g, boxes = self.items[i]
        with Image.open(self.image_dir / f"{g.image_id}{self.image_ext}") as im:
            im = im.convert("RGB").resize(self.image_size[::-1], Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        ids, masks = concept_masks(boxes, (g.height, g.width), self.grid, self.coverage)
        return {"image": x, "concepts": ids, "masks": masks, "image_id": g.image_id}


def collate_concepts(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Stack images; pad concepts to the batch maximum (id −1, empty mask)."""
    items = list(items)
    n = max(len(it["concepts"]) for it in items)
    h, w = items[0]["masks"].shape[-2:]
    ids = torch.full((len(items), n), -1, dtype=torch.long)
    masks = torch.zeros(len(items), n, h, w, dtype=torch.bool)
    for b, it in enumerate(items):
        k = len(it["concepts"])
        ids[b, :k] = it["concepts"]
        masks[b, :k] = it["masks"]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "concepts": ids,
        "masks": masks,
        "image_id": [it["image_id"] for it in items],
    }
