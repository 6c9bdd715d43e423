"""Tuning NeVA on OSIE (issue 18): ``hparams_search=neva_osie_optuna`` sweeps NeVA's free parameters
with the benchmark's val ScanMatch as the Optuna objective; the CLIP task runs offline.

The search space is checked against the NeVA model configs (a renamed setting fails here), a 2-trial
sweep runs end to end through the command line on 2 val images of the OSIE subset, and the objective
never reads the test split.
"""

from __future__ import annotations

import inspect
import json
import math
import socket

import hydra
import numpy as np
import optuna
import pytest
import yaml
from conftest import ONE_THREAD, shared_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from PIL import Image

from attnlab.benchmark.scanpaths import check_objective, generate, objective
from attnlab.models.neva.tasks import ClipTask
from attnlab.utils.compose import compose_config
from attnlab.utils.config import UserError, accepts, validate

SEARCH = "hparams_search=neva_osie_optuna"
NEVA_MODELS = ["neva_classifier", "neva_reconstruction", "neva_clip"]
# the free parameters: foveation σ, blur σ and kernel, forgetting, steps, lr, start position
FREE = {
    "model.search.sigma_fovea",
    "model.blur_sigma",
    "model.blur_kernel",
    "model.search.forgetting",
    "model.search.steps",
    "model.search.lr",
    "model.search.start",
    "neva_input_px",  # the input side, one number (Optuna choices are scalars) that model.image_size reads
}
INPUT_PX = "neva_input_px"
TINY_SEARCH = ["model.search.length=3", "hydra.sweeper.params.neva_input_px='choice(48,64)'"]


def search_space() -> dict[str, str]:
    """{key without ++: the sweep expression} of the Optuna config."""
    cfg = compose_config("scanpaths", [SEARCH, "data=osie"], return_hydra_config=True)
    return {k.lstrip("+"): str(v) for k, v in cfg.hydra.sweeper.params.items()}


def end_values(key: str, expression: str) -> list[str]:
    """The values of a sweep expression to try: each choice, or both ends of an interval."""
    (sweep,) = OverridesParser.create().parse_overrides([f"{key}={expression}"])
    value = sweep.value()
    if isinstance(value, ChoiceSweep):
        return [str(v) for v in value.list]
    assert isinstance(value, IntervalSweep), expression
    return [str(value.start), str(value.end)]


def test_the_optuna_config_composes_with_sweeper_settings():
    cfg = compose_config(
        "scanpaths",
        [SEARCH, "model=neva_classifier", "data=osie", "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=t"],
        return_hydra_config=True,
    )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("ResumableOptunaSweeper") and cfg.hydra.mode == RunMode.MULTIRUN
    assert (sweeper.n_trials, sweeper.study_name, sweeper.direction) == (2, "t", "maximize")
    assert sweeper.storage.startswith("sqlite:///") and sweeper.storage.endswith("/optuna/t.db")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == cfg.seed
    # the objective: ScanMatch on the val split, nothing else scored
    assert (cfg.split, cfg.optimized_metric) == ("val", "ScanMatch")
    assert list(cfg.scoring.attention) == [] and not cfg.scoring.centre_baseline and cfg.scoring.enabled
    assert cfg.data._target_ == "attnlab.data.osie.OSIEDataModule"
    validate(cfg)
    assert set(search_space()) == FREE


@pytest.mark.parametrize("model", NEVA_MODELS)
def test_every_search_key_is_a_setting_of_the_neva_model(model):
    """Each key is a constructor parameter of the object its node instantiates in the composed model
    config (the sweep sets them with ``++``, which would add a renamed key silently), and every value
    of its range composes and validates against the parameter's annotation."""
    base = compose_config("scanpaths", [f"model={model}", "data=osie"])
    assert accepts(base.model._target_, "image_size")  # what neva_input_px sets
    for key in search_space().keys() - {INPUT_PX}:
        parent, _, leaf = key.rpartition(".")
        target = OmegaConf.select(base, parent)._target_
        assert accepts(target, leaf), f"{key}: {leaf} is no parameter of {target}"
    assert not accepts(base.model.search._target_, "sigma_fova")  # the check fails for a renamed setting
    values = {key: end_values(key, expression) for key, expression in search_space().items()}
    for k in range(max(map(len, values.values()))):  # every value of every key, all keys at once
        chosen = {key: v[min(k, len(v) - 1)] for key, v in values.items()}
        overrides = [f"++{key}={value}" for key, value in chosen.items()]
        cfg = compose_config("scanpaths", [SEARCH, f"model={model}", "data=osie", *overrides])
        for key, value in chosen.items():
            assert str(OmegaConf.select(cfg, key)) == value, key
        assert list(cfg.model.image_size) == [int(chosen[INPUT_PX])] * 2
        validate(cfg)  # e.g. an even blur kernel or forgetting > 1 would fail here
    search = hydra.utils.instantiate(cfg.model.search)  # the values reach the SearchConfig
    assert search.start == chosen["model.search.start"] and search.steps == int(chosen["model.search.steps"])


def test_the_objective_never_uses_the_test_split():
    for split in ("test", "all"):
        cfg = compose_config("scanpaths", [SEARCH, "data=osie", f"split={split}"])
        with pytest.raises(UserError, match=f"split={split}.*use split=val"):
            check_objective(cfg)
    cfg = compose_config("scanpaths", [SEARCH, "data=osie"])
    check_objective(cfg)
    plain = compose_config("scanpaths", ["data=osie", "split=test"])  # no sweep: the test split is allowed
    check_objective(plain)
    assert objective(plain, {"scores": {"NeVA": {"ScanMatch": 0.3}}}) is None


def test_the_objective_is_the_model_rows_metric_or_one_line():
    cfg = compose_config("scanpaths", [SEARCH, "data=osie"])
    row = {"SED": 4.0, "ScanMatch": 0.31}
    assert objective(cfg, {"scores": {"NeVA": row, "centre": {"ScanMatch": 0.9}}}) == 0.31
    with pytest.raises(UserError, match="no human fixations"):
        objective(cfg, {"images": 2})
    with open_dict(cfg):
        cfg.optimized_metric = "ScanMatc"
    with pytest.raises(UserError, match="ScanMatc is not a benchmark metric.*SED, ScanMatch"):
        objective(cfg, {"scores": {"NeVA": row}})


def test_two_trial_sweep_on_two_val_images_returns_the_val_scanmatch_and_resumes(run_cli, tmp_path):
    root = shared_path("data", "osie_subset")
    db = tmp_path / "study.db"

    def sweep_trials(trials: int, *extra: str):
        return run_cli(
            "attnlab.scanpaths",
            SEARCH,
            "model=neva_classifier",
            "data=osie",
            f"data.root={root}",
            "max_images=2",
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.storage=sqlite:///{db}",
            "hydra.sweeper.study_name=tiny",
            *TINY_SEARCH,
            *extra,
            env=ONE_THREAD,
            timeout=300,
        )

    result = sweep_trials(2)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = sorted((tmp_path / "outputs" / "scanpaths" / "multiruns").glob("*"))
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2

    cfg = compose_config("scanpaths", ["data=osie", f"data.root={root}"])
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("test")
    val = [s.id for s in dm.splits["val"].stimuli[:2]]
    test = {s.id for s in dm.splits["test"].stimuli}
    for trial in trials:
        job = sweep / str(trial.number)
        bench = json.loads((job / "benchmark.json").read_text())
        assert (bench["split"], bench["sources"], bench["images"]) == ("val", ["NeVA"], 2)
        scanmatch = bench["metrics"]["NeVA"]["ScanMatch"]
        assert math.isfinite(trial.value) and 0 < trial.value <= 1
        assert trial.value == pytest.approx(scanmatch, rel=1e-12)  # the objective is the benchmark's ScanMatch
        names = sorted(p.stem for p in (job / "scanpaths").glob("*.json"))
        assert names == sorted(val) and not set(names) & test
        # the sampled parameters reached the model
        settings = OmegaConf.load(job / ".hydra" / "config.yaml")
        for key, value in trial.params.items():
            got = OmegaConf.select(settings, key.lstrip("+"))
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, key
        assert list(settings.model.image_size) == [trial.params[INPUT_PX]] * 2
        meta = json.loads((job / "scanpaths" / f"{val[0]}.json").read_text())["model"]
        assert meta["steps"] == trial.params["++model.search.steps"] and meta["length"] == 3
    summary = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert summary["best_value"] == pytest.approx(max(t.value for t in trials))

    # a sweep killed mid-trial leaves it RUNNING; the same command with a larger budget continues the
    # stored study: the orphan is marked failed and only the missing trial runs
    optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").ask()
    result = sweep_trials(3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 trial(s) done, 1 interrupted, 1 to go" in result.stdout + result.stderr
    resumed = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
    assert [t.params for t in resumed[:2]] == [t.params for t in trials] and len(resumed) == 4
    states = [t.state for t in resumed[2:]]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    # another search space in the same study would mix two searches in one TPE model: one line
    result = sweep_trials(4, "hydra.sweeper.params.neva_input_px='choice(48,80)'")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "was run over another search space (neva_input_px differ)" in result.stderr
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials) == 4


# --- the CLIP task offline ---------------------------------------------------------------------


def test_neva_clip_runs_offline_with_random_vit_b_32_weights_on_one_image(tmp_path, monkeypatch, one_torch_thread):
    def no_network(*args, **kwargs):
        raise AssertionError("the CLIP run tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    cfg = compose_config(
        "scanpaths",
        [
            "model=neva_clip",
            "model.task.weights=random",
            "model.task.pretrained_tag=null",
            "data=images",
            f"data.image_dir={folder}",
            "max_images=1",
            "overlays=false",
            "model.search.length=2",
            "model.search.steps=2",
        ],
    )
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.paths.output_dir = str(tmp_path / "run")
    assert "model_name" not in cfg.model.task  # the constructor's default, the architecture:
    assert inspect.signature(ClipTask).parameters["model_name"].default == "ViT-B-32"
    summary = generate(cfg)
    assert summary["images"] == 1
    record = json.loads((tmp_path / "run" / "scanpaths" / "a.json").read_text())
    assert (record["height"], record["width"]) == (60, 80) and len(record["fixations"]) == 2
    for f in record["fixations"]:
        assert 0 <= f["x"] < 80 and 0 <= f["y"] < 60 and 0 <= f["best_loss"] <= 2  # 1 - cosine


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def test_clip_weights_of_another_architecture_are_one_line(run_cli, tmp_path):
    import open_clip
    import torch

    weights = tmp_path / "tiny_clip.pt"
    torch.save(open_clip.CLIP(**TINY_CLIP).state_dict(), weights)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "a.png")
    result = run_cli(
        "attnlab.scanpaths",
        "model=neva_clip",
        f"model.task.weights={weights}",
        "data=images",
        f"data.image_dir={folder}",
        env=ONE_THREAD,
        timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"attnlab: error: CLIP weights file {weights} is not an open_clip checkpoint of ViT-B-32"
    )
    assert "model.task.model_name" in errors[0]


def test_a_clip_weights_file_that_is_no_checkpoint_or_missing_is_one_line(tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    with pytest.raises(UserError, match=f"CLIP weights file {notes} is not an open_clip checkpoint") as info:
        ClipTask(model_cfg=TINY_CLIP, weights=str(notes))
    assert "\n" not in str(info.value)
    missing = tmp_path / "nowhere" / "clip.pt"
    with pytest.raises(UserError, match=f"CLIP weights file not found: {missing}"):
        ClipTask(weights=str(missing))


def test_the_tuned_configs_share_one_perception_and_validate():
    """model=neva_classifier_osie (per-image search, tuned) and experiment=neva_amortised_osie (α trained
    with that perception) must not drift apart: input size, blur, foveation σ and forgetting agree."""
    search = compose_config("scanpaths", ["model=neva_classifier_osie", "data=osie"])
    alpha = compose_config("train", ["experiment=neva_amortised_osie"])
    validate(search)
    validate(alpha)
    assert list(search.model.image_size) == list(alpha.model.image_size) == list(alpha.data.image_size)
    assert (search.model.blur_kernel, search.model.blur_sigma) == (alpha.model.blur_kernel, alpha.model.blur_sigma)
    assert search.model.search.sigma_fovea == alpha.model.sigma_fovea
    assert search.model.search.forgetting == alpha.model.forgetting
    assert alpha.optimized_metric == "val/ScanMatch" and "scanpath_validation" in alpha.callbacks
    assert (
        alpha.callbacks.model_checkpoint.monitor == "val/ScanMatch" and alpha.callbacks.model_checkpoint.mode == "max"
    )
