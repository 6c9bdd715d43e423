"""Generate task-driven scanpaths: ``python -m attnlab.scanpaths model=neva_classifier [data=images|osie]``.

Writes into the run folder, per image: ``scanpaths/<name>.json`` and ``scanpaths/<name>.csv``
(fixation, x, y in pixels of the ORIGINAL image, best loss) and ``overlays/<name>.png`` (numbered
fixations joined by saccades); for all images: ``scanpaths.csv`` and ``summary.json``. When the
dataset has human fixations (``data=osie`` or any :class:`~attnlab.data.fixations.FixationDataModule`),
the scanpaths are scored against the humans with :mod:`attnlab.metrics.scanpath`, next to centre,
centre-bias, uniform-random and inter-observer baselines: ``scores.json``, ``scores.md`` and
``scores_per_image.csv``, and the table is printed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from attnlab.utils.cli import entry_point
from attnlab.utils.config import UserError
from attnlab.utils.instantiate import instantiate_trainer, write_json

log = logging.getLogger(__name__)

__all__ = ["generate", "ScanpathWriter", "score_scanpaths", "format_table", "SCANPATH_METRICS"]


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


class ScanpathWriter(BasePredictionWriter):
    """Writes each image's scanpath (JSON, CSV) and overlay as soon as its batch is done.

    Args:
        out_dir: the run folder. overlays: also draw PNG overlays.
        humans: {image name: list of human L'×2 scanpaths} to draw thinly on the overlays.
        overlay_humans: how many human scanpaths to draw per overlay.
        meta: extra JSON fields for every image (the model and search settings).
    """

    def __init__(self, out_dir: str | Path, overlays: bool = True, humans: dict[str, list[np.ndarray]] | None = None,
                 overlay_humans: int = 1, meta: dict | None = None) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.overlays = overlays
        self.humans = humans or {}
        self.overlay_humans = int(overlay_humans)
        self.meta = meta or {}
        self.records: list[dict[str, Any]] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for i, name in enumerate(prediction["name"]):
            self.records.append(self.write_one(prediction, i, batch))

    def write_one(self, prediction: dict, i: int, batch: Any) -> dict[str, Any]:
        name = str(prediction["name"][i])
        fixations = prediction["fixations"][i].double().numpy()
        losses = prediction["best_loss"][i].double().numpy()
        h, w = (int(v) for v in prediction["size"][i])
        record = {
            "name": name,
            "image": prediction["path"][i],
            "height": h,
            "width": w,
            "target": prediction["target"][i],
            "fixations": [
                {"fixation": k + 1, "x": float(x), "y": float(y), "best_loss": float(loss)}
                for k, ((x, y), loss) in enumerate(zip(fixations, losses))
            ],
        } | self.meta
        folder = self.out_dir / "scanpaths"
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / f"{name}.json", record)
        rows = [(f["fixation"], f"{f['x']:.2f}", f"{f['y']:.2f}", f"{f['best_loss']:.6g}") for f in record["fixations"]]
        _atomic_text(folder / f"{name}.csv", _csv_text(["fixation", "x", "y", "best_loss"], rows))
        if self.overlays:
            self._overlay(name, record, fixations, batch, i)
        return record

    def _overlay(self, name: str, record: dict, fixations: np.ndarray, batch: Any, i: int) -> None:
        from attnlab.viz.scanpath_overlay import save_scanpath_overlay

        path = record["image"]
        if path:
            from attnlab.data.images import load_image

            image = np.asarray(load_image(path))
        else:  # no file: draw on the network input, with the fixations rescaled to it
            image = batch["image"][i].permute(1, 2, 0).clamp(0, 1).cpu().numpy() if isinstance(batch, dict) else None
            if image is None:
                return
            fixations = fixations * np.array([image.shape[1] / record["width"], image.shape[0] / record["height"]])
        target = record.get("target")
        title = f"{name}"
        if isinstance(target, dict) and "name" in target:
            title += f" - target: {target['name']}"
        humans = self.humans.get(name, [])[: self.overlay_humans]
        others = [("human" if k == 0 else "_nolegend_", h, "#33a0ff") for k, h in enumerate(humans)]
        save_scanpath_overlay(image, fixations, self.out_dir / "overlays" / f"{name}.png", title=title, others=others)


# --- scoring against humans -------------------------------------------------------------------


def _metric_table() -> list[tuple[str, bool, Callable]]:
    """(column, higher is better, fn(pred, human, size, clusters) -> float) for every reported metric."""
    from attnlab.metrics import scanpath as sm

    def mm(dim: str) -> Callable:
        return lambda a, b, size, clusters: sm.multimatch(a, b, size)[dim]

    return [
        ("ScanMatch", True, lambda a, b, size, clusters: sm.scanmatch(a, b, size)),
        ("StringEdit sim", True, lambda a, b, size, clusters: sm.string_edit_similarity(a, b, size, 4)),
        ("scaled TDE", True, lambda a, b, size, clusters: sm.scaled_time_delay_embedding(a, b, size)),
        ("MM vector", True, mm("vector")),
        ("MM direction", True, mm("direction")),
        ("MM length", True, mm("length")),
        ("MM position", True, mm("position")),
        ("SequenceScore", True, lambda a, b, size, clusters: sm.sequence_score(a, b, clusters)),
        ("DTW/diag", False, lambda a, b, size, clusters: sm.dtw(a, b, size)),
    ]


SCANPATH_METRICS = ("ScanMatch", "StringEdit sim", "scaled TDE", "MM vector", "MM direction", "MM length",
                    "MM position", "SequenceScore", "DTW/diag")


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")


def score_scanpaths(
    predicted: dict[str, np.ndarray],
    data,
    train,
    model_name: str = "NeVA",
    seed: int = 0,
    drop_first_human: bool = True,
    progress: bool = True,
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Score model scanpaths and baselines against every human scanpath, image by image.

    Args:
        predicted: {stimulus id: L×2 pixel (x, y)} of the model.
        data: the :class:`~attnlab.data.fixations.FixationDataset` whose images were run.
        train: the split the centre bias is fitted on.
        drop_first_human: remove each human scanpath's first (central start) fixation before scoring.

    Every metric compares positions only (durations dropped: models have none). Baselines have the
    model's length: ``centre`` (every fixation at the image centre), ``centre bias`` (drawn from a
    Gaussian fitted to ``train``'s fixations), ``uniform`` (uniform random); ``inter-observer`` scores
    each subject against the others (leave one subject out).

    Returns:
        ({row: {metric: mean over images}}, per-image rows).
    """
    from attnlab.baselines import CentreBias, leave_one_subject_out, uniform_scanpath
    from attnlab.metrics.scanpath import fit_fixation_clusters

    metrics = _metric_table()
    centre_bias = CentreBias.fit(train)
    rng = np.random.default_rng(seed)
    per_image: list[dict[str, Any]] = []
    names = [s.id for s in data.stimuli if s.id in predicted]
    if not names:
        raise UserError("none of the generated scanpaths belongs to an image of the fixation dataset")
    iterator: Any = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="scoring against humans", unit="image")
    for name in iterator:
        i = data.index_of(name)
        size = data.stimuli[i].size
        h, w = size
        humans = [p.xy[1:] if drop_first_human else p.xy for p in data.scanpaths[i]]
        humans = [hxy for hxy in humans if len(hxy) > 0]
        if not humans:
            continue
        model_xy = np.asarray(predicted[name], dtype=float).reshape(-1, 2)
        n = len(model_xy)
        candidates = {
            model_name: model_xy,
            "centre": np.tile([[w / 2, h / 2]], (n, 1)),
            "centre bias": centre_bias.sample_scanpath(n, size, rng).xy,
            "uniform": uniform_scanpath(n, size, rng).xy,
        }
        clusters = fit_fixation_clusters(np.concatenate(humans))
        for row, xy in candidates.items():
            values = {col: _nanmean([fn(xy, hxy, size, clusters) for hxy in humans]) for col, _, fn in metrics}
            per_image.append({"image": name, "scanpath": row} | values)
        if len(humans) > 1:
            values = {
                col: leave_one_subject_out(humans, lambda a, b, fn=fn: fn(a, b, size, clusters)) for col, _, fn in metrics
            }
            per_image.append({"image": name, "scanpath": "inter-observer"} | values)
    rows: dict[str, dict[str, float]] = {}
    for rec in per_image:
        rows.setdefault(rec["scanpath"], {})
    for row in rows:
        recs = [r for r in per_image if r["scanpath"] == row]
        rows[row] = {col: _nanmean([r[col] for r in recs]) for col, _, _ in metrics} | {"images": len(recs)}
    return rows, per_image


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """The scores as one markdown table (↑ higher is better, ↓ lower is better)."""
    arrows = {col: ("↑" if up else "↓") for col, up, _ in _metric_table()}
    cols = [c for c in SCANPATH_METRICS if any(c in r for r in rows.values())]
    header = "| scanpath | images | " + " | ".join(f"{c} {arrows[c]}" for c in cols) + " |"
    lines = [header, "|" + "---|" * (len(cols) + 2)]
    for name, r in rows.items():
        cells = ["—" if (isinstance(r[c], float) and math.isnan(r[c])) else f"{r[c]:.3f}" for c in cols]
        lines.append(f"| {name} | {r.get('images', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------------


def _prediction_inputs(datamodule, split: str, image_size: tuple[int, int], batch_size: int, max_images: int | None):
    """(DataLoader of images at the model size, FixationDataset or None, training FixationDataset or None).

    Images are read from their files at the model's input size (no double resizing); datasets
    without files fall back to their own predict/split loaders.
    """
    from attnlab.data.images import ImageFolder, ImagesDataModule

    if split not in ("all", "train", "val", "test"):
        raise UserError(f"split={split!r} is not allowed; choose all, train, val or test")
    datamodule.setup("predict")
    fixation_data = getattr(datamodule, "dataset", None)
    if fixation_data is not None and hasattr(fixation_data, "stimuli"):  # a FixationDataModule
        data = fixation_data if split == "all" else datamodule.splits[split]
        if max_images:
            data = data.subset(range(min(int(max_images), len(data))))
        stimuli = [s for s in data.stimuli if s.path is not None]
        if not stimuli:
            raise UserError(f"split={split} of {fixation_data.name} has no image files")
        dataset = ImageFolder([s.path for s in stimuli], image_size, names=[s.id for s in stimuli])
        train = datamodule.splits.get("train") if len(datamodule.splits.get("train", [])) else fixation_data
        return DataLoader(dataset, batch_size=batch_size), data, train
    if isinstance(datamodule, ImagesDataModule):
        files = datamodule.dataset.files
        if split != "all":
            files = [datamodule.dataset.files[k] for k in datamodule.splits[split].indices]
        files = files[: int(max_images)] if max_images else files
        if not files:
            raise UserError(f"split={split} of {datamodule.hparams.image_dir} has no images")
        dataset = ImageFolder(files, image_size, datamodule.dataset.labels)
        return DataLoader(dataset, batch_size=batch_size), None, None
    loader = datamodule.predict_dataloader() if split == "all" else getattr(datamodule, f"{split}_dataloader")()
    return loader, None, None


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Scanpaths for every image of ``cfg.data`` (``cfg.split``), written to the run folder; scores if possible."""
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    if not hasattr(model, "image_size") or not hasattr(model, "predict_step"):
        raise UserError(f"model={cfg.model.get('_target_')} does not produce scanpaths; use model=neva_classifier, neva_reconstruction or neva_clip")
    batch_size = int(cfg.get("batch_size") or cfg.data.get("batch_size", 8))
    loader, fixation_data, train = _prediction_inputs(datamodule, cfg.split, tuple(model.image_size), batch_size, cfg.get("max_images"))
    humans: dict[str, list[np.ndarray]] = {}
    if fixation_data is not None:
        for stimulus, paths in zip(fixation_data.stimuli, fixation_data.scanpaths):
            humans[stimulus.id] = [p.xy for p in paths]
    meta = {"model": OmegaConf.to_container(cfg.model.search, resolve=True) if "search" in cfg.model else {}}
    meta["model"] = {"task": cfg.model.task.get("_target_", "")} | {k: v for k, v in meta["model"].items() if k != "_target_"}
    writer = ScanpathWriter(out_dir, overlays=bool(cfg.overlays), humans=humans, overlay_humans=int(cfg.overlay_humans), meta=meta)
    trainer = instantiate_trainer(cfg, extra_callbacks=[writer])
    trainer.predict(model, dataloaders=loader, return_predictions=False)

    records = writer.records
    rows = [(r["name"], f["fixation"], f"{f['x']:.2f}", f"{f['y']:.2f}", f"{f['best_loss']:.6g}") for r in records for f in r["fixations"]]
    _atomic_text(out_dir / "scanpaths.csv", _csv_text(["image", "fixation", "x", "y", "best_loss"], rows))
    summary: dict[str, Any] = {
        "images": len(records),
        "mean_best_loss_per_fixation": np.mean([[f["best_loss"] for f in r["fixations"]] for r in records], axis=0).tolist() if records else [],
        "output_dir": str(out_dir),
    }
    if fixation_data is not None and cfg.scoring.enabled and records:
        predicted = {r["name"]: np.array([[f["x"], f["y"]] for f in r["fixations"]]) for r in records}
        drop_first = bool(cfg.scoring.drop_first_human) and not bool(getattr(datamodule, "drop_first", False))
        table, per_image = score_scanpaths(predicted, fixation_data, train, model_name=str(cfg.scoring.model_name),
                                           seed=int(cfg.seed), drop_first_human=drop_first)
        write_json(out_dir / "scores.json", {"table": table, "drop_first_human": drop_first, "split": cfg.split,
                                             "centre_bias_fitted_on": train.name})
        cols = ["image", "scanpath", *SCANPATH_METRICS]
        _atomic_text(out_dir / "scores_per_image.csv", _csv_text(cols, [[r.get(c) for c in cols] for r in per_image]))
        text = format_table(table)
        _atomic_text(out_dir / "scores.md", text + "\n")
        summary["scores"] = table
        summary["table"] = text
    write_json(out_dir / "summary.json", {k: v for k, v in summary.items() if k != "table"})
    return summary


@entry_point("scanpaths")
def main(cfg: DictConfig) -> None:
    summary = generate(cfg)
    if "table" in summary:
        print(summary["table"])
    print(f"{summary['images']} scanpaths written to {summary['output_dir']}")


if __name__ == "__main__":
    main()
