"""``--mode jobs`` on real batch systems: Slurm, Son of Grid Engine, and PBS (Slurm's PBS wrappers).

Each production job is one batch job running ``medfeat job-run`` (no connection back to the
client); one of them is cancelled with the system's own command while it runs, and the run must
still complete: one row per image, values equal to single-process extraction, a consistent ledger
with the cancelled attempt recorded as lost and its job committed by another attempt, and the
backend named in the report. `.ci/run` starts the systems (``../shared/scripts/*-up.sh``); a test
skips only when its system is not running here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfeat.production.ledger import Ledger
from production_helpers import FAMILIES, SETTINGS, check_run, make_images

pytestmark = pytest.mark.timeout(240)

PBS_BIN = Path(os.environ.get("BE_STATE_DIR", "/tmp/medfeat-backends")) / "slurm" / "pbs-bin"
SGE_ENV = {"SGE_ROOT": os.environ.get("SGE_ROOT", "/var/lib/gridengine"), "SGE_CELL": os.environ.get("SGE_CELL", "default")}


def _env(system: str) -> dict:
    env = dict(os.environ)
    if system == "pbs":
        env["PATH"] = f"{PBS_BIN}:{env['PATH']}"
    if system == "sge":
        env.update(SGE_ENV)
    return env


def _answers(cmd: list[str], env: dict) -> str | None:
    """None when the system answers, else why not."""
    if shutil.which(cmd[0], path=env["PATH"]) is None:
        return f"{cmd[0]} not installed"
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=env)
    except subprocess.TimeoutExpired:
        return f"{cmd[0]} did not answer"
    return None if r.returncode == 0 else f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[:200]}"


SYSTEMS = {
    # name: (probe, queue, command that lists running jobs as "batch-id", cancel command)
    "slurm": (["sinfo", "-h"], "debug"),
    "sge": (["qstat"], "all.q"),
    "pbs": (["sinfo", "-h"], "debug"),   # Slurm's PBS wrappers: their qstat fails while no job exists
}


def _running_ids(system: str, env: dict) -> dict[str, str]:
    """Batch ids of running jobs as the system shows them -> the id medfeat recorded."""
    if system == "sge":
        out = subprocess.run(["qstat", "-g", "d"], capture_output=True, text=True, env=env).stdout
        ids = {}
        for line in out.splitlines()[2:]:
            f = line.split()
            if len(f) >= 9 and "r" in f[4]:
                ids[f"{f[0]}.{f[9]}" if len(f) > 9 else f[0]] = f[0]
        return ids
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i %A"], capture_output=True, text=True,
                         env=env).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def _cancel(system: str, batch_id: str, env: dict) -> None:
    if system == "slurm":
        cmd = ["scancel", batch_id]
    elif system == "sge":
        job, _, task = batch_id.partition(".")
        cmd = ["qdel", job] + (["-t", task] if task else [])
    else:
        cmd = ["qdel", batch_id]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)
    # the job may have ended between the listing and the cancel (a 2-image job lasts ~2 s): the
    # command then fails, and the loop cancels another; a refusal of a job still running is a failure
    still = _running_ids(system, env) if r.returncode else {}
    if batch_id in set(still) | set(still.values()):
        raise AssertionError(f"{' '.join(cmd)} failed on a running job: {(r.stderr or r.stdout).strip()}")


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_jobs_mode_with_one_job_cancelled(tmp_path, system):
    env = _env(system)
    probe, queue = SYSTEMS[system]
    why = _answers(probe, env)
    if not why and system == "pbs" and not (PBS_BIN / "qsub").exists():
        why = f"no PBS wrappers in {PBS_BIN}"
    if why:
        pytest.skip(f"{system} is not running here ({why}); .ci/run starts it with ../shared/scripts/")
    paths = make_images(tmp_path / "data", 24, size=64)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir),
           "--backend", system, "--mode", "jobs", "--workers", "4", "--queue", queue, "--images-per-job", "2",
           "--settings", SETTINGS, "--families", ",".join(FAMILIES), "--quiet", "--no-speculate"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    cancelled: list[str] = []
    lost: list[dict] = []
    deadline = time.time() + 150
    try:
        # cancel running jobs of the run, one at a time, until one is lost. A job may finish in the
        # moment its cancel takes to land (a loaded machine): the one that began last is cancelled,
        # and when it finishes anyway the next one is.
        while not lost and time.time() < deadline and proc.poll() is None:
            if (run_dir / "ledger.sqlite").exists():
                led = Ledger(run_dir, readonly=True)
                try:
                    attempts = led.attempts()
                    committed = sum(1 for j in led.jobs() if j["state"] == "committed")
                finally:
                    led.close()
                ours = {a["batch_id"]: a for a in attempts if a["batch_id"] and a["outcome"] == "running"}
                lost = [a for a in attempts if a["batch_id"] in cancelled and a["outcome"] == "lost"]
                if committed >= 1 and not lost and (not cancelled or cancelled[-1] not in ours):
                    running = [shown if shown in ours else recorded
                               for shown, recorded in _running_ids(system, env).items()
                               if (shown in ours or recorded in ours)]
                    running = [b for b in running if b not in cancelled]
                    if running:  # not yet started (no note) first, then the latest started
                        bid = max(running, key=lambda b: ours[b]["started"] or float("inf"))
                        _cancel(system, bid, env)
                        cancelled.append(bid)
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    led = Ledger(run_dir, readonly=True)
    try:  # judged on the final ledger: the run may end between two looks of the loop above
        seen = [(a["batch_id"], a["outcome"], a["started"], a["finished"]) for a in led.attempts()]
        lost = [a for a in led.attempts() if a["batch_id"] in cancelled and a["outcome"] == "lost"]
    finally:
        led.close()
    assert lost, f"no cancelled batch job was recorded lost (cancelled: {cancelled}; attempts: {seen})"
    check_run(run_dir, paths, compare=4)
    led = Ledger(run_dir)
    try:
        attempts = led.attempts()
        lost = [a for a in attempts if a["outcome"] == "lost"]
        assert {a["batch_id"] for a in lost} <= set(cancelled)
        for a in lost:
            assert "without a report" in a["error"]
            job = led.job(a["job_id"])
            assert job["state"] == "committed" and job["committed_attempt"] != a["attempt_id"]
        assert all(a["batch_id"] for a in attempts), "every attempt has its batch job id"
        sessions = led.sessions()
        assert sessions[-1]["backend"] == system
        assert json.loads(sessions[-1]["backend_options"])["queue"] == queue
    finally:
        led.close()
    r = subprocess.run([sys.executable, "-m", "medfeat", "report", str(run_dir), "--json"], capture_output=True,
                       text=True, timeout=60)
    js = json.loads(r.stdout)
    assert js["backend"] == system and js["queue_wait_s"] > 0
    r = subprocess.run([sys.executable, "-m", "medfeat", "report", str(run_dir), "--attempts"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert "where the attempts ran" in r.stdout and lost[0]["batch_id"] in r.stdout and "lost" in r.stdout
    # bundles are gone once committed; the stage keeps results only
    led = Ledger(run_dir)
    stage = run_dir / "stage" / led.run_info()["run_id"]
    led.close()
    assert not list((stage / "bundles").iterdir())
    assert not list((stage / "specs").glob("*.json"))
