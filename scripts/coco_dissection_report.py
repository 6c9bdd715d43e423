"""Tables and figures of the COCO dissection of several saliency models (docs/saliency/coco_dissection.md).

    python scripts/coco_dissection_report.py --out docs/saliency \
        --model DINet outputs/i39/dissection_dinet outputs/i39/contributions_dinet \
        --model TranSalNet outputs/i39/dissection_transalnet outputs/i39/contributions_transalnet

Each --model names a run folder of ``analysis=dissection analysis.annotations=...`` and one of
``analysis=contributions`` on its dissection (``-`` if none). Writes ``coco_dissection_tables.md``,
``coco_supercategories.png`` (contributions by supercategory, the models side by side) and
``coco_bases.jpg`` (photos of a few concepts with each model's best-aligned basis).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from pycocotools.mask import area as mask_area

from attnlab.data.coco_concepts import CocoConceptMaskDataset, load_coco_concepts
from attnlab.models.saliency.module import load_saliency_model
from attnlab.viz.save import plt, save_figure


def _read(folder: str, name: str) -> dict | None:
    return None if folder == "-" else json.loads((Path(folder) / f"{name}.json").read_text())


def _iv(v: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def best_basis(d: dict) -> dict[str, dict]:
    """Per concept: the basis with the highest dataset IoU among those whose top concept it is,
    with its interval, the chance IoU, and how many bases have it as their top concept."""
    names = [c["name"] for c in d["concepts"]]
    out: dict[str, dict] = {}
    for b in d["bases"]:
        top = b["top_dataset"][0]
        entry = out.setdefault(top["concept"], {"bases": 0, "beyond": 0, "best": None})
        entry["bases"] += 1
        entry["beyond"] += bool(b.get("aligned_beyond_chance"))
        if entry["best"] is None or top["iou"] > entry["best"]["iou"]:
            entry["best"] = top | {"basis": b["basis"]}
    for n in names:
        out.setdefault(n, {"bases": 0, "beyond": 0, "best": None})
    return out


def basis_for(d: dict, concept: str) -> dict | None:
    """The basis with the highest dataset-level IoU for one concept, with that IoU and its chance level."""
    names = [c["name"] for c in d["concepts"]]
    if concept not in names:
        return None
    c = names.index(concept)
    column = np.array([row[c] for row in d["iou_dataset"]])
    k = int(column.argmax())
    return {"basis": k, "iou": float(column[k]), "chance": float(d["iou_chance"][k][c])}


def tables(models: list[tuple[str, dict, dict | None]]) -> str:
    lines = ["| model | photos | concepts | bases aligned (IoU > 0.04) | by the spatial prior alone | beyond it |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, d, _ in models:
        s = d["summary"]
        lo, hi = s["bases_aligned_share_interval"]
        lines.append(
            f"| {name} | {s['images']} | {s['concepts']} | {s['bases_aligned']}/{s['bases']} "
            f"({s['bases_aligned'] / s['bases']:.0%} [{lo:.0%}, {hi:.0%}]) | {s['bases_aligned_chance']} | "
            f"{s['bases_aligned_beyond_chance']} |"
        )
    lines += [
        "",
        "Top concepts of the bases (by the number of bases whose best dataset-level IoU is that concept):",
        "",
    ]
    lines.append("| model | concept (bases, of which beyond chance) | best IoU [95%] | chance IoU |")
    lines.append("|---|---|---:|---:|")
    for name, d, _ in models:
        ranked = sorted(best_basis(d).items(), key=lambda kv: (-kv[1]["bases"], kv[0]))[:6]
        for concept, e in ranked:
            if not e["bases"]:
                continue
            b = e["best"]
            lines.append(
                f"| {name} | {concept} ({e['bases']}, {e['beyond']}) | {_iv(b['iou'], *b['interval'])} | "
                f"{b['chance']:.3f} |"
            )
    lines += ["", "Concept contributions (normalised by sign; 95% bootstrap interval over photos):", ""]
    lines.append("| model | largest positive | largest negative |")
    lines.append("|---|---|---|")
    for name, _, c in models:
        if c is None:
            continue
        rows = sorted(c["concepts"], key=lambda r: -r["importance"])
        fmt = lambda r: f"{r['concept']} {_iv(r['normalised'], r['normalised_low'], r['normalised_high'], 2)}"
        pos = [fmt(r) for r in rows if r["importance"] > 0][:5]
        neg = [fmt(r) for r in rows[::-1] if r["importance"] < 0][:5]
        lines.append(f"| {name} | {'<br>'.join(pos)} | {'<br>'.join(neg)} |")
    with_contributions = [(n, c) for n, _, c in models if c is not None]
    if with_contributions:
        cats = sorted({k for _, c in with_contributions for k in c["categories"]})
        lines += ["", "Contributions by supercategory (normalised totals, 95% interval):", ""]
        lines.append("| supercategory | " + " | ".join(n for n, _ in with_contributions) + " |")
        lines.append("|---|" + "---:|" * len(with_contributions))
        for k in cats:
            cells = []
            for _, c in with_contributions:
                v = c["categories"].get(k)
                cells.append(_iv(v["normalised"], v["normalised_low"], v["normalised_high"], 2) if v else "—")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def supercategory_figure(models: list[tuple[str, dict, dict | None]], path: Path) -> Path:
    with_c = [(n, c) for n, _, c in models if c is not None]
    cats = sorted({k for _, c in with_c for k in c["categories"]})
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(with_c))
    for i, (name, c) in enumerate(with_c):
        v = np.array([c["categories"].get(k, {}).get("normalised", 0.0) for k in cats])
        lo = np.array([c["categories"].get(k, {}).get("normalised_low", 0.0) for k in cats])
        hi = np.array([c["categories"].get(k, {}).get("normalised_high", 0.0) for k in cats])
        err = np.clip(np.stack([v - lo, hi - v]), 0, None)  # percentile intervals need not contain v
        ax.bar(np.arange(len(cats)) + (i - (len(with_c) - 1) / 2) * width, v, width, yerr=err, label=name, capsize=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
    ax.set_ylabel("normalised contribution to saliency")
    ax.set_title("Concept contributions summed by COCO supercategory (95% bootstrap intervals over photos)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def bases_figure(models: list[tuple[str, dict, dict | None]], concepts: list[str], photos: int, path: Path) -> Path:
    """Rows: a concept's photos; columns: the photo with the concept's outline, then per model the
    "on" region (p_k > τ_k) of its best-aligned basis for that concept."""
    first = models[0][1]
    reader = load_coco_concepts(first["reader"]["annotations"], min_images=1)
    names = reader.vocabulary.names
    loaded = []
    for name, d, _ in models:
        model, _ = load_saliency_model(d["checkpoint"])
        loaded.append((name, d, model, CocoConceptMaskDataset(reader, d["image_size"], d["grid"])))

    def largest(concept: str) -> list[int]:  # the photos where the concept covers most of the frame
        c = names.index(concept)
        area = lambda im: sum(float(mask_area(r)) for r in im.instances[c]) / (im.height * im.width)
        found = [j for j, im in enumerate(reader.images) if c in im.instances]
        return sorted(found, key=lambda j: -area(reader.images[j]))[:photos]

    rows = [(c, i) for c in concepts for i in largest(c)]
    fig, axes = plt.subplots(len(rows), 1 + len(loaded), figsize=(2.4 * (1 + len(loaded)), 1.9 * len(rows)))
    for r, (concept, i) in enumerate(rows):
        c = names.index(concept)
        photo = loaded[0][3][i]["image"].permute(1, 2, 0).numpy()
        axes[r, 0].imshow(photo)
        axes[r, 0].set_ylabel(concept, fontsize=9)
        for j, (name, d, model, data) in enumerate(loaded):
            ids, masks = data.masks(i)
            item = data[i]
            e = basis_for(d, concept)
            ax = axes[r, j + 1]
            ax.imshow(item["image"].permute(1, 2, 0).numpy())
            if e is not None:
                with torch.no_grad():
                    p = model.net.probabilities(item["image"][None])[0, e["basis"]]
                on = (p > d["thresholds"]["values"][e["basis"]]).float().numpy()
                H, W = item["image"].shape[1:]
                ax.imshow(on, cmap="autumn", alpha=0.45 * (on > 0).astype(float), extent=(0, W, H, 0))
                m = masks[ids.tolist().index(c)].float().numpy() if c in ids.tolist() else None
                if m is not None:
                    ax.contour(np.linspace(0, W, m.shape[1]), np.linspace(0, H, m.shape[0]), m, [0.5], colors="cyan")
                if r == 0 or rows[r - 1][0] != concept:
                    ax.set_title(
                        f"{name}: basis {e['basis']}\nIoU {e['iou']:.2f} (chance {e['chance']:.2f})", fontsize=8
                    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("photo", fontsize=8)
    fig.suptitle("basis 'on' regions (orange) and the concept's mask (cyan)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs=3, action="append", metavar=("NAME", "DISSECTION", "CONTRIBUTIONS"))
    parser.add_argument("--out", default="docs/saliency")
    parser.add_argument("--concepts", default="person,dining table,cat")
    parser.add_argument("--photos", type=int, default=2, help="photos per concept in the figure")
    args = parser.parse_args()
    models = [(n, _read(d, "dissection"), _read(c, "contributions")) for n, d, c in args.model]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coco_dissection_tables.md").write_text(tables(models))
    supercategory_figure(models, out / "coco_supercategories.png")
    bases_figure(models, args.concepts.split(","), args.photos, out / "coco_bases.jpg")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
