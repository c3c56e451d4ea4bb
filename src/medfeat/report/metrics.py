"""The seed production's metrics, computed from a run's ledger.

Definitions (per run, summed over its sessions when a run was resumed):

- backend: where the last session ran (``backends``: every one used by the run's sessions);
- submission time per job: client wall time spent handing jobs to the executor (the Dask
  scheduler, ``sbatch``, ``arcsub`` ...), per attempt;
- queue wait: per attempt, submitted -> started on a worker (a batch queue, or Dask's);
- summed running time: sum over attempts of (finished - started) on the workers;
- user waiting time: wall time of the ``medfeat run``/``resume`` sessions, from start (planning
  and staging included) to the feature table written: what the user waited;
- staging in / out: sum over attempts of bundle download+check+unpack / result upload;
- summed CPU time: sum over attempts of the CPU time of the thread that ran the job (compute and
  staging; a thread's, so jobs sharing a worker process are told apart);
- peak worker memory: the largest peak resident memory (RSS) of a worker process at the end of
  an attempt;
- parallel efficiency: summed running time / (workers x user waiting time);
- tail figures: p50 / p95 / max job time (running time of each job's committed attempt), the tail
  ratio (user waiting time / (summed running time / workers): 1 is a perfectly packed run, the
  excess is time spent waiting on the last jobs, idle workers or overheads), backups launched and
  won, attempts moved by the timeout, and the workers found slow.
"""
from __future__ import annotations

from pathlib import Path

from medfeat.production.ledger import Ledger

# (key, label, unit) in the order the table prints them.
METRICS = (
    ("backend", "backend", ""),
    ("submission_time_per_job_s", "average submission time per job", "s"),
    ("summed_running_time_s", "summed running time", "s"),
    ("user_waiting_time_s", "user real waiting time", "s"),
    ("planning_s", "planning and bundle staging (client)", "s"),
    ("queue_wait_s", "queue wait per attempt (mean, submitted -> started)", "s"),
    ("queue_wait_max_s", "queue wait, longest", "s"),
    ("staging_in_s", "staging in (workers, total)", "s"),
    ("staging_out_s", "staging out (workers, total)", "s"),
    ("summed_cpu_time_s", "summed CPU time (attempts' threads)", "s"),
    ("peak_rss_mb", "peak worker memory (RSS)", "MiB"),
    ("client_peak_rss_mb", "peak client memory (RSS, the medfeat run process)", "MiB"),
    ("jobs", "jobs", ""),
    ("committed_jobs", "jobs committed", ""),
    ("failed_jobs", "jobs failed", ""),
    ("attempts", "attempts", ""),
    ("images", "images", ""),
    ("failed_images", "failed images", ""),
    ("images_per_s", "images per second", "1/s"),
    ("workers", "workers", ""),
    ("parallel_efficiency", "parallel efficiency", ""),
    ("job_time_p50_s", "job time p50", "s"),
    ("job_time_p95_s", "job time p95", "s"),
    ("job_time_max_s", "job time max", "s"),
    ("tail_ratio", "tail ratio (waiting / (running / workers))", ""),
    ("backups_launched", "backups launched", ""),
    ("backups_won", "backups won", ""),
    ("timeouts", "attempts moved by the timeout", ""),
    ("slow_workers", "slow workers", ""),
    ("staging_retries", "staging retries (transient store failures)", ""),
)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) without importing numpy."""
    if not values:
        return 0.0
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def run_metrics(run_dir: str | Path) -> dict:
    """All metrics of the run in ``run_dir`` as a dict keyed as in :data:`METRICS`."""
    ledger = Ledger(run_dir, readonly=True)
    try:
        jobs = ledger.jobs()
        attempts = ledger.attempts()
        sessions = ledger.sessions()
        events = ledger.events()
    finally:
        ledger.close()
    by_id = {a["attempt_id"]: a for a in attempts}
    submitted = sum(s["submitted_jobs"] or 0 for s in sessions)
    waiting = sum((s["ended"] - s["started"]) for s in sessions if s["ended"])
    running = sum(a["finished"] - a["started"] for a in attempts if a["started"] and a["finished"])
    stage_in = sum(a["staged_in"] - a["started"] for a in attempts if a["started"] and a["staged_in"])
    stage_out = sum(a["staged_out"] - a["computed"] for a in attempts if a["computed"] and a["staged_out"])
    failed_images = 0
    for j in jobs:
        if j["state"] == "committed":
            failed_images += by_id[j["committed_attempt"]]["n_failed"] or 0
        elif j["state"] == "failed":
            failed_images += j["n_images"]
    images = sum(j["n_images"] for j in jobs)
    workers = max((s["workers"] or 0 for s in sessions), default=0)
    job_times = [by_id[j["committed_attempt"]]["finished"] - by_id[j["committed_attempt"]]["started"]
                 for j in jobs if j["state"] == "committed" and by_id[j["committed_attempt"]]["started"]]
    waits = [a["started"] - a["submitted"] for a in attempts if a["started"] and a["submitted"]]
    backends = [s["backend"] for s in sessions if s.get("backend")]
    slow = sorted({e["detail"].split(": ")[0] for e in events if e["kind"] == "slow-worker"})
    return {
        "backend": backends[-1] if backends else "",
        "backends": sorted(set(backends)),
        "queue_wait_s": sum(waits) / len(waits) if waits else 0.0,
        "queue_wait_max_s": max(waits, default=0.0),
        "submission_time_per_job_s": (sum(s["submission_s"] or 0 for s in sessions) / submitted) if submitted else 0.0,
        "summed_running_time_s": running,
        "user_waiting_time_s": waiting,
        "planning_s": sum(s["planning_s"] or 0 for s in sessions),
        "staging_in_s": stage_in,
        "staging_out_s": stage_out,
        "summed_cpu_time_s": sum(a.get("cpu_s") or 0.0 for a in attempts),
        "peak_rss_mb": max((a.get("rss_peak_mb") or 0.0 for a in attempts), default=0.0),
        "client_peak_rss_mb": max((s.get("client_rss_peak_mb") or 0.0 for s in sessions), default=0.0),
        "jobs": len(jobs),
        "committed_jobs": sum(1 for j in jobs if j["state"] == "committed"),
        "failed_jobs": sum(1 for j in jobs if j["state"] == "failed"),
        "attempts": len(attempts),
        "images": images,
        "failed_images": failed_images,
        "images_per_s": images / waiting if waiting else 0.0,
        "workers": workers,
        "parallel_efficiency": running / (workers * waiting) if workers and waiting else 0.0,
        "sessions": len(sessions),
        "job_time_p50_s": percentile(job_times, 50),
        "job_time_p95_s": percentile(job_times, 95),
        "job_time_max_s": max(job_times, default=0.0),
        "tail_ratio": waiting / (running / workers) if running and workers else 0.0,
        "backups_launched": sum(1 for a in attempts if a.get("role") == "backup"),
        "backups_won": sum(1 for a in attempts if a.get("role") == "backup" and a["outcome"] == "committed"),
        "timeouts": sum(1 for a in attempts if a["outcome"] == "timeout"),
        "slow_workers": slow,
        "staging_retries": sum(a.get("staging_retries") or 0 for a in attempts),
    }


def _read(run_dir) -> tuple[list[dict], list[dict]]:
    ledger = Ledger(run_dir, readonly=True)
    try:
        return ledger.attempts(), ledger.sessions()
    finally:
        ledger.close()


def attempt_rows(run_dir: str | Path) -> list[dict]:
    """Every attempt: job, role, outcome, host, worker, batch job id, queue wait and running time."""
    attempts, _ = _read(run_dir)
    return [{**{k: a.get(k) for k in ("job_id", "attempt_id", "role", "outcome", "host", "worker", "batch_id",
                                      "cpu_s", "rss_peak_mb")},
             "queue_wait_s": a["started"] - a["submitted"] if a["started"] and a["submitted"] else None,
             "running_s": a["finished"] - a["started"] if a["started"] and a["finished"] else None}
            for a in attempts]


def host_rows(run_dir: str | Path) -> list[dict]:
    """Per host: attempts, committed, lost or failed, mean queue wait, summed running time, peak RSS."""
    by: dict[str, dict] = {}
    for a in attempt_rows(run_dir):
        h = by.setdefault(a["host"] or "(never started)", {"host": a["host"] or "(never started)", "attempts": 0,
                                                           "committed": 0, "lost_or_failed": 0, "waits": [],
                                                           "running_s": 0.0, "peak_rss_mb": 0.0})
        h["peak_rss_mb"] = max(h["peak_rss_mb"], a["rss_peak_mb"] or 0.0)
        h["attempts"] += 1
        h["committed"] += a["outcome"] == "committed"
        h["lost_or_failed"] += a["outcome"] in ("lost", "error")
        if a["queue_wait_s"] is not None:
            h["waits"].append(a["queue_wait_s"])
        h["running_s"] += a["running_s"] or 0.0
    rows = []
    for h in by.values():
        waits = h.pop("waits")
        rows.append({**h, "queue_wait_s": sum(waits) / len(waits) if waits else 0.0})
    return sorted(rows, key=lambda r: r["host"])


def session_rows(run_dir: str | Path) -> list[dict]:
    """Per session: backend, its options (as recorded: no secrets), workers, waiting time."""
    _, sessions = _read(run_dir)
    return [{"session": s["session"], "backend": s.get("backend"), "options": s.get("backend_options") or "{}",
             "workers": s["workers"], "waiting_s": (s["ended"] - s["started"]) if s["ended"] else 0.0}
            for s in sessions]


def format_value(key: str, value) -> str:
    if key == "backend" and not value:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, float):
        if key == "submission_time_per_job_s":
            return f"{value * 1e3:.2f} ms"
        if key == "images_per_s":
            return f"{value:.1f} /s"
        if key.endswith("_mb"):
            return f"{value:.0f} MiB"
        if key.endswith("_s"):
            return f"{value:.2f} s"
        return f"{value:.3f}" if key in ("parallel_efficiency", "tail_ratio") else f"{value:.1f}"
    return str(value)


def run_table(metrics: dict, title: str = "medfeat run"):
    """A rich Table of the metrics (the run table `medfeat report` prints)."""
    from rich.table import Table

    t = Table("metric", "value", title=title)
    for key, label, _ in METRICS:
        t.add_row(label, format_value(key, metrics[key]))
    return t
