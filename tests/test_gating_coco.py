"""COCO objects data, the COCO gating config, and the gating evaluation metrics."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import ONE_THREAD, shared_path
from fixtures.coco_synthetic import write_synthetic_coco

from attnlab.data import coco_cache
from attnlab.data.coco_objects import (
    COCOObjectsDataModule,
    build_metadata,
    inverse_frequency_weights,
    load_metadata,
    select_objects,
)
from attnlab.models.gating.evaluation import (
    GlimpseMetrics,
    attention_iou,
    balanced_accuracy,
    macro_f1,
    object_mask,
)
from attnlab.utils.config import UserError

SAMPLE = ("data", "coco_format_sample")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def ann(i, poly, area=None, crowd=0, category=1):
    return {
        "id": i,
        "category_id": category,
        "segmentation": poly,
        "iscrowd": crowd,
        **({"area": area} if area is not None else {}),
    }


# --- selection -----------------------------------------------------------------------------------


def reference_selection(anns, h, w, min_area, max_overlap, n=2):
    """The spec's rule with dense masks and a pixel accumulator (pycocotools annToMask equivalent)."""
    from pycocotools import mask as mu

    big = [a for a in anns if not a["iscrowd"] and a["area"] > min_area * h * w]
    big.sort(key=lambda a: -a["area"])
    if len(big) < n:
        return []
    acc = np.zeros((h, w), dtype=np.int32)
    kept = []
    for a in big:
        acc += mu.decode(mu.merge(mu.frPyObjects(a["segmentation"], h, w)))
        if (acc > 1).sum() > max_overlap * h * w:
            break
        kept.append(a["id"])
    return kept[:n] if len(kept) >= n else []


def test_selection_keeps_two_largest_noncrowd_objects():
    h = w = 100
    anns = [
        ann(1, rect(0, 0, 30, 30), 900),
        ann(2, rect(60, 60, 100, 100), 1600),
        ann(3, rect(40, 0, 100, 50), 3000, crowd=1),
        ann(4, rect(0, 70, 5, 75), 25),
        ann(5, rect(35, 35, 55, 55), 400),
    ]
    kept = select_objects(anns, h, w, min_area=0.05, max_overlap=0.01)
    assert [a["id"] for a, _ in kept] == [2, 1]  # crowd and small ones ignored, largest first


def test_selection_stops_at_overlap():
    h = w = 100
    big, overlapping = ann(1, rect(0, 0, 60, 60), 3600), ann(2, rect(30, 30, 90, 90), 3600 - 1)
    far = ann(3, rect(70, 0, 100, 25), 750)
    assert select_objects([big, overlapping, far], h, w, 0.05, 0.01) == []  # stops before the overlapping one
    assert [a["id"] for a, _ in select_objects([big, overlapping, far], h, w, 0.05, 0.2)] == [1, 2]
    # without an area field the mask area is used
    kept = select_objects([ann(1, rect(0, 0, 60, 60)), ann(3, rect(70, 0, 100, 25))], h, w, 0.05, 0.01)
    assert [a["id"] for a, _ in kept] == [1, 3]


def test_selection_matches_dense_reference_on_generated_data(tmp_path):
    from pycocotools.coco import COCO

    path = write_synthetic_coco(
        tmp_path, num_images=40, instances_per_image=6, image_size=(80, 60), write_images=False, seed=3
    )
    coco = COCO(str(path))
    selected = 0
    for image_id, info in coco.imgs.items():
        anns = coco.imgToAnns[image_id]
        for min_area, max_overlap in ((0.05, 0.01), (0.02, 0.1)):
            ours = [a["id"] for a, _ in select_objects(anns, info["height"], info["width"], min_area, max_overlap)]
            assert ours == reference_selection(anns, info["height"], info["width"], min_area, max_overlap)
            selected += bool(ours)
    assert 0 < selected < 80  # the fixture exercises both outcomes


# --- the real COCO-format sample ---------------------------------------------------------------


def test_real_sample_items_targets_and_labels(tmp_path, caplog):
    root = shared_path(*SAMPLE)
    dm = COCOObjectsDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), strength=0.3)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "no supercategory" in caplog.text
    # no supercategories: labels are category names of annotated categories, sorted
    assert dm.class_names == sorted(dm.class_names) and "person" in dm.class_names
    assert "_background_" not in dm.class_names
    assert sum(len(dm.datasets[s]) for s in ("train", "val", "test")) == 3
    from PIL import Image
    from pycocotools import mask as mu

    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        x, targets, labels = ds[0]
        assert x.shape == (3, 100, 100) and targets.shape == (2, 3, 100, 100) and labels.shape == (2,)
        assert 0 <= x.min() and x.max() <= 1
        item = ds.items[0]
        for k, obj in enumerate(item["objects"]):
            assert dm.class_names[labels[k]] == obj["label"]
            # the object's region recovered from its target is its (padded, resized) annotation mask
            m = mu.decode({"size": [item["height"], item["width"]], "counts": obj["rle"].encode()})
            side = max(m.shape)
            sq = np.zeros((side, side), np.uint8)
            top, left = (side - m.shape[0]) // 2, (side - m.shape[1]) // 2
            sq[top : top + m.shape[0], left : left + m.shape[1]] = m * 255
            expected = np.asarray(Image.fromarray(sq).resize((100, 100), Image.BILINEAR)) > 127
            found = object_mask(x[None], targets[k][None], 0.3)[0].numpy()
            inter, union = (found & expected).sum(), (found | expected).sum()
            assert inter / union > 0.85
            # off the object the target is the input dimmed by (1 - s)
            off = ~np.asarray(Image.fromarray(sq).resize((100, 100), Image.BILINEAR)).astype(bool)
            torch.testing.assert_close(targets[k][:, off], 0.7 * x[:, off])
        # padding is grey 127 in the input (the sample photos are landscape: padded top and bottom)
        assert torch.allclose(x[:, 0, :], torch.full((3, 100), 127 / 255), atol=1 / 255)


def test_train_cli_runs_on_the_sample(run_cli, tmp_path):
    root = shared_path(*SAMPLE)
    proc = run_cli("attnlab.train", "model=gating_coco", f"data.root={root}", "debug=tiny", env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics_file = next((tmp_path / "outputs" / "train").rglob("metrics.json"))
    metrics = json.loads(metrics_file.read_text())
    for key in ("test/acc", "test/bacc", "test/f1", "test/iou", "test/acc_g1", "test/bacc_g2", "val/f1_g1"):
        assert key in metrics
    assert (metrics_file.parent / "confusion_matrix_test.png").is_file()
    assert list((tmp_path / "outputs" / "cache").glob("coco_objects_annotations_*.json"))


# --- a generated dataset: splits, labels, weights, cache, bad input ----------------------------


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco"
    write_synthetic_coco(root, num_images=30, instances_per_image=4, image_size=(64, 48), seed=1)
    return root


def make_dm(root, tmp_path, **kw):
    return COCOObjectsDataModule(
        root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=4, min_area=0.03, max_overlap=0.05, **kw
    )


def test_generated_dataset_supercategories_splits_and_loader(coco_root, tmp_path):
    dm = make_dm(coco_root, tmp_path)
    dm.setup("fit")
    assert dm.class_names == ["animal", "furniture", "vehicle"]
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    ids = [{it["id"] for it in dm.datasets[s].items} for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # disjoint splits
    total = sum(sizes.values())
    assert sizes["test"] == round(0.15 * total) and sizes["val"] == round(0.3 * total)
    assert dm.stats["excluded_fewer_than_two"] == 30 - total > 0
    x, targets, labels = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 100, 100) and targets.shape == (4, 2, 3, 100, 100) and labels.max() < 12
    # same seed, same splits
    dm2 = make_dm(coco_root, tmp_path)
    dm2.setup("fit")
    assert [it["id"] for it in dm2.datasets["val"].items] == [it["id"] for it in dm.datasets["val"].items]


def test_fixed_class_order_excludes_other_labels(coco_root, tmp_path, caplog):
    dm = make_dm(coco_root, tmp_path, classes=["vehicle", "animal"])
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert dm.class_names == ["vehicle", "animal"] and "labels outside data.classes" in caplog.text
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        for item, (_, _, labels) in zip(ds.items, (ds[i] for i in range(len(ds)))):
            assert [dm.class_names[i] for i in labels] == [o["label"] for o in item["objects"]]
            assert "furniture" not in [o["label"] for o in item["objects"]]


def test_coco2017_layout_uses_val2017_as_test(tmp_path):
    root = tmp_path / "coco2017"
    write_synthetic_coco(
        root, 20, 4, annotation_file="annotations/instances_train2017.json", image_dir="train2017", seed=2
    )
    write_synthetic_coco(root, 8, 4, annotation_file="annotations/instances_val2017.json", image_dir="val2017", seed=3)
    dm = make_dm(root, tmp_path)
    dm.setup("fit")
    assert dm.datasets["test"].image_dir == root / "val2017"
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == len(
        build_metadata(root / "annotations/instances_train2017.json", 0.03, 0.05)["images"]
    )
    assert dm.datasets["test"][0][0].shape == (3, 100, 100)


def test_class_weights_inverse_frequency_and_missing_class():
    labels = [0, 0, 0, 1, 2, 2]
    w = inverse_frequency_weights(labels, 4)
    inv = np.array([1 / 3, 1 / 1, 1 / 2])
    np.testing.assert_allclose(w[:3], inv / inv.sum())  # the reference's normalised inverse frequency
    assert w[3] == max(w[:3])  # a class absent from the split: finite, as rare as the rarest
    weights = torch.tensor(w)
    loss = torch.nn.functional.cross_entropy(torch.zeros(2, 4), torch.tensor([3, 3]), weight=weights)
    assert torch.isfinite(loss)


def test_module_takes_inverse_frequency_weights_from_the_data(coco_root, tmp_path):
    from attnlab.models.gating import GatingModule, GatingNet

    dm = make_dm(coco_root, tmp_path, image_size=32)
    net = GatingNet(3, (32, 32), [4, 4], num_classes=12, upsample="bicubic", strength=0.3)
    module = GatingModule(net, torch.optim.Adam, class_weights="inverse_frequency")
    assert module.class_weights.shape == (12,)

    class Trainer:  # what setup() reads from the trainer
        datamodule = dm

    module._trainer = Trainer()
    module.setup("fit")
    expected = inverse_frequency_weights(dm.datasets["train"].labels(), 12)
    torch.testing.assert_close(module.class_weights, torch.tensor(expected, dtype=torch.float))


def test_metadata_cache_reused_rebuilt_and_atomic(coco_root, tmp_path, monkeypatch):
    ann_file = coco_root / "annotations.json"
    cache = tmp_path / "cache"
    first = load_metadata(ann_file, cache, 0.03, 0.05)
    files = list(cache.glob("*.json"))
    assert len(files) == 1

    def fail(*a, **k):
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setattr(coco_cache, "build_metadata", fail)
    assert load_metadata(ann_file, cache, 0.03, 0.05)["images"] == first["images"]
    monkeypatch.undo()

    # the annotation file changes (one object dropped): the cache is rebuilt
    data = json.loads(ann_file.read_text())
    keep_id = first["images"][0]["objects"][0]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["id"] != keep_id]
    ann_file.write_text(json.dumps(data))
    rebuilt = load_metadata(ann_file, cache, 0.03, 0.05)
    assert first["images"][0]["id"] not in [it["id"] for it in rebuilt["images"]] or keep_id not in [
        o["id"] for it in rebuilt["images"] for o in it["objects"]
    ]

    # interrupted while writing: the old cache stays whole and no temp file is left
    data["annotations"] = data["annotations"][:-1]
    ann_file.write_text(json.dumps(data))
    before = files[0].read_bytes()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(coco_cache.json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_metadata(ann_file, cache, 0.03, 0.05)
    assert files[0].read_bytes() == before
    assert [p.name for p in cache.iterdir()] == [files[0].name]


def test_bad_input_errors(coco_root, tmp_path):
    with pytest.raises(UserError, match="not found: data.root"):
        make_dm(tmp_path / "nowhere", tmp_path).setup("fit")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="annotation file not found: .*instances_train2017.json"):
        make_dm(empty, tmp_path).setup("fit")
    (empty / "annotations.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read COCO annotations .*annotations.json"):
        make_dm(empty, tmp_path).setup("fit")
    # a missing image file names the path
    meta = build_metadata(coco_root / "annotations.json", 0.03, 0.05)
    victim = coco_root / meta["images"][0]["file_name"]
    victim.unlink()
    with pytest.raises(UserError, match=f"image file not found: {victim}"):
        make_dm(coco_root, tmp_path).setup("fit")
    # too many labels for the model's logits
    with pytest.raises(UserError, match="num_classes"):
        make_dm(shared_path(*SAMPLE), tmp_path, num_classes=3).setup("fit")


def test_corrupt_images_skipped_and_counted_or_strict(coco_root, tmp_path, caplog):
    meta = build_metadata(coco_root / "annotations.json", 0.03, 0.05)
    bad = [coco_root / it["file_name"] for it in meta["images"][:2]]
    for path in bad:
        path.write_bytes(b"\x00garbage, not an image")
    dm = make_dm(coco_root, tmp_path)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert dm.stats["corrupt_images"] == 2 and "corrupt image" in caplog.text
    used = {dm.datasets[s].path(it) for s in ("train", "val", "test") for it in dm.datasets[s].items}
    assert not used & set(bad)
    with pytest.raises(UserError, match="corrupt image"):
        make_dm(coco_root, tmp_path, strict=True).setup("fit")
    # a truncated JPEG passes the header check but fails to decode: skipped at load time, or an error if strict
    good = dm.datasets["train"]
    truncated = good.path(good.items[0])
    truncated.write_bytes(truncated.read_bytes()[:200])
    x, _, _ = good[0]  # the next item is used instead
    assert x.shape == (3, 100, 100) and good.unreadable == {good.items[0]["file_name"]}
    good.strict = True
    with pytest.raises(UserError, match="unreadable image"):
        good[0]


def test_too_few_images_for_the_splits(tmp_path):
    root = tmp_path / "two"
    shutil.copytree(shared_path(*SAMPLE), root)
    data = json.loads((root / "annotations.json").read_text())
    data["images"] = data["images"][:2]
    (root / "annotations.json").write_text(json.dumps(data))
    os.chmod(root / "annotations.json", 0o644)
    with pytest.raises(UserError, match="no images left for the"):
        make_dm(root, tmp_path).setup("fit")


def test_gating_coco_config_picks_coco_data():
    from hydra import compose, initialize_config_dir

    from attnlab.utils.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=gating_coco"])
    assert cfg.data._target_ == "attnlab.data.coco_objects.COCOObjectsDataModule"
    assert list(cfg.model.net.input_size) == [100, 100] and cfg.model.net.upsample == "bicubic"
    assert cfg.data.strength == cfg.model.strength == 0.3
    assert cfg.model.net._target_ == "attnlab.models.gating.GatingNet"  # the same class as gating_mnist
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        paper = compose("train", overrides=["experiment=gating_coco_paper"])
    assert paper.data.min_area == 0.1 and paper.model.recon_weight == 5000.0 and paper.trainer.max_epochs == 100


# --- evaluation metrics --------------------------------------------------------------------------


def confmat_of(y, p, c):
    return torch.bincount(torch.as_tensor(y) * c + torch.as_tensor(p), minlength=c * c).view(c, c)


def test_balanced_accuracy_and_macro_f1_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(5):
        y = rng.integers(0, 7, 200)
        p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 9, 200))  # class 8 only predicted
        y[y == 3] = 4  # class 3 absent from targets
        cm = confmat_of(y, p, 9)
        assert float(balanced_accuracy(cm)) == pytest.approx(metrics.balanced_accuracy_score(y, p), abs=1e-6)
        assert float(macro_f1(cm)) == pytest.approx(metrics.f1_score(y, p, average="macro"), abs=1e-6)


def test_attention_iou_and_glimpse_metrics_accumulate():
    gate = torch.ones(1, 1, 4, 4)
    gate[0, 0, :2, :2] = 0.0  # attends the top-left 2x2
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :3] = True
    assert float(attention_iou(gate, mask)[0]) == pytest.approx(4 / 6)
    assert torch.isnan(attention_iou(torch.ones(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool)))[0]

    from types import SimpleNamespace

    def results(logits, target, gate, target_image):
        return [
            SimpleNamespace(
                output=SimpleNamespace(logits=logits, gates=[gate]), target_class=target, target_image=target_image
            )
        ]

    s = 0.2
    x = torch.rand(6, 1, 4, 4) + 0.1
    obj = torch.zeros_like(x)
    obj[..., :2, :3] = x[..., :2, :3]
    target_image = (1 - s) * x + s * obj
    gates = gate.expand(6, -1, -1, -1)
    logits = torch.eye(3)[[0, 1, 2, 0, 1, 1]] * 5
    target = torch.tensor([0, 1, 2, 0, 2, 2])
    whole = GlimpseMetrics(3, 1, s)
    whole.update(x, results(logits, target, gates, target_image))
    parts = GlimpseMetrics(3, 1, s)
    for sl in (slice(0, 2), slice(2, 6)):
        parts.update(x[sl], results(logits[sl], target[sl], gates[sl], target_image[sl]))
    a, b = whole.compute(), parts.compute()
    assert a.keys() == b.keys() and {"acc", "bacc", "f1", "iou", "acc_g1", "iou_g1"} <= set(a)
    for k in a:
        assert float(a[k]) == pytest.approx(float(b[k]))
    assert float(a["acc"]) == pytest.approx(4 / 6) and float(a["iou"]) == pytest.approx(4 / 6)
