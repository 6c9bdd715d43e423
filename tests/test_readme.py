"""The README's commands work as printed: every ``python -m attnlab.<command> ...`` line of its shell blocks
composes through the real command line (``--cfg job``: the command's own argument handling, then Hydra's; a
renamed option, group or key fails here), and the cheap one runs."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import ONE_THREAD, REPO, shared_path

COMMAND = re.compile(r"^(?:\w+=\S+\s+)*python -m attnlab\.(\w+)(.*)$")


def readme_commands() -> list[tuple[str, list[str]]]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            found = COMMAND.match(line.split("  #")[0].strip())
            if found:
                commands.append((found.group(1), shlex.split(found.group(2))))
    return commands


def test_the_readme_has_commands_to_check():
    names = {name for name, _ in readme_commands()}
    assert {"train", "benchmark", "leaderboard", "scanpaths"} <= names


@pytest.mark.parametrize("name, overrides", readme_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_readme_command_composes_as_printed(run_cli, name, overrides):
    # placeholders (PATH, <ckpt>) are values: composing does not open them
    result = run_cli(f"attnlab.{name}", *overrides, "--cfg", "job", env=ONE_THREAD, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "_target_" in result.stdout


def test_the_cheap_readme_leaderboard_runs_as_printed(run_cli):
    (overrides,) = [o for name, o in readme_commands() if name == "leaderboard" and "max_images=2" in o]
    env = ONE_THREAD | {"ATTNLAB_OSIE_ROOT": str(shared_path("data", "osie_subset"))}
    result = run_cli("attnlab.leaderboard", *overrides, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ScanMatch" in result.stdout


def test_the_readme_training_commands_run_in_their_tiny_form(run_cli):
    """The quickstart's training lines, with debug=tiny added where they lack it (a few batches)."""
    lines = [o for name, o in readme_commands() if name == "train" and not any("experiment=" in x for x in o)]
    assert lines
    env = ONE_THREAD | {"ATTNLAB_OSIE_ROOT": str(shared_path("data", "osie_subset"))}  # the README's export
    for overrides in lines:
        tiny = overrides if "debug=tiny" in overrides else [*overrides, "debug=tiny"]
        result = run_cli("attnlab.train", *tiny, env=env, timeout=300)
        assert result.returncode == 0, (tiny, result.stderr[-2000:])
