"""``--backend arc --mode jobs`` on a real NorduGrid ARC 6 computing element (A-REX, fork LRMS).

Each production job attempt is one ARC job staged by ARC itself: the spec, the bundle, the job
script and the packed worker environment go in with ``arcsub``, the result and the report come
back with ``arcget``; no shared filesystem (the jobs run as ``nobody``, who can read neither the
run folder nor this venv's Python: the packed environment is the only medfeat they have). The
runs must give one row per image, values equal to single-process extraction, a consistent ledger
with the ARC job ids, and ``arc`` as the report's backend. `.ci/run` starts the CE
(``../shared/scripts/arc-up.sh``); a test skips only when the CE does not answer here.

ARC is slow by nature: a fork CE keeps a job ``Accepted`` for up to a minute and reports it
``Finished`` up to a minute after it ended, so each test takes minutes; the job timeout is off
(it would count the CE's reporting lag as running time).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, TailPolicy
from medfeat.report.metrics import run_metrics
from production_helpers import FAMILIES, SETTINGS, check_run, make_images, plan

pytestmark = pytest.mark.timeout(400)

STATE = Path(os.environ.get("BE_STATE_DIR", "/tmp/medfeat-backends")) / "arc"
CE = os.environ.get("MEDFEAT_ARC_CE") or socket.gethostname()
X509 = {"X509_USER_CERT": STATE / "client-betest-cert.pem", "X509_USER_KEY": STATE / "client-betest-key.pem",
        "X509_USER_PROXY": STATE / "proxy.pem"}


def _arc_env() -> dict:
    """This process's environment, with arc-up.sh's client credentials where none are set."""
    env = dict(os.environ)
    for var, path in X509.items():
        if not env.get(var) and path.exists():
            env[var] = str(path)
    return env


def _ce_down() -> str | None:
    """None when the CE answers, else why not."""
    if shutil.which("arcsub") is None or shutil.which("arcinfo") is None:
        return "the ARC client (arcsub, arcinfo) is not installed"
    try:
        r = subprocess.run(["arcinfo", "-c", CE, "-l"], capture_output=True, text=True, timeout=30, env=_arc_env())
    except subprocess.TimeoutExpired:
        return f"arcinfo -c {CE} did not answer in 30 s"
    if r.returncode != 0:
        return f"arcinfo -c {CE} failed: {(r.stderr or r.stdout).strip()[-200:]}"
    if "Health state: ok" not in r.stdout:
        return f"the CE {CE} does not say its health is ok"
    return None


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    """The CE's client environment and a packed worker environment (built once)."""
    why = _ce_down()
    if why:
        pytest.skip(f"no ARC CE here ({why}); .ci/run starts one with ../shared/scripts/arc-up.sh")
    try:
        from medfeat.production.environment import pack_env
    except ImportError as exc:
        pytest.skip(f"medfeat.production.environment is not available ({exc}): the ARC jobs need a packed env")
    out = tmp_path_factory.mktemp("arc-env") / "medfeat-env.tar"
    try:
        packed = pack_env(out)
    except Exception as exc:
        pytest.skip(f"cannot pack the worker environment: {type(exc).__name__}: {exc}")
    yield {"env": _arc_env(), "archive": packed["path"]}
    # the jobs set the environment up once in nobody's cache on this CE's (fork) node: ~700 MB
    # per archive, and this archive is the test's own; take it away (best effort, as root)
    try:
        cache = Path("/tmp") / f"medfeat-env-{pwd.getpwnam('nobody').pw_uid}"
    except KeyError:
        return
    shutil.rmtree(cache / packed["key"], ignore_errors=True)
    try:
        (cache / f"{packed['key']}.lock").unlink(missing_ok=True)
    except OSError:
        pass


def _attempts(run_dir: Path) -> list[dict]:
    """The ledger's attempts, read without writing (opening a Ledger writes its schema, which
    would hold the running client's ledger writes up)."""
    try:
        with closing(sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5)) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY attempt_id")]
    except sqlite3.Error:  # not created yet
        return []


def test_arc_jobs_with_arc_data_staging(tmp_path, arc, monkeypatch):
    """8 images, 2 per job: 4 ARC jobs submitted in one arcsub (a multi-job xRSL)."""
    for var in X509:
        monkeypatch.setenv(var, arc["env"][var])
    paths = make_images(tmp_path / "data", 8, size=48)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 2)
    backend = BackendSpec("arc", mode="jobs", options={"ce": CE, "env": arc["archive"]})
    t0 = time.time()
    prod.run(backend, TailPolicy(speculate=False, job_timeout=0))
    total = time.time() - t0
    check_run(run_dir, paths)
    m = run_metrics(run_dir)
    assert m["backend"] == "arc" and m["jobs"] == 4 and m["attempts"] == 4
    attempts = _attempts(run_dir)
    for a in attempts:
        assert a["batch_id"] and a["batch_id"].startswith("https://"), "the ARC job id is the attempt's batch id"
        assert a["worker"] == f"{CE}/{a['batch_id'].rsplit('/', 1)[-1]}"
    # the first attempts went together, in a multi-job xRSL (usually one arcsub for all four; the
    # driver hands over what is staged when it looks, so a slow look may split them)
    log = [json.loads(line) for line in (run_dir / "arc" / "events.jsonl").read_text().splitlines()]
    subs = [e for e in log if e["event"] == "submitted"]
    assert sum(len(e["jobs"]) for e in subs) == 4 and max(len(e["jobs"]) for e in subs) >= 2
    # no credentials in the ledger; the CE's jobs are cleaned
    led = Ledger(run_dir)
    try:
        opts = json.loads(led.sessions()[-1]["backend_options"])
    finally:
        led.close()
    assert opts == {"ce": CE, "env": arc["archive"]}
    stage = run_dir / "stage" / prod.run_id
    assert not list((stage / "bundles").iterdir())
    r = subprocess.run(["arcstat", "-j", str(run_dir / "arc" / "jobs.dat"), "-a"], capture_output=True, text=True,
                       timeout=60)
    assert "Job: " not in r.stdout, "arcget cleaned every fetched job off the CE"
    seen = [e for e in log if e["event"] in ("running", "fetched")]
    first_fetch = min(e["t"] for e in seen if e["event"] == "fetched")
    print(f"\nARC: {total:.1f} s in all; arcsub of {len(subs[0]['jobs'])} jobs {subs[0]['took']:.2f} s "
          f"({m['submission_time_per_job_s']:.2f} s per job incl. client work); submitted -> first fetched "
          f"{first_fetch - subs[0]['t'] + subs[0]['took']:.1f} s; queue wait (to the job's start) "
          f"{m['queue_wait_s']:.1f} s; job time max {m['job_time_max_s']:.1f} s")


def _copy_jobs_file(run_dir: Path, into: Path) -> Path | None:
    """A consistent copy of the client's ARC job list (sqlite), for arckill from outside."""
    src = run_dir / "arc" / "jobs.dat"
    if not src.exists():
        return None
    dst = into / "jobs-copy.dat"
    dst.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=5)) as a, \
                closing(sqlite3.connect(dst)) as b:
            a.backup(b)
    except sqlite3.Error:
        return None
    return dst


def test_arc_job_killed_with_arckill(tmp_path, arc):
    """One ARC job is killed with arckill while the run goes on: its attempt is lost, its job
    committed by another attempt."""
    paths = make_images(tmp_path / "data", 8, size=48)
    run_dir = tmp_path / "run"
    env = arc["env"]
    cmd = [sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir),
           "--backend", "arc", "--mode", "jobs", "--ce", CE, "--env", arc["archive"], "--images-per-job", "2",
           "--settings", SETTINGS, "--families", ",".join(FAMILIES), "--quiet", "--no-speculate", "--job-timeout", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    killed: list[str] = []
    lost: list[dict] = []
    deadline = time.time() + 300
    try:
        # kill a live ARC job of the run; if it finished before the kill landed, kill the next one
        while not lost and time.time() < deadline and proc.poll() is None:
            attempts = _attempts(run_dir)
            if attempts:
                live = [a["batch_id"] for a in attempts if a["batch_id"] and a["outcome"] == "running"]
                lost = [a for a in attempts if a["batch_id"] in killed and a["outcome"] == "lost"]
                if not lost and (not killed or killed[-1] not in live):
                    target = next((b for b in live if b not in killed), None)
                    jobs_file = _copy_jobs_file(run_dir, tmp_path) if target else None
                    if target and jobs_file:
                        r = subprocess.run(["arckill", "-j", str(jobs_file), target], capture_output=True,
                                           text=True, env=env, timeout=60)
                        if "killed: 1" in r.stdout:
                            killed.append(target)
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=max(30, deadline + 60 - time.time()))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert lost, f"no killed ARC job was recorded lost (killed: {killed})"
    check_run(run_dir, paths)
    led = Ledger(run_dir)
    try:
        attempts = led.attempts()
        for a in [a for a in attempts if a["outcome"] == "lost"]:
            assert a["batch_id"] in killed and "ARC job" in a["error"]
            job = led.job(a["job_id"])
            assert job["state"] == "committed" and job["committed_attempt"] != a["attempt_id"]
        assert all(a["batch_id"] for a in attempts), "every attempt has its ARC job id"
        assert led.sessions()[-1]["backend"] == "arc"
    finally:
        led.close()
    assert run_metrics(run_dir)["backend"] == "arc"


# -- without a CE: the pieces ------------------------------------------------------------------
ARCSTAT = """Job: https://ce.example:443/arex/rest/1.0/jobs/AAA
 Name: medfeat-r-a00001
 State: Running

Job: https://ce.example:443/arex/BBB
 Name: medfeat-r-a00002
 State: Failed
 Exit Code: 3
 Job Error: LRMS error: (3) Job finished with wrong exit code - 3 != 0

Status of 2 jobs was queried, 2 jobs returned information
"""


def test_arc_parsing():
    from medfeat.production.backends.arc import _megabytes, _minutes, parse_arcstat, parse_submitted, short_id

    jobs = parse_arcstat(ARCSTAT)
    assert jobs["https://ce.example:443/arex/rest/1.0/jobs/AAA"].state == "Running"
    failed = jobs["https://ce.example:443/arex/BBB"]
    assert (failed.state, failed.name, failed.exit_code) == ("Failed", "medfeat-r-a00002", "3")
    assert "wrong exit code" in failed.error
    out = ("Job submitted with jobid: https://vm:443/arex/rest/1.0/jobs/X1\nJob submitted with jobid: "
           "https://vm:443/arex/X2\n\nJob submission summary:\n2 of 2 jobs were submitted\n")
    assert parse_submitted(out) == ["https://vm:443/arex/rest/1.0/jobs/X1", "https://vm:443/arex/X2"]
    assert short_id("https://vm:443/arex/rest/1.0/jobs/X1") == "X1"
    assert (_minutes("01:30:00"), _minutes("00:00:10"), _minutes(45)) == (90, 1, 45)
    assert (_megabytes("2GB"), _megabytes("512MB"), _megabytes(300)) == (2048, 512, 300)


def test_arc_needs_a_ce(tmp_path):
    from medfeat.errors import InputError
    from medfeat.production.backends import RunContext, get_backend

    ctx = RunContext(run_dir=tmp_path, run_id="r", stage_url=str(tmp_path / "stage"))
    with pytest.raises(InputError, match="--ce HOST") as err:
        get_backend("arc").make(BackendSpec("arc", mode="jobs"), ctx)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="mode 'workers'"):
        get_backend("arc").make(BackendSpec("arc", mode="workers", options={"ce": "ce.example"}), ctx)


def test_arc_job_description_stages_everything(tmp_path):
    """The job needs nothing from this machine's filesystem: its spec names local files only, the
    environment is read from the session directory, the inputs and outputs are ARC's to move."""
    pytest.importorskip("medfeat.production.environment")
    from medfeat.production.backends import RunContext, get_backend
    from medfeat.production.backends.arc import BUNDLE, ENV, RESULT, REPORT
    from medfeat.production.spec import make_spec

    env_file = tmp_path / "env.tar"
    env_file.write_bytes(b"not really an environment")
    ctx = RunContext(run_dir=tmp_path / "run", run_id="r", stage_url=str(tmp_path / "stage"))
    ex = get_backend("arc").make(BackendSpec("arc", mode="jobs", options={
        "ce": "ce.example", "env": str(env_file), "walltime": "00:20:00", "memory": "2GB",
        "job_extra": ['(runtimeenvironment="ENV/X")']}), ctx)
    ex.start(None)
    script = ex.script.read_text()
    assert 'MEDFEAT_ENV_ARCHIVE="$PWD"/' + ENV in script and str(env_file) not in script
    assert "$MEDFEAT job-run spec.json" in script
    spec = make_spec("r", 3, 7, str(tmp_path / "stage"), "r/bundles/job-00003.tar", "0" * 64, {})
    desc = ex._description(spec, tmp_path / "spec.json", "/stage/r/bundles/job-00003.tar")
    assert desc.startswith("&(executable=\"medfeat-job.sh\")")
    for local, source in ((BUNDLE, "/stage/r/bundles/job-00003.tar"), (ENV, str(env_file)),
                          ("spec.json", str(tmp_path / "spec.json"))):
        assert f'("{local}" "{source}")' in desc
    for out in (RESULT, REPORT, "job.log"):
        assert f'("{out}" "")' in desc
    assert '(walltime="20")' in desc and '(memory="2048")' in desc and '(runtimeenvironment="ENV/X")' in desc
    assert ex.describe() == {"backend": "arc", "address": "ce.example", "mode": "jobs",
                             "options": {"ce": "ce.example", "env": str(env_file), "walltime": "00:20:00",
                                         "memory": "2GB", "job_extra": ['(runtimeenvironment="ENV/X")']}}
    ex.close()
