"""Generated bad inputs (issue 35): what the bad-input table did not list.

``hypothesis`` generates settings for every command and malformed files for every reader (map
folders, scanpath files, OSIE's fixations.mat, checkpoints, COCO instances files). Each run is held
to the contract of ``tests/test_bad_inputs.py``: the input is read as it is, or refused with ONE
:class:`UserError` line naming it — never another exception, never a value read from an input that
was quietly reinterpreted (flattened, averaged over colour channels, truncated to an integer). The
cases found here are kept as rows of the table there. Examples are bounded and derandomised (a
fixed seed), so the suite stays fast and repeatable.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from attnlab.utils.config import UserError

BOUNDED = settings(
    max_examples=int(__import__("os").environ.get("PROPERTY_EXAMPLES", 40)),
    deadline=None,
    derandomize=True,  # a fixed seed: the same examples in every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def one_line(ex: UserError, *names: str) -> None:
    """A UserError is one line and names what it refuses."""
    text = str(ex)
    assert text and "\n" not in text and "Traceback" not in text, text
    for name in names:
        assert name in text, (name, text)


def read_or_refuse(call, *names: str):
    """``call()``'s result, or None when it refused with one line naming ``names``."""
    try:
        return call()
    except UserError as ex:
        one_line(ex, *names)
        return None


# --- values as a file holds them --------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6))
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


def is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_coordinate_list(v) -> bool:
    return isinstance(v, list) and all(is_real(c) for c in v)


# --- scanpath files (JSON) ----------------------------------------------------------------------------


@st.composite
def scanpath_records(draw):
    """A list of records, each either well formed or with one field replaced by any JSON value."""
    records = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 4))
        coordinates = st.lists(st.floats(-50, 500, allow_nan=False), min_size=n, max_size=n)
        record = {"stimulus": draw(st.sampled_from(["a", "b.jpg"])), "subject": "s", "x": draw(coordinates),
                  "y": draw(coordinates)}  # fmt: skip
        if draw(st.booleans()):
            record["duration"] = draw(st.lists(st.floats(0, 900), min_size=n, max_size=n))
        if draw(st.booleans()):
            record[draw(st.sampled_from(["x", "y", "duration", "stimulus"]))] = draw(json_values)
        records.append(record)
    return records


def well_formed(record: dict) -> bool:
    """The format of ``attnlab.data.folder``: x, y (and duration) lists of numbers of one length."""
    x, y, d = record.get("x"), record.get("y"), record.get("duration")
    stimulus = record.get("stimulus")
    return (
        (isinstance(stimulus, str) and bool(stimulus) or isinstance(stimulus, int) and not isinstance(stimulus, bool))
        and is_coordinate_list(x)
        and is_coordinate_list(y)
        and len(x) == len(y)
        and (d is None or (is_coordinate_list(d) and len(d) == len(x)))
    )


@BOUNDED
@given(records=scanpath_records())
def test_scanpath_json_is_read_exactly_or_refused(tmp_path_factory, records):
    from attnlab.data.folder import read_scanpaths

    path = tmp_path_factory.mktemp("scanpaths") / "model.json"
    path.write_text(json.dumps(records))
    groups = read_or_refuse(lambda: read_scanpaths(path), str(path))
    if not all(well_formed(r) for r in records):
        assert groups is None, f"accepted a malformed record: {records}"
        return
    assert groups is not None, records
    read = [(p.stimulus, p.x.tolist(), p.y.tolist()) for paths in groups.values() for p in paths]
    expected = [(Path(str(r["stimulus"])).stem, r["x"], r["y"]) for r in records if r["x"]]
    assert sorted(read) == sorted(expected)  # every number as written


@BOUNDED
@given(
    cells=st.lists(
        st.lists(st.one_of(st.sampled_from(["", "nan", "1e3", "x", "-2", "3.5", "inf"]), st.text(max_size=3)),
                 min_size=3, max_size=3),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_scanpath_csv_is_read_exactly_or_refused(tmp_path_factory, cells):
    import csv

    from attnlab.data.folder import read_scanpaths

    path = tmp_path_factory.mktemp("scanpaths") / "model.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stimulus", "x", "y"])
        writer.writerows([["a", x, y] for _, x, y in cells])
    groups = read_or_refuse(lambda: read_scanpaths(path), str(path))

    def number(text):
        try:
            return float(text)
        except ValueError:
            return None

    if any(number(x) is None or number(y) is None for _, x, y in cells):
        assert groups is None, cells
        return
    finite = [(number(x), number(y)) for _, x, y in cells if math.isfinite(number(x)) and math.isfinite(number(y))]
    read = [(float(a), float(b)) for paths in (groups or {}).values() for p in paths for a, b in zip(p.x, p.y)]
    assert read == finite


# --- map folders ---------------------------------------------------------------------------------------

H, W = 6, 8


@st.composite
def map_files(draw):
    """(file name, bytes, the H×W map a reader must return or None when it must refuse)."""
    kind = draw(st.sampled_from(["npy", "png-grey", "png-colour", "png-grey-as-rgb", "bytes", "npy-object"]))
    rng = np.random.default_rng(draw(st.integers(0, 10)))
    if kind == "npy":
        shape = draw(st.sampled_from([(H, W), (1, H, W), (H, W, 1), (H * W,), (H, W, 3), (0, W), (2, H, W), ()]))
        dtype = draw(st.sampled_from(["float64", "float32", "uint8", "int64", "bool", "complex128"]))
        values = (rng.random(shape) * 255).astype(dtype)
        buffer = io.BytesIO()
        np.save(buffer, values)
        squeezed = np.squeeze(values)
        if dtype == "complex128" or squeezed.size == 0:
            return "m.npy", buffer.getvalue(), None
        grey = squeezed.astype(np.float64)
        if squeezed.ndim == 3 and squeezed.shape[-1] == 3:  # three channels: one map only when they agree
            same = np.ptp(grey, axis=-1).max() <= 2
            return "m.npy", buffer.getvalue(), grey.mean(-1) if same else None
        return "m.npy", buffer.getvalue(), grey if squeezed.ndim == 2 else None
    if kind == "npy-object":
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return "m.npy", buffer.getvalue(), None
    if kind == "bytes":
        return "m.png", draw(st.binary(max_size=64)), None
    from PIL import Image

    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    if kind == "png-grey":
        image, expected = Image.fromarray(grey), grey.astype(np.float64)
    elif kind == "png-grey-as-rgb":  # a greyscale map saved with three equal channels
        image, expected = Image.fromarray(np.stack([grey] * 3, -1)), grey.astype(np.float64)
    else:  # a rendered heat map: its colours are no saliency values
        image, expected = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)), None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "m.png", buffer.getvalue(), expected


@BOUNDED
@given(case=map_files())
def test_map_file_is_read_as_it_is_or_refused(tmp_path_factory, case):
    from types import SimpleNamespace

    from attnlab.benchmark.sources import MapFolderSource

    name, data, expected = case
    folder = tmp_path_factory.mktemp("maps")
    (folder / name).write_bytes(data)
    ctx = SimpleNamespace(data=SimpleNamespace(stimuli=[SimpleNamespace(id="m", size=(H, W))]))
    m = read_or_refuse(lambda: MapFolderSource(folder).saliency_map(ctx, 0), str(folder / name))
    if expected is None:
        assert m is None, f"read {name} ({len(data)} bytes) as a map of shape {np.shape(m)}"
    else:
        assert m is not None and m.dtype == np.float64
        np.testing.assert_array_equal(m, expected)


# --- OSIE's fixations.mat ------------------------------------------------------------------------------


@st.composite
def osie_structs(draw):
    """A ``fixations`` struct array as scipy writes it, with fields dropped or replaced at random."""
    images = []
    for k in range(draw(st.integers(1, 3))):
        subjects = []
        for _ in range(draw(st.integers(0, 2))):
            n = draw(st.integers(0, 3))
            subject = {"fix_x": np.arange(1.0, n + 1) * 3, "fix_y": np.arange(1.0, n + 1) * 2,
                       "fix_duration": np.full(n, 200.0)}  # fmt: skip
            if draw(st.booleans()):
                field = draw(st.sampled_from(list(subject)))
                subject[field] = draw(
                    st.one_of(st.text(max_size=3), st.just(np.zeros((2, 2))), st.just(np.arange(n + 1.0)),
                              st.just(np.array([np.nan] * n)), st.just(np.zeros(0)))
                )  # fmt: skip
                if draw(st.booleans()):
                    subject.pop(field)
            subjects.append(subject)
        image = {"img": f"im{k}.jpg", "subjects": np.array(subjects, dtype=object) if subjects else np.zeros(0)}
        if draw(st.booleans()):
            image[draw(st.sampled_from(["img", "subjects"]))] = draw(
                st.one_of(st.text(max_size=4), st.integers(0, 9), st.just(np.zeros(3)))
            )
        images.append(image)
    return images


@BOUNDED
@given(images=osie_structs())
def test_osie_fixations_mat_is_read_or_refused(tmp_path_factory, images):
    from PIL import Image
    from scipy.io import savemat

    from attnlab.data.osie import load_osie

    root = tmp_path_factory.mktemp("osie")
    (root / "data" / "stimuli").mkdir(parents=True)
    (root / "data" / "eye").mkdir()
    for k in range(len(images)):
        Image.new("RGB", (40, 30), (90, 90, 90)).save(root / "data" / "stimuli" / f"im{k}.jpg")
    mat = root / "data" / "eye" / "fixations.mat"
    savemat(mat, {"fixations": np.array([images], dtype=object)})
    data = read_or_refuse(lambda: load_osie(root))
    if data is None:
        return
    for paths in data.scanpaths:  # what was read is what the file holds, 0-based
        for p in paths:
            assert p.x.ndim == 1 and len(p.x) == len(p.y) and (p.duration is None or len(p.duration) == len(p.x))


@st.composite
def mit1003_subject_files(draw):
    """A subject's .mat for one image: extracted fixations, or raw samples under <name>.DATA.eyeData."""
    arrays = st.one_of(
        st.sampled_from([(4, 2), (3,), (5, 3), (0, 2), (2, 2, 2), (6, 2)]).map(
            lambda shape: np.arange(float(np.prod(shape))).reshape(shape) + 5
        ),
        st.text(max_size=4),
        st.just(np.array([["a", "b"]])),
    )  # fmt: skip
    if draw(st.booleans()):
        contents = {"fixations": draw(arrays)}
        if draw(st.booleans()):
            contents["durations"] = draw(arrays)
        return contents
    eye = draw(st.one_of(arrays, st.just(np.column_stack([np.linspace(5, 30, 240), np.linspace(5, 20, 240)]))))
    return {"im": {"DATA": {"eyeData": eye}}} if draw(st.booleans()) else {"im": draw(arrays)}


@BOUNDED
@given(contents=mit1003_subject_files())
def test_mit1003_subject_file_is_read_or_refused(tmp_path_factory, contents):
    from scipy.io import savemat

    from attnlab.data.mit1003 import _read_subject

    path = tmp_path_factory.mktemp("mit1003") / "im.mat"
    savemat(path, contents)
    read = read_or_refuse(lambda: _read_subject(path, "im", (40, 60), 35.0, 30.0, 100.0), str(path))
    if read is not None:
        x, y, onset, duration = read
        assert x.ndim == 1 and len(x) == len(y)
        assert all(v is None or len(v) == len(x) for v in (onset, duration))


# --- checkpoints ----------------------------------------------------------------------------------------


class _Marker:
    """An object whose unpickling would create a file: the proof that a checkpoint ran code."""

    path = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4),
              st.builds(lambda n: torch.arange(float(n)), st.integers(0, 4))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@BOUNDED
@given(content=plain, trap=st.booleans(), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_checkpoint_is_read_or_refused_and_never_runs_code(tmp_path_factory, content, trap, cut):
    from attnlab.utils.checkpoint import read_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    marker = folder / "ran"
    _Marker.path = str(marker)
    stored = {"state_dict": content, "attnlab_config": _Marker() if trap else {"model": content}}
    buffer = io.BytesIO()
    torch.save(stored, buffer)  # the protocol torch.save and Lightning write
    data = buffer.getvalue() if cut is None else buffer.getvalue()[:cut]
    path = folder / "model.ckpt"
    path.write_bytes(data)
    read = read_or_refuse(lambda: read_checkpoint(path), str(path))
    assert not marker.exists(), "loading the checkpoint ran code"
    if trap or cut is not None:
        assert read is None or cut is not None and cut >= len(buffer.getvalue())
    else:
        assert read is not None and set(read) == set(stored)


@pytest.fixture(scope="module")
def stored_model():
    """A checkpoint's contents as training writes them: the model/data config and the weights."""
    import hydra

    from attnlab.utils.compose import compose_config
    from attnlab.utils.config import validate

    cfg = compose_config("train", [])
    validate(cfg)  # imports the targets, which register the resolvers the config uses
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}
    weights = hydra.utils.instantiate(cfg.model).state_dict()
    return config, weights


@st.composite
def checkpoint_contents(draw, stored):
    """A checkpoint whose stored config or weights have one entry replaced, removed or reshaped."""
    config, weights = stored
    config, weights = json.loads(json.dumps(config)), dict(weights)
    where = draw(st.sampled_from(["model", "data", "weights", "whole-config"]))
    if where in ("model", "data"):
        key = draw(st.sampled_from(sorted(config[where])))
        if draw(st.booleans()):
            config[where].pop(key)
        else:
            config[where][key] = draw(json_values)
    elif where == "weights":
        key = draw(st.sampled_from(sorted(weights)))
        weights[key] = draw(st.one_of(st.just(weights[key].flatten()[:1]), st.just("weights"), st.none(),
                                      st.just(weights[key].double())))  # fmt: skip
    else:
        config = draw(json_values)
    return {"state_dict": weights, "attnlab_config": config}


@BOUNDED
@given(data=st.data())
def test_checkpoint_contents_load_or_are_one_line(stored_model, tmp_path_factory, data):
    """What a checkpoint holds (its config, its weights), edited at random: the model loads and is
    the one the file describes, or the load is refused with one line naming the file."""
    from attnlab.utils.checkpoint import load_model, read_checkpoint
    from attnlab.utils.compose import compose_config

    contents = data.draw(checkpoint_contents(stored_model))
    path = tmp_path_factory.mktemp("ckpt") / "edited.ckpt"
    torch.save(contents, path)
    cfg = compose_config("eval", [f"ckpt_path={path}"])
    model = read_or_refuse(lambda: load_model(cfg, read_checkpoint(path), path), str(path))
    if model is not None:
        loaded = model.state_dict()
        for key, value in contents["state_dict"].items():
            assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key


# --- COCO instances files -------------------------------------------------------------------------------


def _polygon_image(k: int) -> tuple[dict, list[dict]]:
    image = {"id": k + 1, "file_name": f"p{k}.jpg", "height": 40, "width": 60}
    annotations = []
    for j in range(2):
        left = 5 + 25 * j
        square = [left, 5, left + 20, 5, left + 20, 25, left, 25]
        annotations.append({"id": 10 * k + j, "image_id": k + 1, "category_id": 1 + j, "area": 300.0, "iscrowd": 0,
                            "bbox": [left, 5, 20, 20], "segmentation": [square]})  # fmt: skip
    return image, annotations


@st.composite
def coco_files(draw):
    images, annotations = [], []
    for k in range(draw(st.integers(1, 2))):
        image, anns = _polygon_image(k)
        images.append(image)
        annotations.extend(anns)
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "cat", "supercategory": "animal"},
                          {"id": 2, "name": "cup", "supercategory": "kitchen"}]}  # fmt: skip
    for _ in range(draw(st.integers(0, 2))):  # replace one field of one entry with any JSON value
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        entry = draw(st.sampled_from(doc[section]))
        entry[draw(st.sampled_from(sorted(entry)))] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        doc = draw(json_values)
    return doc


@BOUNDED
@given(doc=coco_files())
def test_coco_instances_file_is_read_or_refused(tmp_path_factory, doc):
    from PIL import Image

    from attnlab.data.coco_concepts import load_coco_concepts
    from attnlab.data.coco_selection import build_metadata

    folder = tmp_path_factory.mktemp("coco")
    for k in range(2):
        Image.new("RGB", (60, 40), (120, 60, 30)).save(folder / f"p{k}.jpg")
    path = folder / "instances.json"
    path.write_text(json.dumps(doc))
    meta = read_or_refuse(lambda: build_metadata(path, min_area=0.0, max_overlap=1.0))
    concepts = read_or_refuse(lambda: load_coco_concepts(path, folder))
    if meta is not None:
        assert all(len(image["objects"]) == 2 for image in meta["images"])
    if concepts is not None:
        assert all(image.height > 0 and image.width > 0 for image in concepts.images)


# --- every command's settings ------------------------------------------------------------------------------

COMMANDS = ["train", "eval", "analyze", "scanpaths", "benchmark", "leaderboard"]


def command_settings(command: str) -> type:
    """The dataclass a command declares its own keys with (what its entry point checks)."""
    from attnlab.analyze import AnalyzeSettings
    from attnlab.benchmark.settings import BenchmarkSettings, LeaderboardSettings, ScanpathsSettings
    from attnlab.eval import EvalSettings
    from attnlab.train import TrainSettings

    return {
        "train": TrainSettings,
        "eval": EvalSettings,
        "analyze": AnalyzeSettings,
        "scanpaths": ScanpathsSettings,
        "benchmark": BenchmarkSettings,
        "leaderboard": LeaderboardSettings,
    }[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_own_key_of_a_command_is_declared_by_its_settings(command):
    """The keys of a command's YAML that belong to no object or group are exactly its settings' fields
    (``task_name`` names the run folder; ``resume`` is read before composing: attnlab.utils.resume)."""
    import dataclasses

    from attnlab.utils.compose import compose

    cfg = compose(command, [])
    own = {k for k in cfg.keys() if not OmegaConf.is_dict(cfg._get_node(k))} - {"task_name", "resume"}
    fields = {f.name for f in dataclasses.fields(command_settings(command))}
    assert own <= fields and fields <= set(cfg.keys()), (own - fields, fields - set(cfg.keys()))


def _leaves(config_name: str) -> list[tuple[str, object]]:
    """(key, default) of every scalar setting a command composes by default (Hydra's own left out)."""
    from attnlab.utils.compose import compose

    cfg = compose(config_name, [])
    keys = []

    def walk(node, prefix):
        for key in node.keys():
            full = f"{prefix}{key}"
            if full.split(".")[0] in ("hydra", "paths") or str(key).startswith("_"):
                continue
            child = node._get_node(key)
            if child._is_interpolation() or OmegaConf.is_missing(node, key):
                continue
            value = node[key]
            if OmegaConf.is_dict(value):
                walk(value, full + ".")
            elif not OmegaConf.is_list(value) and value != "???":
                keys.append((full, value))

    walk(cfg, "")
    return keys


override_values = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(["0", "2.5", "1.0", "-0.5", "1e9", "nan", "inf", "-inf", "true", "false", "yes", "null", "abc",
                     "''", "[]", "[1,2]", "{a: 1}"]),
)  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_takes_its_type_or_is_one_line(command, capfd, tmp_path, monkeypatch):
    """Any value for any setting of a command: accepted as a value of the setting's type (an integer
    stays an integer, a number is finite), or refused before anything starts with one line naming it."""
    from attnlab.utils.cli import _precheck
    from attnlab.utils.compose import compose, force_added

    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    checkpoint = tmp_path / "given.ckpt"  # the setting a command needs, so that the others are reached
    checkpoint.write_bytes(b"")
    needed = [f"ckpt_path={checkpoint}"] if command == "eval" else []

    @settings(BOUNDED, max_examples=max(4, BOUNDED.max_examples // 4))  # each example composes a few configs
    @given(leaf=st.sampled_from(_leaves(command)), value=override_values)
    def check(leaf, value):
        key, default = leaf
        override = f"{key}={value}"
        capfd.readouterr()
        try:
            added = _precheck(command, [*needed, override], command_settings(command))
        except SystemExit as ex:
            err = capfd.readouterr().err.strip().splitlines()
            assert ex.code == 2 and len(err) == 1 and err[0].startswith("attnlab: error: "), (override, err)
            assert key.rsplit(".", 1)[-1] in err[0] or value in err[0], (override, err)
            return
        given_value = OmegaConf.select(compose(command, force_added([*needed, override], added)), key)
        if isinstance(default, bool):
            assert isinstance(given_value, bool) or given_value is None, (override, given_value)
        elif isinstance(default, int):
            assert given_value is None or type(given_value) is int, (override, given_value)
        elif isinstance(default, float) and math.isfinite(default):
            assert given_value is None or (is_real(given_value) and math.isfinite(given_value)), (override, given_value)

    check()


# --- the HTML report -------------------------------------------------------------------------------------


@BOUNDED
@given(names=st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=3, unique=True),
       dataset=st.text(max_size=12))  # fmt: skip
def test_html_report_shows_any_name_as_text_and_loads_nothing(names, dataset):
    """Source and dataset names (a label, a folder name: anyone's text) appear as text on the page: they
    add no element or attribute, and the page's policy lets it load nothing from outside."""
    from html.parser import HTMLParser

    from attnlab.benchmark.leaderboard import CSP, html_page, leaderboard_table

    per_image = {n: [{"stimulus": f"s{k}", "NSS": float(k + j)} for k in range(4)] for j, n in enumerate(names)}
    result = {"table": leaderboard_table(per_image, ["NSS"], names[0], samples=50), "metrics": ["NSS"],
              "sources": names, "reference": names[0], "level": 0.95, "images": 4, "split": "test",
              "dataset": dataset, "samples": 50}  # fmt: skip

    class Page(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.text = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, tuple(k for k, _ in attrs)))

        def handle_data(self, data):
            self.text.append(data)

    page = Page()
    page.feed(html_page(result, None))
    assert {t for t, _ in page.tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table",
                                         "thead", "tbody", "tr", "th", "td"}  # fmt: skip
    assert ("meta", ("http-equiv", "content")) in page.tags and "default-src 'none'" in CSP
    text = "".join(page.text)
    assert all(name in text for name in names) and dataset in text
