"""`medfeat extract` as a user runs it: a real process, real files, real output tables."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import medfeat
from medfeat.io.netpbm import write_netpbm


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        p = tmp_path / f"img{i}.pgm"
        write_netpbm(p, rng.integers(0, 256, size=(32, 32), dtype=np.uint8))
        paths.append(p)
    rgb = tmp_path / "colour.ppm"
    write_netpbm(rgb, rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8))
    paths.append(rgb)
    return paths


def test_wide_parquet_matches_the_api(images, tmp_path):
    out = tmp_path / "f.parquet"
    r = run("extract", *images, "--settings", "default-2d", "-o", out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out).to_pylist()
    assert [row["image"] for row in t] == [str(p) for p in images]
    for row, path in zip(t, images):
        assert row["error"] == ""
        img = medfeat.read_image(path)
        assert row["sha256"] == img.sha256
        expected = medfeat.extract(img, None, "default-2d")
        for k, v in expected.items():
            assert row[k] == pytest.approx(v, nan_ok=True), k


def test_long_layout_uses_ibsi_words(images, tmp_path):
    out = tmp_path / "f.csv"
    r = run("extract", images[0], "--settings", "default-2d", "--families", "stat,glcm", "--layout", "long", "-o", out)
    assert r.returncode == 0, r.stderr
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(out).to_pylist()
    assert list(t[0])[:7] == ["image", "image_type", "family", "feature", "ibsi_code", "aggregation", "value"]
    assert {row["image_type"] for row in t} == {"original"}
    aggs = {row["aggregation"] for row in t if row["family"] == "glcm"}
    assert aggs == {"2D, averaged", "2D, slice-merged", "2.5D, direction-merged", "2.5D, merged"}
    stat = [row for row in t if row["family"] == "stat"]
    assert len(stat) == 18 and all(row["aggregation"] in ("", None) for row in stat)
    mean = next(row for row in t if row["feature"] == "stat.mean")
    assert mean["ibsi_code"] == "Q4LE"
    assert mean["value"] == pytest.approx(medfeat.extract(images[0], None, "default-2d", families=["stat"])["stat_mean"])
    jm = [row for row in t if row["feature"] == "cm.joint.max"]
    assert len(jm) == 4 and all(row["ibsi_code"] == "GYBY" for row in jm)


def test_one_bad_file_gets_an_error_row_and_exit_2(images, tmp_path):
    bad = tmp_path / "broken.ppm"
    bad.write_bytes(b"P6\n60000 60000\n255\n" + b"\0" * 100)
    out = tmp_path / "f.json"
    r = run("extract", images[0], bad, images[1], "--families", "stat", "-o", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.ppm" in lines[0] and lines[0].startswith("medfeat: error: ")
    rows = json.loads(out.read_text())
    assert [bool(row["error"]) for row in rows] == [False, True, False]
    assert rows[1]["stat_mean"] is None and rows[0]["stat_mean"] is not None


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"GIF89a" + b"\0" * 40, "unrecognised"),
    (b"P5\n4 4\n255\n" + b"\0" * 5, "truncated"),
])
def test_bad_single_file_one_line_and_exit_2(tmp_path, content, reason):
    p = tmp_path / "x.pgm"
    p.write_bytes(content)
    r = run("extract", p)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "x.pgm" in r.stderr and reason in r.stderr.lower()


def test_mask_errors_and_settings_errors(images, tmp_path):
    small = tmp_path / "mask.pgm"
    write_netpbm(small, np.ones((16, 16), dtype=np.uint8))
    r = run("extract", images[0], "--mask", small, "--families", "stat")
    assert r.returncode == 2 and "mask.pgm" in r.stderr and "does not match" in r.stderr
    empty = tmp_path / "empty.pgm"
    write_netpbm(empty, np.zeros((32, 32), dtype=np.uint8))
    r = run("extract", images[0], "--mask", empty)
    assert r.returncode == 2 and "mask is empty" in r.stderr
    bad_settings = tmp_path / "quintic.toml"
    bad_settings.write_text('preset = "ibsi-c"\ninterpolation = "quintic"\n')
    r = run("extract", images[0], "--settings", bad_settings)
    assert r.returncode == 2 and "interpolation" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("extract", images[0], "--families", "glcm,bogus")
    assert r.returncode == 2 and "bogus" in r.stderr


def test_mask_label_through_the_cli(images, tmp_path):
    lab = np.zeros((32, 32), dtype=np.uint8)
    lab[:16] = 1
    lab[16:] = 2
    mp = tmp_path / "labels.pgm"
    write_netpbm(mp, lab)
    out = tmp_path / "f.json"
    r = run("extract", images[0], "--mask", mp, "--label", "2", "--families", "stat", "-o", out)
    assert r.returncode == 0, r.stderr
    arr = medfeat.read_image(images[0]).array[0]
    assert json.loads(out.read_text())[0]["stat_mean"] == pytest.approx(arr[16:].mean())


def test_families_lists_every_ibsi_feature_with_its_code():
    """`medfeat families` names every feature of IBSI's reference table with the table's IBSI code."""
    import csv
    import os

    from conftest import require_shared

    table = require_shared("data", "ibsi", "reference_values.csv")
    with open(table, newline="") as fh:
        wanted = {(r["tag"].replace("ntg.", "ngt."), r["ibsi_code"]) for r in csv.DictReader(fh)}
    r = subprocess.run([sys.executable, "-m", "medfeat", "families"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    listed = set()
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 3:
            listed.add((cells[1], cells[2]))
    assert len(wanted) == 169  # the table's distinct feature tags
    assert wanted <= listed, sorted(wanted - listed)[:10]


@pytest.mark.parametrize("flags", [[], ["--json"], ["--html"]])
def test_report_of_a_ledger_that_is_not_a_database_is_one_line(tmp_path, flags):
    """A run folder whose ledger.sqlite was overwritten: `medfeat report` printed sqlite3's traceback
    (found by fuzzing the CLI); one line naming the ledger now, as `medfeat resume` already did."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "ledger.sqlite").write_bytes(bytes(range(256)) * 20)
    r = run("report", run_dir, *flags)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"medfeat: error: {run_dir / 'ledger.sqlite'}: cannot use the run's "
                                             "ledger: file is not a database"]
