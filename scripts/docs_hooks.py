"""MkDocs hooks (mkdocs.yml ``hooks:``): the reference pages are generated from what they describe.

- ``<!-- generated: commands -->``: every console script of pyproject.toml, its module, the usage line
  of its config (``conf/<command>.yaml``) and the command's own keys with their defaults and comments;
- ``<!-- generated: config-groups -->``: every config group of ``conf/`` with each option, the
  ``_target_`` it builds and the first line of its comment;
- ``<!-- generated: constructors -->``: the settings of every ``_target_`` named in ``conf/``, read from
  its constructor's signature (type and default) by griffe, statically (nothing is imported).

So a new option, command or setting appears in the docs without anyone writing it down, and a page
cannot describe a setting that no longer exists. ``neva/osie.md`` (written by the NeVA study) is
generated as a one-line stub when the file is not there yet, so the strict build passes before and after.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NEVA_PAGE = "neva/osie.md"
NEVA_STUB = "NeVA on OSIE: results page (being written).\n"


def on_files(files, config):
    from mkdocs.structure.files import File

    if files.get_file_from_path(NEVA_PAGE) is None:
        files.append(File.generated(config, NEVA_PAGE, content=NEVA_STUB))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    generators = {"commands": commands, "config-groups": config_groups, "constructors": constructors}
    for name, make in generators.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


# --- reading conf/ ------------------------------------------------------------------------------------


def _comment(path: Path) -> list[str]:
    """The leading comment lines of a YAML file (without ``# @package``)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            out.append(text)
    return out


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        for value in node.values():
            found += _targets(value)
        return found
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _file_targets(path: Path, group: str) -> list[str]:
    """``_target_`` values of a config file and of the ``base/`` files it draws its defaults from."""
    doc = _load(path)
    found = _targets(doc)
    for entry in doc.get("defaults", []) or []:
        name = entry if isinstance(entry, str) else None
        if name is None:
            continue
        name = name.split("@")[0]
        base = (CONF / name.lstrip("/")) if name.startswith("/") else (path.parent / name)
        if "base/" in name and base.with_suffix(".yaml").is_file():
            found += _file_targets(base.with_suffix(".yaml"), group)
    return list(dict.fromkeys(found))


def _groups() -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for folder in sorted(p for p in CONF.rglob("*") if p.is_dir() and p.name != "base" and "__" not in p.name):
        options = sorted(folder.glob("*.yaml"))
        if options:
            groups[folder.relative_to(CONF).as_posix()] = options
    return groups


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_groups() -> str:
    lines = ["| group | option | builds (`_target_`) | what it is |", "|---|---|---|---|"]
    for group, options in _groups().items():
        for path in options:
            targets = ", ".join(f"`{t}`" for t in _file_targets(path, group)) or "—"
            first = _comment(path)[:1]
            lines.append(f"| `{group}` | `{path.stem}` | {targets} | {_cell(first[0]) if first else ''} |")
    return "\n".join(lines) + "\n"


def commands() -> str:
    import tomllib  # Python 3.11+ (the docs are built there; the package itself runs on 3.10)

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = []
    for script, entry in project["scripts"].items():
        module = entry.split(":")[0].removesuffix(".__main__")
        name = script.removeprefix("attnlab-")
        path = CONF / f"{name}.yaml"
        out += [f"### `python -m {module}` (`{script}`)", ""]
        if not path.is_file():
            continue
        comment = _comment(path)
        if comment:
            out += ["```", *comment, "```", ""]
        keys = _own_keys(path)
        if keys:
            out += ["| key | default | comment |", "|---|---|---|"]
            out += [f"| `{k}` | `{_cell(v)}` | {_cell(c)} |" for k, v, c in keys]
            out.append("")
        doc = _load(path)
        groups = [d for d in doc.get("defaults", []) if isinstance(d, dict)]
        chosen = ", ".join(f"`{k}={v}`" for d in groups for k, v in d.items() if k != "hydra")
        parents = [d for d in doc.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        if parents:
            out += [f"Also every key of: {', '.join(f'`{p}`' for p in parents)}.", ""]
        if chosen:
            out += [f"Default choices: {chosen}.", ""]
    return "\n".join(out) + "\n"


def _own_keys(path: Path) -> list[tuple[str, str, str]]:
    """Top-level scalar and list keys of a command config, their default and their inline comment."""
    doc = _load(path)
    comments = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z_][\w]*):[^#]*#\s*(.*)$", line)
        if m:
            comments[m.group(1)] = m.group(2)
    out = []
    for key, value in doc.items():
        if key == "defaults" or isinstance(value, dict):
            continue
        out.append(
            (key, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("..."), comments.get(key, ""))
        )
    return [(k, v.strip(), c) for k, v, c in out]


def constructors() -> str:
    import griffe

    package = griffe.load("attnlab", search_paths=[str(ROOT / "src")])
    targets: dict[str, list[str]] = {}
    for group, options in _groups().items():
        for path in options:
            for target in _file_targets(path, group):
                targets.setdefault(target, []).append(f"{group}={path.stem}")
    for path in sorted(CONF.glob("*.yaml")):
        for target in _targets(_load(path)):
            targets.setdefault(target, []).append(path.stem)
    out = []
    for target in sorted(targets):
        if not target.startswith("attnlab."):
            continue
        try:
            obj = package[target.removeprefix("attnlab.")]
            if obj.is_alias:
                obj = obj.final_target
            parameters = [p for p in obj.parameters if p.name not in ("self", "cls")]
        except Exception:  # not a class of this package (a function, a re-export griffe cannot follow)
            continue
        used = ", ".join(f"`{u}`" for u in dict.fromkeys(targets[target]))
        out += [f"### `{target}`", "", f"Used by: {used}.", ""]
        if not parameters:
            out += ["No settings.", ""]
            continue
        out += ["| setting | type | default |", "|---|---|---|"]
        for p in parameters:
            kind = str(p.kind.value) if p.kind else ""
            name = {"variadic positional": "*", "variadic keyword": "**"}.get(kind, "") + p.name
            annotation = _cell(str(p.annotation)) if p.annotation is not None else ""
            if kind.startswith("variadic"):
                default = ""
            else:
                default = "required" if p.default is None else _cell(str(p.default))
            out.append(
                f"| `{name}` | `{annotation}` | `{default}` |" if annotation else f"| `{name}` | | `{default}` |"
            )
        out.append("")
    return "\n".join(out) + "\n"
