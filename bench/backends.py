"""The same production on every backend that runs here, as the seed production's table.

16 jobs x 50 RGB PPM images of 256x256 (``medfeat make-dataset``), the ``gift`` family (the seed's
MedGIFT features), run once per backend with the same engine, ledger and tail policy. Printed as
the original's table: one column per backend; rows: average submission time per job, summed
running time, user real waiting time, plus mean queue wait and parallel efficiency. Results go to
``bench/out/backends.json``.

    .venv/bin/python bench/backends.py                      # every backend whose system answers
    .venv/bin/python bench/backends.py --only local,slurm-jobs --jobs 4 --images-per-job 10

The systems come from ``../shared/scripts/*-up.sh`` (as root): a backend whose system does not
answer is listed as not run, with the reason. Jobs mode pays a Python start and medfeat's imports
per job (there is no long-lived worker): its efficiency here is the price of needing no connection
back to the client. ARC runs every job through the CE's fork LRMS and data staging.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
STATE = Path(os.environ.get("BE_STATE_DIR", "/tmp/medfeat-backends"))
ROWS = (("submission_time_per_job_s", "average submission time per job", lambda v: f"{v * 1e3:.1f} ms"),
        ("summed_running_time_s", "summed running time", lambda v: f"{v:.1f} s"),
        ("user_waiting_time_s", "user real waiting time", lambda v: f"{v:.1f} s"),
        ("queue_wait_s", "queue wait per attempt (mean)", lambda v: f"{v:.2f} s"),
        ("parallel_efficiency", "parallel efficiency", lambda v: f"{v:.2f}"),
        ("workers", "workers", str),
        ("attempts", "attempts", str))


def _answers(cmd: list[str], env: dict | None = None) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    return None if r.returncode == 0 else f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()[:120]}"


def _port_open(port: int) -> str | None:
    with socket.socket() as s:
        s.settimeout(1)
        return None if s.connect_ex(("127.0.0.1", port)) == 0 else f"nothing listens on 127.0.0.1:{port}"


def backends(workers: int, env_archive: Path | None) -> dict[str, tuple]:
    """name -> (BackendSpec args, environment changes, probe)."""
    pbs_path = f"{STATE / 'slurm' / 'pbs-bin'}:{os.environ['PATH']}"
    sge = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
    key = STATE / "sshd" / "id_ed25519"
    arc = {"X509_USER_CERT": str(STATE / "arc" / "client-betest-cert.pem"),
           "X509_USER_KEY": str(STATE / "arc" / "client-betest-key.pem"),
           "X509_USER_PROXY": str(STATE / "arc" / "proxy.pem")}
    loop = {"scheduler_host": "127.0.0.1"}
    return {
        "local": (dict(name="local", workers=workers), {}, lambda: None),
        "ssh": (dict(name="ssh", workers=workers, options={"hosts": ["127.0.0.1"], "ssh_port": 2222, "ssh_user": "root",
                                                           "ssh_key": str(key),
                                                           "known_hosts": str(STATE / "sshd" / "known_hosts")}),
                {}, lambda: _port_open(2222)),
        "slurm-workers": (dict(name="slurm", workers=workers, options={"queue": "debug", **loop}), {},
                          lambda: _answers(["sinfo", "-h"])),
        "slurm-jobs": (dict(name="slurm", mode="jobs", workers=2 * workers, options={"queue": "debug"}), {},
                       lambda: _answers(["sinfo", "-h"])),
        "pbs-workers": (dict(name="pbs", workers=workers, options={"queue": "debug", **loop}), {"PATH": pbs_path},
                        lambda: _answers(["sinfo", "-h"])),
        "pbs-jobs": (dict(name="pbs", mode="jobs", workers=2 * workers, options={"queue": "debug"}),
                     {"PATH": pbs_path}, lambda: _answers(["sinfo", "-h"])),
        "sge-workers": (dict(name="sge", workers=workers, options={"queue": "all.q", **loop}), sge,
                        lambda: _answers(["qstat"], {**os.environ, **sge})),
        "sge-jobs": (dict(name="sge", mode="jobs", workers=2 * workers, options={"queue": "all.q"}), sge,
                     lambda: _answers(["qstat"], {**os.environ, **sge})),
        "arc": (dict(name="arc", mode="jobs", workers=4 * workers,
                     options={"ce": "vm", **({"env": str(env_archive)} if env_archive else {})}), arc,
                lambda: (None if env_archive else "no packed environment (ARC jobs run as nobody)")
                or _port_open(443)),
    }


def run_one(label: str, data: Path, per_job: int, spec_args: dict, env: dict) -> dict:
    from medfeat.production.engine import Production
    from medfeat.production.options import BackendSpec, PlanOptions, TailPolicy
    from medfeat.report.metrics import run_metrics

    run_dir = OUT / f"backend-{label}"
    shutil.rmtree(run_dir, ignore_errors=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        prod = Production(run_dir, str(data), "default-2d", ("gift",), PlanOptions(images_per_job=per_job))
        t0 = time.time()
        prod.run(BackendSpec(**spec_args), TailPolicy())
        took = time.time() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    m = run_metrics(run_dir)
    m["wall_s"] = took
    print(f"  {label:14s} waiting {m['user_waiting_time_s']:6.1f} s  running {m['summed_running_time_s']:6.1f} s  "
          f"submission {m['submission_time_per_job_s'] * 1e3:6.1f} ms/job  queue {m['queue_wait_s']:5.2f} s  "
          f"efficiency {m['parallel_efficiency']:.2f}  failed images {m['failed_images']}", flush=True)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--images-per-job", type=int, default=50)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", default="", help="comma-separated backend labels")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from production import dataset

    data = dataset(args.jobs, args.images_per_job, 256)
    os.chdir(OUT)  # Slurm's PBS wrappers write worker jobs' output where qsub runs, whatever "#PBS -o" says
    env_archive = OUT / "medfeat-env.tar"
    try:
        from medfeat.production.environment import pack_env

        if not env_archive.exists():
            t0 = time.time()
            info = pack_env(env_archive)
            print(f"packed worker environment in {time.time() - t0:.0f} s: {info['size'] / 1e6:.0f} MB")
    except Exception as exc:  # ARC then reports why it did not run
        print(f"no packed environment ({type(exc).__name__}: {exc})")
        env_archive = None
    table = backends(args.workers, env_archive)
    only = [s for s in args.only.split(",") if s] or list(table)
    results, skipped = {}, {}
    for label in only:
        spec_args, env, probe = table[label]
        why = probe()
        if why:
            skipped[label] = why
            print(f"  {label:14s} not run: {why}")
            continue
        try:
            results[label] = run_one(label, data, args.images_per_job, spec_args, env)
        except Exception as exc:
            skipped[label] = f"{type(exc).__name__}: {exc}"
            print(f"  {label:14s} failed: {skipped[label]}")
    OUT.mkdir(exist_ok=True)
    (OUT / "backends.json").write_text(json.dumps({"jobs": args.jobs, "images_per_job": args.images_per_job,
                                                   "results": results, "not_run": skipped}, indent=1, default=str))
    labels = list(results)
    width = max(len(r[1]) for r in ROWS)
    cells = {lb: [fmt(results[lb][key]) for key, _, fmt in ROWS] for lb in labels}
    w = {lb: max([len(lb)] + [len(c) for c in cells[lb]]) for lb in labels}
    print(f"\n{args.jobs} jobs x {args.images_per_job} images (gift), {args.workers} workers\n")
    print(f"| {'':{width}s} | " + " | ".join(f"{lb:>{w[lb]}s}" for lb in labels) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (w[lb] + 2) for lb in labels) + "|")
    for i, (key, name, fmt) in enumerate(ROWS):
        print(f"| {name:{width}s} | " + " | ".join(f"{cells[lb][i]:>{w[lb]}s}" for lb in labels) + " |")
    for label, why in skipped.items():
        print(f"not run: {label}: {why}")


if __name__ == "__main__":
    main()
