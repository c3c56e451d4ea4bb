"""A Dask cluster across network namespaces (shared/scripts/netns-up.sh): `dask scheduler` in
mfbe-n1 (10.213.7.1), `dask worker`s in mfbe-n2 and mfbe-n3, the client (`medfeat run --backend
dask --scheduler tcp://10.213.7.1:PORT`) in the root namespace (10.213.7.254). The workers reach
the scheduler and the client only over the namespaces' bridge. Skipped only when the namespaces
are not there (or this is not root, which `ip netns exec` needs)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfeat.production.ledger import Ledger
from medfeat.report.metrics import run_metrics
from production_helpers import FAMILIES, SETTINGS, check_run, make_images

BIN = Path(sys.executable).parent
NET = "10.213.7"
NAMESPACES = ("mfbe-n1", "mfbe-n2", "mfbe-n3")


def _namespaces() -> set[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _in(ns: str, *cmd: str, log) -> subprocess.Popen:
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    # its own process group: the nanny and its worker process are stopped together
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=log, env=env,
                            start_new_session=True)


class NetnsCluster:
    def __init__(self, tmp_path: Path):
        self.procs: list[subprocess.Popen] = []
        self.log = open(tmp_path / "netns-dask.log", "w")
        sched_file = tmp_path / "scheduler.json"
        try:
            # port 0 and a scheduler file: nothing to guess about free ports inside the namespace;
            # the dashboard address is given because --no-dashboard still binds 8787 otherwise
            self.procs.append(_in("mfbe-n1", str(BIN / "dask"), "scheduler", "--host", f"{NET}.1", "--port", "0",
                                  "--no-dashboard", "--dashboard-address", f"{NET}.1:0", "--scheduler-file",
                                  str(sched_file), log=self.log))
            deadline = time.time() + 60
            while not sched_file.exists():
                assert self.procs[0].poll() is None, "the scheduler in mfbe-n1 exited; see netns-dask.log"
                assert time.time() < deadline, "no scheduler file after 60 s"
                time.sleep(0.1)
            time.sleep(0.1)
            self.address = json.loads(sched_file.read_text())["address"]
            assert self.address.startswith(f"tcp://{NET}.1:"), self.address
            for i, ns in ((2, "mfbe-n2"), (3, "mfbe-n3")):
                self.procs.append(_in(ns, str(BIN / "dask"), "worker", self.address, "--host", f"{NET}.{i}",
                                      "--nthreads", "1", "--no-dashboard", "--name", f"n{i}", log=self.log))
            from distributed import Client

            with Client(self.address, timeout="30s") as c:
                c.wait_for_workers(2, timeout=60)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)
            try:  # the nanny's worker process, should it have outlived its group leader
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


@pytest.fixture
def netns_cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("`ip netns exec` needs root")
    missing = set(NAMESPACES) - _namespaces()
    if missing:
        pytest.skip(f"network namespaces {sorted(missing)} absent (start them with shared/scripts/netns-up.sh)")
    cluster = NetnsCluster(tmp_path)
    yield cluster
    cluster.close()


@pytest.mark.timeout(240)
def test_dask_cluster_across_network_namespaces(tmp_path, netns_cluster):
    paths = make_images(tmp_path / "data", 12)
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(run_dir),
                        "--images-per-job", "3", "--backend", "dask", "--scheduler", netns_cluster.address,
                        "--settings", SETTINGS, "--families", ",".join(FAMILIES), "--quiet"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    check_run(run_dir, paths)
    m = run_metrics(run_dir)
    assert m["backend"] == "dask" and m["jobs"] == 4
    led = Ledger(run_dir)
    try:
        committed = {a["worker"] for a in led.attempts() if a["outcome"] == "committed"}
        # both workers ran attempts (on a loaded machine a backup on one may win the other's job)
        workers = {a["worker"] for a in led.attempts() if a["worker"] and a["started"]}
        session = led.sessions()[-1]
    finally:
        led.close()
    # every job ran in n2 or n3 (their own addresses), and both took jobs
    assert {w.rsplit(":", 1)[0] for w in workers} == {f"tcp://{NET}.2", f"tcp://{NET}.3"}, workers
    assert {w.rsplit(":", 1)[0] for w in committed} <= {f"tcp://{NET}.2", f"tcp://{NET}.3"}, committed
    assert session["scheduler"] == netns_cluster.address
