"""Productions with real parts: Dask LocalCluster, a real `dask scheduler` with `dask worker`
subprocesses on 127.0.0.1, SIGKILLed workers, a killed `medfeat run` that is then resumed.

Every test asserts: one row per image, no duplicates, feature values equal to single-process
`medfeat.extract`, and a consistent ledger.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import medfeat
from medfeat.io.netpbm import write_netpbm
from medfeat.production.ledger import Ledger
from medfeat.production.staging import build_bundle, sha256_bytes
from production_helpers import FAMILIES, SETTINGS, DaskProcesses, check_run, make_images, plan, plan_item, produce

def test_local_cluster_run_and_report(tmp_path):
    paths = make_images(tmp_path / "data", 14, bad=(5,))
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 4)
    m = produce(prod, workers=2)
    check_run(run_dir, paths, bad=(5,))
    assert (m["jobs"], m["images"], m["failed_images"], m["attempts"], m["workers"]) == (4, 14, 1, 4, 2)
    assert 0 < m["summed_running_time_s"] and 0 < m["user_waiting_time_s"]
    assert 0 < m["parallel_efficiency"] <= 1.0
    assert 30 < m["client_peak_rss_mb"] < 4096  # this process ran the client: a Python process with numpy
    errors = (run_dir / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and "img-0005.pgm" in errors[1]
    # the CLI report prints the same metrics as JSON
    r = subprocess.run([sys.executable, "-m", "medfeat", "report", str(run_dir), "--json"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    for key in ("submission_time_per_job_s", "summed_running_time_s", "user_waiting_time_s", "staging_in_s",
                "staging_out_s", "jobs", "attempts", "images", "failed_images", "images_per_s",
                "parallel_efficiency", "workers"):
        assert key in js
    assert js["images"] == 14 and js["failed_images"] == 1
    # re-running on a finished run does nothing more and changes nothing
    again = produce(plan(run_dir, tmp_path / "data", 4), workers=1)
    assert again["attempts"] == 4
    # ...but a changed dataset or changed settings are refused
    make_images(tmp_path / "data", 15)
    with pytest.raises(medfeat.InputError, match="dataset .* changed"):
        plan(run_dir, tmp_path / "data", 4)
    with pytest.raises(medfeat.InputError, match="settings or families differ"):
        plan(run_dir, None, 4, settings="default-3d")


@pytest.fixture
def dask_processes(tmp_path):
    d = DaskProcesses(tmp_path)
    yield d
    d.close()


def test_real_scheduler_and_worker_processes(tmp_path, dask_processes):
    paths = make_images(tmp_path / "data", 10)
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir),
                        "--images-per-job", "3", "--scheduler", dask_processes.address, "--settings", SETTINGS,
                        "--families", ",".join(FAMILIES), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "user real waiting time" in r.stdout
    check_run(run_dir, paths)
    led = Ledger(run_dir)
    hosts = {(a["worker"], a["pid"]) for a in led.attempts() if a["started"]}  # (not a backup cancelled unstarted)
    led.close()
    assert hosts and all(w.startswith("tcp://127.0.0.1:") for w, _ in hosts)


def test_worker_killed_mid_run(tmp_path, dask_processes):
    paths = make_images(tmp_path / "data", 24, size=96)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir),
                             "--images-per-job", "2", "--scheduler", dask_processes.address, "--settings", SETTINGS,
                             "--families", ",".join(FAMILIES), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    victim = dask_processes.worker_pids()[0]
    _wait_for_commits(run_dir, 2, proc)
    os.kill(victim, signal.SIGKILL)  # the worker process (its nanny restarts it)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    check_run(run_dir, paths, compare=6)


def _wait_for_commits(run_dir: Path, n: int, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before the fault could be injected"
        if (run_dir / "ledger.sqlite").exists():
            led = Ledger(run_dir)
            try:
                done = sum(1 for j in led.jobs() if j["state"] == "committed")
            finally:
                led.close()
            if done >= n:
                return
        time.sleep(0.05)
    raise AssertionError("no progress before the timeout")


def test_client_killed_then_resumed(tmp_path):
    paths = make_images(tmp_path / "data", 30, size=96, bad=(7,))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir), "--images-per-job", "2",
           "--workers", "2", "--settings", SETTINGS, "--families", ",".join(FAMILIES), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for_commits(run_dir, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its embedded cluster die at once
    proc.wait(timeout=30)
    led = Ledger(run_dir)
    committed_before = sum(1 for j in led.jobs() if j["state"] == "committed")
    led.close()
    assert 3 <= committed_before < 15
    r = subprocess.run([sys.executable, "-m", "medfeat", "resume", str(run_dir), "--workers", "2", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    # exit 2: one image of the run failed (named on stderr with the count)
    assert r.returncode == 2 and "1 of 30 images failed" in r.stderr, r.stdout + r.stderr
    rows = check_run(run_dir, paths, bad=(7,), compare=6)
    assert len(rows) == 30
    led = Ledger(run_dir)
    try:
        assert len(led.sessions()) == 2
        # jobs committed before the crash were not run again
        assert all(len([a for a in led.attempts(j["job_id"]) if a["outcome"] == "committed"]) == 1 for j in led.jobs())
    finally:
        led.close()


def test_failing_job_is_retried_then_failed_and_the_run_completes(tmp_path):
    paths = make_images(tmp_path / "data", 9)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 3)
    # job 1's staged bundle matches its recorded hash but is no tar: every attempt raises
    junk = b"not a tar at all"
    prod.stage.put("bundles/job-00001.tar", junk)
    prod.ledger.set_bundle(1, "bundles/job-00001.tar", sha256_bytes(junk), len(junk))
    m = produce(prod, workers=2, max_attempts=2, bundles="copy")  # the junk is a copied bundle
    assert (m["jobs"], m["committed_jobs"], m["failed_jobs"], m["attempts"]) == (3, 2, 1, 4)
    assert m["failed_images"] == 3
    rows = {r["image"]: r for r in pq.read_table(run_dir / "features.parquet").to_pylist()}
    assert sorted(rows) == sorted(str(p) for p in paths)
    for p in paths[3:6]:
        assert "job failed" in rows[str(p)]["error"] and "not a valid tar" in rows[str(p)]["error"]
    led = Ledger(run_dir)
    try:
        assert led.check_consistency() == []
        job = led.job(1)
        assert job["state"] == "failed" and "2 attempt(s)" in job["error"]
        assert [a["outcome"] for a in led.attempts(1)] == ["error", "error"]
        assert [a["role"] for a in led.attempts(1)] == ["first", "retry"]
    finally:
        led.close()


def test_corrupt_bundle_is_restaged_from_the_dataset(tmp_path):
    paths = make_images(tmp_path / "data", 6)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 3)
    # job 1's bundle was damaged in the store after it was staged: its bytes miss the recorded hash
    good, _ = build_bundle([plan_item(r) for r in prod.ledger.job_images(1)])
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    prod.stage.put("bundles/job-00001.tar", bytes(bad))
    prod.ledger.set_bundle(1, "bundles/job-00001.tar", sha256_bytes(good), len(good))
    m = produce(prod, workers=2, bundles="copy")
    assert (m["committed_jobs"], m["failed_jobs"], m["failed_images"]) == (2, 0, 0)
    check_run(run_dir, paths, compare=6)
    led = Ledger(run_dir)
    try:
        assert led.check_consistency() == []
        assert [a["outcome"] for a in led.attempts(1)] == ["error", "committed"]
        assert "does not match" in led.attempts(1)[0]["error"]
        assert [e["kind"] for e in led.events() if e["job_id"] == 1] == ["restage"]
    finally:
        led.close()


def test_csv_dataset_with_masks_and_a_stage_url(tmp_path):
    paths = make_images(tmp_path / "data", 4)
    masks = []
    for i, p in enumerate(paths):
        shape = medfeat.read_image(p).shape[1:]
        m = np.zeros(shape, dtype=np.uint8)
        m[: 10 + 5 * i] = 1
        mp = tmp_path / "masks" / f"m{i}.pgm"
        mp.parent.mkdir(exist_ok=True)
        write_netpbm(mp, m)
        masks.append(mp)
    lst = tmp_path / "list.csv"
    lst.write_text("image,mask\n" + "".join(f"{p},{m}\n" for p, m in zip(paths, masks)))
    run_dir = tmp_path / "run"
    stage = "file://" + str(tmp_path / "elsewhere")
    prod = plan(run_dir, lst, 3, stage=stage)
    produce(prod, workers=1)
    # the run has its own folder in the store; bundles are deleted once their results are committed,
    # the results once features.parquet holds them all
    assert prod.run_id and (tmp_path / "elsewhere" / prod.run_id / "results").is_dir()
    assert [p for p in (tmp_path / "elsewhere" / prod.run_id).rglob("*") if p.is_file()] == []
    rows = {r["image"]: r for r in pq.read_table(run_dir / "features.parquet").to_pylist()}
    for p, m in zip(paths, masks):
        expected = medfeat.extract(p, m, SETTINGS, families=FAMILIES)
        assert rows[str(p)]["stat_mean"] == pytest.approx(expected["stat_mean"])
        assert rows[str(p)]["cm_contrast_2d_avg"] == pytest.approx(expected["cm_contrast_2d_avg"])


def test_resume_reruns_failed_jobs_and_jobs_whose_result_is_gone(tmp_path):
    paths = make_images(tmp_path / "data", 6)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 2)
    junk = b"not a tar at all"  # job 1 fails: as if its bundle had been staged on a full disk
    prod.stage.put("bundles/job-00001.tar", junk)
    prod.ledger.set_bundle(1, "bundles/job-00001.tar", sha256_bytes(junk), len(junk))
    m = produce(prod, workers=1, max_attempts=1, bundles="copy")  # the junk is a copied bundle
    assert (m["committed_jobs"], m["failed_jobs"]) == (2, 1)
    # the passing cause is gone (the bad bundle), and job 2's committed result is lost from the stage
    prod.stage.delete("bundles/job-00001.tar")
    lost = prod.ledger.job(2)["result"]
    prod.stage.delete(lost)
    m = produce(plan(run_dir, None, 2), workers=1)
    assert (m["committed_jobs"], m["failed_jobs"], m["failed_images"]) == (3, 0, 0)
    check_run(run_dir, paths, compare=6)
    led = Ledger(run_dir)
    try:
        assert [e["kind"] for e in led.events() if e["job_id"] == 2] == ["result-lost"]
        assert [a["outcome"] for a in led.attempts(2)] == ["lost", "committed"]
    finally:
        led.close()
