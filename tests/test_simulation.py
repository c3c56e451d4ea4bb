"""`medfeat simulate`: the discrete-event simulation on cases whose answer can be worked out by hand
(exact makespans, the bounds the tail policy implies, failures, determinism), then one real check:
a 1-worker run predicts the real 2-worker run on the same data.

Every assertion but the last test's is on simulated time, so none depends on how loaded the machine is.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from medfeat.errors import InputError
from medfeat.production.options import TailPolicy
from medfeat.report.metrics import run_metrics
from medfeat.report.simulation import (NO_TAIL_POLICY, TICK_S, Measured, measure, predict, queue_wait_sampler,
                                       simulate)
from production_helpers import FAMILIES, SETTINGS, make_images

NONE = TailPolicy(**NO_TAIL_POLICY)


@pytest.mark.parametrize("jobs,workers", [(1, 1), (40, 4), (41, 4), (7, 10), (1000, 7), (64, 64)])
@pytest.mark.parametrize("tail", [TailPolicy(), NONE], ids=["tail-policy", "no-tail-policy"])
def test_constant_jobs_give_the_exact_makespan(jobs, workers, tail):
    t = 0.75
    m = Measured(job_times=[t], planning_s=0.5, startup_s=1.25, assembly_s=2.0)
    r = simulate(m, workers, jobs=jobs, tail=tail)
    assert r["makespan_s"] == pytest.approx(math.ceil(jobs / workers) * t, rel=1e-12)
    assert r["user_waiting_time_s"] == pytest.approx(0.5 + 1.25 + r["makespan_s"] + 2.0, rel=1e-12)
    assert r["summed_running_time_s"] == pytest.approx(jobs * t, rel=1e-12)
    assert r["parallel_efficiency"] == pytest.approx(jobs * t / (workers * r["user_waiting_time_s"]), rel=1e-12)
    assert (r["attempts"], r["backups_launched"], r["timeouts"], r["job_time_max_s"]) == (jobs, 0, 0, t)


def test_overheads_are_added_where_the_driver_pays_them():
    # 2 workers, 4 jobs of 1 s; each worker's first job pays 0.5 s of imports; the client learns of a
    # finished job 0.1 s late: worker 0 runs job 0 over [0, 1.5], job 2 over [1.6, 2.6]
    m = Measured(job_times=[1.0], warmup_run_s=0.5, report_latency_s=0.1)
    assert simulate(m, 2, jobs=4)["makespan_s"] == pytest.approx(2.6)
    # the client submits one attempt at a time (10 ms each): 1000 jobs on 1000 workers end when the
    # last one, submitted at 9.99 s, has run its second
    assert simulate(Measured(job_times=[1.0], submission_s=0.01), 1000, jobs=1000)["makespan_s"] == pytest.approx(10.99)
    # ...and the single bundler thread (20 ms a bundle) is slower still: job 999 is ready at 19.98 s
    m = Measured(job_times=[1.0], submission_s=0.01, bundle_s=0.02)
    assert simulate(m, 1000, jobs=1000)["makespan_s"] == pytest.approx(20.98)
    # a constant queue wait delays each attempt's start: one wave of 8 jobs ends at 5 + 1 s
    assert simulate(Measured(job_times=[1.0]), 8, jobs=8, queue_wait="const:5")["makespan_s"] == pytest.approx(6.0)
    assert simulate(Measured(job_times=[1.0], queue_waits=[3.0]), 8, jobs=8)["makespan_s"] == pytest.approx(4.0)
    assert simulate(Measured(job_times=[1.0], queue_waits=[3.0]), 8, jobs=8, queue_wait="0")["makespan_s"] == 1.0


def test_queue_wait_specs():
    import random

    m = Measured(queue_waits=[2.0, 4.0])
    draw, measured = queue_wait_sampler("measured", m)
    assert measured and {draw(random.Random(i)) for i in range(50)} == {2.0, 4.0}
    draw, _ = queue_wait_sampler("exp:30", m)
    rng = random.Random(1)
    mean = sum(draw(rng) for _ in range(20000)) / 20000
    assert 28 < mean < 32
    assert queue_wait_sampler("const:5", m)[0](rng) == 5.0 and queue_wait_sampler("0", m)[0](rng) == 0.0
    for bad in ("soon", "exp:-1", "const:x", "uniform:3", "nan"):
        with pytest.raises(InputError, match="--queue-wait"):
            queue_wait_sampler(bad, m)


@pytest.mark.parametrize("workers,jobs,factor", [(4, 40, 10.0), (3, 12, 30.0), (8, 100, 10.0), (5, 41, 4.0),
                                                 (10, 200, 10.0)])
def test_one_slow_worker_with_and_without_the_tail_policy(workers, jobs, factor):
    """Jobs of t = 1 s, one worker ``factor`` x slow. Without the tail policy the run cannot end
    before the slow worker's first job does (factor x t). With it, every job left on the slow worker
    gets a backup at the first tick after it ran speculate_factor x the median (t) once half the
    jobs are committed, and the backup (queued before other jobs) waits at most t for a good worker
    and runs t: so the run ends at most (speculate_factor + 2) t + one tick after the N - 1 good
    workers could have run every job, ceil(J / (N - 1)) t."""
    t = 1.0
    m = Measured(job_times=[t])
    share = 1 / workers
    with_ = simulate(m, workers, jobs=jobs, slow_share=share, slow_factor=factor)
    without = simulate(m, workers, jobs=jobs, slow_share=share, slow_factor=factor, tail=NONE)
    policy = TailPolicy()
    assert with_["slow_workers"] == without["slow_workers"] == 1
    assert without["makespan_s"] >= factor * t
    assert with_["makespan_s"] <= math.ceil(jobs / (workers - 1)) * t + (policy.speculate_factor + 2) * t + TICK_S
    assert with_["makespan_s"] <= without["makespan_s"]
    assert without["backups_launched"] == 0
    # half the jobs are committed (by the good workers) at ceil(J / 2 / (N - 1)) t; the slow worker's
    # first job, if still running then and past speculate_factor t, gets a backup at the next tick,
    # which waits at most t for a good worker, runs t, and wins if the slow one is still running
    launch = max(math.ceil(jobs / 2 / (workers - 1)) * t, policy.speculate_factor * t) + TICK_S
    if launch < factor * t:
        assert with_["backups_launched"] >= 1
    if launch + 2 * t < factor * t:
        assert with_["backups_won"] >= 1 and with_["makespan_s"] < without["makespan_s"]


def test_slow_workers_are_avoided_after_two_strikes():
    # 400 jobs on 4 workers, one 10x slow: without backups its slow completions (after its first,
    # which pays imports in the driver's view) strike it twice, then it gets no new job
    r = simulate(Measured(job_times=[1.0]), 4, jobs=400, slow_share=0.25, slow_factor=10.0, tail=NONE)
    assert r["slow_workers_avoided"] == 1
    assert r["makespan_s"] <= math.ceil(400 / 3) + 10  # 3 jobs on the slow worker (30 s) against 133 s


def test_failures_cost_time():
    """With constant job times no schedule of J jobs on N workers beats ceil(J / N) t, so failed
    attempts (retried until they succeed here) can only add time; more failures add more (mean over
    seeds)."""
    m = Measured(job_times=[1.0])
    retry_on = TailPolicy(max_attempts=1000)
    base = simulate(m, 4, jobs=100, tail=retry_on)["makespan_s"]
    means = []
    for p in (0.0, 0.05, 0.2, 0.5):
        runs = [simulate(m, 4, jobs=100, fail_rate=p, seed=s, tail=retry_on) for s in range(10)]
        assert all(r["makespan_s"] >= base - 1e-9 for r in runs)
        assert all(r["attempts"] == 100 + r["failed_attempts"] and r["failed_jobs"] == 0 for r in runs)
        if p >= 0.2:
            assert all(r["failed_attempts"] > 0 for r in runs)
        means.append(sum(r["makespan_s"] for r in runs) / len(runs))
    assert means == sorted(means) and means[-1] > means[0]
    # max_attempts (3): an attempt failing half the time fails its job now and then
    r = simulate(m, 4, jobs=400, fail_rate=0.5, seed=3)
    assert r["failed_jobs"] > 0
    assert r["attempts"] == 400 - r["failed_jobs"] + r["failed_attempts"]


def test_same_seed_same_result_other_seed_other_result():
    import random

    rng = random.Random(7)
    m = Measured(job_times=[rng.uniform(0.5, 3.0) for _ in range(50)], queue_waits=[0.0, 0.2, 1.0])
    kw = dict(jobs=300, slow_share=0.1, slow_factor=5.0, fail_rate=0.05)
    a = predict(m, [10, 20], seed=11, **kw)
    assert a == predict(m, [10, 20], seed=11, **kw)
    assert a != predict(m, [10, 20], seed=12, **kw)
    assert {k for k in a[0] if k.endswith("_no_tail_policy")} >= {
        "user_waiting_time_s_no_tail_policy", "parallel_efficiency_no_tail_policy", "backups_launched_no_tail_policy"}


def test_large_production_runs():
    # 1000 workers x 100,000 jobs (no timing asserted: CI machines are loaded): the client's serial
    # submissions (1 ms each) bound the run from below, as does the work itself
    m = Measured(job_times=[0.5, 1.0, 2.0], submission_s=0.001)
    r = simulate(m, 1000, jobs=100_000, slow_share=0.05, fail_rate=0.01)
    assert r["makespan_s"] >= max(100_000 * 0.001, 100_000 * 0.5 / 1000)
    assert r["slow_workers"] == 50 and r["failed_attempts"] > 0


def _medfeat(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medfeat", *args], capture_output=True, text=True, timeout=timeout)


def _cpu_share(run_dir) -> float:
    """CPU time of the committed attempts' threads / their wall time: ~0.9 for a job that has a core
    to itself here; much less when other processes take the machine's cores."""
    from medfeat.production.ledger import Ledger

    led = Ledger(run_dir, readonly=True)
    try:
        done = [a for a in led.attempts() if a["outcome"] == "committed"]
    finally:
        led.close()
    return sum(a["cpu_s"] or 0.0 for a in done) / sum(a["finished"] - a["started"] for a in done)


@pytest.mark.timeout(300)
def test_one_worker_run_predicts_the_two_worker_run(tmp_path):
    """A real 1-worker run (16 jobs x 10 images of 512x512, ~0.25 s a job after a first one that
    pays ~1 s of imports) predicts the real 2-worker run's waiting time within 35%.

    Why 35%: on a 2-core machine the two workers share the cores with the Dask scheduler and the
    client, so each job of the 2-worker run takes longer than in the 1-worker run (the model, made
    for separate machines, takes the measured job times as they are); jobs are about half of this
    run's waiting time (the rest: ~2 s planning and cluster start-up, assembly). That puts the
    prediction up to ~25% low; the rest of the margin is for the noise of one small run.

    Other processes on a shared CI machine can take the cores from one run and not the other (we
    saw a 2-worker run get half the CPU time its 1-worker twin got, and the prediction 37% low): a
    pair of runs is judged only when its CPU shares (thread CPU time / wall time of the jobs; ~0.9
    for a job with a core to itself) are within 0.7-1.25x of each other (~0.9 when nothing else runs:
    the client and the scheduler take little); otherwise the pair is run again once (if the first
    took under 30 s), and the check is skipped, naming the shares, if the machine stays busy."""
    data = tmp_path / "data"
    make_images(data, 160, size=512)
    common = ["--images-per-job", "10", "--settings", SETTINGS, "--families", ",".join(FAMILIES), "--quiet"]
    seen = []
    t0 = time.monotonic()
    for attempt in range(2):
        if attempt and time.monotonic() - t0 > 30:  # a busy machine: no second pair (tests stay < 90 s)
            break
        run1, run2 = tmp_path / f"run1-{attempt}", tmp_path / f"run2-{attempt}"
        r = _medfeat("run", str(data), "-o", str(run1), "--workers", "1", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        if attempt == 0:
            _check_measure_and_cli(run1)
        r = _medfeat("run", str(data), "-o", str(run2), "--workers", "2", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        m = measure(run1)
        predicted = sum(simulate(m, 2, seed=s)["user_waiting_time_s"] for s in range(10)) / 10
        real = run_metrics(run2)["user_waiting_time_s"]
        share1, share2 = _cpu_share(run1), _cpu_share(run2)
        seen.append(f"predicted {predicted:.2f} s, real {real:.2f} s, CPU shares {share1:.2f} (1 worker) "
                    f"{share2:.2f} (2 workers)")
        print(seen[-1])
        if 0.7 <= share2 / share1 <= 1.25:  # on an otherwise idle 2-core machine: ~0.9
            assert abs(predicted / real - 1) < 0.35, seen[-1]
            return
    pytest.skip("other processes took the cores from one run of each pair: " + "; ".join(seen))


def _check_measure_and_cli(run1) -> None:
    m = measure(run1)
    assert (m.jobs, m.workers) == (16, 1) and len(m.job_times) == 15  # the first job is warm-up, kept apart
    assert m.startup_s > 0 and m.assembly_s > 0 and m.submission_s > 0
    assert 0 < m.compute_s and m.stage_in_s > 0
    r = _medfeat("simulate", str(run1), "--workers", "1,2", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["workers"] for row in rows] == [1, 2]
    for key in ("user_waiting_time_s", "parallel_efficiency", "job_time_p95_s", "job_time_max_s", "backups_launched",
                "user_waiting_time_s_no_tail_policy", "parallel_efficiency_no_tail_policy"):
        assert key in rows[0]
    # the run itself, replayed: the same workers and job times (what changes is the draw)
    assert abs(rows[0]["user_waiting_time_s"] / run_metrics(run1)["user_waiting_time_s"] - 1) < 0.25
    assert _medfeat("simulate", str(run1), "-w", "2,x").returncode == 2
    assert _medfeat("simulate", str(run1), "--fail-rate", "1.5").returncode == 2
    r = _medfeat("simulate", str(run1), "-w", "2", "--slow-share", "0.5")
    assert r.returncode == 0 and "wait s" in r.stdout, r.stdout + r.stderr
