"""The leaderboard: bootstrap intervals and paired tests against a NumPy/SciPy reference, display names
(labels, shortened paths, duplicates, Hydra quoting), and the command end to end on the OSIE subset."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import ONE_THREAD, shared_path
from scipy import stats

from attnlab.utils.config import UserError


def osie_root() -> str:
    return os.environ.get("ATTNLAB_OSIE_ROOT") or str(shared_path("data", "osie_subset"))


def reference_entry(a: np.ndarray, b: np.ndarray, samples: int, seed: int, level: float) -> dict:
    """The documented resampling written out: the same image indices for the mean and the difference."""
    keep = np.isfinite(a) & np.isfinite(b)
    d = (a - b)[keep]
    idx = np.random.default_rng(seed).integers(0, len(d), size=(samples, len(d)))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(d[idx].mean(axis=1), [tail, 100 - tail])
    va = a[np.isfinite(a)]
    ia = np.random.default_rng(seed).integers(0, len(va), size=(samples, len(va)))
    mlow, mhigh = np.percentile(va[ia].mean(axis=1), [tail, 100 - tail])
    return dict(
        mean=va.mean(), low=mlow, high=mhigh, difference=d.mean(), difference_low=low, difference_high=high,
        p_value=stats.wilcoxon(d).pvalue,
    )  # fmt: skip


def check_against_reference(table, per_image, source, reference, metric, samples, seed, level=0.95):
    a = np.array([r.get(metric, np.nan) for r in per_image[source]], dtype=float)
    b = np.array([r.get(metric, np.nan) for r in per_image[reference]], dtype=float)
    want = reference_entry(a, b, samples, seed, level)
    got = table[source][metric]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), (source, metric, key)


def test_table_matches_numpy_scipy_and_marks_by_direction():
    from attnlab.benchmark.leaderboard import leaderboard_table, mean_cell

    rng = np.random.default_rng(7)
    n = 23
    ids = [f"im{k}" for k in range(n)]
    cb_nss, cb_kld = rng.normal(1.0, 0.3, n), rng.normal(1.5, 0.2, n)
    per_image = {
        "CB": [dict(stimulus=s, NSS=x, KLD=y) for s, x, y in zip(ids, cb_nss, cb_kld)],
        # 0.2 more NSS and 0.2 more KLD on every image (+ noise): better on NSS, worse on KLD (lower is better)
        "up": [
            dict(stimulus=s, NSS=x + 0.2 + e, KLD=y + 0.2 + e)
            for s, x, y, e in zip(ids, cb_nss, cb_kld, rng.normal(0, 0.02, n))
        ],
        # noise only, and one image where NSS does not apply
        "noise": [dict(stimulus=s, NSS=x + e, KLD=y) for s, x, y, e in zip(ids, cb_nss, cb_kld, rng.normal(0, 1, n))],
        "maps_only": [dict(stimulus=s, NSS=x) for s, x in zip(ids, rng.normal(1.0, 0.3, n))],
    }
    per_image["noise"][3]["NSS"] = float("nan")
    table = leaderboard_table(per_image, ["NSS", "KLD"], "CB", samples=400, level=0.95, seed=5)
    for source in ("up", "noise"):
        for metric in ("NSS", "KLD"):
            if (source, metric) != ("noise", "KLD"):  # identical values: no Wilcoxon statistic
                check_against_reference(table, per_image, source, "CB", metric, 400, 5)
    assert table["noise"]["NSS"]["n"] == n - 1
    assert table["up"]["NSS"]["verdict"] == "better" and table["up"]["KLD"]["verdict"] == "worse"
    assert table["noise"]["NSS"]["verdict"] is None  # its interval straddles 0
    assert table["noise"]["KLD"]["difference"] == 0 and math.isnan(table["noise"]["KLD"]["p_value"])
    assert "verdict" not in table["CB"]["NSS"]  # the reference is not compared with itself
    missing = table["maps_only"]["KLD"]
    assert math.isnan(missing["mean"]) and missing["n"] == 0 and missing["verdict"] is None
    assert mean_cell(missing) == "—" and mean_cell(table["up"]["NSS"]).endswith("▲")
    assert mean_cell(table["up"]["KLD"]).endswith("▼")


def test_labels_and_short_names():
    from attnlab.benchmark.sources import display_name, split_label

    assert split_label("CB=centre_bias") == ("CB", "centre_bias")
    assert split_label(" DINet = saliency:/runs/a/dinet.ckpt") == ("DINet", "saliency:/runs/a/dinet.ckpt")
    assert split_label("saliency:/runs/lr=0.1/x.ckpt") == (None, "saliency:/runs/lr=0.1/x.ckpt")  # '=' of a path
    assert split_label("/data/maps=v2") == (None, "/data/maps=v2")
    assert display_name("saliency:/long/path/to/dinet_osie.ckpt") == "saliency:dinet_osie"
    assert display_name("saliency:dinet_osie.ckpt") == "saliency:dinet_osie"
    assert display_name("wta:saliency:/a/b/model.ckpt") == "wta:saliency:model"
    assert display_name("cam:gradcam+prior") == "cam:gradcam+prior"
    assert display_name("DINet=saliency:/long/path/to.ckpt") == "DINet"
    for bad, says in [
        ("=centre_bias", "the label is empty"),
        ("CB=", "the source is empty"),
        ("a|b=centre_bias", "contains '|'"),
    ]:
        with pytest.raises(UserError, match=re.escape(says)) as info:
            split_label(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "shell",
    [
        """attention=[CB=centre_bias,"DINet=saliency:/long/path/to.ckpt"]""",
        "attention=CB=centre_bias,DINet=saliency:/long/path/to.ckpt",
        """'attention=[CB=centre_bias,"DINet=saliency:/long/path/to.ckpt"]'""",
        """attention="['CB=centre_bias','DINet=saliency:/long/path/to.ckpt']\"""",
    ],
)
def test_hydra_accepts_labels_as_the_shell_passes_them(shell):
    from attnlab.benchmark.__main__ import quote_attention
    from attnlab.benchmark.run import source_list
    from attnlab.utils.compose import compose_config

    cfg = compose_config("leaderboard", quote_attention(["data=osie", *shlex.split(shell)]))
    assert source_list(cfg.attention) == ["CB=centre_bias", "DINet=saliency:/long/path/to.ckpt"]
    one = compose_config("leaderboard", quote_attention(["attention=CB=centre_bias"]))
    assert source_list(one.attention) == ["CB=centre_bias"]


def compose(tmp_path, *overrides):
    """The leaderboard config as the command line builds it (attention= quoted for Hydra)."""
    from attnlab.benchmark.__main__ import quote_attention
    from attnlab.utils.compose import compose_config

    common = ["data=osie", f"data.root={osie_root()}", "progress=false", f"paths.output_dir={tmp_path}"]
    return compose_config("leaderboard", quote_attention([*common, *overrides]))


def test_duplicate_names_and_a_missing_centre_bias(tmp_path, one_torch_thread):
    from attnlab.benchmark.leaderboard import run_leaderboard

    with pytest.raises(UserError, match="both named 'A'") as info:
        run_leaderboard(compose(tmp_path, "attention=[A=centre_bias,A=uniform]", "max_images=1"))
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="both named 'uniform'"):
        run_leaderboard(compose(tmp_path, "attention=[uniform,uniform]", "max_images=1"))
    result = run_leaderboard(
        compose(tmp_path, "attention=[U=uniform]", "max_images=2", "figure_images=0", "bootstrap.samples=50")
    )
    assert result["sources"] == ["centre_bias", "U"] and result["reference"] == "centre_bias"
    assert result["table"]["U"]["NSS"]["verdict"] in ("worse", None)
    assert {p.name for p in tmp_path.iterdir()} >= {"leaderboard.md", "leaderboard.html"}
    # both rows are densities: the legend says they are scored on metric-specific maps
    assert result["probabilistic"] == ["centre_bias", "U"]
    assert "Probabilistic sources (centre_bias, U)" in (tmp_path / "leaderboard.md").read_text()


def model_sources(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of maps (rough, 30×40) and a scanpath file for every image of the subset."""
    from attnlab.data.fixations import Scanpath
    from attnlab.data.folder import write_scanpaths
    from attnlab.data.osie import load_osie

    data = load_osie(osie_root())
    rng = np.random.default_rng(0)
    folder = tmp_path / "rough_maps"
    folder.mkdir()
    paths = []
    for s in data.stimuli:
        np.save(folder / f"{s.id}.npy", rng.random((30, 40)))
        for k in range(2):
            n = int(rng.integers(3, 9))
            paths.append(
                Scanpath(rng.uniform(0, s.width, n), rng.uniform(0, s.height, n), subject=f"m{k}", stimulus=s.id)
            )
    write_scanpaths(tmp_path / "random_walk.json", paths)
    return folder, tmp_path / "random_walk.json"


def test_command_writes_the_five_files_with_labels(run_cli, tmp_path):
    maps, scanpaths = model_sources(tmp_path)
    result = run_cli(
        "attnlab.leaderboard",
        "data=osie",
        f"data.root={osie_root()}",
        f"attention=CB=centre_bias,uniform,IO=inter_observer,Maps={maps},{scanpaths}",
        "max_images=5",
        "figure_images=2",
        "bootstrap.samples=300",
        "seed=2",
        env=ONE_THREAD,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("attnlab leaderboard: writing to ")
    assert lines[-2].startswith("leaderboard: 5 sources on 5 test images of osie")
    assert lines[-1].startswith("attnlab leaderboard: done in ")
    out = Path(lines[0].split("writing to ", 1)[1])
    names = ["CB", "uniform", "IO", "Maps", "random_walk"]
    files = {p.name for p in out.iterdir()}
    assert files >= {f"leaderboard.{x}" for x in ("md", "csv", "json", "png", "html")}
    assert "benchmark.md" not in files  # one set of reports: the leaderboard's

    md = (out / "leaderboard.md").read_text()
    assert "| metric | CB | uniform | IO | Maps | random_walk |" in md and "| metric | uniform | IO | Maps |" in md
    sed = next(line for line in md.splitlines() if line.startswith("| SED |"))
    assert sed.split("|")[5].strip() == "—" and "nan" not in md.lower()  # a map has no scanpath metrics
    assert re.search(r"\| NSS \| [\d.]+ \[[\d.]+, [\d.]+\] \| 0\.000 \[0\.000, 0\.000\] ▼ \| [\d.]+ \[.*\] ▲ \|", md)

    doc = json.loads((out / "leaderboard.json").read_text())
    assert doc["sources"] == names and doc["reference"] == "CB" and doc["images"] == 5 and doc["samples"] == 300
    assert doc["table"]["Maps"]["SED"]["mean"] is None
    per_image = {k: [{m: (math.nan if v is None else v) for m, v in r.items()} for r in rows]
                 for k, rows in doc["per_image"].items()}  # fmt: skip
    for source, metric in [("uniform", "KLD"), ("IO", "NSS"), ("Maps", "CC"), ("random_walk", "ScanMatch")]:
        check_against_reference(doc["table"], per_image, source, "CB", metric, 300, 2)

    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [r["source"] for r in rows[:: len(doc["metrics"])]] == names
    maps_sed = next(r for r in rows if r["source"] == "Maps" and r["metric"] == "SED")
    assert maps_sed["mean"] == "" and maps_sed["verdict"] == ""
    kld = next(r for r in rows if r["source"] == "uniform" and r["metric"] == "KLD")
    assert kld["lower_is_better"] == "True" and kld["verdict"] == "worse"

    page = (out / "leaderboard.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    # a Content-Security-Policy in the head: nothing but inline style and data: images may load
    (policy,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert "default-src 'none'" in policy and "img-src data:" in policy and "script-src" not in policy
    assert page.index("Content-Security-Policy") < page.index("<style>")
    sources = re.findall(r"""src=["']([^"']*)""", page)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert "<th>Maps</th>" in page and "<td>—</td>" in page
    from PIL import Image

    with Image.open(out / "leaderboard.png") as im:
        assert im.size[0] > im.size[1] > 0


def test_bad_label_is_one_line_on_the_command_line(run_cli):
    result = run_cli("attnlab.leaderboard", "data=osie", f"data.root={osie_root()}", "attention=CB=", env=ONE_THREAD)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "attnlab: error: attention entry 'CB=': the source is empty; write label=source, e.g. CB=centre_bias"
    ]
