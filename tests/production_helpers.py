"""Helpers shared by the production tests (test_production and the backend, fault, report and
simulation tests): a planned production, a run on a local cluster or a scheduler, synthetic Netpbm
images (some truncated on purpose), the checks every finished run must pass, and a real `dask
scheduler` with `dask worker` processes on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import medfeat
from medfeat.io.netpbm import write_netpbm
from medfeat.production.engine import Production
from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, PlanOptions, TailPolicy
from medfeat.production.plan import Item
from medfeat.report.metrics import run_metrics

SETTINGS = "default-2d"
FAMILIES = ("stat", "ih", "glcm", "glrlm")
BIN = Path(sys.executable).parent


def plan_item(row: dict) -> Item:
    return Item(row["image"], row["mask"])


def plan(run_dir: Path, dataset, per_job: int, stage: str | None = None, settings=SETTINGS,
         families=FAMILIES) -> Production:
    return Production(run_dir, None if dataset is None else str(dataset), settings, families,
                      PlanOptions(images_per_job=per_job, stage=stage))


def produce(prod: Production, workers: int | None = None, scheduler: str | None = None, **tail) -> dict:
    """Run a planned production on a local cluster of ``workers`` or an existing ``scheduler``;
    return the run's metrics."""
    backend = (BackendSpec("dask", options={"scheduler": scheduler}) if scheduler
               else BackendSpec("local", workers=workers))
    prod.run(backend, TailPolicy(**tail))
    return run_metrics(prod.run_dir)


def make_images(root: Path, n: int, size: int = 48, bad: tuple[int, ...] = ()) -> list[Path]:
    rng = np.random.default_rng(42)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = root / f"img-{i:04d}.{'ppm' if i % 3 == 0 else 'pgm'}"
        if i in bad:
            p.write_bytes(b"P5\n4 4\n255\n\x00")  # truncated: must become an error row
        else:
            shape = (size, size, 3) if i % 3 == 0 else (size, size)
            write_netpbm(p, rng.integers(0, 256, size=shape, dtype=np.uint8))
        paths.append(p)
    return paths


def check_run(run_dir: Path, paths: list[Path], bad: tuple[int, ...] = (), compare: int = 4) -> list[dict]:
    rows = pq.read_table(run_dir / "features.parquet").to_pylist()
    assert sorted(r["image"] for r in rows) == sorted(str(p) for p in paths), "one row per image"
    assert len({r["image"] for r in rows}) == len(rows), "no duplicates"
    by_image = {r["image"]: r for r in rows}
    for i in bad:
        assert by_image[str(paths[i])]["error"] and paths[i].name in by_image[str(paths[i])]["error"]
    good = [i for i in range(len(paths)) if i not in bad]
    for i in good[:: max(1, len(good) // compare)]:
        row = by_image[str(paths[i])]
        assert row["error"] == ""
        expected = medfeat.extract(paths[i], None, SETTINGS, families=FAMILIES)
        for k, v in expected.items():
            assert row[k] == pytest.approx(v, rel=1e-12, abs=1e-12, nan_ok=True), k
        assert row["sha256"] == medfeat.read_image(paths[i]).sha256
    led = Ledger(run_dir)
    try:
        assert led.check_consistency() == []
        assert all(j["state"] == "committed" for j in led.jobs())
        committed = [a for a in led.attempts() if a["outcome"] == "committed"]
        assert len(committed) == len(led.jobs())
        for a in committed:  # the thread's CPU time fits in the attempt's wall time; a Python worker holds > 30 MiB
            assert 0 < a["cpu_s"] <= a["finished"] - a["started"] + 0.05 and a["rss_peak_mb"] > 30
    finally:
        led.close()
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskProcesses:
    """A real `dask scheduler` and `dask worker` processes on 127.0.0.1."""

    def __init__(self, tmp_path: Path, n_workers: int = 2):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "dask.log", "w")
        env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(self.port), "--no-dashboard"], stdout=self.log, stderr=self.log, env=env)
        self.workers = [subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--nthreads", "1",
                                          "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                                         stdout=self.log, stderr=self.log, env=env, start_new_session=True)
                        for i in range(n_workers)]
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n_workers, timeout=60)

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes themselves (children of the nannies)."""
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            return sorted(c.run(os.getpid).values())

    def close(self):
        for p in self.workers + [self.scheduler]:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if p in self.workers else p.kill()
                except ProcessLookupError:
                    pass
            p.wait(timeout=30)
        self.log.close()
