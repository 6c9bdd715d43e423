"""Dissection with COCO instance masks: the reader against pycocotools on the shared COCO-format sample and
coco_tiny, its bad inputs, the per-image numbers behind the bootstrap and the chance level, and
``analysis=dissection analysis.annotations=...`` then ``analysis=contributions`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from pycocotools.coco import COCO
from test_dissection import _tiny_checkpoints

from attnlab.analysis.dissection import IoUAccumulator, bootstrap_weights, weighted_scores
from attnlab.data.coco_concepts import CocoConceptMaskDataset, load_coco_concepts
from attnlab.data.scene_graphs import load_scene_graphs
from attnlab.utils.config import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_grid(masks: list[np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """Cells at least half covered by the union, plus each instance's best-covered cell: every pixel
    repeated h×w times, so that each cell is a whole block of H×W pixels, and block means."""
    h, w = grid
    H, W = masks[0].shape
    cover = lambda m: np.kron(m.astype(np.uint8), np.ones((h, w), np.uint8)).reshape(h, H, w, W).mean((1, 3))
    out = cover(np.max(masks, axis=0)) >= 0.5 - 1e-9
    for m in masks:
        out.flat[int(cover(m).argmax())] = True
    return out


@pytest.mark.parametrize(
    "annotations",
    ["coco_format_sample/annotations.json", "coco_tiny/annotations/instances_val2017.json"],
)
def test_reader_agrees_with_pycocotools(annotations):
    path = shared_path("data", *annotations.split("/"))
    limit = 6  # six photos keep the test fast
    concepts = load_coco_concepts(path, max_images=limit)
    coco = COCO(str(path))
    names = {c["id"]: c["name"] for c in coco.cats.values()}
    photos = sorted(coco.imgs)[:limit]
    per_photo = {i: {names[a["category_id"]] for a in coco.imgToAnns[i]} for i in photos}
    present = sorted({n for s in per_photo.values() for n in s})
    vocab = concepts.vocabulary
    assert sorted(vocab.names) == present
    assert all(vocab.image_counts[vocab.index[n]] == sum(n in s for s in per_photo.values()) for n in present)
    assert concepts.skipped["concepts_without_instances"] == len(coco.cats) - len(present)
    if "coco_tiny" in annotations:
        supers = {c["name"]: c["supercategory"] for c in coco.cats.values()}
        assert concepts.groups == [supers[n] for n in vocab.names]
    else:  # the sample's categories have no supercategory
        assert set(concepts.groups) == {None}

    grid = (7, 9)
    data = CocoConceptMaskDataset(concepts, image_size=(28, 36), grid=grid)
    for i, photo in enumerate(photos):
        ids, masks = data.masks(i)
        assert data.images[i].image_id.endswith(f":{photo}")
        assert sorted(vocab.names[c] for c in ids.tolist()) == sorted(per_photo[photo])
        for c, mask in zip(ids.tolist(), masks):
            anns = [a for a in coco.imgToAnns[photo] if names[a["category_id"]] == vocab.names[c]]
            reference = _reference_grid([coco.annToMask(a) for a in anns], grid)
            assert np.array_equal(mask.numpy(), reference), (photo, vocab.names[c])
    item = data[0]
    assert item["image"].shape == (3, 28, 36) and 0 <= item["image"].min() and item["image"].max() <= 1


def test_coco_tiny_train_and_val_read_together_with_supercategories():
    ann = shared_path("data", "coco_tiny", "annotations")
    files = [ann / "instances_train2017.json", ann / "instances_val2017.json"]
    both = load_coco_concepts(files)  # images found in COCO's layout: train2017/ and val2017/
    assert len(both.images) == 160 and len(both.vocabulary) == 80
    assert {im.image_id.split(":")[0] for im in both.images} == {"instances_train2017", "instances_val2017"}
    coarse = load_coco_concepts(files, level="supercategory")
    assert len(coarse.vocabulary) == 12 and "animal" in coarse.vocabulary.names
    # a supercategory is in a photo when any of its categories is
    animals = {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}
    with_animals = sum(1 for im in both.images if {both.vocabulary.names[c] for c in im.instances} & animals)
    assert coarse.vocabulary.image_counts[coarse.vocabulary.index["animal"]] == with_animals


def _sample_copy(tmp_path: Path, keep: int) -> Path:
    """The shared COCO-format sample with only the first ``keep`` of its photos on disk."""
    sample = shared_path("data", "coco_format_sample")
    (tmp_path / "JPEGImages").mkdir()
    for jpg in sorted((sample / "JPEGImages").glob("*.jpg"))[:keep]:
        shutil.copy(jpg, tmp_path / "JPEGImages" / jpg.name)
    shutil.copy(sample / "annotations.json", tmp_path / "annotations.json")
    return tmp_path / "annotations.json"


def test_bad_inputs_are_one_line_or_skipped_and_counted(tmp_path):
    path = _sample_copy(tmp_path, keep=2)
    raw = json.loads(path.read_text())
    gone = [im["id"] for im in raw["images"] if not (tmp_path / im["file_name"]).is_file()]
    on_missing = sum(a["image_id"] in gone for a in raw["annotations"])
    concepts = load_coco_concepts(path)
    assert len(concepts.images) == 2
    assert concepts.skipped["missing_image_files"] == 1
    assert concepts.skipped["annotations_of_missing_images"] == on_missing > 0
    assert "_background_" in concepts.skipped["concepts_without_instances_names"]

    raw["annotations"][0]["segmentation"] = {"counts": "not an rle", "size": "x"}
    raw["annotations"][1]["category_id"] = 99
    (tmp_path / "edited.json").write_text(json.dumps(raw))
    edited = load_coco_concepts(tmp_path / "edited.json")
    assert edited.skipped["unreadable_segmentations"] == 1
    assert edited.skipped["annotations_of_unlisted_categories"] == 1

    gqa = tmp_path / "sceneGraphs.json"
    gqa.write_text(json.dumps({"1": {"width": 4, "height": 4, "objects": {}}}))
    with pytest.raises(UserError, match="not a COCO instances file: no images, annotations, categories"):
        load_coco_concepts(gqa)
    with pytest.raises(UserError, match="is a COCO instances file, not GQA scene graphs"):
        load_scene_graphs(path)
    with pytest.raises(UserError, match="no photo with an instance"):
        load_coco_concepts(path, image_dirs=tmp_path / "nowhere")
    with pytest.raises(UserError, match="min_images=10"):
        load_coco_concepts(path, min_images=10)
    with pytest.raises(UserError, match="level"):
        load_coco_concepts(path, level="instance")


def _random_batch(seed: int, B=6, K=5, n=3, C=8, h=4, w=5):
    g = torch.Generator().manual_seed(seed)
    on = torch.rand(B, K, h, w, generator=g) > 0.6
    concepts = torch.stack([torch.randperm(C, generator=g)[:n] for _ in range(B)])
    concepts[0, 2] = -1
    masks = torch.rand(B, n, h, w, generator=g) > 0.6
    masks[0, 2] = False
    return on, concepts, masks


def test_per_image_numbers_give_back_both_scores_and_resample():
    on, concepts, masks = _random_batch(0)
    acc = IoUAccumulator(5, 8, keep_images=True)
    acc.update(on[:4], concepts[:4], masks[:4])
    acc.update(on[4:], concepts[4:], masks[4:])
    per_image = acc.per_image()
    ones = torch.ones(1, 6, dtype=torch.float64)
    torch.testing.assert_close(weighted_scores(per_image, 8, ones, "image_mean")[0], acc.image_mean(), equal_nan=True)
    torch.testing.assert_close(weighted_scores(per_image, 8, ones, "dataset")[0], acc.dataset())
    # a resample counting image 3 twice and dropping image 0 is the accumulator over those images
    counts = torch.tensor([[0, 1, 1, 2, 1, 1]], dtype=torch.float64)
    pick = [1, 2, 3, 3, 4, 5]
    again = IoUAccumulator(5, 8)
    again.update(on[pick], concepts[pick], masks[pick])
    torch.testing.assert_close(weighted_scores(per_image, 8, counts, "dataset")[0], again.dataset())
    resampled = weighted_scores(per_image, 8, counts, "image_mean")[0]
    torch.testing.assert_close(resampled, again.image_mean(), equal_nan=True)
    weights = bootstrap_weights(6, 50, seed=1)
    assert weights.shape == (50, 6) and torch.all(weights.sum(1) == 6)
    assert torch.equal(weights, bootstrap_weights(6, 50, seed=1)) and not torch.equal(weights, bootstrap_weights(6, 50))


def test_chance_level_is_the_mean_over_pairings_with_other_images():
    on, concepts, masks = _random_batch(2)
    acc = IoUAccumulator(5, 8)
    acc.update(on, concepts, masks)
    B, C = on.shape[0], 8
    inter, union = torch.zeros(5, C, dtype=torch.float64), torch.zeros(5, C, dtype=torch.float64)
    for i in range(B):  # image i's masks against every other image's maps, averaged
        for j in range(B):
            if i == j:
                continue
            for slot, c in enumerate(concepts[i].tolist()):
                if c < 0 or not masks[i, slot].any():
                    continue
                inter[:, c] += (on[j] & masks[i, slot]).flatten(1).sum(1) / (B - 1)
                union[:, c] += (masks[i, slot].sum() - (on[j] & masks[i, slot]).flatten(1).sum(1)) / (B - 1)
    union += on.flatten(2).sum(2).sum(0).double()[:, None]  # every image's basis area, as in dataset()
    torch.testing.assert_close(acc.chance_dataset(), inter / union)


def test_coco_dissection_and_contributions_through_the_analyze_entry_point(run_cli, tmp_path):
    annotations = shared_path("data", "coco_tiny", "annotations", "instances_val2017.json")
    phase1, phase2 = _tiny_checkpoints(tmp_path)
    result = run_cli(
        "attnlab.analyze",
        "analysis=dissection",
        f"ckpt_path={phase1}",
        f"analysis.annotations={annotations}",
        "analysis.thresholds.source=dissection",
        "analysis.vocabulary.min_images=2",
        "analysis.max_images=12",
        "analysis.bootstrap=50",
        "analysis.batch_size=4",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = sorted((tmp_path / "outputs" / "analyze" / "runs").glob("*/dissection.json"))[-1]
    out = json.loads(run.read_text())
    skipped = out["reader"]["skipped"]
    assert out["reader"]["format"] == "coco"
    assert out["num_images"] + skipped.get("images_with_only_rarer_concepts", 0) == 12
    assert all(c["mask_images"] >= 2 and c["group"] for c in out["concepts"])
    assert skipped["concepts_without_instances"] == 80 - len(out["concepts"])
    assert np.array(out["iou_chance"]).shape == np.array(out["iou_dataset"]).shape == (4, len(out["concepts"]))
    low, high = out["summary"]["bases_aligned_share_interval"]
    assert 0 <= low <= high <= 1
    top = out["bases"][0]["top_dataset"][0]
    assert top["interval"][0] <= top["iou"] <= top["interval"][1]
    assert (run.parent / "dissection_images.pt").is_file() and "spatial prior" in result.stdout

    result = run_cli(
        "attnlab.analyze",
        "analysis=contributions",
        f"ckpt_path={phase2}",
        f"analysis.dissection={run}",
        "analysis.top_k=2",
        "analysis.bootstrap=50",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = sorted((tmp_path / "outputs" / "analyze" / "runs").glob("*/contributions.json"))[-1].parent
    contributions = json.loads((folder / "contributions.json").read_text())
    groups = {c["name"]: c["group"] for c in out["concepts"]}
    assert all(r["category"] == groups[r["concept"]] for r in contributions["concepts"])
    assert set(contributions["categories"]) <= set(groups.values()) | {"other"}  # supercategories, not VG's
    assert all(r["importance_low"] <= r["importance_high"] for r in contributions["concepts"])
    assert any(r["importance_low"] < r["importance_high"] for r in contributions["concepts"])  # resampled
    assert "normalised_low" in (folder / "categories.csv").read_text().splitlines()[0]
