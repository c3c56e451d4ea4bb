"""Fault injection with real processes: a `dask scheduler` and `dask worker` subprocesses on
127.0.0.1, faults made with signals and with the staging store itself. Each test asserts one row
per image, values equal to single-process extraction, and a consistent ledger (``check_run``).

The kill -9 of a worker and the client killed then resumed live in ``test_production.py``.
Tail settings here are tight (backups after 0.3 s, timeouts after 3 s) so that every test stays
within a few tens of seconds; `bench/tail.py` runs the defaults.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from medfeat.production.ledger import Ledger
from medfeat.production.results import read_result
from medfeat.production.staging import build_bundle, sha256_bytes
from production_helpers import DaskProcesses, check_run, make_images, plan, plan_item, produce

pytestmark = pytest.mark.timeout(180)

TIGHT = dict(speculate_after=0.3, speculate_factor=3.0, timeout_min_s=5.0)


@pytest.fixture
def cluster(tmp_path):
    d = DaskProcesses(tmp_path, n_workers=3)
    pids = d.worker_pids()  # now, while every worker answers
    yield d
    for pid in pids:  # a stopped process must run again to die cleanly with its nanny
        _signal(pid, signal.SIGCONT)
    d.close()


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _worker_pid_by_address(d: DaskProcesses) -> dict[str, int]:
    from distributed import Client

    with Client(d.address, timeout="30s") as c:
        return c.run(os.getpid)


def _committed(run_dir: Path) -> int:
    if not (run_dir / "ledger.sqlite").exists():
        return 0
    led = Ledger(run_dir)
    try:
        return sum(1 for j in led.jobs() if j["state"] == "committed")
    finally:
        led.close()


def _when(run_dir: Path, n: int, action, timeout: float = 60) -> threading.Thread:
    """Run ``action()`` in a thread as soon as ``n`` jobs of the run are committed."""
    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline:
            if _committed(run_dir) >= n:
                action()
                return
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _production(tmp_path, cluster, n_images=48, per_job=2, size=96, **opts):
    paths = make_images(tmp_path / "data", n_images, size=size)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", per_job)
    return paths, run_dir, prod, lambda: produce(prod, scheduler=cluster.address, **{**TIGHT, **opts})


def _events(run_dir: Path) -> list[dict]:
    led = Ledger(run_dir)
    try:
        return led.events()
    finally:
        led.close()


def test_worker_frozen_for_the_rest_of_the_run(tmp_path, cluster):
    paths, run_dir, prod, go = _production(tmp_path, cluster)
    pids = _worker_pid_by_address(cluster)
    victim_addr, victim = sorted(pids.items())[0]
    t = _when(run_dir, 3, lambda: _signal(victim, signal.SIGSTOP))
    t0 = time.time()
    m = go()
    t.join()
    took = time.time() - t0
    check_run(run_dir, paths, compare=6)
    assert m["committed_jobs"] == len(paths) // 2
    led = Ledger(run_dir)
    try:
        stuck = [a for a in led.attempts() if a["worker"] == victim_addr and a["outcome"] in ("cancelled", "timeout")]
    finally:
        led.close()
    # the frozen worker held a job (the next one handed to it, at the latest); it was re-run
    # elsewhere and the run did not wait for the frozen worker
    assert stuck, "no attempt on the frozen worker was cancelled or moved"
    assert took < 60


def test_worker_frozen_right_after_finishing_a_job(tmp_path, cluster, monkeypatch):
    """The worker stops the moment its first job is done, with the job's result in its memory.
    The run must neither wait for that result (it came through the scheduler) nor for the jobs
    the frozen worker holds next (they time out and move)."""
    from medfeat.production.dask_executor import DaskExecutor

    paths, run_dir, prod, go = _production(tmp_path, cluster)
    pids = _worker_pid_by_address(cluster)
    frozen = threading.Event()
    on_finished = DaskExecutor._on_finished

    def freeze_then_handle(self, msg):  # the worker of the first finished attempt stops
        worker = msg["report"]["worker"]
        if worker in pids and not frozen.is_set():
            _signal(pids[worker], signal.SIGSTOP)
            frozen.set()
        return on_finished(self, msg)

    monkeypatch.setattr(DaskExecutor, "_on_finished", freeze_then_handle)
    t0 = time.time()
    m = go()
    took = time.time() - t0
    assert frozen.is_set(), "no attempt finished on a known worker"
    check_run(run_dir, paths, compare=6)
    assert m["committed_jobs"] == len(paths) // 2
    assert took < 60


def test_result_unreachable_without_its_report_is_run_again(tmp_path, cluster, monkeypatch):
    """The fallback when an attempt's report did not come through the scheduler: its result is
    fetched from the worker, within RESULT_FETCH_S. Here the reports are dropped and the worker
    freezes with its first result: the attempt is recorded lost and the job runs elsewhere."""
    from medfeat.production import dask_executor
    from medfeat.production.dask_executor import DaskExecutor

    paths, run_dir, prod, go = _production(tmp_path, cluster, n_images=16)
    pids = _worker_pid_by_address(cluster)
    frozen: list[str] = []
    on_done = DaskExecutor._on_done

    def freeze_then_handle(self, fut):  # the worker of the first finished attempt stops
        placed = {k: w for w, keys in self.client.processing().items() for k in keys}
        worker = next(iter(self.client.who_has([fut]).get(fut.key, ())), None) or placed.get(fut.key)
        if worker in pids and fut.status == "finished" and not frozen:
            _signal(pids[worker], signal.SIGSTOP)
            frozen.append(worker)
        return on_done(self, fut)

    monkeypatch.setattr(DaskExecutor, "_on_finished", lambda self, msg: None)  # reports lost
    monkeypatch.setattr(DaskExecutor, "_on_done", freeze_then_handle)
    monkeypatch.setattr(dask_executor, "RESULT_FETCH_S", 2.0)
    m = go()
    assert frozen, "no attempt finished on a known worker"
    check_run(run_dir, paths, compare=4)
    assert m["committed_jobs"] == len(paths) // 2
    led = Ledger(run_dir)
    try:
        lost = [a for a in led.attempts() if a["outcome"] == "lost"]
        moved = [e for e in led.events() if e["kind"] == "moved"]
    finally:
        led.close()
    assert len(lost) == 1 and lost[0]["worker"] == frozen[0] and "could not be fetched" in lost[0]["error"]
    assert moved and moved[0]["job_id"] == lost[0]["job_id"]


def test_worker_ten_times_slower(tmp_path, cluster):
    paths, run_dir, prod, go = _production(tmp_path, cluster, n_images=200)
    pids = _worker_pid_by_address(cluster)
    slow_addr, slow = sorted(pids.items())[0]
    stop = threading.Event()

    def duty_cycle():  # ~10% of the time running: about 10x slower
        while not stop.is_set():
            _signal(slow, signal.SIGSTOP)
            time.sleep(0.045)
            _signal(slow, signal.SIGCONT)
            time.sleep(0.005)

    t = threading.Thread(target=duty_cycle, daemon=True)
    t.start()
    try:
        m = go()
    finally:
        stop.set()
        t.join()
        _signal(slow, signal.SIGCONT)
    check_run(run_dir, paths, compare=6)
    assert m["committed_jobs"] == 100
    # the tail policy found the slow worker: through backups or timeouts of its attempts, or (on
    # a loaded machine, where every job is short next to the noise) from its slow completions
    assert slow_addr in m["slow_workers"]
    # once named slow, the worker got no new jobs
    led = Ledger(run_dir)
    try:
        # (on a loaded machine another worker may be named too, even first: only this one counts)
        named = min(e["at"] for e in led.events() if e["kind"] == "slow-worker"
                    and e["detail"].startswith(slow_addr + ":"))
        late = [a for a in led.attempts() if a["worker"] == slow_addr and a["submitted"] > named + 0.5]
    finally:
        led.close()
    if not set(pids) <= set(m["slow_workers"]):  # (every worker named slow: nowhere else to go)
        assert late == []


def test_staging_store_unwritable_for_a_while(tmp_path, cluster):
    # (results kept after the run, to check each one; by default they are folded into the table)
    paths, run_dir, prod, go = _production(tmp_path, cluster, n_images=40, keep_results=True)
    results = Path(prod.stage.root) / prod.run_id / "results"
    hidden = Path(prod.stage.root) / prod.run_id / "results.away"

    def break_store():  # results/ replaced by a plain file: every write there fails (also as root)
        results.rename(hidden)
        results.write_bytes(b"")
        time.sleep(2.0)
        results.unlink()
        hidden.rename(results)

    t = _when(run_dir, 2, break_store)
    m = go()
    t.join()
    check_run(run_dir, paths, compare=6)
    assert m["committed_jobs"] == 20 and m["failed_jobs"] == 0
    assert m["staging_retries"] > 0
    # no half-published result: every committed result is a whole Parquet file

    led = Ledger(run_dir)
    try:
        for j in led.jobs():
            assert read_result((Path(prod.stage.root) / j["result"]).read_bytes()).num_rows == 2
    finally:
        led.close()
    leftovers = [p for p in results.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_corrupted_bundle_is_restaged(tmp_path, cluster):
    paths, run_dir, prod, go = _production(tmp_path, cluster, n_images=12)
    good, _ = build_bundle([plan_item(r) for r in prod.ledger.job_images(2)])
    bad = bytearray(good)
    bad[-2000] ^= 0x5A  # a flipped byte inside the last image
    prod.stage.put("bundles/job-00002.tar", bytes(bad))
    prod.ledger.set_bundle(2, "bundles/job-00002.tar", sha256_bytes(good), len(good))
    m = go()
    check_run(run_dir, paths, compare=6)
    assert (m["committed_jobs"], m["failed_jobs"]) == (6, 0)
    assert [e["kind"] for e in _events(run_dir) if e["job_id"] == 2] == ["restage"]
