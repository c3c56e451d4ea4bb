"""The ``ssh`` backend on a real sshd (127.0.0.1:2222, started by shared/scripts/sshd-up.sh): Dask
workers started over SSH, bundles and results staged through sftp:// on the same sshd, and the
one-line errors of bad SSH input. Skipped only when that sshd is not running."""
from __future__ import annotations

import copy
import os
import socket
import subprocess
import time
from pathlib import Path

import fsspec.config
import pytest

from medfeat.errors import InputError
from medfeat.production import stores
from medfeat.production.backends import RunContext, get_backend
from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, TailPolicy
from medfeat.report.metrics import run_metrics
from production_helpers import check_run, make_images, plan

STATE = Path(os.environ.get("BE_STATE_DIR", "/tmp/medfeat-backends")) / "sshd"
KEY = STATE / "id_ed25519"
KNOWN_HOSTS = STATE / "known_hosts"
PORT = 2222


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def sshd():
    if not _listening("127.0.0.1", PORT):
        pytest.skip(f"no sshd on 127.0.0.1:{PORT} (start it with shared/scripts/sshd-up.sh)")
    if not (KEY.is_file() and KNOWN_HOSTS.is_file()):
        pytest.skip(f"sshd-up.sh's key and known_hosts are not in {STATE}")
    return {"hosts": ["127.0.0.1", "127.0.0.1"], "ssh_port": PORT, "ssh_user": "root", "ssh_key": str(KEY),
            "known_hosts": str(KNOWN_HOSTS)}


@pytest.fixture
def store_env():
    """configure_store changes os.environ and fsspec's config: put both back afterwards."""
    env, conf = dict(os.environ), copy.deepcopy(fsspec.config.conf)
    yield
    os.environ.clear()
    os.environ.update(env)
    fsspec.config.conf.clear()
    fsspec.config.conf.update(conf)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_with(text: str) -> set[int]:
    """PIDs whose command line holds ``text``, and their descendants."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in ps.splitlines() if line.strip()]
    found = {int(r[0]) for r in rows if len(r) == 3 and text in r[2] and "ps -eo" not in r[2]}
    grew = True
    while grew:
        more = {int(r[0]) for r in rows if int(r[1]) in found} - found
        found |= more
        grew = bool(more)
    return found


@pytest.mark.timeout(240)
def test_ssh_workers_with_an_sftp_stage(tmp_path, sshd, store_env):
    paths = make_images(tmp_path / "data", 10)
    run_dir = tmp_path / "run"
    stage_dir = tmp_path / "sftp-stage"
    # the sftp stage takes the SSH backend's key and known_hosts (the CLI passes the same two dicts)
    stores.configure_store({}, sshd)
    stage_url = f"sftp://root@127.0.0.1:{PORT}{stage_dir}"
    stores.probe_stage(stage_url)
    prod = plan(run_dir, tmp_path / "data", 3, stage=stage_url)
    port = _free_port()
    backend = BackendSpec("ssh", workers=2, options={**sshd, "scheduler_port": port})
    t0 = time.time()
    prod.run(backend, TailPolicy())
    ran_s = time.time() - t0

    check_run(run_dir, paths)
    m = run_metrics(run_dir)
    assert m["backend"] == "ssh" and m["workers"] == 2 and m["jobs"] == 4
    led = Ledger(run_dir)
    try:
        assert led.run_info()["stage_url"] == stage_url
        # (a backup cancelled before it started, when its job's first attempt won, ran on no worker)
        workers = {a["worker"] for a in led.attempts() if a["started"]}
    finally:
        led.close()
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    # the results went through sftp (the "remote" folder is on this machine); bundles were deleted once
    # committed, results once features.parquet held them all
    assert [p for p in (stage_dir / prod.run_id).rglob("*") if p.is_file()] == []
    assert [e["detail"] for e in Ledger(run_dir, readonly=True).events() if e["kind"] == "results-folded"] == [
        "4 job results folded into features.parquet and deleted from the stage"]
    assert ran_s < 120
    # nothing the run started over SSH outlives it (scheduler and workers name the scheduler port)
    deadline = time.time() + 30
    while _processes_with(f"127.0.0.1:{port}") | _processes_with(f'"port": {port}'):
        assert time.time() < deadline, "SSH-started Dask processes still running 30 s after the run"
        time.sleep(0.5)


def _make(options: dict, workers=None):
    return get_backend("ssh").make(BackendSpec("ssh", workers=workers, options=options),
                                   RunContext(Path("/nonexistent"), "x", "/nonexistent/stage"))


@pytest.mark.timeout(120)
def test_ssh_bad_input_is_one_line(tmp_path, sshd):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cases = {
        "needs --hosts": {**sshd, "hosts": []},
        "no such file": {**sshd, "ssh_key": str(tmp_path / "missing-key")},
        "not a usable private key": {**sshd, "ssh_key": str(KNOWN_HOSTS)},
        "cannot connect": {**sshd, "ssh_port": _free_port()},       # nothing listens there
        "host key not trusted": {**sshd, "known_hosts": str(empty)},
        "login refused": {**sshd, "ssh_user": "nobody"},
        "not found there": {**sshd, "remote_python": "/nonexistent/python3"},
    }
    for expected, options in cases.items():
        t0 = time.time()
        with pytest.raises(InputError) as err:
            ex = _make(options)
            ex.close()
        msg = str(err.value)
        assert expected in msg and "\n" not in msg, msg
        assert time.time() - t0 < 30, f"{expected}: took {time.time() - t0:.0f} s"
    with pytest.raises(InputError, match="fixed size"):
        _make(sshd, workers="1:4")
