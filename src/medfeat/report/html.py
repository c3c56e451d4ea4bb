"""One self-contained HTML page per run: ``medfeat report RUN --html`` and the end of ``medfeat run``.

The page needs no network and runs no script: styles are inline, figures are inline SVG drawn by
matplotlib (see :mod:`medfeat.report.figures` for why), and every string that comes from the
ledger or a file name is HTML-escaped. It shows, in order:

- the run table: the seed's three figures (average submission time per job, summed running time,
  user real waiting time), then the rest of :data:`medfeat.report.metrics.METRICS`;
- a Gantt chart of every attempt that started, per worker, coloured by outcome, with its
  stage-in / compute / stage-out phases;
- the job-time histogram and CDF (p50 / p95 / max), throughput over time, queue wait against
  running time per attempt;
- a table per worker (attempts, jobs committed, mean job time, slow flag, peak RSS), the sessions;
- the failed images with their reasons (the first :data:`MAX_ERRORS` of ``errors.csv``).

For programs (and tests), the page carries its data: ``<script type="application/json"
id="medfeat-data">`` holds ``{"metrics": <run_metrics, as `medfeat report --json` prints it>,
"attempts": [...], "origin": <epoch s of the first submission>}`` (JSON, never executed), and each
Gantt bar is an SVG group ``id="attempt-<attempt id>"``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from html import escape
from pathlib import Path

from medfeat.production.ledger import Ledger
from medfeat.report import figures
from medfeat.report.metrics import METRICS, format_value, run_metrics, session_rows

REPORT_NAME = "report.html"
MAX_ERRORS = 200
SEED_METRICS = ("submission_time_per_job_s", "summed_running_time_s", "user_waiting_time_s")
ATTEMPT_FIELDS = ("job_id", "attempt_id", "role", "outcome", "worker", "host", "batch_id", "submitted", "started",
                  "staged_in", "computed", "staged_out", "finished", "n_images", "n_failed", "cpu_s", "rss_peak_mb",
                  "error")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:1.5em auto;
max-width:1100px;padding:0 1em;color:#222;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.seed td{font-weight:600;background:#f3faf7}.muted{color:#666;font-size:.9em}
svg.figure{width:100%;height:auto;display:block;margin:.5em 0}
td.err{font-family:monospace;font-size:.85em;word-break:break-all}
.slow{color:#b00;font-weight:600}code{font-size:.9em}
"""


def _esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(t) -> str:
    if not t:
        return "-"
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(head: list[str], rows: list[list], numeric: set[int] = frozenset(), row_class=None,
           cell_class: dict[int, str] | None = None) -> str:
    cell_class = {**{j: "num" for j in numeric}, **(cell_class or {})}
    out = ["<table><thead><tr>", *(f"<th>{_esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cls = row_class(i) if row_class else None
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for j, v in enumerate(r):
            out.append(f'<td class="{cell_class[j]}">{_esc(v)}</td>' if j in cell_class else f"<td>{_esc(v)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def read_errors(run_dir: Path, limit: int = MAX_ERRORS) -> tuple[list[dict], int]:
    """The failed images (image, job, error): the first ``limit`` and how many there are in all,
    from ``errors.csv`` (or, without it, the ``error`` column of ``features.parquet``)."""
    path = run_dir / "errors.csv"
    rows: list[dict] = []
    total = 0
    if path.exists():
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for r in csv.DictReader(fh):
                total += 1
                if len(rows) < limit:
                    rows.append({"image": r.get("image", ""), "job": r.get("job", ""), "error": r.get("error", "")})
        return rows, total
    feats = run_dir / "features.parquet"
    if feats.exists():
        import pyarrow.parquet as pq

        names = pq.read_schema(feats).names
        cols = [c for c in ("image", "job", "error") if c in names]
        if "error" in cols:
            for r in pq.read_table(feats, columns=cols).to_pylist():
                if r.get("error"):
                    total += 1
                    if len(rows) < limit:
                        rows.append({"image": r.get("image", ""), "job": r.get("job", ""), "error": r["error"]})
    return rows, total


def worker_rows(attempts: list[dict], slow: set[str], end_fallback: float) -> list[dict]:
    """Per worker (as the Gantt labels it): attempts, jobs committed, mean job time of its
    committed attempts, whether the run found it slow, peak RSS. Attempts that never started
    make a last row ``(never started)``."""
    by: dict[str, dict] = {}
    for a in attempts:
        key = figures.worker_label(a) if a.get("started") else "(never started)"
        w = by.setdefault(key, {"worker": key, "host": a.get("host") or "", "attempts": 0, "committed": 0,
                                "times": [], "slow": False, "peak_rss_mb": 0.0, "failed": 0})
        w["attempts"] += 1
        w["slow"] = w["slow"] or (a.get("worker") in slow)
        w["peak_rss_mb"] = max(w["peak_rss_mb"], a.get("rss_peak_mb") or 0.0)
        w["failed"] += a.get("outcome") in ("error", "lost", "timeout")
        if a.get("outcome") == "committed" and a.get("started"):
            w["committed"] += 1
            w["times"].append((a.get("finished") or end_fallback) - a["started"])
    rows = []
    for w in by.values():
        times = w.pop("times")
        rows.append({**w, "mean_job_s": sum(times) / len(times) if times else None})
    return sorted(rows, key=lambda r: (r["worker"] == "(never started)", r["worker"]))


def _figure_block(title: str, caption: str, svg: str | None) -> str:
    body = svg if svg else '<p class="muted">nothing to draw yet.</p>'
    return f"<h2>{_esc(title)}</h2><p class=\"muted\">{_esc(caption)}</p>{body}"


def render_html(run_dir: str | Path) -> str:
    """The report page of the run in ``run_dir`` as one HTML string."""
    from medfeat import __version__

    run_dir = Path(run_dir)
    metrics = run_metrics(run_dir)
    ledger = Ledger(run_dir, readonly=True)
    try:
        info = ledger.run_info() or {}
        jobs = ledger.jobs()
        attempts = ledger.attempts()
        sessions = ledger.sessions()
        events = ledger.events()
    finally:
        ledger.close()
    stamps = [a.get(k) for a in attempts for k in ("submitted", "started", "staged_in", "computed", "staged_out",
                                                   "finished")]
    stamps += [s.get("ended") or s.get("started") for s in sessions] + [e.get("at") for e in events]
    end_fallback = max((t for t in stamps if t), default=0.0)
    slow = {e["detail"].split(": ")[0] for e in events if e["kind"] == "slow-worker"}
    by_id = {a["attempt_id"]: a for a in attempts}
    job_times = [by_id[j["committed_attempt"]]["finished"] - by_id[j["committed_attempt"]]["started"]
                 for j in jobs if j["state"] == "committed" and j["committed_attempt"] in by_id
                 and by_id[j["committed_attempt"]]["started"] and by_id[j["committed_attempt"]]["finished"]]
    t0 = figures.origin(attempts)

    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>medfeat run {_esc(run_dir.name)}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>medfeat run <code>{_esc(run_dir)}</code></h1>")
    families = info.get("families")
    try:
        families = ", ".join(json.loads(families)) if families else ""
    except (TypeError, ValueError):
        pass
    parts.append("<p class=\"muted\">" + " &middot; ".join(
        f"{_esc(k)}: {_esc(v)}" for k, v in (
            ("dataset", info.get("dataset")), ("families", families or "-"),
            ("planned", _when(info.get("created"))), ("planned with medfeat", info.get("medfeat_version")),
            ("report by medfeat", __version__), ("stage", info.get("stage_url"))) if v) + "</p>")

    # the run table: the seed's three figures first, then the rest
    order = [m for k in SEED_METRICS for m in METRICS if m[0] == k] + [m for m in METRICS if m[0] not in SEED_METRICS]
    parts.append("<h2>Run table</h2>")
    parts.append(_table(["metric", "value"], [[label, format_value(key, metrics[key])] for key, label, _ in order],
                        numeric={1}, row_class=lambda i: "seed" if i < len(SEED_METRICS) else None))

    started = sum(1 for a in attempts if a.get("started"))
    parts.append(_figure_block(
        "Attempts per worker (Gantt)",
        f"{started} attempts that started, one bar each, on the worker that ran it; colour: outcome; inside a bar: "
        "stage-in (lighter), compute, stage-out (darker). x: seconds since the run's first submission.",
        figures.gantt(attempts, end_fallback)))
    parts.append(_figure_block(
        "Job times",
        f"{len(job_times)} committed jobs: running time of each job's committed attempt; p50 "
        f"{metrics['job_time_p50_s']:.2f} s, p95 {metrics['job_time_p95_s']:.2f} s, max {metrics['job_time_max_s']:.2f} s.",
        figures.job_times(job_times, metrics["job_time_p50_s"], metrics["job_time_p95_s"], metrics["job_time_max_s"])))
    parts.append(_figure_block(
        "Throughput",
        "Images per second (each committed attempt's images counted when it finished) and images done over time.",
        figures.throughput(attempts)))
    parts.append(_figure_block(
        "Queue wait against running time",
        "Per attempt that started: submitted -> started (a batch queue, or Dask's) against started -> finished.",
        figures.queue_vs_running(attempts, end_fallback)))

    parts.append("<h2>Workers</h2>")
    wrows = worker_rows(attempts, slow, end_fallback)
    parts.append(_table(
        ["worker", "host", "attempts", "jobs committed", "lost / failed / timed out", "mean job time", "slow",
         "peak RSS"],
        [[w["worker"], w["host"] or "-", w["attempts"], w["committed"], w["failed"],
          f"{w['mean_job_s']:.2f} s" if w["mean_job_s"] is not None else "-", "slow" if w["slow"] else "",
          f"{w['peak_rss_mb']:.0f} MiB" if w["peak_rss_mb"] else "-"] for w in wrows],
        numeric={2, 3, 4, 5, 7}))
    if slow:
        parts.append(f"<p class=\"slow\">slow workers (no new jobs went to them): {_esc(', '.join(sorted(slow)))}</p>")

    parts.append("<h2>Sessions</h2>")
    parts.append(_table(["session", "started", "backend", "options", "workers", "waiting"],
                        [[r["session"], _when(s.get("started")), r["backend"] or "-", r["options"], r["workers"] or 0,
                          f"{r['waiting_s']:.1f} s"] for r, s in zip(session_rows(run_dir), sessions)],
                        numeric={4, 5}))

    errors, n_errors = read_errors(run_dir)
    parts.append(f"<h2>Failed images ({n_errors})</h2>")
    if n_errors:
        if n_errors > len(errors):
            parts.append(f"<p class=\"muted\">the first {len(errors)} of {n_errors}; all of them are in "
                         f"<code>{_esc(run_dir / 'errors.csv')}</code>.</p>")
        parts.append(_table(["image", "job", "reason"], [[r["image"], r["job"], r["error"]] for r in errors],
                            cell_class={0: "err", 2: "err"}))
    else:
        parts.append("<p class=\"muted\">none.</p>")

    data = {"metrics": metrics, "origin": t0, "attempts": [{k: a.get(k) for k in ATTEMPT_FIELDS} for a in attempts],
            "failed_images": n_errors}
    # JSON in a non-executed script element: "<" escaped so no "</script>" can end it early
    payload = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts.append(f'<script type="application/json" id="medfeat-data">{payload}</script>')
    parts.append(f"<p class=\"muted\">written by medfeat {_esc(__version__)} at "
                 f"{_esc(_when(_dt.datetime.now(_dt.timezone.utc).timestamp()))}</p></body></html>\n")
    return "".join(parts)


def write_html_report(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the run's report page to ``out_path`` (default ``RUN/report.html``), atomically;
    returns its path."""
    run_dir = Path(run_dir)
    out = Path(out_path) if out_path is not None else run_dir / REPORT_NAME
    text = render_html(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
