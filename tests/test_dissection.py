"""Per-basis thresholds, scene graphs and concept masks, batched IoU dissection, contributions, and
``python -m attnlab.analyze analysis=dissection|contributions`` end to end on a GQA-format fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.analysis.contributions import category_totals, concept_importance, normalise_by_sign
from attnlab.analysis.dissection import IoUAccumulator, dissect, iou_python_loop, top_concepts
from attnlab.analysis.thresholds import StreamingQuantile, basis_thresholds, repo_compat_thresholds, repo_histogram
from attnlab.data.scene_graphs import (
    Box,
    ConceptMaskDataset,
    build_vocabulary,
    collate_concepts,
    concept_masks,
    lemmatize_noun,
    load_scene_graphs,
    normalize_object_name,
)
from attnlab.utils.config import UserError

# tiny test models: a second thread gains nothing, and OpenMP waits dominate on a busy machine
# (a 32x48 ResNet-50 forward: 0.06 s on one thread, 3 s on two)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --- thresholds --------------------------------------------------------------------------------


def _activations(seed=0, k=5):
    g = torch.Generator().manual_seed(seed)
    batches = [
        torch.sigmoid(3 * torch.randn(3, k, 6, 7, generator=g) + torch.linspace(-3, 3, k).view(1, k, 1, 1))
        for _ in range(4)
    ]
    batches[1][:, 0] = 1.0  # a saturated basis: many equal values
    return batches


@pytest.mark.parametrize("q", [0.8, 0.5, 0.0, 1.0, 0.97])
def test_streaming_quantile_is_exact_after_refinement(q):
    batches = _activations()
    everything = torch.cat([b.transpose(0, 1).reshape(5, -1) for b in batches], 1)
    reference = torch.quantile(everything.double(), q, dim=1).float()
    acc = StreamingQuantile(5, q, bins=32)
    for b in batches:
        acc.update(b)
    assert (acc.estimate() - reference).abs().max() <= 1 / 32 + 1e-6  # within one bin
    acc.start_refine()
    for b in reversed(batches):  # any order
        acc.refine(b)
    torch.testing.assert_close(acc.compute(), reference)


def test_basis_thresholds_runs_two_passes_over_a_model():
    batches = _activations(1)
    images = [torch.zeros(3, 3, 4, 4) + i for i in range(len(batches))]
    probs = lambda x: batches[int(x[0, 0, 0, 0])]
    tau, n = basis_thresholds(probs, lambda: iter(images), 5, q=0.8, bins=16, progress=False)
    everything = torch.cat([b.transpose(0, 1).reshape(5, -1) for b in batches], 1)
    torch.testing.assert_close(tau, torch.quantile(everything.double(), 0.8, dim=1).float())
    assert n == everything.shape[1]


def test_repo_compat_threshold_is_a_cumulative_mass_not_a_quantile():
    # one image, K=2 bases, 10 locations each: masses are counts / (1 image * 2 bases), summing to 5
    p = torch.tensor([[0.005] * 6 + [0.5] * 4, [0.995] * 10]).view(1, 2, 2, 5)
    counts = repo_histogram(p)
    assert counts[0, 0] == 6 and counts[0, 50 - 1] == 4 and counts[1, 99] == 10
    tau = repo_compat_thresholds(counts, num_images=1)
    # basis 0: cumulative mass 3.0 at the first bin (>= 0.8); basis 1: never reaches 0.8 before bin 99 -> 0
    assert tau.tolist() == pytest.approx([3.0, 0.0])


# --- scene graphs ------------------------------------------------------------------------------


def test_names_are_lemmatised_like_wordnet_for_common_vg_names():
    cases = {
        "men": "man",
        "trees": "tree",
        "skies": "sky",
        "buses": "bus",
        "glasses": "glasses",
        "benches": "bench",
        "cookies": "cookie",
        "leaves": "leaf",
        "grass": "grass",
        "boxes": "box",
        "shoes": "shoe",
        "people": "person",
    }
    assert {w: lemmatize_noun(w) for w in cases} == cases
    assert normalize_object_name(" Tennis Rackets ") == "tennis_racket"


def test_concept_masks_cover_boxes_and_keep_small_objects():
    # 40x80 image, 4x8 grid: one cell = 10x10 px
    ids, masks = concept_masks(
        {3: [Box(0, 0, 20, 10)], 5: [Box(41, 21, 2, 2)], 7: [Box(0, 0, 20, 10), Box(70, 30, 10, 10)]}, (40, 80), (4, 8)
    )
    assert ids.tolist() == [3, 5, 7]
    assert masks[0].nonzero().tolist() == [[0, 0], [0, 1]]
    assert masks[1].nonzero().tolist() == [[2, 4]]  # a 2x2 px object still owns its centre cell
    assert masks[2].nonzero().tolist() == [[0, 0], [0, 1], [3, 7]]  # union of boxes
    # half-covered cells count at coverage 0.5 but not at 0.9
    _, half = concept_masks({0: [Box(0, 0, 15, 10)]}, (40, 80), (4, 8), coverage=0.5)
    _, strict = concept_masks({0: [Box(0, 0, 15, 10)]}, (40, 80), (4, 8), coverage=0.9)
    assert half[0].sum() == 2 and strict[0].sum() == 1


# --- GQA fixture ---------------------------------------------------------------------------------

# image size 60x80 (cells of 10x10 px on a 6x8 grid): the sky is the top third, a man stands at the
# left, trees at the right
SKY, MAN, TREE = Box(0, 0, 80, 20), Box(10, 20, 20, 30), Box(50, 20, 20, 30)


def make_gqa(root: Path, n: int = 6) -> tuple[Path, Path]:
    """Images whose red channel marks the sky and green channel the man, and their scene graphs."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for i in range(n):
        pixels = np.zeros((60, 80, 3), dtype=np.uint8)
        pixels[0:20, :, 0] = 255
        pixels[20:50, 10:30, 1] = 255
        Image.fromarray(pixels).save(images / f"{2300 + i}.jpg", quality=95)
        objects = {
            "1": {
                "name": "sky",
                "x": SKY.x,
                "y": SKY.y,
                "w": SKY.w,
                "h": SKY.h,
                "attributes": ["blue", "clear"],
                "relations": [],
            },
            "2": {
                "name": "Men" if i % 2 else "man",
                "x": MAN.x,
                "y": MAN.y,
                "w": MAN.w,
                "h": MAN.h,
                "attributes": ["standing"],
                "relations": [],
            },
        }
        if i < 3:
            objects["3"] = {
                "name": "trees",
                "x": TREE.x,
                "y": TREE.y,
                "w": TREE.w,
                "h": TREE.h,
                "attributes": [],
                "relations": [],
            }
        graphs[str(2300 + i)] = {"width": 80, "height": 60, "objects": objects}
    path = root / "train_sceneGraphs.json"
    path.write_text(json.dumps(graphs))
    return path, images


def test_vocabulary_filters_and_counts(tmp_path):
    graphs = load_scene_graphs(make_gqa(tmp_path)[0])
    vocab = build_vocabulary(graphs, min_images=4)
    assert set(vocab.names) == {"sky", "man", "blue", "clear", "standing"}  # 'trees' occurs in 3 images only
    assert vocab.image_counts[vocab.index["man"]] == 6  # 'Men' and 'man' are one concept
    assert vocab.kinds[vocab.index["blue"]] == "attribute"
    assert build_vocabulary(graphs, include_attributes=False).names == ["man", "sky", "tree"]
    assert build_vocabulary(graphs, object_allowlist=["sky"], attribute_allowlist=[]).names == ["sky"]
    assert build_vocabulary(graphs, max_concepts=2, blocklist=["blue"]).names == ["clear", "man"]  # ties by name
    with pytest.raises(UserError, match="min_images"):
        build_vocabulary(graphs, min_images=100)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a GQA"):
        load_scene_graphs(tmp_path / "bad.json")


def test_dissection_finds_the_concept_a_basis_detects(tmp_path):
    """Basis 0 fires on red (the sky), basis 1 on green (the man), basis 2 nowhere."""
    path, images = make_gqa(tmp_path)
    graphs = load_scene_graphs(path)
    vocab = build_vocabulary(graphs, include_attributes=False)
    grid = (6, 8)
    data = ConceptMaskDataset(graphs, vocab, images, image_size=(30, 40), grid=grid, include_attributes=False)
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate_concepts)

    def probabilities(x):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, grid)
        return torch.stack([pooled[:, 0], pooled[:, 1], torch.zeros_like(pooled[:, 0])], 1)

    acc = dissect(probabilities, loader, torch.tensor([0.5, 0.5, 0.5]), len(vocab), progress=False)
    iou = acc.image_mean()
    sky, man, tree = (vocab.index[c] for c in ("sky", "man", "tree"))
    assert iou[0, sky] > 0.9 and iou[1, man] > 0.9
    assert iou[0, man] == 0 and iou[1, sky] == 0 and iou[2].max() == 0
    assert acc.images.tolist()[tree] == 3
    assert [c for c, _ in top_concepts(iou, vocab.names, 2)[0]][0] == "sky"
    # dataset level: the man basis fires on all 6 images, the tree exists in 3 -> union includes the others
    assert acc.dataset()[1, man] > 0.9 and acc.dataset()[0, tree] == 0


def test_batched_iou_equals_the_reference_loop():
    g = torch.Generator().manual_seed(0)
    B, K, n, C, h, w = 5, 7, 4, 12, 6, 8
    on = torch.rand(B, K, h, w, generator=g) > 0.6
    concepts = torch.stack([torch.randperm(C, generator=g)[:n] for _ in range(B)])
    concepts[0, 3] = -1
    masks = torch.rand(B, n, h, w, generator=g) > 0.7
    masks[0, 3] = False
    masks[2, 1] = False  # a concept whose mask vanished is not counted
    acc = IoUAccumulator(K, C)
    acc.update(on[:2], concepts[:2], masks[:2])
    acc.update(on[2:], concepts[2:], masks[2:])
    total, images = iou_python_loop(on, concepts, masks, C)
    torch.testing.assert_close(acc.iou_sum, total)
    as_float = IoUAccumulator(K, C)  # float 0/1 maps, as threshold_maps makes them
    as_float.update(on.float(), concepts, masks)
    torch.testing.assert_close(as_float.iou_sum, total)
    assert torch.equal(acc.images, images)
    # dataset level against a brute force over all images (absent concepts: empty masks)
    inter, union = torch.zeros(K, C), torch.zeros(K, C)
    for i in range(B):
        full = torch.zeros(C, h, w, dtype=torch.bool)
        for j in range(n):
            if concepts[i, j] >= 0:
                full[concepts[i, j]] = masks[i, j]
        inter += (on[i, :, None] & full[None]).flatten(2).sum(2)
        union += (on[i, :, None] | full[None]).flatten(2).sum(2)
    torch.testing.assert_close(acc.dataset().float(), torch.where(union > 0, inter / union, torch.zeros_like(union)))


# --- contributions -------------------------------------------------------------------------------


def test_concept_importance_by_hand():
    iou = torch.tensor([[0.6, 0.2, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0], [float("nan"), 0.3, 0.1, 0.0]])
    w = torch.tensor([2.0, 5.0, -2.0])
    importance, count = concept_importance(iou, w, top_k=2)
    # basis 0: top2 = c0 (.6), c1 (.2) -> alpha .75, .25; basis 1 has no IoU: skipped; basis 2: c1 .75, c2 .25
    assert importance.tolist() == pytest.approx([1.5, 0.5 - 1.5, -0.5, 0.0])
    assert count.tolist() == [1, 2, 1, 0]
    assert normalise_by_sign(importance).tolist() == pytest.approx([1.0, -1.0, -0.5, 0.0])
    totals = category_totals(
        ["face", "sky", "cloud", "zebra"], normalise_by_sign(importance), {"social": ["face"], "sky": ["sky", "cloud"]}
    )
    assert totals["social"]["normalised"] == pytest.approx(1.0)
    assert totals["sky"]["total"] == pytest.approx(-1.5) and totals["sky"]["normalised"] == pytest.approx(-1.0)
    assert "other" in totals  # unmapped concepts go to "other"
    with pytest.raises(UserError, match="bases"):
        concept_importance(iou, torch.ones(2))


# --- end to end ----------------------------------------------------------------------------------


def _tiny_checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    """Phase-1 and phase-2 checkpoints of a tiny DINet, saved the way attnlab.train saves them."""
    import hydra
    from omegaconf import OmegaConf

    from attnlab.utils.checkpoint import CONFIG_KEY
    from attnlab.utils.cli import compose_config

    paths = []
    for phase in (1, 2):
        overrides = [
            "model=saliency_dinet",
            "data.image_size=[30,40]",
            "model.bases=4",
            "model.net.width=8",
            "model.net.backbone_weights=none",
            f"model.phase={phase}",
        ]
        cfg = compose_config("train", overrides)
        stored = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "data")}
        torch.manual_seed(0)  # the same bases in both phases, like a real phase 2
        module = hydra.utils.instantiate(cfg.model, _convert_="all")
        if phase == 2:
            with torch.no_grad():
                module.net.basis_head.weight.copy_(torch.linspace(-1, 1, 4 * 9).view(1, 4, 3, 3))
        path = tmp_path / f"phase{phase}.ckpt"
        torch.save({"state_dict": module.state_dict(), CONFIG_KEY: stored}, path)
        paths.append(path)
    return paths[0], paths[1]


def test_dissection_and_contributions_through_the_analyze_entry_point(run_cli, tmp_path):
    graphs, images = make_gqa(tmp_path / "gqa")
    phase1, phase2 = _tiny_checkpoints(tmp_path)
    result = run_cli(
        "attnlab.analyze",
        "analysis=dissection",
        f"ckpt_path={phase1}",
        f"analysis.scene_graphs={graphs}",
        f"analysis.image_dir={images}",
        "analysis.thresholds.source=dissection",
        "analysis.vocabulary.min_images=1",
        "analysis.batch_size=4",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = sorted((tmp_path / "outputs" / "analyze" / "runs").glob("*/dissection.json"))[-1]
    out = json.loads(run.read_text())
    names = [c["name"] for c in out["concepts"]]
    assert set(names) == {"sky", "man", "tree", "blue", "clear", "standing"}
    assert out["grid"] == [4, 5] and out["num_bases"] == 4 and out["num_images"] == 6
    assert np.array(out["iou_image_mean"]).shape == (4, 6) and np.array(out["iou_dataset"]).shape == (4, 6)
    assert len(out["thresholds"]["values"]) == 4 and out["thresholds"]["source"] == "dissection"
    assert (run.parent / "thresholds.json").is_file()
    assert "concepts" in result.stdout

    result = run_cli(
        "attnlab.analyze",
        "analysis=contributions",
        f"ckpt_path={phase2}",
        f"analysis.dissection={run}",
        "analysis.top_k=2",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = sorted((tmp_path / "outputs" / "analyze" / "runs").glob("*/contributions.json"))[-1].parent
    contributions = json.loads((folder / "contributions.json").read_text())
    assert {Path(f).name for f in contributions["figures"]} == {"concepts.png", "categories.png"}
    assert all(
        (folder / name).stat().st_size > 0
        for name in ("concepts.png", "categories.png", "contributions.csv", "categories.csv")
    )
    weights = torch.linspace(-1, 1, 36).view(4, 9).sum(1)
    assert contributions["basis_weights"] == pytest.approx(weights.tolist(), abs=1e-6)
    assert {r["concept"]: r["category"] for r in contributions["concepts"]}["standing"] == "action"
    assert "other" in contributions["categories"]

    # a phase-1 checkpoint has no basis head
    from attnlab.analysis.contributions import ContributionAnalysis

    with pytest.raises(UserError, match="phase-2"):
        ContributionAnalysis(checkpoint=str(phase1), dissection=str(run)).run(tmp_path)
