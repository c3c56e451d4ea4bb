"""What-if simulation of a production: the measured run replayed on other worker counts, with slow
workers, failures and other queue waits, with and without the tail policy.

``medfeat simulate RUN --workers 10,100,1000`` reads the run's ledger (:func:`measure`), then runs a
deterministic discrete-event simulation (:func:`simulate`) per worker count, twice: with the
driver's tail policy (:class:`~medfeat.production.options.TailPolicy` defaults) and without it
(``speculate=False, job_timeout=0``: what ``bench/tail.py`` calls "without").

What is measured (from the session that ran most of the run's committed attempts)
---------------------------------------------------------------------------------
* **job running time** (started -> finished of each committed attempt: stage-in, compute,
  stage-out, each reported too): the pool the simulation bootstraps from. Each worker's first
  attempt pays the process's imports: that extra time (``warmup``: mean first running time minus the
  median of the others, and likewise for the queue wait) is taken out of the pool and added to the
  first attempt of every simulated worker instead.
* **queue wait** (submitted -> started, attempts other than a worker's first): bootstrapped for
  ``--queue-wait measured`` (the default); ``0``, ``const:S`` and ``exp:MEAN`` replace it.
* **report latency**: median of (next submitted - previous finished) on the same worker: how long
  the client takes to learn that a worker is free and hand it the next job.
* **submission time per attempt** (the sessions' ``submission_s`` / attempts submitted): the client
  is one thread, so submissions are serialised: at 1000 workers it can become the bottleneck.
* **fixed costs**: the user's waiting time is split as
  ``planning + startup + (first submission -> last committed result) + assembly``:
  ``planning`` (session start -> the ledger's creation: imports, dataset discovery, job planning;
  0 when the run was planned before the session began), ``startup`` (the rest up to the first
  submission: the cluster's start, the first bundle) and ``assembly`` (last committed result ->
  session end: joining the results, writing the table) are kept as measured, whatever the worker
  count and ``--jobs``. Assumed, not measured: one run cannot tell their fixed part (imports,
  cluster start) from a per-job part, and in small runs the fixed part dominates (on a 2-core
  machine, 16 -> 160 jobs of the same 160 images took assembly from 0.6 to 0.9 s); scaled to
  100x the jobs they are underestimated, and a real 1000-worker cluster may take longer to start.
* **bundling**: the bundler is one client thread and the sessions' ``planning_s`` holds its busy
  time, so ``(planning_s - time before the first submission - planning done before the session) /
  (jobs - 1)`` is the time to stage one bundle; job ``k`` is ready ``k`` bundles after the first
  submission (this does scale with ``--jobs``, and bounds the throughput at 1000 workers).

The model
---------
N one-slot workers pull jobs in plan order (the driver hands jobs out only as slots come free).
A job's running time is drawn once (bootstrap) and used by each of its attempts (a job re-run
elsewhere is the same images); a slow worker (``round(slow_share x N)`` of them, drawn with the
seed) runs everything ``slow_factor`` times slower, its first job's import time too. With
``fail_rate`` p, an attempt fails with probability p at a uniform point of its run; the driver
retries it first (``max_attempts``). A cancelled or timed-out attempt keeps its worker until it
would have ended (Dask cannot stop a running task), but its time counts as running time only up to
the cancellation, as in the ledger.

The tail policy is the driver's, checked on a 0.5 s tick: once ``speculate_after`` of the jobs are
committed, an attempt running longer than ``speculate_factor`` x the running median of committed
attempts gets one backup on another worker (backups and moved attempts go before queued jobs);
the first to finish wins. Attempts running longer than ``max(timeout_factor x median,
timeout_min_s)`` are moved (``max_moves``). A worker is avoided (gets no new jobs) after
``slow_after`` strikes: an attempt of its that needed a backup, timed out, or finished over
``speculate_factor`` x the median (not its first one); for all but timeouts, only if its median
attempt time (running ones as far as they got) exceeds ``speculate_factor`` x the median of the
other workers' attempts and at most a third of the workers are avoided, as in the driver. Strikes from slow completions happen
without the tail policy too, as in the driver.

Not modelled: CPU contention between workers sharing a machine (the measured job times are used as
they are), workers that vanish, queue timeouts of batch systems, the tail policy's timers on
attempts still waiting in a queue (they count from the start), adaptive clusters.
"""
from __future__ import annotations

import heapq
import json
import math
import random
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from medfeat.errors import InputError
from medfeat.production.options import TailPolicy

TICK_S = 0.5   # the driver's tail-policy tick (medfeat.production.driver.TICK_S)
NO_TAIL_POLICY = {"speculate": False, "job_timeout": 0}   # "without" in bench/tail.py


@dataclass
class Measured:
    """A run's measured distributions and costs (see the module docstring); every field has a
    default so that tests can state a model by hand, e.g. ``Measured(job_times=[1.0])``."""

    job_times: list[float] = field(default_factory=lambda: [1.0])   # bootstrap pool (s)
    queue_waits: list[float] = field(default_factory=lambda: [0.0])  # bootstrap pool (s)
    warmup_run_s: float = 0.0        # added to each worker's first attempt's running time
    warmup_queue_s: float = 0.0      # added to each worker's first attempt's queue wait (measured mode)
    report_latency_s: float = 0.0    # worker finished -> the client hands it the next job
    submission_s: float = 0.0        # client time per attempt submitted (serialised)
    bundle_s: float = 0.0            # bundler time per job after the first (serialised)
    planning_s: float = 0.0          # client planning inside the session (scales with jobs)
    startup_s: float = 0.0           # the rest of the time before the first submission (fixed)
    assembly_s: float = 0.0          # last committed result -> session end (scales with jobs)
    jobs: int = 1                    # jobs of the measured session
    workers: int = 0                 # of the measured run
    user_waiting_time_s: float = 0.0  # of the measured session
    parallel_efficiency: float = 0.0
    recorded_planning_s: float = 0.0  # the session's planning_s as the ledger has it
    stage_in_s: float = 0.0          # mean per committed attempt (reported, not used separately)
    compute_s: float = 0.0
    stage_out_s: float = 0.0

    def summary(self) -> dict:
        d = asdict(self)
        jt, qw = d.pop("job_times"), d.pop("queue_waits")
        d["job_time_mean_s"] = sum(jt) / len(jt) if jt else 0.0
        d["queue_wait_mean_s"] = sum(qw) / len(qw) if qw else 0.0
        return d


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    if not n:
        return 0.0
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def measure(run_dir: str | Path) -> Measured:
    """The measured distributions of the run in ``run_dir`` (its ledger, read only)."""
    from medfeat.production.ledger import LEDGER_NAME, Ledger

    run_dir = Path(run_dir)
    if not (run_dir / LEDGER_NAME).exists():
        raise InputError(run_dir, f"not a run folder (no {LEDGER_NAME})")
    ledger = Ledger(run_dir, readonly=True)
    try:
        info = ledger.run_info() or {}
        attempts = ledger.attempts()
        sessions = ledger.sessions()
    finally:
        ledger.close()
    done = [a for a in attempts if a["outcome"] == "committed" and a["started"] and a["finished"]]
    if not done:
        raise InputError(run_dir, "the run has no committed attempt to measure")
    counts: dict = {}
    for a in done:
        counts[a["session"]] = counts.get(a["session"], 0) + 1
    sid = max(counts, key=lambda s: (counts[s], s or 0))
    session = next((s for s in sessions if s["session"] == sid), None)
    mine = [a for a in attempts if a["session"] == sid]
    done = [a for a in done if a["session"] == sid]

    # each worker's first attempt pays its imports: kept apart from the pool
    first: dict = {}
    for a in sorted((a for a in mine if a["started"]), key=lambda a: a["started"]):
        first.setdefault(a["worker"], a["attempt_id"])
    firsts = set(first.values())
    run_of = {a["attempt_id"]: a["finished"] - a["started"] for a in done}
    rest = [t for i, t in run_of.items() if i not in firsts]
    first_runs = [t for i, t in run_of.items() if i in firsts]
    pool = rest or list(run_of.values())
    warm_run = max(0.0, sum(first_runs) / len(first_runs) - _median(rest)) if rest and first_runs else 0.0
    waits_all = [(a["attempt_id"], a["started"] - a["submitted"]) for a in mine
                 if a["started"] and a["submitted"] and a.get("role") in (None, "first", "retry")]
    waits = [max(0.0, w) for i, w in waits_all if i not in firsts]
    first_waits = [max(0.0, w) for i, w in waits_all if i in firsts]
    warm_queue = max(0.0, sum(first_waits) / len(first_waits) - _median(waits)) if waits and first_waits else 0.0
    waits = waits or [max(0.0, w) for _, w in waits_all] or [0.0]

    gaps = []
    last: dict = {}
    for a in sorted((a for a in mine if a["started"] and a["finished"]), key=lambda a: a["started"]):
        prev = last.get(a["worker"])
        if prev is not None and a["submitted"] >= prev:
            gaps.append(a["submitted"] - prev)
        last[a["worker"]] = a["finished"]

    def mean_phase(lo: str, hi: str) -> float:
        v = [a[hi] - a[lo] for a in done if a[lo] and a[hi]]
        return sum(v) / len(v) if v else 0.0

    jobs = len({a["job_id"] for a in mine}) or 1
    m = Measured(job_times=pool, queue_waits=waits, warmup_run_s=warm_run, warmup_queue_s=warm_queue,
                 report_latency_s=_median(gaps) if gaps else 0.0, jobs=jobs,
                 stage_in_s=mean_phase("started", "staged_in"), compute_s=mean_phase("staged_in", "computed"),
                 stage_out_s=mean_phase("computed", "staged_out"))
    if session:
        first_sub = min((a["submitted"] for a in mine if a["submitted"]), default=session["started"])
        last_end = max(a["finished"] for a in done)
        submitted = session["submitted_jobs"] or 0
        m.submission_s = (session["submission_s"] or 0.0) / submitted if submitted else 0.0
        created = info.get("created") or 0.0
        before = max(0.0, first_sub - session["started"])
        inside = created - session["started"]
        m.planning_s = min(before, inside) if 0.0 <= inside else 0.0
        m.startup_s = before - m.planning_s
        outside = max(0.0, -inside) if created else 0.0   # planned by the caller before the session began
        m.recorded_planning_s = session["planning_s"] or 0.0
        m.bundle_s = max(0.0, m.recorded_planning_s - before - outside) / (jobs - 1) if jobs > 1 else 0.0
        if session["ended"]:
            m.assembly_s = max(0.0, session["ended"] - last_end)
            m.user_waiting_time_s = session["ended"] - session["started"]
        m.workers = session["workers"] or len(first)
        running = sum(a["finished"] - a["started"] for a in mine if a["started"] and a["finished"])
        if m.workers and m.user_waiting_time_s:
            m.parallel_efficiency = running / (m.workers * m.user_waiting_time_s)
    return m


# -- queue waits ------------------------------------------------------------------------------
def queue_wait_sampler(spec: str, measured: Measured):
    """``0`` | ``measured`` | ``const:S`` (or a number) | ``exp:MEAN`` -> (draw(rng) -> s, measured?)."""
    text = (spec or "measured").strip().lower()
    if text == "measured":
        pool = measured.queue_waits or [0.0]
        n = len(pool)
        return (lambda rng: pool[int(rng.random() * n)]), True
    kind, _, value = text.partition(":")
    if not value:
        kind, value = "const", kind
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if kind not in ("const", "exp") or not math.isfinite(x) or x < 0:
        raise InputError("--queue-wait", f"{spec!r}: use 0, measured, const:SECONDS or exp:MEAN_SECONDS")
    if kind == "exp" and x > 0:
        return (lambda rng: rng.expovariate(1.0 / x)), False
    return (lambda rng: x), False


# -- the simulation ---------------------------------------------------------------------------
class _RunningMedian:
    """Median of a growing list (two heaps): what ``statistics.median(durations)`` gives the driver."""

    def __init__(self):
        self.lo: list[float] = []   # max-heap (negated)
        self.hi: list[float] = []
        self.n = 0

    def add(self, x: float) -> None:
        self.n += 1
        if not self.lo or x <= -self.lo[0]:
            heapq.heappush(self.lo, -x)
        else:
            heapq.heappush(self.hi, x)
        if len(self.lo) > len(self.hi) + 1:
            heapq.heappush(self.hi, -heapq.heappop(self.lo))
        elif len(self.hi) > len(self.lo):
            heapq.heappush(self.lo, -heapq.heappop(self.hi))

    def get(self) -> float | None:
        if not self.n:
            return None
        if len(self.lo) > len(self.hi):
            return -self.lo[0]
        return (-self.lo[0] + self.hi[0]) / 2


class _Attempt:
    __slots__ = ("job", "role", "worker", "submitted", "started", "end", "fails", "live", "released", "exclude")

    def __init__(self, job: int, role: str, submitted: float, exclude=frozenset()):
        self.job = job
        self.role = role
        self.submitted = submitted
        self.exclude = exclude
        self.worker = -1
        self.started = math.inf
        self.end = math.inf
        self.fails = False
        self.live = True
        self.released = False


def percentile(values: list[float], q: float) -> float:
    from medfeat.report.metrics import percentile as pct

    return pct(values, q)


def simulate(measured: Measured, workers: int, *, jobs: int | None = None, slow_share: float = 0.0,
             slow_factor: float = 10.0, fail_rate: float = 0.0, queue_wait: str = "measured", seed: int = 0,
             tail: TailPolicy | None = None) -> dict:
    """One simulated production of ``jobs`` (default: the measured run's) on ``workers`` workers
    under ``tail`` (default: ``TailPolicy()``; pass ``TailPolicy(**NO_TAIL_POLICY)`` for none).
    Returns the run's figures, named as in :func:`medfeat.report.metrics.run_metrics`."""
    m = measured
    tail = tail or TailPolicy()
    N = int(workers)
    J = int(jobs or m.jobs)
    if N < 1 or J < 1:
        raise InputError("--workers", "need at least one worker and one job")
    if not m.job_times:
        raise InputError("--jobs", "no measured job times to draw from")
    draw_q, q_measured = queue_wait_sampler(queue_wait, m)
    job_rng = random.Random(f"medfeat-simulate-jobs-{seed}")
    rng = random.Random(f"medfeat-simulate-attempts-{seed}")
    pool = m.job_times
    npool = len(pool)
    T = [pool[int(job_rng.random() * npool)] for _ in range(J)]
    n_slow = min(N, int(math.floor(slow_share * N + 0.5))) if slow_share > 0 else 0
    slow = set(job_rng.sample(range(N), n_slow)) if n_slow else set()
    factor = [slow_factor if w in slow else 1.0 for w in range(N)]

    # policy
    sf, spec_after, spec_on = tail.speculate_factor, tail.speculate_after, bool(tail.speculate)
    timeout_fixed = tail.job_timeout   # None: from the median; 0: off
    timeout_on = timeout_fixed is None or timeout_fixed > 0
    policy_ticks = spec_on or timeout_on
    L = m.report_latency_s
    sub = m.submission_s
    b = m.bundle_s
    warm_q = m.warmup_queue_s if q_measured else 0.0

    # state
    atts: list[_Attempt] = []
    live_of: list[list[int]] = [[] for _ in range(J)]
    errors = [0] * J
    moves = [0] * J
    backed = [False] * J
    bad: dict[int, set] = {}
    open_jobs = [True] * J
    n_open = J
    committed = 0
    job_time: list[float] = []
    median = _RunningMedian()
    strikes = [0] * N
    avoided: set[int] = set()
    wdur: list[list[float]] = [[] for _ in range(N)]  # finished attempts' running times, per worker
    durations: list[float] = []            # every finished attempt's running time
    dur_workers: list[int] = []            # the worker of each of them
    running_on: dict[int, int] = {}        # worker -> its live, started attempt
    warm: set[int] = set()
    ran_any = [False] * N
    free: deque[int] = deque(range(N))
    parked: list[int] = []        # idle but avoided workers
    urgent: list[int] = []        # backups and moved attempts waiting for a worker
    retries: deque[int] = deque()
    next_new = 0
    client_free = 0.0
    events: list = []             # (time, seq, kind, payload)
    seq = 0
    spec_heap: list = []
    to_heap: list = []
    tick_at = math.inf
    bundle_at = math.inf
    running_sum = 0.0
    last_end = 0.0
    counts = {"backups_launched": 0, "backups_won": 0, "timeouts": 0, "failed_attempts": 0, "failed_jobs": 0,
              "attempts": 0}
    DONE, TICK, BUNDLE = 0, 1, 2

    def push(t, kind, payload):
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, payload))

    def all_avoided() -> bool:
        return len(avoided) >= N

    def slower_than_peers(w: int, t: float) -> bool:
        """The driver's test: the worker's mean attempt time (running ones as far as they got)
        against the median of the other workers' finished attempts."""
        own = list(wdur[w])
        aid = running_on.get(w)
        if aid is not None and atts[aid].live and atts[aid].started <= t:
            own.append(t - atts[aid].started)
        if not own or len(durations) <= len(wdur[w]):
            return True
        if len(durations) > 5000:  # long runs: the global median stands in for the others' (cheap)
            others = median.get()
        else:
            others = statistics.median(d for ww, d in zip(dur_workers, durations) if ww != w)
        return others is None or statistics.median(own) > sf * others

    def strike(w: int, t: float = 0.0, evidence: bool = False) -> None:
        if w < 0:
            return
        strikes[w] += 1
        if strikes[w] >= tail.slow_after and w not in avoided and (
                evidence or (slower_than_peers(w, t) and len(avoided) + 1 <= N // 3)):
            avoided.add(w)
            if all_avoided():   # nowhere else to go: the driver sends work anywhere again
                free.extend(parked)
                parked.clear()

    def release(w: int) -> None:
        if w in avoided and not all_avoided():
            parked.append(w)
        else:
            free.append(w)

    def take_free() -> int:
        """An idle worker for a queued job: not an avoided one (unless all are)."""
        while free:
            w = free.popleft()
            if w in avoided and not all_avoided():
                parked.append(w)
                continue
            return w
        return -1

    def take_for(exclude) -> int:
        """An idle worker for a backup or moved attempt: any but those barred when it was submitted
        (Dask holds a restricted task for the workers it names, whatever happened since)."""
        for idle in (free, parked):
            for i, w in enumerate(idle):
                if w not in exclude:
                    del idle[i]
                    return w
        return -1

    def submit_time(now: float) -> float:
        nonlocal client_free
        s = client_free if client_free > now else now
        client_free = s + sub
        return s

    def place(aid: int, w: int, now: float) -> None:
        a = atts[aid]
        a.worker = w
        d = T[a.job]
        q = draw_q(rng)
        if not ran_any[w]:
            ran_any[w] = True
            d += m.warmup_run_s
            q += warm_q
        d *= factor[w]
        a.started = max(now, a.submitted) + q
        if fail_rate > 0 and rng.random() < fail_rate:
            a.fails = True
            d *= rng.random()
        a.end = a.started + d
        running_on[w] = aid
        push(a.end + L, DONE, aid)
        if policy_ticks:
            heapq.heappush(spec_heap, (a.started, aid))
            heapq.heappush(to_heap, (a.started, aid))

    def new_attempt(job: int, role: str, now: float, exclude=frozenset()) -> int:
        a = _Attempt(job, role, submit_time(now), exclude)
        atts.append(a)
        aid = len(atts) - 1
        live_of[job].append(aid)
        counts["attempts"] += 1
        return aid

    def submit_urgent(job: int, role: str, exclude: set, now: float) -> bool:
        barred = avoided | exclude
        good = len(barred) < N
        if exclude and not good:
            return False
        aid = new_attempt(job, role, now, frozenset(barred) if good else frozenset())
        urgent.append(aid)
        return True

    def drop(aid: int, now: float) -> None:
        nonlocal running_sum
        a = atts[aid]
        a.live = False
        live_of[a.job].remove(aid)
        if a.worker < 0:
            return                      # still waiting for a worker: it never starts
        if a.started <= now:
            running_sum += now - a.started
        else:                           # queued on its worker, not started: Dask drops it
            a.released = True
            release(a.worker)

    def resolve(job: int, t: float) -> None:
        nonlocal n_open, last_end
        open_jobs[job] = False
        n_open -= 1
        last_end = max(last_end, t)

    def fail_job(job: int, t: float) -> None:
        counts["failed_jobs"] += 1
        resolve(job, t)

    def has_job(now: float) -> bool:
        nonlocal bundle_at
        if retries:
            return True
        if next_new < J:
            ready = next_new * b
            if ready <= now + 1e-12:
                return True
            if ready < bundle_at:
                bundle_at = ready
                push(ready, BUNDLE, None)
        return False

    def dispatch(now: float) -> None:
        nonlocal next_new
        if urgent:
            keep = []
            for aid in urgent:
                if not atts[aid].live:
                    continue
                w = take_for(atts[aid].exclude) if free or parked else -1
                if w < 0:
                    keep.append(aid)
                else:
                    place(aid, w, now)
            urgent[:] = keep
        while free and has_job(now):
            w = take_free()
            if w < 0:
                break
            if retries:
                job = retries.popleft()
                if not open_jobs[job]:
                    release(w)
                    continue
                role = "retry"
            else:
                job, role = next_new, "first"
                next_new += 1
            place(new_attempt(job, role, now), w, now)

    def timeout_now(med):
        if timeout_fixed is not None:
            return timeout_fixed or None
        return max(tail.timeout_factor * med, tail.timeout_min_s) if med else None

    def schedule_tick(now: float) -> None:
        nonlocal tick_at
        if not policy_ticks:
            return
        med = median.get()
        cands = []
        timeout = timeout_now(med)
        if timeout:
            while to_heap and not atts[to_heap[0][1]].live:
                heapq.heappop(to_heap)
            if to_heap:
                cands.append(to_heap[0][0] + timeout)
        if spec_on and med and committed / J >= spec_after:
            while spec_heap and (not atts[spec_heap[0][1]].live or backed[atts[spec_heap[0][1]].job]):
                heapq.heappop(spec_heap)
            if spec_heap:
                cands.append(spec_heap[0][0] + sf * med)
        if not cands:
            return
        x = min(cands)
        tt = max((math.floor(x / TICK_S) + 1) * TICK_S, (math.floor(now / TICK_S) + 1) * TICK_S)
        if tt < tick_at:
            tick_at = tt
            push(tt, TICK, tt)

    def tick(t: float) -> None:
        med = median.get()
        timeout = timeout_now(med)
        if timeout:
            while to_heap and to_heap[0][0] + timeout < t:
                st, aid = heapq.heappop(to_heap)
                a = atts[aid]
                if not a.live:
                    continue
                job = a.job
                if moves[job] < tail.max_moves:
                    moves[job] += 1
                    strike(a.worker, t, evidence=True)
                    counts["timeouts"] += 1
                    drop(aid, t)
                    bad.setdefault(job, set()).add(a.worker)
                    if not live_of[job] and not submit_urgent(job, "moved", bad[job], t):
                        submit_urgent(job, "moved", set(), t)
                elif len(live_of[job]) == 1:   # moved max_moves times already: its last chance
                    drop(aid, t)
                    counts["timeouts"] += 1
                    fail_job(job, t)
        if spec_on and med and committed / J >= spec_after:
            thr = sf * med
            while spec_heap and spec_heap[0][0] + thr < t:
                st, aid = heapq.heappop(spec_heap)
                a = atts[aid]
                job = a.job
                if not a.live or backed[job] or len(live_of[job]) != 1:
                    continue
                bad.setdefault(job, set()).add(a.worker)
                if submit_urgent(job, "backup", bad[job], t):
                    backed[job] = True
                    strike(a.worker, t)
                    counts["backups_launched"] += 1

    def done(aid: int, t: float) -> None:
        nonlocal running_sum, committed
        a = atts[aid]
        if not a.released:
            release(a.worker)
        if not a.live:
            return
        a.live = False
        job = a.job
        live_of[job].remove(aid)
        took = a.end - a.started
        running_sum += took
        if a.fails:
            counts["failed_attempts"] += 1
            if not open_jobs[job] or live_of[job]:
                return
            errors[job] += 1
            if errors[job] >= tail.max_attempts:
                fail_job(job, a.end)
            else:
                retries.appendleft(job)
            return
        med = median.get()
        if med and took > sf * med and median.n >= 3 and a.worker in warm:
            strike(a.worker, a.end)
        warm.add(a.worker)
        median.add(took)
        wdur[a.worker].append(took)
        durations.append(took)
        dur_workers.append(a.worker)
        if open_jobs[job]:
            committed += 1
            job_time.append(took)
            if a.role == "backup":
                counts["backups_won"] += 1
            resolve(job, a.end)
            for other in list(live_of[job]):
                drop(other, t)

    dispatch(0.0)
    schedule_tick(0.0)
    while n_open and events:
        t, _, kind, payload = heapq.heappop(events)
        if kind == DONE:
            done(payload, t)
        elif kind == TICK:
            if payload != tick_at:
                continue
            tick_at = math.inf
            tick(t)
        else:
            bundle_at = math.inf
        dispatch(t)
        schedule_tick(t)
    if n_open:  # cannot happen: every open job has an attempt or a queued retry
        raise RuntimeError("simulation ended with open jobs")

    planning, assembly = m.planning_s, m.assembly_s
    waiting = planning + m.startup_s + last_end + assembly
    return {
        "workers": N,
        "jobs": J,
        "slow_workers": n_slow,
        "user_waiting_time_s": waiting,
        "parallel_efficiency": running_sum / (N * waiting) if waiting > 0 else 0.0,
        "makespan_s": last_end,
        "summed_running_time_s": running_sum,
        "job_time_p50_s": percentile(job_time, 50),
        "job_time_p95_s": percentile(job_time, 95),
        "job_time_max_s": max(job_time, default=0.0),
        **counts,
        "slow_workers_avoided": len(avoided),
        "planning_s": planning,
        "startup_s": m.startup_s,
        "assembly_s": assembly,
    }


# figures given twice per worker count: with the tail policy and with "_no_tail_policy"
PAIRED = ("user_waiting_time_s", "parallel_efficiency", "makespan_s", "summed_running_time_s", "job_time_p50_s",
          "job_time_p95_s", "job_time_max_s", "backups_launched", "backups_won", "timeouts", "failed_attempts",
          "failed_jobs", "attempts", "slow_workers_avoided")


def predict(measured: Measured, workers: list[int], tail: TailPolicy | None = None, **kw) -> list[dict]:
    """Per worker count, one flat dict: the figures with ``tail`` (default ``TailPolicy()``) and the
    :data:`PAIRED` ones again with the suffix ``_no_tail_policy`` (backups and timeouts off)."""
    tail = tail or TailPolicy()
    rows = []
    for n in workers:
        with_ = simulate(measured, n, tail=tail, **kw)
        without = simulate(measured, n, tail=replace(tail, **NO_TAIL_POLICY), **kw)
        rows.append({**with_, **{f"{k}_no_tail_policy": without[k] for k in PAIRED}})
    return rows


def parse_workers(text: str) -> list[int]:
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise InputError("--workers", f"{text!r}: give worker counts as N[,N...], each >= 1")
    return out


def check_options(slow_share: float, slow_factor: float, fail_rate: float, jobs: int | None) -> None:
    if not 0.0 <= slow_share <= 1.0:
        raise InputError("--slow-share", f"{slow_share}: a share of the workers, 0..1")
    if not (slow_factor > 0 and math.isfinite(slow_factor)):
        raise InputError("--slow-factor", f"{slow_factor}: a positive factor")
    if not 0.0 <= fail_rate < 1.0:
        raise InputError("--fail-rate", f"{fail_rate}: a probability, 0 <= p < 1")
    if jobs is not None and jobs < 1:
        raise InputError("--jobs", f"{jobs}: at least one job")


def json_lines(rows: list[dict]) -> str:
    """``--json``: one JSON object per worker count, one per line (JSON Lines)."""
    return "\n".join(json.dumps(r, sort_keys=False) for r in rows)
