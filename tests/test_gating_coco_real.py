"""Object-based gating on real COCO photos (shared/data/coco_tiny): the loader's selection report, eval with
bootstrap intervals checked against an independent NumPy/sklearn computation, inhibition, fine-tuning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import ONE_THREAD, shared_path

from attnlab.data.coco_objects import COCOObjectsDataModule
from attnlab.models.gating.intervals import bootstrap_intervals, chance_levels, scores

TINY = ("data", "coco_tiny")
PAPER_COCO = ("data", "gating_paper_checkpoints", "paper_coco_model.pt")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_dm(tmp_path, **kw):
    return COCOObjectsDataModule(root=str(shared_path(*TINY)), cache_dir=str(tmp_path / "cache"), **kw)


# --- loader ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_area", [0.1, 0.05])
def test_selection_report_accounts_for_every_photo(tmp_path, min_area):
    """Kept + dropped = all photos; an image-level count from the raw JSON agrees with the reasons."""
    dm = tiny_dm(tmp_path, min_area=min_area)
    dm.setup("fit")
    root = shared_path(*TINY)
    for key, split_file in (("train_file", "train2017"), ("test_file", "val2017")):
        report = dm.stats["selection"][key]
        raw = json.loads((root / "annotations" / f"instances_{split_file}.json").read_text())
        assert report["images"] == len(raw["images"]) == report["kept_images"] + sum(report["dropped"].values())
        assert report["kept_objects"] == 2 * report["kept_images"] == 2 * report["object_pairs"]
        # independent count: photos with fewer than two non-crowd objects over min_area
        size = {im["id"]: im["height"] * im["width"] for im in raw["images"]}
        large = {i: 0 for i in size}
        for a in raw["annotations"]:
            large[a["image_id"]] += (not a["iscrowd"]) and a["area"] > min_area * size[a["image_id"]]
        few = sum(n < 2 for n in large.values())
        d = report["dropped"]
        assert d["too_few_over_min_area"] + d["crowd"] + d["no_annotations"] == few
        assert (
            report["kept_images"]
            + d["overlap"]
            + d["unreadable_segmentation"]
            + d["corrupt_image"]
            + d["labels_outside_classes"]
            == len(size) - few
        )
    assert len(dm.datasets["test"]) == dm.stats["selection"]["test_file"]["kept_images"]
    assert dm.stats["splits"]["train"] + dm.stats["splits"]["val"] == dm.stats["selection"]["train_file"]["kept_images"]


def test_real_photos_items_labels_are_supercategories(tmp_path):
    dm = tiny_dm(tmp_path, min_area=0.1)
    dm.setup("test")
    raw = json.loads((shared_path(*TINY) / "annotations" / "instances_val2017.json").read_text())
    supercategory = {c["id"]: c["supercategory"] for c in raw["categories"]}
    category_of = {a["id"]: a["category_id"] for a in raw["annotations"]}
    assert dm.class_names == sorted(dm.class_names) and len(dm.class_names) == 12
    ds = dm.datasets["test"]
    for i in range(2):
        x, targets, labels = ds[i]
        assert x.shape == (3, 100, 100) and targets.shape == (2, 3, 100, 100)
        names = [dm.class_names[int(j)] for j in labels]
        assert names == [supercategory[category_of[o["id"]]] for o in ds.items[i]["objects"]]
        assert ds.items[i]["objects"][0]["area"] >= ds.items[i]["objects"][1]["area"]  # largest first
        # each target dims everything but its object by (1 - s): never brighter than the photo
        assert (targets <= x + 1e-6).all() and (targets >= 0.7 * x - 1e-6).all()


# --- bootstrap intervals: an independent reference ------------------------------------------------


def reference_intervals(target, pred, iou, seed, samples, level=0.95):
    """Naive percentile bootstrap over images with sklearn's scores (the documented draw scheme)."""
    metrics = pytest.importorskip("sklearn.metrics")
    n = target.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    draws: dict[str, list[float]] = {}

    def add(name, t, p, u):
        draws.setdefault(f"acc{name}", []).append(metrics.accuracy_score(t, p))
        draws.setdefault(f"bacc{name}", []).append(metrics.balanced_accuracy_score(t, p))
        draws.setdefault(f"f1{name}", []).append(metrics.f1_score(t, p, average="macro"))
        draws.setdefault(f"iou{name}", []).append(np.nanmean(u) if np.isfinite(u).any() else np.nan)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes predicted but absent from a draw's targets
        for row in idx:
            t, p, u = target[:, row], pred[:, row], iou[:, row]
            for k in range(target.shape[0]):
                add(f"_g{k + 1}", t[k], p[k], u[k])
            add("", t.ravel(), p.ravel(), u.ravel())
    tail = 100 * (1 - level) / 2
    out = {}
    for key, values in draws.items():
        v = np.asarray(values, dtype=float)
        out[key] = tuple(np.percentile(v[np.isfinite(v)], [tail, 100 - tail]))
    return out


def test_bootstrap_intervals_match_a_naive_reference():
    rng = np.random.default_rng(5)
    target = rng.integers(0, 6, size=(2, 23))
    pred = np.where(rng.random((2, 23)) < 0.5, target, rng.integers(0, 8, size=(2, 23)))
    iou = rng.random((2, 23))
    iou[0, 4] = np.nan
    ours = bootstrap_intervals(target, pred, iou, num_classes=8, samples=300, seed=11)
    ref = reference_intervals(target, pred, iou, seed=11, samples=300)
    assert ours.keys() == ref.keys()
    for key in ref:
        np.testing.assert_allclose(ours[key], ref[key], atol=1e-12, err_msg=key)
    # a different seed draws different images
    assert bootstrap_intervals(target, pred, iou, 8, samples=300, seed=12)["bacc"] != ours["bacc"]


def test_chance_levels_of_uniform_guesses():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 12, size=(2, 40))
    chance = chance_levels(target, np.full((2, 40), 0.2), 12, draws=400, seed=0)
    assert chance["acc"] == pytest.approx(1 / 12, abs=0.01) and chance["bacc"] == pytest.approx(1 / 12, abs=0.01)
    assert chance["iou"] == pytest.approx(0.2)  # a gate attending everything: IoU = the object's share
    assert scores(target, target, np.ones((2, 40)), 12)["bacc"] == 1.0


# --- eval on real photos --------------------------------------------------------------------------


def read_records(path):
    rows = list(csv.DictReader(open(path)))
    n, g = 1 + max(int(r["image"]) for r in rows), max(int(r["glimpse"]) for r in rows)
    rec = {k: np.full((g, n), np.nan) for k in ("target", "pred", "iou", "mask_fraction")}
    for r in rows:
        for k in rec:
            rec[k][int(r["glimpse"]) - 1, int(r["image"])] = float(r[k])
    return rec["target"].astype(int), rec["pred"].astype(int), rec["iou"], rec["mask_fraction"]


def test_eval_paper_coco_checkpoint_on_real_photos(run_cli, tmp_path):
    """A few photos: metrics.json has intervals that an independent bootstrap reproduces from the
    per-image records, the records reproduce the scores, and the figures and selection report exist."""
    proc = run_cli(
        "attnlab.eval",
        "model=gating_coco",
        f"ckpt_path={shared_path(*PAPER_COCO)}",
        f"data.root={shared_path(*TINY)}",
        "debug=tiny",
        "data.batch_size=4",
        "model.bootstrap_samples=200",
        "model.bootstrap_seed=3",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "95% CI" in proc.stdout and "chance" in proc.stdout
    run = next((tmp_path / "outputs" / "eval").rglob("metrics.json")).parent
    metrics = json.loads((run / "metrics.json").read_text())
    target, pred, iou, fraction = read_records(run / "test_per_image.csv")
    assert target.shape == (2, 8) and metrics["test/images"] == 8  # debug=tiny: 2 batches of 4 photos
    # the records are what the epoch metrics scored
    point = scores(target, pred, iou, 12)
    for key in ("acc", "bacc", "f1", "iou", "bacc_g1", "iou_g2"):
        assert metrics[f"test/{key}"] == pytest.approx(point[key], abs=1e-5), key
    ref = reference_intervals(target, pred, iou, seed=3, samples=200)
    for key, (low, high) in ref.items():
        assert metrics[f"test/{key}_ci_low"] == pytest.approx(low, abs=1e-5), key
        assert metrics[f"test/{key}_ci_high"] == pytest.approx(high, abs=1e-5), key
    assert metrics["test/iou_chance"] == pytest.approx(np.nanmean(fraction), abs=1e-5)
    assert metrics["test/bacc_chance"] == pytest.approx(1 / 12, abs=0.03)
    selection = json.loads((run / "data_selection.json").read_text())["selection"]
    assert selection["min_area"] == 0.05 and selection["test_file"]["kept_images"] >= 8
    assert (run / "attention_test.png").stat().st_size > 10_000
    intervals = json.loads((run / "test_intervals.json").read_text())
    assert intervals["bootstrap_samples"] == 200  # logged metrics are float32; the JSON keeps float64
    assert intervals["bacc"]["low"] == pytest.approx(metrics["test/bacc_ci_low"], abs=1e-6)


# --- inhibition and fine-tuning with the paper's COCO weights -------------------------------------


@pytest.fixture(scope="module")
def paper_coco_module():
    from attnlab.models.gating import GatingModule
    from attnlab.models.gating.paper import load_paper_checkpoint

    net = load_paper_checkpoint(shared_path(*PAPER_COCO), "coco")
    return GatingModule(net, torch.optim.Adam, glimpses=2).eval()


def test_inhibition_on_real_photos(paper_coco_module, tmp_path):
    from attnlab.analysis.inhibition import InhibitionAnalysis

    dm = tiny_dm(tmp_path, min_area=0.1, batch_size=3)
    results = InhibitionAnalysis(max_images=5).run(paper_coco_module, dm, tmp_path)
    values = np.load(tmp_path / "inhibition_values.npz")
    attended, not_attended = values["attended"], values["not_attended"]
    assert attended.shape == not_attended.shape == (2, 5)
    a_img, n_img = np.nanmean(attended, 0), np.nanmean(not_attended, 0)
    assert results["attended"]["mean"] == pytest.approx(a_img.mean())
    assert results["paired_t_test"]["df"] == 4
    gain = results["gain"]
    assert gain["strength"] == pytest.approx(0.3)
    assert gain["attended"]["mean"] == pytest.approx(np.mean(1 - 0.3 * a_img))
    assert gain["ratio"]["mean"] == pytest.approx(np.mean((1 - 0.3 * a_img) / (1 - 0.3 * n_img)))
    assert (tmp_path / "inhibition.png").stat().st_size > 1000


def test_init_from_loads_the_paper_weights_when_fitting(tmp_path):
    from attnlab.models.gating import GatingModule, GatingNet
    from attnlab.models.gating.paper import PAPER_ARCHITECTURES, load_paper_checkpoint

    path = shared_path(*PAPER_COCO)
    module = GatingModule(GatingNet(**PAPER_ARCHITECTURES["coco"]), torch.optim.Adam, init_from=str(path))
    paper = load_paper_checkpoint(path, "coco").state_dict()
    assert not torch.equal(module.net.state_dict()["convs.0.weight"], paper["convs.0.weight"])  # not at construction
    module.setup("fit")
    for key, value in paper.items():
        assert torch.equal(module.net.state_dict()[key], value), key
    # a Lightning checkpoint of the module: its net is taken
    ckpt = tmp_path / "ft.ckpt"
    torch.save({"state_dict": {f"net.{k}": v * 2 for k, v in paper.items()}}, ckpt)
    other = GatingModule(GatingNet(**PAPER_ARCHITECTURES["coco"]), torch.optim.Adam, init_from=str(ckpt))
    other.setup("fit")
    assert torch.equal(other.net.state_dict()["convs.0.weight"], 2 * paper["convs.0.weight"])
