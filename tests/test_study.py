"""``medfeat study`` and ``medfeat compare``: real runs at 1 and 2 workers on a small dataset, the
study table (one row per run, speedup and efficiency from the runs' own waiting times), resuming a
study without re-running finished points, the Amdahl fit on hand-computed cases, and the seed's
table for any set of runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from medfeat.report.metrics import run_metrics
from medfeat.report.studies import amdahl_fit, phase_seconds
from production_helpers import FAMILIES, SETTINGS, make_images

pytestmark = pytest.mark.timeout(400)


def _cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "250"})


def test_amdahl_fit_on_exact_laws():
    # T(W) = 10 + 20 / W: serial part 10 s of a 30 s one-worker run
    fit = amdahl_fit([1, 2, 4, 8], [10 + 20 / w for w in (1, 2, 4, 8)])
    assert fit["a"] == pytest.approx(10) and fit["b"] == pytest.approx(20)
    assert fit["serial_fraction"] == pytest.approx(1 / 3) and fit["t1"] == pytest.approx(30) and fit["rms_s"] < 1e-9
    # perfectly parallel: no serial part; repeats at one count are averaged by least squares
    fit = amdahl_fit([1, 1, 2, 2], [9.0, 11.0, 5.0, 5.0])
    assert fit["serial_fraction"] == pytest.approx(0.0, abs=1e-12) and fit["t1"] == pytest.approx(10.0)
    assert amdahl_fit([2, 2], [3.0, 4.0]) is None  # one worker count: nothing to fit


def test_phase_seconds_split_the_wait():
    m = {"workers": 2, "queue_wait_s": 0.5, "attempts": 4, "staging_in_s": 2.0, "staging_out_s": 1.0,
         "summed_running_time_s": 13.0, "planning_s": 1.5, "user_waiting_time_s": 12.0}
    p = phase_seconds(m)
    assert p == pytest.approx({"planning_s": 1.5, "queue": 1.0, "staging_in_s": 1.0, "compute": 5.0,
                               "staging_out_s": 0.5, "other": 3.0})


def test_study_over_one_and_two_workers_then_resumed(tmp_path):
    make_images(tmp_path / "data", 8, size=48)
    study = tmp_path / "study"
    args = ("study", tmp_path / "data", "-o", study, "--workers", "1,2", "--images-per-job", "2",
            "--settings", SETTINGS, "--families", ",".join(FAMILIES))
    r = _cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "w1-ipj2-r1: ran in" in r.stdout and "w2-ipj2-r1: ran in" in r.stdout
    rows = pq.read_table(study / "study.parquet").to_pylist()
    assert [(x["run"], x["workers_requested"], x["images_per_job"]) for x in rows] == [
        ("w1-ipj2-r1", 1, 2), ("w2-ipj2-r1", 2, 2)]
    for row in rows:  # every key of `medfeat report --json`, equal to the run's own
        m = run_metrics(study / "runs" / row["run"])
        assert row["user_waiting_time_s"] == m["user_waiting_time_s"] and row["jobs"] == m["jobs"] == 4
        assert row["workers"] == row["workers_requested"] and row["failed_images"] == 0
    one, two = rows
    assert one["speedup"] == 1.0 and one["efficiency"] == 1.0
    assert two["speedup"] == pytest.approx(one["user_waiting_time_s"] / two["user_waiting_time_s"])
    assert two["efficiency"] == pytest.approx(two["speedup"] / 2)
    page = (study / "study.html").read_text()
    data = json.loads(page[page.index("id='medfeat-data'>") + len("id='medfeat-data'>"):page.rindex("</script>")])
    assert [x["run"] for x in data["rows"]] == ["w1-ipj2-r1", "w2-ipj2-r1"]
    assert "user real waiting time" in page and "<svg" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page), "nothing is fetched by the page"
    # again, with a repeat: the finished points are not run again, the new ones are
    mtime = (study / "runs" / "w1-ipj2-r1" / "ledger.sqlite").stat().st_mtime
    r = _cli(*args, "--repeat", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "w1-ipj2-r1: already complete" in r.stdout and "w2-ipj2-r2: ran in" in r.stdout
    assert (study / "runs" / "w1-ipj2-r1" / "ledger.sqlite").stat().st_mtime == mtime
    rows = pq.read_table(study / "study.parquet").to_pylist()
    assert len(rows) == 4
    base = sum(x["user_waiting_time_s"] for x in rows if x["workers_requested"] == 1) / 2
    for x in rows:
        assert x["speedup"] == pytest.approx(base / x["user_waiting_time_s"])
    # a study folder is for one study: another dataset is refused in one line
    r = _cli("study", tmp_path, "-o", study, "--workers", "1")
    assert r.returncode == 2 and "holds a study of something else" in r.stderr and "Traceback" not in r.stderr

    # compare: the seed's table for any runs
    runs = [study / "runs" / "w1-ipj2-r1", study / "runs" / "w2-ipj2-r1"]
    r = _cli("compare", *runs, "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert [g["user_waiting_time_s"] for g in got] == [run_metrics(d)["user_waiting_time_s"] for d in runs]
    r = _cli("compare", *runs, "--html", tmp_path / "cmp.html")
    assert r.returncode == 0, r.stderr
    assert "average submission time per job" in r.stdout and "summed running time" in r.stdout
    assert "user real waiting time" in (tmp_path / "cmp.html").read_text()
    r = _cli("compare", tmp_path / "data")
    assert r.returncode == 2 and "not a run folder" in r.stderr
