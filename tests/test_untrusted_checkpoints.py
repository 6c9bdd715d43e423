"""A checkpoint never runs code (issue 35 item 1): every path that reads a checkpoint or weights file
reads it weights-only, so a file whose pickle would call ``os.system`` is refused in one line and the
command it carries never runs (the marker file it would create never appears)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import ONE_THREAD, shared_path

from attnlab.utils.config import UserError


class _Payload:
    """Unpickling this calls ``os.system(command)``: what a crafted checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def crafted(folder: Path, name: str = "evil.ckpt") -> tuple[Path, Path]:
    """(a checkpoint-shaped file whose state_dict unpickles into a shell command, the marker it would touch)."""
    marker = folder / f"{name}.ran"
    path = folder / name
    torch.save({"state_dict": _Payload(f"touch {marker}"), "attnlab_config": {"model": {}}}, path)
    assert not marker.exists()
    return path, marker


def test_the_payload_is_real_when_loaded_unsafely(tmp_path):
    """The crafted file does run its command under weights_only=False (so the tests below can fail)."""
    path, marker = crafted(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def _loaders(path: Path):
    from attnlab.models.cam.classifier import load_classifier
    from attnlab.models.gating.paper import load_paper_checkpoint
    from attnlab.models.neva.autoencoder import load_autoencoder
    from attnlab.models.pretrained import efficientnet_lite0_state_dict
    from attnlab.utils.checkpoint import read_checkpoint

    return {
        "read_checkpoint": lambda: read_checkpoint(path),
        "autoencoder": lambda: load_autoencoder(path),
        "paper .pt": lambda: load_paper_checkpoint(path, "coco"),
        "cam weights": lambda: load_classifier(weights=str(path)),
        "efficientnet weights": lambda: efficientnet_lite0_state_dict(path),
    }


@pytest.mark.parametrize(
    "loader", ["read_checkpoint", "autoencoder", "paper .pt", "cam weights", "efficientnet weights"]
)
def test_every_loader_refuses_the_file_in_one_line_before_anything_runs(tmp_path, loader):
    path, marker = crafted(tmp_path)
    with pytest.raises(UserError) as error:
        _loaders(path)[loader]()
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert "refused: it needs posix.system" in message and "nothing in the file ran" in message
    assert not marker.exists()


COMMANDS = {
    "eval ckpt_path": ("attnlab.eval", ["ckpt_path={ckpt}"]),
    "train ckpt_path (resume)": ("attnlab.train", ["ckpt_path={ckpt}", "debug=tiny"]),
    "train model.init_from": (
        "attnlab.train",
        ["experiment=saliency_dinet_osie", "model.phase=2", "model.init_from={ckpt}", "debug=tiny"],
    ),
    "scanpaths ckpt_path": ("attnlab.scanpaths", ["model=neva_amortised", "ckpt_path={ckpt}"]),
    "neva_reconstruction model.task.checkpoint": (
        "attnlab.scanpaths",
        ["model=neva_reconstruction", "model.task.checkpoint={ckpt}", "max_images=1"],
    ),
    "analyze ckpt_path": ("attnlab.analyze", ["analysis=inhibition", "ckpt_path={ckpt}"]),
    "benchmark saliency:": ("attnlab.benchmark", ["attention=saliency:{ckpt}", "max_images=1"]),
    "benchmark gating:": ("attnlab.benchmark", ["attention=gating:{ckpt}", "max_images=1"]),
    "benchmark neva:": ("attnlab.benchmark", ["attention=neva:{ckpt}", "max_images=1"]),
    "benchmark cam weights": ("attnlab.benchmark", ["attention=cam:gradcam", "cam.weights={ckpt}", "max_images=1"]),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_refuses_a_crafted_checkpoint_with_exit_2_and_the_payload_never_runs(run_cli, tmp_path, name):
    module, overrides = COMMANDS[name]
    path, marker = crafted(tmp_path)
    osie = shared_path("data", "osie_subset")
    env = ONE_THREAD | {"ATTNLAB_OSIE_ROOT": str(osie)}
    result = run_cli(module, *[o.format(ckpt=path) for o in overrides], env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "posix.system" in result.stderr and "nothing in the file ran" in result.stderr, result.stderr[-2000:]
    assert not marker.exists()
