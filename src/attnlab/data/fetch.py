"""``attnlab-data``: fetch the standard eye-tracking sets into the layouts ``data=<name>`` reads.

::

    attnlab-data list                       # what is present under the data folder, and whether it is whole
    attnlab-data fetch osie [--root DIR]    # download, check, extract, move into place
    attnlab-data fetch mit1003 --mirror https://lab.example.org/datasets   # a lab's own copy

Each file is downloaded into ``<root>/.downloads/`` (a transfer that stops resumes where it stopped on
the next run), checked against its published MD5 *before* anything is extracted, unpacked into a
temporary folder beside the target and renamed into place only when the whole set is there, so an
interrupted fetch never leaves a half dataset that a loader would accept. Archives are untrusted:
members that would land outside the target are refused. ``--mirror URL`` fetches every file from
``URL/<file name>`` instead of its host (``file:///path`` works for archives downloaded by hand).
The default root is the data folder of the configs (``$ATTNLAB_ROOT/data``, else ``./data``), so after
a fetch ``data=<name>`` finds the set with no other setting. Every failure is one line, exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import json
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from attnlab.utils.config import UserError

__all__ = ["Download", "Dataset", "DATASETS", "fetch", "status", "data_dir", "main"]

MARKER = ".attnlab-fetch.json"  # written last, into a fetched set: its files and checksums
CHUNK = 1 << 20


@dataclass(frozen=True)
class Download:
    """One file of a dataset: an archive unpacked into the set's folder, or a file placed at ``place``."""

    name: str  # the file's name at a mirror and in the download folder
    url: str | None  # its host's address (None: the host allows no scripted download)
    md5: str | None  # the published checksum (None: none is published; the layout check must do)
    place: str | None = None  # a plain file's path inside the set (None: a zip archive)
    into: str = ""  # the folder inside the set an archive unpacks into (its members' paths follow)


@dataclass(frozen=True)
class Dataset:
    name: str  # what `attnlab-data fetch` calls it
    folder: str  # the folder under the data folder that its config (conf/data/) reads
    downloads: tuple[Download, ...]
    layout: tuple[str, ...]  # glob patterns a whole copy matches (each at least once)
    about: str  # size and source, shown by `list`
    checksums: str  # where the checksums come from
    manual: str = ""  # why files without a url must come from --mirror, and how


def _osie_stimuli(count: int = 700) -> tuple[Download, ...]:
    base = "https://github.com/NUS-VIP/predicting-human-gaze-beyond-pixels/raw/master/data/"
    images = tuple(
        Download(f"{n}.jpg", f"{base}stimuli/{n}.jpg", None, place=f"data/stimuli/{n}.jpg")
        for n in range(1001, 1001 + count)
    )
    return images + (
        Download(
            "fixations.mat", f"{base}eye/fixations.mat", "8efdf6fe66f38b6e70f854c7ff45aa70", "data/eye/fixations.mat"
        ),
    )


_SALICON_PAGE = "http://salicon.net/challenge-2017/"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "osie",
            "osie",
            _osie_stimuli(),
            ("data/stimuli/*.jpg", "data/eye/fixations.mat"),
            "700 images of 800×600 + fixations.mat, from the authors' GitHub repository",
            "fixations.mat: pysaliency's get_OSIE; the images have none published (each is decoded instead)",
        ),
        Dataset(
            "mit1003",
            "mit1003",
            (
                Download(
                    "ALLSTIMULI.zip",
                    "http://people.csail.mit.edu/tjudd/WherePeopleLook/ALLSTIMULI.zip",
                    "0d7df8b954ecba69b6796e77b9afe4b6",
                ),
                Download(
                    "DATA.zip",
                    "http://people.csail.mit.edu/tjudd/WherePeopleLook/DATA.zip",
                    "ea19d74ad0a0144428c53e9d75c2d71c",
                ),
            ),
            ("ALLSTIMULI/*.jpeg", "DATA/*/*.mat"),
            "1003 images + raw gaze of 15 subjects (ALLSTIMULI.zip, DATA.zip), from MIT",
            "pysaliency's get_mit1003",
        ),
        Dataset(
            "cat2000",
            "cat2000",
            (Download("trainSet.zip", "http://saliency.mit.edu/trainSet.zip", "56ad5c77e6c8f72ed9ef2901628d6e48"),),
            ("trainSet/Stimuli/*/*.jpg", "trainSet/FIXATIONLOCS/*/*.mat"),
            "2000 images of 1920×1080 in 20 categories (trainSet.zip), from the MIT benchmark",
            "pysaliency's get_cat2000_train",
        ),
        Dataset(
            "toronto",
            "toronto",
            (
                Download(
                    "eyetrackingdata.zip",
                    "http://www-sop.inria.fr/members/Neil.Bruce/eyetrackingdata.zip",
                    "38d5c02217060d4d2d1a4649cc632af1",
                ),
            ),
            ("eyetrackingdata/fixdens/Original Image Set/*.jpg", "eyetrackingdata/fixdens/origfixdata.mat"),
            "120 images of 681×511 + pooled fixation maps (eyetrackingdata.zip), from N. Bruce's page",
            "pysaliency's get_toronto",
        ),
        Dataset(
            "salicon",
            "salicon",
            (
                Download("images.zip", None, "eb2a1bb706633d1b31fc2e01422c5757"),
                Download("maps.zip", None, None),
                Download(
                    "fixations.zip", None, "462b70f4f9e8ea446ac628e46cea8d3d", into="fixations"
                ),  # holds train/, val/
            ),
            ("images/train/*.jpg", "maps/train/*.png", "fixations/train/*.mat"),
            "10k train + 5k val images of 640×480 with maps and fixations (LSUN 2017 release)",
            "images.zip and fixations.zip (2017): pysaliency's get_SALICON; maps.zip has none published",
            manual=(
                f"SALICON is hosted on Google Drive, which allows no scripted download: save the LSUN 2017 "
                f"images, maps and fixations archives from {_SALICON_PAGE} as images.zip, maps.zip and "
                f"fixations.zip in one folder, then run: attnlab-data fetch salicon --mirror file:///that/folder"
            ),
        ),
        Dataset(
            "coco",
            "coco",
            (
                Download(
                    "val2017.zip", "http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"
                ),
                Download(
                    "annotations_trainval2017.zip",
                    "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                    "f4bbac642086de4f52a3fdda2de5fa2c",
                ),
            ),
            ("val2017/*.jpg", "annotations/instances_val2017.json"),
            "COCO 2017 val: 5000 photos (815,585,330 bytes) + train/val annotations (252,907,541 bytes)",
            "the checksums published with COCO 2017 and used across the field's download scripts",
        ),
    )
}


def data_dir() -> Path:
    """The configs' data folder (``paths.data_dir`` of conf/paths/default.yaml, resolved as a run would)."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    config = OmegaConf.create({"paths": OmegaConf.load(str(files("attnlab.conf") / "paths" / "default.yaml"))})
    return Path(config.paths.data_dir)


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _missing_layout(folder: Path, dataset: Dataset) -> list[str]:
    return [pattern for pattern in dataset.layout if next(folder.glob(pattern), None) is None]


def status(dataset: Dataset, root: Path) -> str:
    """One word and a reason: ``ok``, ``present`` (a copy attnlab did not fetch), ``incomplete`` or ``absent``."""
    folder = root / dataset.folder
    if not folder.is_dir():
        return "absent"
    missing = _missing_layout(folder, dataset)
    if missing:
        return f"incomplete (no {missing[0]})"
    if (folder / MARKER).is_file():
        return "ok (fetched, checksums verified)"
    return "present (layout ok; not fetched by attnlab-data, so not checksummed)"


# --- transfer -----------------------------------------------------------------------------------------


def _disk_full(ex: OSError) -> bool:
    return ex.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _check_space(where: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(where).free
    if needed > free:
        raise UserError(f"{what} needs {needed:,} bytes but {where} has {free:,} free: free some space or pick --root")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, timeout: float, progress: bool) -> None:
    """``url`` → ``target``, resuming ``target.part`` where a previous transfer stopped."""
    from tqdm import tqdm

    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as ex:
        if ex.code == 416 and have:  # the part is already whole
            part.replace(target)
            return
        raise UserError(f"{url}: the host answered {ex.code} {ex.reason}; if it moved, use --mirror URL") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as ex:
        reason = getattr(ex, "reason", None) or ex
        raise UserError(f"{url}: no answer ({reason}); run the same command again, or use --mirror URL") from None
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if total is not None:
            _check_space(target.parent, total - have, f"{target.name} ({total:,} bytes)")
        try:
            with (
                open(part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
        except (TimeoutError, socket.timeout):
            raise UserError(
                f"{url}: no data for {timeout:g} s; the part is kept, run the same command again to resume"
            ) from None
        except OSError as ex:
            if _disk_full(ex):
                raise UserError(
                    f"disk full while writing {part} ({ex.strerror}): free some space and run again to resume"
                ) from None
            if isinstance(ex, ConnectionError):
                raise UserError(f"{url}: connection lost ({ex}); run the same command again to resume") from None
            raise UserError(f"cannot write {part}: {ex.strerror or ex}") from None
        except http.client.HTTPException:  # IncompleteRead: the host closed before the announced length
            pass  # reported below with the byte counts
    got = part.stat().st_size
    if total is not None and got != total:
        raise UserError(
            f"{url}: transfer stopped at {got:,} of {total:,} bytes; the part is kept, run the same command again "
            "to resume"
        )
    part.replace(target)


def _fetch_file(download: Download, downloads: Path, mirror: str | None, timeout: float, progress: bool) -> Path:
    target = downloads / download.name
    if not target.exists():
        url = f"{mirror.rstrip('/')}/{download.name}" if mirror else download.url
        _download(url, target, timeout, progress)
    if download.md5 is not None:
        got = _md5(target)
        if got != download.md5:
            target.unlink()
            raise UserError(
                f"{download.name}: checksum {got} is not the published {download.md5}; the file was removed "
                f"(the host may serve another version: try --mirror URL)"
            )
    return target


# --- extraction ---------------------------------------------------------------------------------------


def _unpack(archive: Path, into: Path) -> None:
    """Unpack a zip archive into ``into``, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = z.infolist()
            top = into.resolve()
            for member in members:
                if not (top / member.filename).resolve().is_relative_to(top):
                    raise UserError(
                        f"{archive.name}: member {member.filename!r} would land outside the dataset; refused"
                    )
            _check_space(into, sum(m.file_size for m in members), f"unpacking {archive.name}")
            z.extractall(into)
    except zipfile.BadZipFile as ex:
        archive.unlink()
        raise UserError(f"{archive.name} is not a zip archive ({ex}); the file was removed, run again") from None


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as ex:
        path.unlink()
        raise UserError(f"{path.name} is not a readable image ({type(ex).__name__}); removed, run again") from None


def fetch(
    name: str,
    root: str | Path | None = None,
    mirror: str | None = None,
    timeout: float = 60.0,
    force: bool = False,
    progress: bool = True,
    dataset: Dataset | None = None,
) -> Path:
    """Fetch dataset ``name`` into ``<root>/<folder>`` and return that folder. ``dataset`` overrides the
    registry entry (tests serve small copies with their own checksums)."""
    dataset = dataset or _dataset(name)
    root = Path(root).expanduser() if root is not None else data_dir()
    target = root / dataset.folder
    if target.exists():
        if (target / MARKER).is_file() and not _missing_layout(target, dataset) and not force:
            print(f"{dataset.name}: already at {target} ({status(dataset, root)})", file=sys.stderr)
            return target
        if not force:
            raise UserError(f"{target} exists ({status(dataset, root)}): remove it, or pass --force to replace it")
    if mirror is None and any(d.url is None for d in dataset.downloads):
        raise UserError(dataset.manual or f"{dataset.name}: some files have no public URL; use --mirror URL")
    downloads = root / ".downloads" / dataset.folder
    try:
        downloads.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise UserError(f"cannot create {downloads}: {ex.strerror}") from None
    files = []
    many = len(dataset.downloads) > 20  # one bar over files, not one per file
    from tqdm import tqdm

    for download in tqdm(dataset.downloads, desc=dataset.name, unit="file", disable=not (progress and many)):
        files.append(_fetch_file(download, downloads, mirror, timeout, progress and not many))
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset.folder}.partial-", dir=root))
    try:
        for download, path in zip(dataset.downloads, files):
            if download.place is None:
                (staging / download.into).mkdir(parents=True, exist_ok=True)
                _unpack(path, staging / download.into)
                continue
            if download.md5 is None and path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                _check_image(path)
            place = staging / download.place
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, place)
        missing = _missing_layout(staging, dataset)
        if missing:
            raise UserError(f"{dataset.name}: the downloaded files hold no {missing[0]}; nothing was put in place")
        checked = {d.name: d.md5 for d in dataset.downloads if d.md5}
        record = {"dataset": dataset.name, "fetched": time.strftime("%Y-%m-%d %H:%M:%S"), "md5": checked}
        (staging / MARKER).write_text(json.dumps(record, indent=1))
        if target.exists():  # --force: the old copy goes only once the new one is whole
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as ex:
        if _disk_full(ex):
            raise UserError(
                f"disk full while unpacking {dataset.name} into {root}: free some space and run again"
            ) from None
        raise UserError(f"cannot unpack {dataset.name} into {root}: {ex}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)  # the archives are unpacked: their space is given back
    return target


# --- command line -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab-data", description=__doc__.split("\n\n")[0].strip("`: "))
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="what is present under the data folder, and whether it is whole")
    listing.add_argument("--root", help="the data folder (default: that of the configs)")
    get = commands.add_parser("fetch", help="download, check and unpack one dataset")
    get.add_argument("name", choices=list(DATASETS))
    get.add_argument("--root", help="the data folder (default: that of the configs: $ATTNLAB_ROOT/data, else ./data)")
    get.add_argument("--mirror", help="fetch every file from MIRROR/<file name> instead (http://, https://, file://)")
    get.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up (default 60)")
    get.add_argument("--force", action="store_true", help="replace an existing copy (once the new one is whole)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        root = Path(args.root).expanduser() if args.root else data_dir()
        if args.command == "list":
            print(f"data folder: {root}")
            for dataset in DATASETS.values():
                print(f"  {dataset.name:<9} {status(dataset, root):<48} {dataset.about}")
            return 0
        folder = fetch(args.name, root, mirror=args.mirror, timeout=args.timeout, force=args.force)
        print(f"{args.name}: {folder} ({status(_dataset(args.name), root)}); data={args.name} finds it")
        return 0
    except UserError as ex:
        print(f"attnlab-data: {ex}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnlab-data: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
