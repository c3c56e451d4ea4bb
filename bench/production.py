"""The seed-shaped production on this machine: 89 jobs x 250 RGB PPM images of 256x256.

Runs `medfeat run`'s engine on the embedded LocalCluster (one worker process per core, one thread
each), once per family set, and prints the run table with the targets of issue #3:
waiting time <= 150 s on 2 cores, parallel efficiency >= 0.9, submission time per job <= 5 ms,
worker RSS <= 375 MB (the largest resident set any worker reported during the run).

    .venv/bin/python bench/production.py                 # the full 89 x 250
    .venv/bin/python bench/production.py --jobs 8 --images-per-job 25   # a quick look

The dataset is generated once into bench/out/ and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {"user_waiting_time_s": 150.0, "parallel_efficiency": 0.9, "submission_time_per_job_s": 0.005,
           "worker_rss_mb": 375.0}


def dataset(jobs: int, per_job: int, size: int) -> Path:
    from medfeat.dataset import make_dataset

    folder = OUT / f"dataset-{jobs}x{per_job}-{size}"
    stamp = folder / ".complete"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        make_dataset(folder, jobs=jobs, images_per_job=per_job, size=size)
        stamp.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
        print(f"dataset: {jobs * per_job} images in {time.perf_counter() - t0:.1f} s -> {folder}")
    return folder


def run(data: Path, label: str, settings: str, families: tuple[str, ...] | None, workers: int, per_job: int) -> dict:
    from distributed import Client, LocalCluster

    from medfeat.production.dask_executor import DaskExecutor
    from medfeat.production.engine import Production
    from medfeat.production.options import PlanOptions
    from medfeat.report.metrics import run_metrics, run_table

    run_dir = OUT / f"run-{label}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=40)
    peak = {"rss": 0}
    stop = threading.Event()

    def watch():  # worker RSS as reported by the workers' own heartbeats: no load on them
        with Client(cluster) as c:
            while not stop.is_set():
                for w in c.scheduler_info(n_workers=-1)["workers"].values():
                    peak["rss"] = max(peak["rss"], w.get("metrics", {}).get("memory", 0))
                time.sleep(0.5)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        from rich.console import Console

        console = Console()
        prod = Production(run_dir, str(data), settings, families, PlanOptions(images_per_job=per_job),
                          console=console)
        ex = DaskExecutor(Client(cluster), name="local")
        try:
            prod.run(ex)
        finally:
            ex.close()
            ex.client.close()
        m = run_metrics(run_dir)
    finally:
        stop.set()
        t.join()
        cluster.close()
    m["worker_rss_mb"] = peak["rss"] / 2**20
    console.print(run_table(m, title=f"{label}: {settings}, families {','.join(families or ('all',))}"))
    print(f"  worker RSS peak: {m['worker_rss_mb']:.0f} MB")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=89)
    ap.add_argument("--images-per-job", type=int, default=250)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    data = dataset(args.jobs, args.images_per_job, args.size)
    from medfeat.extract import FAMILIES

    cases = []
    if "gift" in FAMILIES:
        cases.append(("gift", "default-2d", ("gift",)))
    else:
        cases.append(("foundation", "default-2d", ("stat", "ih", "ivh", "glcm", "glrlm")))
    # every family of the default-2d preset (all texture and intensity families) plus gift; morph
    # and li are 3D-shape families the preset leaves out for pictures (see default-2d.toml)
    from medfeat.extract import Settings

    all_2d = tuple(Settings.preset("default-2d").families) + (("gift",) if "gift" in FAMILIES else ())
    cases.append(("all-2d", "default-2d", all_2d))
    results = {}
    for label, settings, fams in cases:
        results[label] = run(data, label, settings, fams, args.workers, args.images_per_job)
    print("\ntargets (issue #3):")
    for label, m in results.items():
        checks = [
            f"waiting {m['user_waiting_time_s']:.1f} s (<= 150: {'yes' if m['user_waiting_time_s'] <= 150 else 'NO'})",
            f"efficiency {m['parallel_efficiency']:.3f} (>= 0.9: {'yes' if m['parallel_efficiency'] >= 0.9 else 'NO'})",
            f"submission {m['submission_time_per_job_s'] * 1e3:.2f} ms/job (<= 5: "
            f"{'yes' if m['submission_time_per_job_s'] <= 0.005 else 'NO'})",
            f"worker RSS {m['worker_rss_mb']:.0f} MB (<= 375: {'yes' if m['worker_rss_mb'] <= 375 else 'NO'})",
            f"{m['images_per_s']:.0f} images/s",
        ]
        print(f"  {label:12s} " + "; ".join(checks))
    OUT.mkdir(exist_ok=True)
    (OUT / "production.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
