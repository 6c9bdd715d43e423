"""Every option of every config group composes and passes validation; bad values are rejected."""

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from attnlab.utils.cli import CONFIG_DIR, compose_config, first_sweep_values
from attnlab.utils.config import ConfigError, validate

CONF = Path(CONFIG_DIR)
PRIMARIES = sorted(p.stem for p in CONF.glob("*.yaml"))


def primary_groups(primary: str) -> list[str]:
    defaults = yaml.safe_load((CONF / f"{primary}.yaml").read_text()).get("defaults", [])
    groups = []
    for entry in defaults:
        if isinstance(entry, dict):
            key = next(iter(entry)).replace("override ", "").strip("/")
            groups.append(key)
    return [g for g in groups if (CONF / g).is_dir() and g != "hydra"]


CASES = [
    (primary, group, option.stem)
    for primary in PRIMARIES
    for group in primary_groups(primary)
    for option in sorted((CONF / group).glob("*.yaml"))
]


def compose_cfg(primary: str, overrides: list[str]):
    return compose_config(primary, overrides, return_hydra_config=True)


def test_every_group_has_options():
    assert ("train", "model", "gating_mnist") in CASES
    assert {g for _, g, _ in CASES} >= {
        "model",
        "data",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "debug",
        "experiment",
        "hparams_search",
    }


@pytest.mark.parametrize("primary,group,option", CASES, ids=[f"{p}:{g}={o}" for p, g, o in CASES])
def test_option_composes_and_validates(primary, group, option):
    overrides = [f"{group}={option}"]
    if primary == "eval":
        overrides.append("ckpt_path=x.ckpt")
    if option == "neva_osie_optuna":  # a NeVA search: it sets the NeVA model's input size
        overrides.append("model=neva_amortised" if primary == "train" else "model=neva_classifier")
    cfg = compose_cfg(primary, overrides)
    assert cfg.hydra.runtime.choices[group] == option
    OmegaConf.resolve(cfg.hydra)  # the hydra node must resolve (run dirs, sweeper)
    validate(cfg)


def test_model_picks_its_dataset_and_data_override_still_wins():
    cfg = compose_cfg("train", ["model=gating_mnist"])
    assert cfg.hydra.runtime.choices.data == "multimnist"
    if (CONF / "data" / "coco_objects.yaml").exists() and (CONF / "model" / "gating_coco.yaml").exists():
        assert compose_cfg("train", ["model=gating_coco"]).hydra.runtime.choices.data == "coco_objects"
        assert compose_cfg("train", ["model=gating_coco", "data=multimnist"]).hydra.runtime.choices.data == "multimnist"


@pytest.mark.parametrize(
    "accelerator, devices, says",
    [("cpu", [0, 1], "GPU indices need trainer=gpu"), ("cpu", "0,1", "GPU indices need trainer=gpu"),
     ("gpu", [0], "no CUDA GPU on this machine")],
)  # fmt: skip
def test_devices_that_cannot_run_here_are_one_line(accelerator, devices, says, monkeypatch):
    import torch

    from attnlab.utils.config import UserError
    from attnlab.utils.instantiate import check_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=says):
        check_devices(accelerator, devices)
    check_devices("cpu", 2)  # a count of CPU processes is fine


def test_a_device_setting_resolves_here_or_is_one_line_naming_its_key(monkeypatch):
    import torch

    from attnlab.utils.config import UserError, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(UserError, match="neva.device=cuda:1: no CUDA GPU"):
        resolve_device("cuda:1", "neva.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.strength=1.5", "model.strength"),
        ("model.strength=-0.1", "model.strength"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("model.lr=-1", "model.lr"),
        ("data.noise=2", "data.noise"),
        ("data.batch_size=0", "data.batch_size"),
        ("model.net.upsample=linear", "model.net.upsample"),
        ("+data.bogus=1", "data.bogus"),
    ],
)
def test_validation_names_the_key(override, key):
    cfg = compose_cfg("train", [override])
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_first_sweep_values():
    assert first_sweep_values(["model.lr=1e-3,1e-4", "seed=1", "model.strength=choice(0.1,0.2)"]) == [
        "model.lr=0.001",
        "seed=1",
        "model.strength=0.1",
    ]
    assert first_sweep_values(["model.lr=interval(0.1,0.2)"]) == []
