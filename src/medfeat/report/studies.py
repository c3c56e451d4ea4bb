"""What a performance study found, and the seed's comparison table for any set of runs.

A study (:mod:`medfeat.production.study`) leaves one run folder per grid point. This module reads
each run's metrics (:func:`medfeat.report.metrics.run_metrics`, the keys of ``medfeat report
--json``) into one table, one row per run, and adds:

- ``speedup``: the mean user waiting time of the runs with the fewest workers (same images per
  job) divided by this run's waiting time;
- ``efficiency``: ``speedup x base_workers / workers`` (1 is perfect scaling against that base);
- the **serial fraction** ``s`` of Amdahl's law, ``T(W) = T1 (s + (1 - s) / W)``, fitted by least
  squares on the mean waiting times against workers (linear in ``1/W``: ``T = a + b/W``,
  ``s = a / (a + b)``); with one worker count there is nothing to fit.

``study.parquet`` holds the table; ``study.html`` shows waiting time, speedup and efficiency against
workers (the spread over repeats as error bars), the stacked phase times per configuration, the
Amdahl fit, and the seed's table: one column per configuration, rows "average submission time per
job", "summed running time" and "user real waiting time" -- the three figures the 2009 production
reported for each of its ten resources. Figures are matplotlib SVG inlined in the page: readable
offline, no JavaScript, no network.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Iterable

from medfeat.report.figures import new_figure, to_svg
from medfeat.report.metrics import format_value, run_metrics

# The seed's three figures, in its order.
SEED_ROWS = (("submission_time_per_job_s", "average submission time per job"),
             ("summed_running_time_s", "summed running time"),
             ("user_waiting_time_s", "user real waiting time"))
# Where the user's waiting time went (stacked bars), from the run metrics.
PHASES = (("planning_s", "planning and bundling (client)"), ("queue", "queue wait"),
          ("staging_in_s", "stage-in"), ("compute", "compute"), ("staging_out_s", "stage-out"),
          ("other", "start-up, output and idle"))


def study_rows(points: Iterable[tuple[object, Path]]) -> list[dict]:
    """One row per run: the point's parameters, its metrics, ``speedup`` and ``efficiency``."""
    rows = []
    for point, run_dir in points:
        try:
            m = run_metrics(run_dir)
        except Exception:  # a point whose run never started has no ledger: nothing to report
            continue
        if not m["jobs"]:
            continue
        row = {"run": Path(run_dir).name, "workers_requested": getattr(point, "workers", None),
               "images_per_job": getattr(point, "images_per_job", None), "repeat": getattr(point, "repeat", None)}
        row.update({k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in m.items()})
        rows.append(row)
    for ipj in {r["images_per_job"] for r in rows}:
        group = [r for r in rows if r["images_per_job"] == ipj]
        base_w = min(r["workers_requested"] for r in group)
        base = [r["user_waiting_time_s"] for r in group if r["workers_requested"] == base_w]
        base_t = sum(base) / len(base)
        for r in group:
            r["speedup"] = base_t / r["user_waiting_time_s"] if r["user_waiting_time_s"] else 0.0
            r["efficiency"] = r["speedup"] * base_w / r["workers_requested"]
            r["base_workers"] = base_w
    return sorted(rows, key=lambda r: (r["images_per_job"], r["workers_requested"], r["repeat"]))


def _mean_by_workers(rows: list[dict], key: str) -> dict[int, tuple[float, float, float]]:
    """workers -> (mean, min, max) of ``key`` over the repeats."""
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["workers_requested"], []).append(float(r[key]))
    return {w: (sum(v) / len(v), min(v), max(v)) for w, v in sorted(out.items())}


def amdahl_fit(workers: list[float], times: list[float]) -> dict | None:
    """Least-squares fit of ``T(W) = a + b / W``; returns ``serial_fraction`` ``a / (a + b)``,
    ``t1`` ``a + b`` (the fitted 1-worker time), ``a``, ``b`` and the fit's ``rms_s``. None with
    fewer than two distinct worker counts."""
    pts = sorted(zip(workers, times))
    if len({w for w, _ in pts}) < 2:
        return None
    xs, ys = [1.0 / w for w, _ in pts], [t for _, t in pts]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    rms = math.sqrt(sum((a + b * x - y) ** 2 for x, y in zip(xs, ys)) / n)
    t1 = a + b
    s = a / t1 if t1 else float("nan")
    # outside [0, 1] the runs do not follow the law: time grows with workers (start-up, contention)
    note = "" if 0.0 <= s <= 1.0 else "outside [0, 1]: waiting time does not fall as Amdahl's law has it"
    return {"a": a, "b": b, "t1": t1, "serial_fraction": s, "rms_s": rms, "note": note}


def study_summary(rows: list[dict]) -> list[dict]:
    """Per images-per-job group: the Amdahl fit on the mean waiting times."""
    out = []
    for ipj in sorted({r["images_per_job"] for r in rows}):
        group = [r for r in rows if r["images_per_job"] == ipj]
        means = _mean_by_workers(group, "user_waiting_time_s")
        fit = amdahl_fit(list(means), [m[0] for m in means.values()])
        out.append({"images_per_job": ipj, "runs": len(group), "amdahl": fit})
    return out


def write_study_table(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows])
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


# ----------------------------------------------------------------------------- pages
def _scaling_figure(rows: list[dict], summary: list[dict]) -> str:
    fig = new_figure(11, 3.2)
    axes = fig.subplots(1, 3)
    for ipj in sorted({r["images_per_job"] for r in rows}):
        group = [r for r in rows if r["images_per_job"] == ipj]
        for ax, key, label in zip(axes, ("user_waiting_time_s", "speedup", "efficiency"),
                                  ("user real waiting time (s)", "speedup", "parallel efficiency")):
            stats = _mean_by_workers(group, key)
            ws = list(stats)
            mean = [stats[w][0] for w in ws]
            err = [[stats[w][0] - stats[w][1] for w in ws], [stats[w][2] - stats[w][0] for w in ws]]
            ax.errorbar(ws, mean, yerr=err, marker="o", capsize=3, label=f"{ipj} images/job")
            ax.set_xlabel("workers")
            ax.set_ylabel(label)
            ax.set_xscale("log", base=2)
        fit = next((s["amdahl"] for s in summary if s["images_per_job"] == ipj), None)
        if fit:
            ws = sorted({r["workers_requested"] for r in group})
            fine = [ws[0] * (ws[-1] / ws[0]) ** (i / 40) for i in range(41)] if ws[-1] > ws[0] else ws
            axes[0].plot(fine, [fit["a"] + fit["b"] / w for w in fine], ":", color="grey",
                         label=f"Amdahl fit, serial fraction {fit['serial_fraction']:.2f}")
    ws_all = sorted({r["workers_requested"] for r in rows})
    base = min(ws_all)
    axes[1].plot(ws_all, [w / base for w in ws_all], "--", color="grey", label="ideal")
    axes[2].axhline(1.0, ls="--", color="grey")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return to_svg(fig, "scaling")


def phase_seconds(m: dict) -> dict[str, float]:
    """Where a run's waiting time went: planning (client), then per worker (summed over the
    attempts, divided by the workers) queue wait, stage-in, compute and stage-out, and the rest of
    the wait (cluster start-up, output, idle workers). Queue wait may overlap the others (jobs wait
    while workers are busy), so the parts need not add up to the waiting time exactly."""
    w = max(int(m.get("workers") or 1), 1)
    queue = float(m.get("queue_wait_s") or 0.0) * float(m.get("attempts") or 0) / w
    stage_in = float(m.get("staging_in_s") or 0.0) / w
    stage_out = float(m.get("staging_out_s") or 0.0) / w
    compute = max(float(m.get("summed_running_time_s") or 0.0) / w - stage_in - stage_out, 0.0)
    planning = float(m.get("planning_s") or 0.0)
    other = max(float(m.get("user_waiting_time_s") or 0.0) - planning - queue - compute - stage_in - stage_out, 0.0)
    return {"planning_s": planning, "queue": queue, "staging_in_s": stage_in, "compute": compute,
            "staging_out_s": stage_out, "other": other}


def _phase_figure(rows: list[dict]) -> str:
    fig = new_figure(max(4.0, 0.6 * len(rows) + 2), 3.4)
    ax = fig.subplots()
    names = [r["run"] for r in rows]
    bottom = [0.0] * len(rows)
    for key, label in PHASES:
        vals = [phase_seconds(r)[key] for r in rows]
        ax.bar(names, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("seconds of the user's wait (per worker)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=7)
    return to_svg(fig, "phases")


def seed_table_html(rows: list[dict], columns_key: str = "run") -> str:
    """The seed's table: one column per run, its three figures as rows."""
    head = "".join(f"<th>{html.escape(str(r[columns_key]))}</th>" for r in rows)
    body = ""
    for key, label in SEED_ROWS:
        body += f"<tr><th>{html.escape(label)}</th>" + "".join(
            f"<td>{html.escape(format_value(key, r.get(key)))}</td>" for r in rows) + "</tr>"
    return f"<table class='seed'><tr><th></th>{head}</tr>{body}</table>"


_STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}.note{color:#555;font-size:.9em}"""


def _page(title: str, parts: list[str], data: dict) -> str:
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>" + "".join(parts)
            + f"<script type='application/json' id='medfeat-data'>{payload}</script></body></html>")


def write_study_html(rows: list[dict], summary: list[dict], path: Path, title: str) -> None:
    parts = ["<h2>The seed's table</h2>", seed_table_html(rows)]
    if rows:
        parts += ["<h2>Scaling</h2>", "<p class='note'>Means over repeats; bars span the repeats' minimum to "
                  "maximum. Speedup and efficiency are against the runs with the fewest workers.</p>",
                  _scaling_figure(rows, summary)]
        fits = "".join(
            f"<tr><td>{s['images_per_job']}</td><td>{s['runs']}</td>"
            + (f"<td>{s['amdahl']['serial_fraction']:.3f}</td><td>{s['amdahl']['t1']:.2f} s</td>"
               f"<td>{s['amdahl']['rms_s']:.2f} s {html.escape(s['amdahl']['note'])}</td>" if s["amdahl"]
               else "<td colspan=3>one worker count</td>")
            + "</tr>" for s in summary)
        parts += ["<h2>Amdahl's law</h2><table><tr><th>images per job</th><th>runs</th><th>serial fraction</th>"
                  f"<th>fitted 1-worker time</th><th>fit rms</th></tr>{fits}</table>",
                  "<h2>Where the waiting time went</h2>", _phase_figure(rows)]
        keys = ("run", "workers_requested", "images_per_job", "repeat", "user_waiting_time_s", "speedup",
                "efficiency", "parallel_efficiency", "images_per_s", "failed_images")
        table = "<tr>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{html.escape(format_value(k, r.get(k)))}</td>" for k in keys) + "</tr>"
            for r in rows)
        parts += ["<h2>Runs</h2>", f"<table>{table}</table>"]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_page(title, parts, {"rows": rows, "summary": summary}), encoding="utf-8")
    tmp.replace(path)


def compare_rows(run_dirs: Iterable[Path]) -> list[dict]:
    """The metrics of each run folder, named by the folder."""
    rows = []
    for d in run_dirs:
        m = run_metrics(d)
        rows.append({"run": str(d), **m})
    return rows


def write_compare_html(rows: list[dict], path: Path) -> None:
    parts = ["<h2>The seed's table</h2>", seed_table_html(rows)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_page("medfeat compare", parts, {"rows": rows}), encoding="utf-8")
    tmp.replace(path)
