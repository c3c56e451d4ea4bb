"""The run report's figures, drawn from a run's ledger as SVG text to inline in the HTML report.

Why matplotlib SVG: the report must open anywhere, offline, years later, from one file. Inline SVG
needs no network (no CDN, no web font, no script), no JavaScript at all, prints and zooms sharply,
and is text that tests can read (each Gantt bar carries ``id="attempt-<attempt id>"``). matplotlib
is a well-kept, widely installed library, and its SVG output is deterministic here (fixed hash
salt, no date metadata), so the same ledger gives the same page.

matplotlib is imported lazily (only the report needs it), and only its object-oriented API is
used (``matplotlib.figure.Figure`` saved with the SVG backend): pyplot's global state and GUI
backend selection are never touched, so drawing is safe in any process or thread. Text stays
text (``svg.fonttype = 'none'``): the browser draws it with a local font.

Every function takes plain rows (the ledger's attempt dicts, see
:class:`medfeat.production.ledger.Ledger`) and returns SVG text (starting at ``<svg``), or
``None`` when there is nothing to draw.
"""
from __future__ import annotations

import io
import re

# outcome category -> colour (colour-blind friendly, after ColorBrewer Dark2 / Tableau)
OUTCOME_COLOURS = {
    "committed": "#1b9e77",
    "backup-committed": "#7570b3",
    "discarded": "#a6a6a6",
    "cancelled": "#e6ab02",
    "timeout": "#d95f02",
    "lost": "#8c564b",
    "error": "#d62728",
    "running": "#1f78b4",
}
# Phases drawn inside a bar: stage-in lighter, compute the outcome colour, stage-out darker.
PHASE_SHADES = (("stage-in", "#ffffff", 0.5), ("stage-out", "#000000", 0.35))
MAX_PHASED = 4000  # above this many bars the phases are left out (the SVG stays a few MB at most)


def outcome_category(a: dict) -> str:
    """The Gantt colour of an attempt: its outcome, with a committed backup told apart."""
    outcome = a.get("outcome") or "running"
    if outcome == "committed" and a.get("role") == "backup":
        return "backup-committed"
    return outcome if outcome in OUTCOME_COLOURS else "error"


def worker_label(a: dict) -> str:
    """Where an attempt ran: its worker (address or batch job), with its host when the worker
    name does not already say it."""
    w = str(a.get("worker") or "?")
    w = re.sub(r"^[a-z]+://", "", w)
    host = a.get("host")
    if host and str(host) not in w:
        w = f"{host} {w}"
    return w if len(w) <= 48 else w[:22] + "..." + w[-23:]


def origin(attempts: list[dict]) -> float:
    """The run's first submission (time 0 of the time axes)."""
    times = [a["submitted"] for a in attempts if a.get("submitted")]
    times += [a["started"] for a in attempts if a.get("started")]
    return min(times, default=0.0)


def _end(a: dict, fallback: float) -> float:
    return a.get("finished") or fallback


def to_svg(fig, name: str) -> str:
    """The figure as SVG text for inlining: no XML prolog or DOCTYPE, no metadata, every id but
    the attempts' prefixed with ``name`` (several figures share one HTML document)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"medfeat-{name}",
                                "font.size": 9}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Type": None, "Format": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    keep = ("attempt-",)

    def rename(ident: str) -> str:
        return ident if ident.startswith(keep) else f"{name}-{ident}"

    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{rename(m.group(1))}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{rename(m.group(1))})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{rename(m.group(1))}"', text)
    # scale with the page up to the drawn size: drop the fixed size, keep the viewBox
    size = re.match(r'<svg[^>]*? width="([0-9.]+)pt" height="[^"]*"', text)
    text = re.sub(r'^<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)
    style = f' style="max-width:{float(size.group(1)) * 4 / 3:.0f}px"' if size else ""
    return text.replace("<svg", f'<svg class="figure" role="img" aria-label="{name}"{style}', 1)


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def gantt(attempts: list[dict], end_fallback: float) -> str | None:
    """Every attempt that started, one bar per attempt on its worker's row (a worker running
    several at once gets several lanes), coloured by outcome, with its stage-in, compute and
    stage-out phases shaded inside; x: seconds since the run's first submission. Each bar is an
    SVG group ``id="attempt-<attempt id>"``. ``end_fallback``: the end of bars that never
    finished (lost with their client)."""
    from matplotlib.patches import Patch, Rectangle

    started = [a for a in attempts if a.get("started")]
    if not started:
        return None
    t0 = origin(attempts)
    # lanes: per worker, greedily, so overlapping attempts of one worker do not hide each other
    rows: list[tuple[str, int]] = []
    lane_ends: dict[str, list[float]] = {}
    placed = []
    for a in sorted(started, key=lambda a: (worker_label(a), a["started"], a["attempt_id"])):
        w = worker_label(a)
        ends = lane_ends.setdefault(w, [])
        start, end = a["started"], max(_end(a, end_fallback), a["started"])
        lane = next((i for i, e in enumerate(ends) if e <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
            rows.append((w, lane))
        else:
            ends[lane] = end
        placed.append((a, w, lane))
    index = {r: i for i, r in enumerate(sorted(rows))}
    n = len(index)
    fig = new_figure(10, min(max(2.2, 0.9 + 0.26 * n), 40))
    ax = fig.add_subplot()
    phased = len(started) <= MAX_PHASED
    used = set()
    for a, w, lane in placed:
        y = index[(w, lane)]
        cat = outcome_category(a)
        used.add(cat)
        start = a["started"] - t0
        end = max(_end(a, end_fallback) - t0, start)
        bar = Rectangle((start, y - 0.4), end - start, 0.8, facecolor=OUTCOME_COLOURS[cat], edgecolor="white",
                        linewidth=0.3)
        bar.set_gid(f"attempt-{a['attempt_id']}")
        ax.add_patch(bar)
        if not phased:
            continue
        for (label, shade, alpha), lo, hi in ((PHASE_SHADES[0], a.get("started"), a.get("staged_in")),
                                             (PHASE_SHADES[1], a.get("computed"), a.get("staged_out"))):
            if lo and hi and hi > lo:
                ax.add_patch(Rectangle((lo - t0, y - 0.4), hi - lo, 0.8, facecolor=shade, alpha=alpha,
                                       linewidth=0))
    t_max = max(max(_end(a, end_fallback) for a in started) - t0, 1e-3)
    ax.set_xlim(0, t_max * 1.01)
    ax.set_ylim(n - 0.5, -0.5)
    labels = [w if lane == 0 else "" for w, lane in sorted(rows)]
    if n <= 80:
        ax.set_yticks(range(n), labels, fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(lane_ends)} workers")
    ax.set_xlabel("seconds since the run's first submission")
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)
    handles = [Patch(facecolor=OUTCOME_COLOURS[c], label=c) for c in OUTCOME_COLOURS if c in used]
    if phased:
        handles += [Patch(facecolor="#bbbbbb", edgecolor="#888888", label="stage-in (lighter)"),
                    Patch(facecolor="#888888", label="compute"),
                    Patch(facecolor="#555555", label="stage-out (darker)")]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 6), fontsize=7, frameon=False)
    return to_svg(fig, "gantt")


def job_times(values: list[float], p50: float, p95: float, vmax: float) -> str | None:
    """Histogram and CDF of the job times (each committed job's running time), p50 / p95 / max marked."""
    if not values:
        return None
    v = sorted(values)
    fig = new_figure(10, 3.2)
    hist, cdf = fig.subplots(1, 2)
    hist.hist(v, bins=min(40, max(5, len(v) // 2)), color="#1b9e77", edgecolor="white", linewidth=0.4)
    hist.set_xlabel("job time (s)")
    hist.set_ylabel("jobs")
    n = len(v)
    cdf.step(v, [(i + 1) / n for i in range(n)], where="post", color="#1b9e77")
    cdf.set_xlabel("job time (s)")
    cdf.set_ylabel("share of jobs done within")
    cdf.set_ylim(0, 1.02)
    for ax in (hist, cdf):
        for q, value, style in (("p50", p50, "--"), ("p95", p95, "-."), ("max", vmax, ":")):
            ax.axvline(value, color="#444444", linestyle=style, linewidth=1, label=f"{q} {value:.2f} s")
        ax.grid(linewidth=0.4, alpha=0.5)
    cdf.legend(fontsize=7, loc="lower right")
    return to_svg(fig, "jobtimes")


def throughput(attempts: list[dict], bins: int = 50) -> str | None:
    """Images per second over time (images of each committed attempt counted when it finished),
    with the cumulative count of images done."""
    done = sorted((a["finished"], a.get("n_images") or 0) for a in attempts
                  if a.get("outcome") == "committed" and a.get("finished"))
    if not done:
        return None
    t0 = origin(attempts)
    span = max(done[-1][0] - t0, 1e-3)
    bins = max(1, min(bins, len(done) * 2))
    width = span / bins
    counts = [0.0] * bins
    for t, k in done:
        counts[min(int((t - t0) / width), bins - 1)] += k
    fig = new_figure(10, 3)
    ax = fig.add_subplot()
    edges = [i * width for i in range(bins + 1)]
    ax.stairs([c / width for c in counts], edges, fill=True, color="#1f78b4", alpha=0.6, label="images/s")
    ax.set_xlabel("seconds since the run's first submission")
    ax.set_ylabel("images per second")
    ax.set_xlim(0, span)
    ax.grid(linewidth=0.4, alpha=0.5)
    total = ax.twinx()
    cum, xs, ys = 0, [0.0], [0]
    for t, k in done:
        cum += k
        xs.append(t - t0)
        ys.append(cum)
    total.step(xs, ys, where="post", color="#d95f02", linewidth=1.2, label="images done")
    total.set_ylabel("images done")
    total.set_ylim(0, max(cum, 1) * 1.05)
    fig.legend(loc="outside upper center", ncols=2, fontsize=7, frameon=False)
    return to_svg(fig, "throughput")


def queue_vs_running(attempts: list[dict], end_fallback: float) -> str | None:
    """Per attempt that started: its queue wait (submitted -> started) against its running time,
    coloured by outcome; on a batch backend this shows whether the queue or the work dominates."""
    pts: dict[str, tuple[list[float], list[float]]] = {}
    for a in attempts:
        if a.get("started") and a.get("submitted"):
            xs, ys = pts.setdefault(outcome_category(a), ([], []))
            xs.append(max(_end(a, end_fallback) - a["started"], 0.0))
            ys.append(max(a["started"] - a["submitted"], 0.0))
    if not pts:
        return None
    fig = new_figure(6.5, 3.6)
    ax = fig.add_subplot()
    for cat in OUTCOME_COLOURS:
        if cat in pts:
            ax.scatter(*pts[cat], s=14, color=OUTCOME_COLOURS[cat], alpha=0.8, label=cat, linewidths=0)
    ax.set_xlabel("running time (s)")
    ax.set_ylabel("queue wait (s)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(linewidth=0.4, alpha=0.5)
    ax.legend(fontsize=7)
    return to_svg(fig, "queuewait")
