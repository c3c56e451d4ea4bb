"""The seed-shaped production on this machine (89 jobs x 250 RGB PPM images of 256x256), as a
`medfeat study`: one run per worker count, every run an ordinary `medfeat run` (planning, the
embedded cluster's start-up, the feature table and report included), checked against issue 14's
targets in the same run:

* waiting time <= 1.25 x the ideal, the ideal being the single-process time per image (file read
  included: ``medfeat.extract(path, families=("gift",))`` in this process, after a warm-up, on
  every 20th image of the dataset, the faster of two passes) x images / workers, measured in the same run, before
  and after the study (the mean: the host's speed drifts);
* parallel efficiency (summed running time / (workers x waiting time)) >= 0.95;
* client peak RSS (the ``medfeat run`` process, from the ledger) <= 500 MB;
* the run folder after the run no bigger than features.parquet + ledger (+ errors.csv and
  report.html): bundles and results deleted;
* and, on a small dataset (8 jobs x 25 images), every 2D family plus gift: worker peak RSS <= 375 MB.

    .venv/bin/python bench/production.py                                  # 89 x 250, 2 workers
    .venv/bin/python bench/production.py --workers 1,2                     # a scaling study
    .venv/bin/python bench/production.py --jobs 8 --images-per-job 25      # a quick look

The datasets are generated once into bench/out/ and reused; each study goes to
bench/out/study-<families>-<jobs>x<images>/ (study.parquet, study.html), and a finished point is
not run again (delete the folder, or pass --fresh, to measure again).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


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


def ideal_ms_per_image(data: Path, every: int = 20, warmup: int = 20) -> tuple[float, int]:
    """Single-process milliseconds per image (read + gift features), on every ``every``-th image."""
    import medfeat
    from medfeat.production.plan import discover

    items = [it.image for it in discover(str(data))]
    sample = items[::every]
    for path in items[1:1 + warmup]:
        medfeat.extract(path, None, "default-2d", families=("gift",))
    best = math.inf
    for _ in range(2):  # the first pass may read from disk; the production reads from the page cache
        t0 = time.perf_counter()
        for path in sample:
            medfeat.extract(path, None, "default-2d", families=("gift",))
        best = min(best, time.perf_counter() - t0)
    return best / len(sample) * 1e3, len(items)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def study(data: Path, label: str, families: str, workers: str, per_job: int, repeat: int, fresh: bool) -> Path:
    out = OUT / f"study-{label}-{data.name.removeprefix('dataset-')}"
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "medfeat", "study", str(data), "-o", str(out), "--workers", workers,
                    "--images-per-job", str(per_job), "--repeat", str(repeat), "--settings", "default-2d",
                    "--families", families], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=89)
    ap.add_argument("--images-per-job", type=int, default=250)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", default=str(os.cpu_count() or 2), help="worker counts, e.g. 1,2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="measure again (delete earlier study folders)")
    args = ap.parse_args()
    import pyarrow.parquet as pq

    from medfeat.settings import Settings

    data = dataset(args.jobs, args.images_per_job, args.size)
    before, n_images = ideal_ms_per_image(data)
    gift_dir = study(data, "gift", "gift", args.workers, args.images_per_job, args.repeat, args.fresh)
    after, _ = ideal_ms_per_image(data)  # this machine's speed drifts (shared host): measured on both sides
    ms = (before + after) / 2
    print(f"single process: {ms:.2f} ms per image (read + gift; {before:.2f} before the study, {after:.2f} after), "
          f"{n_images} images")
    small = dataset(8, 25, args.size)
    all_2d = ",".join(tuple(Settings.preset("default-2d").families) + ("gift",))
    all_dir = study(small, "all-2d", all_2d, args.workers, 25, 1, args.fresh)
    results = {"ideal_ms_per_image": ms, "ideal_ms_before": before, "ideal_ms_after": after, "gift": pq.read_table(gift_dir / "study.parquet").to_pylist(),
               "all-2d": pq.read_table(all_dir / "study.parquet").to_pylist()}

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("\ntargets (issue 14), seed-shaped gift production:")
    for m in results["gift"]:
        ideal = ms / 1e3 * m["images"] / m["workers"]
        run_dir = gift_dir / "runs" / m["run"]
        kept = sum((run_dir / f).stat().st_size for f in ("features.parquet", "ledger.sqlite", "errors.csv",
                                                          "report.html") if (run_dir / f).exists())
        total = folder_bytes(run_dir)
        m.update(ideal_s=ideal, waiting_over_ideal=m["user_waiting_time_s"] / ideal, run_folder_bytes=total,
                 table_and_ledger_bytes=kept)
        print(f"  {m['run']}: waiting {m['user_waiting_time_s']:.1f} s, ideal {ideal:.1f} s -> "
              f"{m['waiting_over_ideal']:.2f}x (<= 1.25: {verdict(m['waiting_over_ideal'] <= 1.25)}); "
              f"efficiency {m['parallel_efficiency']:.3f} (>= 0.95: {verdict(m['parallel_efficiency'] >= 0.95)}); "
              f"client peak RSS {m['client_peak_rss_mb']:.0f} MiB (<= 500 MB: "
              f"{verdict(m['client_peak_rss_mb'] * 1.048576 <= 500)}); run folder {total / 2**20:.1f} MiB, "
              f"table+ledger+errors+report {kept / 2**20:.1f} MiB ({verdict(total <= kept * 1.01 + 65536)}); "
              f"planning+bundling {m['planning_s']:.1f} s, staging in {m['staging_in_s']:.1f} s, "
              f"out {m['staging_out_s']:.1f} s, job p50 {m['job_time_p50_s']:.2f} s p95 {m['job_time_p95_s']:.2f} s")
    print("every 2D family + gift (8 x 25 images):")
    for m in results["all-2d"]:
        print(f"  {m['run']}: worker peak RSS {m['peak_rss_mb']:.0f} MiB (<= 375 MB: "
              f"{verdict(m['peak_rss_mb'] * 1.048576 <= 375)})")
    (OUT / "production.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
