"""Floors under ``bench/cohort.py``'s target: the least a 2-process Python run of the cohort costs here.

``dask``: a fresh interpreter imports distributed, starts a LocalCluster of ``--workers`` single-threaded
worker processes (as ``medfeat run``'s local backend does), has every worker extract one tiny synthetic
volume with the cohort's settings and families (its medfeat imports, numba's first use, the run's kernels
loaded from numba's cache), and closes the cluster. No file is read, no ledger, no table, no report.

``pool``: no Dask at all -- a multiprocessing pool of ``--workers`` processes (spawned, as PyRadiomics'
batch mode's pool is forked from an interpreter that imported radiomics) maps ``medfeat.extract`` over the
cohort CSV's rows, files read included, and the parent writes the rows as one Parquet table. No ledger,
no bundles, no report, no retries: the bare work plus each process's start-up.

    .venv/bin/python bench/_cohort_floor.py dask SETTINGS.toml FAMILIES [--workers 2]
    .venv/bin/python bench/_cohort_floor.py pool SETTINGS.toml FAMILIES --csv COHORT.csv [--workers 2]

Prints, as JSON, the seconds from the interpreter's start to each step.
"""
from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def _settings(settings_path: str, families: str):
    from medfeat.settings import Settings

    return Settings.from_file(settings_path).replace(families=tuple(families.split(",")))


def warm_worker(settings_path: str, families: str) -> float:
    """Extract a 6 x 12 x 12 synthetic volume with an ellipsoid mask; returns the seconds it took."""
    t = time.perf_counter()
    import numpy as np

    import medfeat

    z, y, x = np.mgrid[:6, :12, :12]
    mask = (((z - 2.5) ** 2 / 6 + (y - 5.5) ** 2 / 16 + (x - 5.5) ** 2 / 16) < 1).astype(np.uint8)
    vol = (80 * mask + np.random.default_rng(0).normal(0, 20, mask.shape)).astype(np.float32)
    medfeat.extract(medfeat.Image(vol, spacing=(2.0, 0.8, 0.8)), mask, _settings(settings_path, families))
    return time.perf_counter() - t


def extract_row(job: tuple[str, str, dict]) -> dict:
    import medfeat

    settings_path, families, row = job
    return medfeat.extract(row["image"], row["mask"], _settings(settings_path, families), label=1)


def dask_floor(args) -> dict:
    from distributed import Client, LocalCluster

    steps = {"imports": time.perf_counter() - T0}
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=40)
    client = Client(cluster)
    steps["cluster"] = time.perf_counter() - T0
    workers = sorted(client.scheduler_info()["workers"])
    futures = [client.submit(warm_worker, args.settings, args.families, workers=[w], pure=False) for w in workers]
    steps["worker_warmup_s"] = client.gather(futures)
    steps["warm"] = time.perf_counter() - T0
    client.close()
    cluster.close()
    steps["closed"] = time.perf_counter() - T0
    return steps


def pool_floor(args) -> dict:
    import csv
    import multiprocessing

    with open(args.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    jobs = [(args.settings, args.families, r) for r in rows]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        out = pool.map(extract_row, jobs, chunksize=1)
    steps = {"extracted": time.perf_counter() - T0}
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(out), args.output)
    steps["table"] = time.perf_counter() - T0
    steps["rows"] = len(out)
    return steps


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("runner", choices=("dask", "pool"))
    parser.add_argument("settings")
    parser.add_argument("families")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", help="pool: the cohort CSV (image, mask columns)")
    parser.add_argument("--output", default="floor.parquet", help="pool: the table written")
    args = parser.parse_args()
    print(json.dumps(dask_floor(args) if args.runner == "dask" else pool_floor(args)))


if __name__ == "__main__":
    sys.exit(main())
