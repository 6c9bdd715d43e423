"""Scanpaths of a scanpath model for every image of a dataset, written and scored (``python -m attnlab.scanpaths``,
:mod:`attnlab.scanpaths`): :func:`generate` predicts with Lightning (:class:`ScanpathWriter` writes each image's
files), :func:`score_with_benchmark` scores them against the humans next to the benchmark's baselines, and
:func:`objective` reads the value a sweep maximises."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

from attnlab.benchmark import ScanpathSource, run_benchmark
from attnlab.benchmark.settings import Scoring
from attnlab.data.fixations import Scanpath
from attnlab.data.folder import write_scanpaths
from attnlab.data.images import ImageFolder, ImagesDataModule, load_image
from attnlab.utils.checkpoint import load_trained
from attnlab.utils.config import UserError
from attnlab.utils.instantiate import instantiate_trainer
from attnlab.utils.io import write_csv, write_json
from attnlab.utils.settings import settings_of
from attnlab.utils.wandb_run import publish_run

log = logging.getLogger(__name__)

__all__ = [
    "generate",
    "ScanpathWriter",
    "score_with_benchmark",
    "benchmark_scanpaths",
    "write_benchmark_sources",
    "scanpath_model",
    "check_objective",
    "objective",
]


class ScanpathWriter(BasePredictionWriter):
    """Writes each image's scanpath (JSON, CSV) and overlay as soon as its batch is done.

    Args:
        out_dir: the run folder. overlays: also draw PNG overlays.
        humans: {image name: list of human L'×2 scanpaths} to draw thinly on the overlays.
        overlay_humans: how many human scanpaths to draw per overlay.
        meta: extra JSON fields for every image (the model and search settings).
    """

    def __init__(
        self,
        out_dir: str | Path,
        overlays: bool = True,
        humans: dict[str, list[np.ndarray]] | None = None,
        overlay_humans: int = 1,
        meta: dict | None = None,
    ) -> None:
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
        write_csv(folder / f"{name}.csv", ["fixation", "x", "y", "best_loss"], rows)
        if self.overlays:
            self._overlay(name, record, fixations, batch, i)
        return record

    def _overlay(self, name: str, record: dict, fixations: np.ndarray, batch: Any, i: int) -> None:
        from attnlab.viz.scanpath_overlay import save_scanpath_overlay

        path = record["image"]
        if path:
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


# --- scoring against humans (attnlab.benchmark) ----------------------------------------------


def benchmark_scanpaths(records: list[dict], model_name: str, centre: bool) -> dict[str, list]:
    """{source name: [Scanpath per image]}: the model's scanpaths and (``centre``) a centre-fixation
    baseline that fixates the image centre as often as the model fixates. No durations: NeVA has
    no timing, so the benchmark reports MultiMatch duration as not available for them."""

    def scanpath(name: str, xy: np.ndarray, subject: str) -> Scanpath:
        return Scanpath(xy[:, 0], xy[:, 1], None, subject=subject, stimulus=name)

    out = {
        model_name: [
            scanpath(r["name"], np.array([[f["x"], f["y"]] for f in r["fixations"]]), model_name) for r in records
        ]
    }
    if centre:
        out["centre"] = [
            scanpath(r["name"], np.tile([[r["width"] / 2, r["height"] / 2]], (len(r["fixations"]), 1)), "centre")
            for r in records
        ]
    return out


def write_benchmark_sources(records: list[dict], folder: Path, model_name: str, centre: bool) -> list[Path]:
    """The scored scanpaths as files ``<folder>/<source>.json`` for the user, in the format
    ``python -m attnlab.benchmark attention=<file>`` reads (scoring a file gives the same table)."""

    return [
        write_scanpaths(folder / f"{name}.json", paths)
        for name, paths in benchmark_scanpaths(records, model_name, centre).items()
    ]


def score_with_benchmark(cfg: DictConfig, records: list[dict]) -> dict[str, Any]:
    """Score the scanpaths (handed over in memory) and the baselines with
    :func:`attnlab.benchmark.run_benchmark` (prints the table)."""

    out_dir = Path(cfg.paths.output_dir)
    scoring = cfg.scoring
    groups = benchmark_scanpaths(records, str(scoring.model_name), bool(scoring.centre_baseline))
    write_benchmark_sources(
        records,
        out_dir / "benchmark_sources",
        str(scoring.model_name),
        bool(scoring.centre_baseline),
    )
    sources = []
    for name, paths in groups.items():
        by_image: dict[str, list] = {}
        for p in paths:
            by_image.setdefault(p.stimulus, []).append(p)
        sources.append(ScanpathSource(by_image, name))
    bench_cfg = OmegaConf.create(
        {
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "paths": {"output_dir": str(out_dir)},
            "seed": int(cfg.seed),
            "split": str(cfg.split),
            "max_images": cfg.get("max_images"),
            **settings_of(scoring, Scoring),  # scoring.* are the benchmark's own settings
        }
    )
    return run_benchmark(bench_cfg, sources)


# --- the command ------------------------------------------------------------------------------


def _prediction_inputs(datamodule, split: str, image_size: tuple[int, int], batch_size: int, max_images: int | None):
    """(DataLoader of images at the model size, FixationDataset or None).

    Images are read from their files at the model's input size (no double resizing); datasets
    without files fall back to their own predict/split loaders.
    """

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
        return DataLoader(dataset, batch_size=batch_size), data
    if isinstance(datamodule, ImagesDataModule):
        files = datamodule.dataset.files
        if split != "all":
            files = [datamodule.dataset.files[k] for k in datamodule.splits[split].indices]
        files = files[: int(max_images)] if max_images else files
        if not files:
            raise UserError(f"split={split} of {datamodule.hparams.image_dir} has no images")
        dataset = ImageFolder(files, image_size, datamodule.dataset.labels)
        return DataLoader(dataset, batch_size=batch_size), None
    loader = datamodule.predict_dataloader() if split == "all" else getattr(datamodule, f"{split}_dataloader")()
    return loader, None


def scanpath_model(cfg: DictConfig) -> L.LightningModule:
    """``cfg.model``, or with ``ckpt_path=`` the model a training run stored in its checkpoint (config and
    weights, e.g. a trained ``model=neva_amortised``); a checkpoint of another model is one line."""
    if not cfg.get("ckpt_path"):
        return hydra.utils.instantiate(cfg.model, _convert_="all")

    asked = str(cfg.model.get("_target_"))
    hint = "; pass a checkpoint of this model="
    model, stored = load_trained(cfg.ckpt_path, asked.rsplit(".", 1)[-1], f"model {asked}", hint)
    with open_dict(cfg):
        cfg.model = stored.model  # the checkpoint decides the architecture and settings
    return model


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Scanpaths for every image of ``cfg.data`` (``cfg.split``), written to the run folder; scores if possible."""
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model = scanpath_model(cfg)
    if not hasattr(model, "image_size") or not hasattr(model, "predict_step"):
        raise UserError(
            f"model={cfg.model.get('_target_')} does not produce scanpaths; use model=neva_classifier, "
            "neva_reconstruction or neva_clip"
        )
    batch_size = int(cfg.get("batch_size") or cfg.data.get("batch_size", 8))
    loader, fixation_data = _prediction_inputs(
        datamodule, cfg.split, tuple(model.image_size), batch_size, cfg.get("max_images")
    )
    humans: dict[str, list[np.ndarray]] = {}
    if fixation_data is not None:
        for stimulus, paths in zip(fixation_data.stimuli, fixation_data.scanpaths):
            humans[stimulus.id] = [p.xy for p in paths]
    meta = {"model": OmegaConf.to_container(cfg.model.search, resolve=True) if "search" in cfg.model else {}}
    meta["model"] = {"task": cfg.model.task.get("_target_", "")} | {
        k: v for k, v in meta["model"].items() if k != "_target_"
    }
    writer = ScanpathWriter(
        out_dir, overlays=bool(cfg.overlays), humans=humans, overlay_humans=int(cfg.overlay_humans), meta=meta
    )
    trainer = instantiate_trainer(cfg, extra_callbacks=[writer])
    trainer.predict(model, dataloaders=loader, return_predictions=False)

    records = writer.records
    rows = [
        (r["name"], f["fixation"], f"{f['x']:.2f}", f"{f['y']:.2f}", f"{f['best_loss']:.6g}")
        for r in records
        for f in r["fixations"]
    ]
    write_csv(out_dir / "scanpaths.csv", ["image", "fixation", "x", "y", "best_loss"], rows)
    summary: dict[str, Any] = {
        "images": len(records),
        "mean_best_loss_per_fixation": np.mean(
            [[f["best_loss"] for f in r["fixations"]] for r in records], axis=0
        ).tolist()
        if records
        else [],
        "output_dir": str(out_dir),
    }
    if fixation_data is not None and cfg.scoring.enabled and records:
        result = score_with_benchmark(cfg, records)
        summary["scores"] = result["metrics"]
    write_json(out_dir / "summary.json", summary)

    publish_run(trainer.loggers, out_dir)  # logger=wandb: the overlays and the saliency grid as images
    return summary


def check_objective(cfg: DictConfig) -> None:
    """With ``optimized_metric`` (a sweep, e.g. ``hparams_search=neva_osie_optuna``): the objective is
    scored on human fixations of a held-out split, never on the test split; one line otherwise."""
    if not cfg.get("optimized_metric"):
        return
    if str(cfg.split) in ("test", "all"):
        raise UserError(
            f"optimized_metric={cfg.optimized_metric} with split={cfg.split}: a tuning objective never sees the "
            "test split; use split=val"
        )
    if not cfg.scoring.enabled:
        raise UserError(f"optimized_metric={cfg.optimized_metric} needs scoring.enabled=true")


def objective(cfg: DictConfig, summary: dict[str, Any]) -> float | None:
    """The value of ``optimized_metric`` (a metric of the benchmark table, e.g. ``ScanMatch``) in the
    model's row (``scoring.model_name``): what an Optuna sweep maximises. None without ``optimized_metric``."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    scores = summary.get("scores")
    if scores is None:
        raise UserError(
            f"optimized_metric={name}: split={cfg.split} of the data has no human fixations to score against "
            "(use data=osie or another fixation dataset)"
        )
    row = scores.get(str(cfg.scoring.model_name), {})
    if name not in row:
        raise UserError(f"optimized_metric={name} is not a benchmark metric; choose one of: {', '.join(row)}")
    return float(row[name])
