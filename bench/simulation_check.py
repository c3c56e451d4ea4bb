"""How well does `medfeat simulate` predict real runs on this machine? Prints the relative errors
of the predicted user waiting time (and parallel efficiency) for two checks:

1. **workers**: a real 1-worker run (`medfeat run --workers 1`) -> simulate 2 workers -> the real
   2-worker run on the same data;
2. **slow worker**: a clean 4-worker run -> simulate one 10x-slow worker out of 4, with and without
   the tail policy -> the real runs with one worker slowed the way `bench/tail.py` and
   `tests/test_faults.py` slow one (SIGSTOP 45 ms / SIGCONT 5 ms: running ~10% of the time).

    .venv/bin/python bench/simulation_check.py                  # 16 jobs x 10 images of 512x512
    .venv/bin/python bench/simulation_check.py --jobs 24 --images-per-job 10 --size 384

Predictions are the mean over ``--seeds`` simulation seeds (the bootstrap of 16 jobs varies from
seed to seed); seed 0 alone (what `medfeat simulate` prints by default) is shown too. Each run is
also replayed from its own ledger ("the run itself"): that error is the scheduling model's alone.
The real runs are repeated ``--repeat`` times, interleaved, and the median error is printed too;
each line shows the 1-minute load average before the run and the CPU share of its jobs (thread CPU
time / wall time: ~0.9 when a job has a core to itself), which say how much other processes on the
machine took. Two diagnostic lines (indented) are not predictions, as they borrow from the real
target run: the 1-worker job times scaled by the ratio of the two runs' CPU shares, and the slow
case simulated with the slowdown the slowed worker really had (its first job / the others' first
jobs). Also timed: a 1000-worker x 100,000-job simulation, with and without the tail policy.

On a 2-core machine the workers share the cores with each other, the Dask scheduler, the client and
whatever else runs there, which the model (separate machines, the measured job times as they are)
does not see: the 2-worker run's jobs get less CPU than the 1-worker run's, and a worker stopped 90%
of the time is far less than 10x slower than 4 workers sharing 2 cores (when it runs it gets a core
at once). The replays give the scheduling model's own error; the CPU shares show the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "simulation"
SETTINGS = "default-2d"
FAMILIES = ("stat", "ih", "glcm", "glrlm")


def make_data(n: int, size: int) -> Path:
    """``n`` random greyscale PGM / RGB PPM images (as tests/test_production.py's make_images)."""
    import numpy as np

    from medfeat.io.netpbm import write_netpbm

    folder = OUT / f"data-{n}x{size}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(42)
    for i in range(n):
        shape = (size, size, 3) if i % 3 == 0 else (size, size)
        write_netpbm(folder / f"img-{i:04d}.{'ppm' if i % 3 == 0 else 'pgm'}",
                     rng.integers(0, 256, size=shape, dtype=np.uint8))
    stamp.write_text("ok")
    return folder


def committed(run_dir: Path) -> list[dict]:
    from medfeat.production.ledger import Ledger

    led = Ledger(run_dir, readonly=True)
    try:
        return [a for a in led.attempts() if a["outcome"] == "committed"]
    finally:
        led.close()


def cpu_share(run_dir: Path, victim: str | None = None) -> float:
    """Thread CPU time / wall time of the committed attempts (not the slowed worker's)."""
    done = [a for a in committed(run_dir) if a["worker"] != victim]
    return sum(a["cpu_s"] or 0.0 for a in done) / sum(a["finished"] - a["started"] for a in done)


def effective_factor(run_dir: Path, victim: str) -> float | None:
    """How much slower the slowed worker really was: its first job / the others' first jobs (all
    pay the imports), as committed in the run."""
    first: dict = {}
    for a in sorted(committed(run_dir), key=lambda a: a["started"]):
        first.setdefault(a["worker"], a["finished"] - a["started"])
    others = [t for w, t in first.items() if w != victim]
    return first[victim] / (sum(others) / len(others)) if victim in first and others else None


def real(metrics: dict, run_dir: Path, load: float, victim: str | None = None) -> dict:
    return {**metrics, "cpu_share": cpu_share(run_dir, victim), "load": load, "victim": victim}


def cli_run(data: Path, run_dir: Path, workers: int, per_job: int) -> dict:
    from medfeat.report.metrics import run_metrics

    shutil.rmtree(run_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(data), "-o", str(run_dir), "--workers",
                        str(workers), "--images-per-job", str(per_job), "--settings", SETTINGS, "--families",
                        ",".join(FAMILIES), "--quiet"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"medfeat run failed:\n{r.stdout}\n{r.stderr}")
    return real(run_metrics(run_dir), run_dir, load)


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cluster_run(data: Path, run_dir: Path, workers: int, per_job: int, slow: bool, policy: bool) -> dict:
    """A run on an embedded LocalCluster (as bench/tail.py), one worker ~10x slow if ``slow``."""
    from distributed import Client, LocalCluster

    from medfeat.production.backends.local import WORKER_TTL
    from medfeat.production.dask_executor import DaskExecutor
    from medfeat.production.engine import Production
    from medfeat.production.options import PlanOptions, TailPolicy
    from medfeat.report.metrics import run_metrics
    from medfeat.report.simulation import NO_TAIL_POLICY

    shutil.rmtree(run_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50, scheduler_kwargs={"worker_ttl": WORKER_TTL})
    with Client(cluster) as c:
        pids = c.run(os.getpid)
    victim_addr, victim = sorted(pids.items())[0]
    stop = threading.Event()

    def duty_cycle():  # the mechanism of bench/tail.py and tests/test_faults.py: ~10% of the time running
        while not stop.is_set():
            _signal(victim, signal.SIGSTOP)
            time.sleep(0.045)
            _signal(victim, signal.SIGCONT)
            time.sleep(0.005)

    t = threading.Thread(target=duty_cycle, daemon=True) if slow else None
    try:
        prod = Production(run_dir, str(data), SETTINGS, FAMILIES, PlanOptions(images_per_job=per_job))
        if t:
            t.start()
        with Client(cluster) as client:
            prod.run(DaskExecutor(client, name="local"), TailPolicy(**({} if policy else NO_TAIL_POLICY)))
        return real(run_metrics(run_dir), run_dir, load, victim_addr if slow else None)
    finally:
        stop.set()
        if t:
            t.join()
        _signal(victim, signal.SIGCONT)
        cluster.close()


def predicted(measured, workers: int, seeds: int, **kw) -> dict:
    from medfeat.report.simulation import simulate

    runs = [simulate(measured, workers, seed=s, **kw) for s in range(seeds)]
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("user_waiting_time_s", "parallel_efficiency",
                                                             "backups_launched", "slow_workers_avoided")}
    return {**mean, "seed0_waiting_s": runs[0]["user_waiting_time_s"]}


def line(label: str, pred: dict, real: dict, source: dict | None = None) -> dict:
    err = pred["user_waiting_time_s"] / real["user_waiting_time_s"] - 1
    err0 = pred["seed0_waiting_s"] / real["user_waiting_time_s"] - 1
    eff_err = pred["parallel_efficiency"] - real["parallel_efficiency"]
    cpu = (f"CPU share {source['cpu_share']:.2f} -> {real['cpu_share']:.2f}, load {source['load']:.1f} -> "
           f"{real['load']:.1f}" if source is not None else f"CPU share {real['cpu_share']:.2f}, load {real['load']:.1f}")
    print(f"  {label:34s} predicted {pred['user_waiting_time_s']:6.2f} s  real {real['user_waiting_time_s']:6.2f} s  "
          f"error {err:+6.1%} (seed 0 {err0:+6.1%})  efficiency {pred['parallel_efficiency']:.2f} vs "
          f"{real['parallel_efficiency']:.2f}  backups {pred['backups_launched']:.1f} vs {real['backups_launched']}  "
          f"[{cpu}]", flush=True)
    return {"label": label, "predicted": pred, "real_waiting_s": real["user_waiting_time_s"],
            "real_efficiency": real["parallel_efficiency"], "real_backups": real["backups_launched"],
            "real_cpu_share": real["cpu_share"], "real_load": real["load"],
            "error": err, "error_seed0": err0, "efficiency_error": eff_err}


def one_round(data: Path, k: int, seeds: int, rep: int) -> list[dict]:
    from medfeat.production.options import TailPolicy
    from medfeat.report.simulation import NO_TAIL_POLICY, measure

    out = []
    d = OUT / f"rep{rep}"
    print(f"round {rep + 1}", flush=True)
    real1 = cli_run(data, d / "run-1w", 1, k)
    real2 = cli_run(data, d / "run-2w", 2, k)
    clean = cluster_run(data, d / "run-4w-clean", 4, k, slow=False, policy=True)
    slow_with = cluster_run(data, d / "run-4w-slow-with", 4, k, slow=True, policy=True)
    slow_without = cluster_run(data, d / "run-4w-slow-without", 4, k, slow=True, policy=False)

    print(" 1. workers: 2 workers predicted from a real 1-worker run (medfeat run, the CLI)")
    m1, m2 = measure(d / "run-1w"), measure(d / "run-2w")
    out.append(line("1 worker (the run itself)", predicted(m1, 1, seeds), real1))
    out.append(line("2 workers (the run itself)", predicted(m2, 2, seeds), real2))
    out.append(line("2 workers, from the 1-worker run", predicted(m1, 2, seeds), real2, real1))
    # diagnosis, not prediction: the 1-worker run's job times scaled to the CPU share the 2-worker run got
    f = real1["cpu_share"] / real2["cpu_share"]
    m1c = replace(m1, job_times=[t * f for t in m1.job_times], warmup_run_s=m1.warmup_run_s * f)
    out.append(line(f"  same, job times x {f:.2f} (CPU)", predicted(m1c, 2, seeds), real2, real1))
    print(" 2. slow worker: one 10x-slow worker of 4 predicted from a clean 4-worker run (LocalCluster)")
    mc = measure(d / "run-4w-clean")
    out.append(line("4 clean workers (the run itself)", predicted(mc, 4, seeds), clean))
    slow_kw = {"slow_share": 0.25, "slow_factor": 10.0}
    out.append(line("1 slow of 4, with the tail policy", predicted(mc, 4, seeds, **slow_kw), slow_with, clean))
    out.append(line("1 slow of 4, without it", predicted(mc, 4, seeds, tail=TailPolicy(**NO_TAIL_POLICY), **slow_kw),
                    slow_without, clean))
    # diagnosis: the factor by which the slowed worker really ran slower than the others here
    f = effective_factor(d / "run-4w-slow-without", slow_without["victim"]) or 10.0
    eff_kw = {"slow_share": 0.25, "slow_factor": f}
    out.append(line(f"  with, its real factor {f:.1f}", predicted(mc, 4, seeds, **eff_kw), slow_with, clean))
    out.append(line(f"  without, its real factor {f:.1f}", predicted(mc, 4, seeds, tail=TailPolicy(**NO_TAIL_POLICY),
                                                                      **eff_kw), slow_without, clean))
    print(f"    real: slow workers named with the tail policy {slow_with['slow_workers'] or '-'}, "
          f"without {slow_without['slow_workers'] or '-'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--images-per-job", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from medfeat.report.simulation import measure, predict

    k = args.images_per_job
    data = make_data(args.jobs * k, args.size)
    print(f"simulation check: {args.jobs} jobs x {k} images of {args.size}x{args.size} on {os.cpu_count()} cores, "
          f"{args.repeat} round(s)", flush=True)
    rounds = [one_round(data, k, args.seeds, rep) for rep in range(args.repeat)]
    print(f"median error of the predicted waiting time over {len(rounds)} round(s) (each round's errors above):")
    for i, first in enumerate(rounds[0]):
        errs = sorted(r[i]["error"] for r in rounds)
        med = statistics.median(errs)
        label = re.sub(r"\d+\.\d+", "f", first["label"])  # the factors differ from round to round
        print(f"  {label:34s} {med:+6.1%}   (rounds: {', '.join(f'{e:+.1%}' for e in errs)})")

    print("3. speed: 1000 workers x 100,000 jobs from the last clean run, with and without the tail policy", flush=True)
    mc = measure(OUT / f"rep{args.repeat - 1}" / "run-4w-clean")
    t0 = time.perf_counter()
    row = predict(mc, [1000], jobs=100_000, slow_share=0.05, fail_rate=0.01)[0]
    took = time.perf_counter() - t0
    print(f"  {took:.1f} s for both simulations; predicted waiting {row['user_waiting_time_s']:.0f} s "
          f"(no tail policy {row['user_waiting_time_s_no_tail_policy']:.0f} s), backups {row['backups_launched']}, "
          f"workers avoided {row['slow_workers_avoided']} ({row['slow_workers']} slow)"
          + (" -- every worker struck twice by the slow-worker rule, so the driver uses them all again"
             if row["slow_workers_avoided"] == 1000 else ""))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "simulation_check.json").write_text(json.dumps({"rounds": rounds, "speed_s": took, "args": vars(args)},
                                                          indent=1, default=str))
    print(f"written: {OUT / 'simulation_check.json'}")


if __name__ == "__main__":
    main()
