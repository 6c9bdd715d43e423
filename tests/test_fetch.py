"""`attnlab-data fetch` against a loopback HTTP server that serves each dataset's archives in its real layout.

The registry's checksums are those of the real archives; the served copies are small, so each test fetches
with the registry entry's downloads re-checksummed for the copy (URLs, layout, unpacking and the loaders are
the real ones). Faults: a truncated transfer (resumed by the next run), a wrong checksum, a 404, a server
that stalls, a full disk (a file-size quota on the fetching process) and an archive that writes outside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from attnlab.data import fetch as fetching
from attnlab.data.fetch import DATASETS, MARKER, fetch, main, status
from attnlab.utils.config import UserError

# ---- the loopback server ------------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name → bytes) with byte ranges; ``faults`` (name → kind) breaks some transfers."""

    files: dict[str, bytes] = {}
    faults: dict[str, str] = {}
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        name = self.path.lstrip("/").split("/")[-1]
        self.requests.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        body, start = self.files[name], 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        fault = self.faults.pop(name, None)
        if fault == "truncate":  # half the bytes, then the connection closes
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.close_connection = True
            return
        if fault == "stall":
            self.wfile.write(body[start : start + 10])
            self.wfile.flush()
            time.sleep(3)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    Handler.files, Handler.faults, Handler.requests = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A checkout's root (ATTNLAB_ROOT) whose data folder is where `fetch` puts the sets by default."""
    monkeypatch.setenv("ATTNLAB_ROOT", str(tmp_path))
    for var in ("ATTNLAB_OSIE_ROOT", "ATTNLAB_SALICON_ROOT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "data"


# ---- archives in each dataset's real layout ------------------------------------------------------------


def _jpeg(size=(32, 24), seed=0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _png(size=(32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0]), 128, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _mat(variables: dict) -> bytes:
    buffer = io.BytesIO()
    savemat(buffer, variables)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _osie_files() -> dict[str, bytes]:
    import tempfile

    from fixtures.osie_layout import random_images, write_osie_layout

    with tempfile.TemporaryDirectory() as folder:
        images = random_images(3, [(60, 80)], [2], seed=1)
        for n, image in enumerate(images, start=1001):
            image.name = f"{n}.jpg"
        root = write_osie_layout(folder, images)
        files = {p.name: p.read_bytes() for p in (Path(root) / "data" / "stimuli").iterdir()}
        files["fixations.mat"] = (Path(root) / "data" / "eye" / "fixations.mat").read_bytes()
    return files


def _mit1003_files() -> dict[str, bytes]:
    name = "i05june05_static_street_boston_p1010764"
    rng = np.random.default_rng(0)
    gaze = np.concatenate([[20, 10] + rng.normal(0, 0.2, (48, 2)), [[25, 12]], [10, 20] + rng.normal(0, 0.2, (60, 2))])
    return {
        "ALLSTIMULI.zip": _zip({f"ALLSTIMULI/{name}.jpeg": _jpeg()}),
        "DATA.zip": _zip({f"DATA/{s}/{name}.mat": _mat({name: {"DATA": {"eyeData": gaze}}}) for s in ("CNG", "ajs")}),
    }


def _cat2000_files() -> dict[str, bytes]:
    locs = np.zeros((24, 32), np.uint8)
    locs[5, 7] = locs[12, 20] = 1
    return {
        "trainSet.zip": _zip(
            {
                "trainSet/Stimuli/Action/001.jpg": _jpeg(),
                "trainSet/FIXATIONLOCS/Action/001.mat": _mat({"fixLocs": locs}),
            }
        )
    }


def _toronto_files() -> dict[str, bytes]:
    maps = np.empty((1, 2), dtype=object)
    for n in range(2):
        fixated = np.zeros((24, 32), np.uint8)
        fixated[3 + n, 4] = fixated[10, 11 + n] = 1
        maps[0, n] = fixated
    base = "eyetrackingdata/fixdens/"
    members = {f"{base}Original Image Set/{n}.jpg": _jpeg(seed=n) for n in (1, 2)}
    return {"eyetrackingdata.zip": _zip(members | {f"{base}origfixdata.mat": _mat({"white": maps})})}


def _salicon_files() -> dict[str, bytes]:
    stem = "COCO_train2014_000000000009"
    fix = np.array([[3.0, 4.0], [10.0, 12.0]])
    gaze = np.array([(fix, np.zeros(2), fix)], dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    record = {"image": stem, "resolution": np.array([[24, 32]]), "gaze": gaze.reshape(1, -1)}
    return {
        "images.zip": _zip({f"images/train/{stem}.jpg": _jpeg()}),
        "maps.zip": _zip({f"maps/train/{stem}.png": _png()}),
        "fixations.zip": _zip({f"train/{stem}.mat": _mat(record)}),  # as released: train/ at the top
    }


def _coco_files(tmp_path: Path) -> dict[str, bytes]:
    from fixtures.coco_synthetic import write_synthetic_coco

    annotations = write_synthetic_coco(tmp_path / "coco_src", num_images=3, image_dir="val2017")
    images = {f"val2017/{p.name}": p.read_bytes() for p in (tmp_path / "coco_src" / "val2017").glob("*.jpg")}
    instances = {"annotations/instances_val2017.json": Path(annotations).read_bytes()}
    return {"val2017.zip": _zip(images), "annotations_trainval2017.zip": _zip(instances)}


def serve(name: str, files: dict[str, bytes], monkeypatch) -> fetching.Dataset:
    """Serve ``files`` and register dataset ``name`` with its real downloads re-checksummed for them."""
    Handler.files.update(files)
    real = DATASETS[name]
    downloads = real.downloads
    if name == "osie":  # the copy holds 3 of the 700 images
        downloads = fetching._osie_stimuli(3)
    downloads = tuple(
        dataclasses.replace(d, md5=hashlib.md5(files[d.name]).hexdigest()) if d.md5 else d for d in downloads
    )
    dataset = dataclasses.replace(real, downloads=downloads)
    monkeypatch.setitem(DATASETS, name, dataset)
    return dataset


def loaded(name: str):
    """What ``data=<name>`` reads, composed as a command would compose it (no root given)."""
    from hydra.utils import instantiate

    from attnlab.utils.compose import compose_config

    module = instantiate(compose_config("benchmark", [f"data={name}"]).data)
    return module.load()


# ---- every listed set ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, builder, images",
    [
        ("osie", _osie_files, 3),
        ("mit1003", _mit1003_files, 1),
        ("cat2000", _cat2000_files, 1),
        ("toronto", _toronto_files, 2),
        ("salicon", _salicon_files, 1),
    ],
)
def test_fetch_puts_each_fixation_set_where_its_config_reads_it(name, builder, images, server, data_root, monkeypatch):
    dataset = serve(name, builder(), monkeypatch)
    assert main(["fetch", name, "--mirror", server]) == 0
    folder = data_root / dataset.folder
    assert status(dataset, data_root).startswith("ok")
    assert json.loads((folder / MARKER).read_text())["md5"] == {d.name: d.md5 for d in dataset.downloads if d.md5}
    assert not list(data_root.glob(f".{dataset.folder}.partial-*"))  # the staging folder is gone
    assert not (data_root / ".downloads" / dataset.folder).exists()  # and so are the unpacked archives
    data = loaded(name if name != "salicon" else "salicon_fixations")
    assert len(data.stimuli) == images and sum(len(s) for s in data.scanpaths) > 0


def test_fetch_coco_val_with_annotations(server, data_root, monkeypatch, tmp_path):
    from pycocotools.coco import COCO

    dataset = serve("coco", _coco_files(tmp_path), monkeypatch)
    folder = fetch("coco", mirror=server, progress=False)
    assert folder == data_root / "coco" and status(dataset, data_root).startswith("ok")
    coco = COCO(str(folder / "annotations" / "instances_val2017.json"))
    assert all((folder / "val2017" / image["file_name"]).is_file() for image in coco.dataset["images"])


def test_a_second_fetch_keeps_the_copy_and_list_reports_each_state(server, data_root, monkeypatch, capsys):
    serve("toronto", _toronto_files(), monkeypatch)
    fetch("toronto", mirror=server, progress=False)
    Handler.requests.clear()
    fetch("toronto", mirror=server, progress=False)
    assert Handler.requests == []  # nothing downloaded again
    (data_root / "cat2000" / "trainSet" / "Stimuli").mkdir(parents=True)  # a copy made by hand, half done
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "ok (fetched" in rows["toronto"] and "incomplete" in rows["cat2000"] and "absent" in rows["osie"]
    with pytest.raises(UserError, match="exists .*--force"):
        fetch("cat2000", mirror=server, progress=False)


def test_salicon_without_a_mirror_says_how_to_get_it(data_root, capsys):
    assert main(["fetch", "salicon"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mirror file://" in err
    assert not (data_root / "salicon").exists()


def test_a_mirror_folder_of_archives_downloaded_by_hand(data_root, monkeypatch, tmp_path):
    files = _cat2000_files()
    serve("cat2000", files, monkeypatch)
    (tmp_path / "by_hand").mkdir()
    (tmp_path / "by_hand" / "trainSet.zip").write_bytes(files["trainSet.zip"])
    assert main(["fetch", "cat2000", "--mirror", (tmp_path / "by_hand").as_uri()]) == 0
    assert len(loaded("cat2000").stimuli) == 1


# ---- faults: one line, nothing half-written ------------------------------------------------------------


def one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attnlab-data:")]
    assert len(err) == 1, err
    return err[0]


def nothing_in_place(data_root: Path, folder: str) -> bool:
    return not (data_root / folder).exists() and not list(data_root.glob(f".{folder}.partial-*"))


def test_a_truncated_transfer_resumes_on_the_next_run(server, data_root, monkeypatch, capsys):
    files = _toronto_files()
    serve("toronto", files, monkeypatch)
    Handler.faults["eyetrackingdata.zip"] = "truncate"
    assert main(["fetch", "toronto", "--mirror", server]) == 2
    assert "stopped at" in one_line(capsys) and nothing_in_place(data_root, "toronto")
    part = data_root / ".downloads" / "toronto" / "eyetrackingdata.zip.part"
    assert part.stat().st_size == len(files["eyetrackingdata.zip"]) // 2
    assert main(["fetch", "toronto", "--mirror", server]) == 0
    assert Handler.requests[-1] == ("eyetrackingdata.zip", f"bytes={len(files['eyetrackingdata.zip']) // 2}-")
    assert len(loaded("toronto").stimuli) == 2


def test_a_wrong_checksum_removes_the_file_and_unpacks_nothing(server, data_root, monkeypatch, capsys):
    serve("toronto", _toronto_files(), monkeypatch)
    Handler.files["eyetrackingdata.zip"] = _zip({"eyetrackingdata/other.txt": b"another version"})
    assert main(["fetch", "toronto", "--mirror", server]) == 2
    assert "is not the published" in one_line(capsys)
    assert nothing_in_place(data_root, "toronto")
    assert not list((data_root / ".downloads" / "toronto").iterdir())


def test_a_missing_file_is_one_line(server, data_root, monkeypatch, capsys):
    serve("cat2000", _cat2000_files(), monkeypatch)
    Handler.files.clear()
    assert main(["fetch", "cat2000", "--mirror", server]) == 2
    assert "404" in one_line(capsys) and nothing_in_place(data_root, "cat2000")


def test_a_stalled_server_times_out(server, data_root, monkeypatch, capsys):
    serve("cat2000", _cat2000_files(), monkeypatch)
    Handler.faults["trainSet.zip"] = "stall"
    assert main(["fetch", "cat2000", "--mirror", server, "--timeout", "0.5"]) == 2
    assert "no data for 0.5 s" in one_line(capsys) and nothing_in_place(data_root, "cat2000")


def test_too_little_free_space_is_refused_before_the_transfer(server, data_root, monkeypatch, capsys):
    serve("cat2000", _cat2000_files(), monkeypatch)
    monkeypatch.setattr(fetching.shutil, "disk_usage", lambda path: type("usage", (), {"free": 100})())
    assert main(["fetch", "cat2000", "--mirror", server]) == 2
    assert "100 free" in one_line(capsys) and nothing_in_place(data_root, "cat2000")
    assert not list((data_root / ".downloads" / "cat2000").iterdir())  # not a byte written


QUOTA_RUN = """
import dataclasses, resource, sys
from attnlab.data import fetch as f
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # a quota: no file may grow past 4 KiB
f.DATASETS["toronto"] = dataclasses.replace(
    f.DATASETS["toronto"], downloads=(dataclasses.replace(f.DATASETS["toronto"].downloads[0], md5=sys.argv[2]),)
)
sys.exit(f.main(["fetch", "toronto", "--mirror", sys.argv[1]]))
"""


def test_a_full_disk_is_one_line_and_leaves_nothing(server, data_root, tmp_path):
    files = _toronto_files()
    Handler.files.update({"eyetrackingdata.zip": files["eyetrackingdata.zip"] + b"\0" * 20000})  # > the quota
    md5 = hashlib.md5(Handler.files["eyetrackingdata.zip"]).hexdigest()
    run = subprocess.run(
        [sys.executable, "-c", QUOTA_RUN, server, md5],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("attnlab-data: disk full")
    assert "Traceback" not in run.stderr and nothing_in_place(data_root, "toronto")


def test_an_archive_member_outside_the_set_is_refused(server, data_root, monkeypatch, capsys):
    files = _toronto_files()
    files["eyetrackingdata.zip"] = _zip({"../../escaped.txt": b"x"})
    serve("toronto", files, monkeypatch)
    assert main(["fetch", "toronto", "--mirror", server]) == 2
    assert "outside the dataset" in one_line(capsys)
    assert not list(data_root.parent.rglob("escaped.txt")) and nothing_in_place(data_root, "toronto")


def test_an_archive_without_the_layout_puts_nothing_in_place(server, data_root, monkeypatch, capsys):
    files = {"trainSet.zip": _zip({"trainSet/readme.txt": b"moved"})}
    serve("cat2000", files, monkeypatch)
    assert main(["fetch", "cat2000", "--mirror", server]) == 2
    assert "hold no trainSet/Stimuli" in one_line(capsys) and nothing_in_place(data_root, "cat2000")


def test_the_readme_data_commands_parse_as_printed():
    import re
    import shlex

    from conftest import REPO

    lines = re.findall(r"^attnlab-data (.*?)(?:\s+#.*)?$", (REPO / "README.md").read_text(), flags=re.M)
    assert any(line.startswith("fetch") for line in lines) and any(line.startswith("list") for line in lines)
    for line in lines:
        fetching._parser().parse_args(shlex.split(line))  # a renamed option or dataset exits here
