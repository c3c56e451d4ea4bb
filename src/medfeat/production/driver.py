"""The client's control loop of a production session: stage, submit, watch, commit, beat the tail.

The driver is handed its collaborators -- the ledger, an :class:`~medfeat.production.executor.Executor`,
a :class:`~medfeat.production.bundler.Bundler` and the stage -- and returns the session's figures.
The bundler packs and stages bundles ahead of the workers. The driver hands ready jobs to the
executor only as slots come free (plus ``lookahead``), so that what waits, waits here and can still
be placed well: away from a slow worker, or as a backup on another worker. Every attempt is in the
ledger from submission on; the executor reports when it starts, so the loop knows how long each
attempt has been running.

Tail policy, checked twice a second:

* **speculation** -- once ``speculate_after`` of the session's jobs are committed, an attempt
  running longer than ``speculate_factor`` x the median job time gets one backup attempt on a
  different worker; the first result committed wins and the other attempt is cancelled;
* **timeout** -- an attempt running longer than ``job_timeout`` (default: ``timeout_factor`` x the
  median, at least ``timeout_min_s``) is cancelled and its job moved to another worker (at most
  ``max_moves`` times per job; a job that times out once more fails, so none runs forever); on a batch system an attempt still queued after ``queue_timeout``
  is cancelled and submitted again the same way;
* **slow workers** -- a worker whose attempt was slow (needed a backup, timed out, or finished
  after ``speculate_factor`` x the median) ``slow_after`` times gets no new jobs -- for slow
  completions and backups only when its median attempt time is also over ``speculate_factor`` x
  its peers' median (uneven jobs and a loaded machine strike healthy workers too) and at most a
  third of the workers are avoided; it is named in the ledger's events and the report.

An attempt that vanished (its worker or batch job gone, its result unreachable) is run again
elsewhere; one whose code raised is retried; both count against ``max_attempts``. A bundle that
fails its sha256 check is re-staged from the dataset once, then the job fails with that reason.
Once a job's result is committed its bundle is deleted from the stage (unless ``keep_bundles``).
"""
from __future__ import annotations

import queue
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from medfeat.production.bundler import BundleFailed, BundleReady, Bundler
from medfeat.production.executor import Executor, Failed, Finished, Started
from medfeat.production.ledger import Ledger
from medfeat.production.options import TailPolicy
from medfeat.production.plan import item_of
from medfeat.production.progress import Progress
from medfeat.production.spec import JobSpec, bundle_name, images_digest, make_spec
from medfeat.production.staging import Stage

TICK_S = 0.5
ARRAY_WAIT_S = 2.0


@dataclass
class _Attempt:
    job_id: int
    attempt_id: int
    submitted: float
    role: str
    started: float | None = None
    worker: str | None = None


@dataclass
class _JobState:
    attempts: set = field(default_factory=set)  # live attempt ids
    errors: int = 0      # attempts whose code raised, or that vanished
    moves: int = 0       # attempts cancelled by the timeout
    restaged: int = 0    # bundles re-staged after a failed hash check
    backup: bool = False
    bad_workers: set = field(default_factory=set)  # where this job timed out, straggled or vanished


@dataclass
class SessionFigures:
    """What a session measured itself (the rest of the metrics come from the ledger)."""

    submission_s: float = 0.0     # client time spent handing attempts to the executor
    submitted: int = 0            # attempts handed over
    bundling_s: float = 0.0       # bundler thread's busy time
    committed: int = 0


def reference_bundles(mode: str, executor: Executor) -> bool:
    """Whether this session's bundles list their inputs' paths rather than carry them: ``mode``
    (one of ``options.BUNDLE_MODES``, checked by :class:`TailPolicy`) "reference", or "auto" on the
    local backend (workers on this machine read the dataset where it is: no copy of every image
    into the stage and out again)."""
    if mode == "auto":
        try:
            return executor.describe().get("backend") == "local"
        except Exception:  # an executor that cannot say: the safe choice
            return False
    return mode == "reference"


class Driver:
    def __init__(self, ledger: Ledger, executor: Executor, stage: Stage, tail: TailPolicy, *, run_id: str,
                 settings: dict, session: int, todo: list[int], console=None):
        self.ledger = ledger
        self.ex = executor
        self.stage = stage
        self.o = tail
        self.run_id = run_id
        self.settings = settings
        self.session = session
        self.console = console
        self.events: queue.Queue = queue.Queue()
        self.reference_bundles = reference_bundles(tail.bundles, executor)
        self.bundler = Bundler(stage, self.events, reference=self.reference_bundles)
        self.todo = list(todo)
        self.open_jobs = set(todo)
        self.pending: list[int] = []               # staged, waiting for a slot
        self.pending_since = 0.0
        self.live: dict[int, _Attempt] = {}        # attempt id -> attempt
        self.jobs: dict[int, _JobState] = {j: _JobState() for j in todo}
        self.durations: list[float] = []           # running times of reporting attempts
        self.worker_durations: dict[str, list[float]] = {}  # the same, per worker
        self.strikes: Counter = Counter()
        self.avoided: set[str] = set()
        self.warm: set[str] = set()                # workers that completed an attempt
        self.figures = SessionFigures()
        self.peak_workers = 0                      # most worker slots (or running batch jobs) seen
        self.lag = float(getattr(executor, "status_lag_s", 0.0))  # how late the executor reports

    # -- bundles ---------------------------------------------------------------------------
    def _queue_bundle(self, job_id: int, force: bool = False) -> None:
        job = self.ledger.job(job_id)
        items = [item_of(r) for r in self.ledger.job_images(job_id)]
        self.bundler.put(job_id, bundle_name(self.run_id, job_id, self.reference_bundles), items, staged=job if job["bundle"] else None,
                         force=force)

    # -- workers ---------------------------------------------------------------------------
    def _free_slots(self) -> int:
        slots = self.ex.capacity(self.avoided)
        busy = sum(1 for a in self.live.values() if a.worker is None or a.worker not in self.avoided)
        # never zero while nothing runs: a cluster still starting (or adaptive) needs work to see
        return max(slots + self.o.lookahead, 1 if not self.live else 0) - busy

    def _slower_than_peers(self, worker: str) -> bool:
        """Is the worker itself slow, not merely handed slow jobs? The median of its attempt times
        (those finished, and those running, counted as far as they got) against the median of the
        other workers' finished attempts must exceed ``speculate_factor``. Jobs of uneven size, or
        a machine loaded by something else, strike healthy workers too; this keeps them working."""
        now = time.time()
        own = list(self.worker_durations.get(worker, ()))
        own += [now - a.started for a in self.live.values() if a.worker == worker and a.started is not None]
        others = [d for w, ds in self.worker_durations.items() if w != worker for d in ds]
        if not own or not others:
            return True  # nothing to compare with: the strikes alone decide
        return statistics.median(own) > self.o.speculate_factor * statistics.median(others)

    def _strike(self, worker: str | None, why: str, job_id: int | None = None, evidence: bool = False) -> None:
        """Count a slow attempt against ``worker``; at ``slow_after`` strikes it gets no new jobs.
        Strikes with ``evidence`` (it vanished, lost a job or timed out) suffice; slow completions
        and backups also need the worker slower than its peers, and at most a third of the workers
        avoided (a run on two workers keeps both: backups deal with the stragglers)."""
        if not worker or not self.ex.can_avoid:
            return
        self.strikes[worker] += 1
        if self.strikes[worker] < self.o.slow_after or worker in self.avoided:
            return
        if not evidence and (not self._slower_than_peers(worker)
                             or len(self.avoided) + 1 > self.ex.capacity(set()) // 3):
            return  # keep most of the cluster working (of two workers, both), slow or not
        self.avoided.add(worker)
        self.ledger.event("slow-worker", f"{worker}: {self.strikes[worker]} slow attempts (last: {why}); "
                          "no new jobs go to it", job_id)

    # -- submission ------------------------------------------------------------------------
    def _new_attempt(self, job_id: int, role: str) -> JobSpec:
        job = self.ledger.job(job_id)
        attempt_id = self.ledger.new_attempt(job_id, self.session, None, time.time(), role)
        return make_spec(self.run_id, job_id, attempt_id, self.stage.url, job["bundle"], job["bundle_sha256"],
                         self.settings, self.o.staging_retry_s)

    def _handed(self, spec: JobSpec, role: str, batch_id: str | None, t0: float) -> None:
        self.ledger.set_attempt_key(spec.attempt, f"{self.run_id}-a{spec.attempt}", batch_id)
        a = _Attempt(spec.job_id, spec.attempt, t0, role)
        self.live[spec.attempt] = a
        self.jobs[spec.job_id].attempts.add(spec.attempt)

    def _submit(self, job_id: int, role: str, exclude: set | frozenset = frozenset()) -> bool:
        good = [w for w in self.ex.workers() if w not in self.avoided and w not in exclude]
        if exclude and not good:
            return False  # nowhere else to go
        avoid = frozenset(self.avoided | set(exclude)) if good else frozenset()
        t0 = time.time()
        spec = self._new_attempt(job_id, role)
        try:
            batch_id = self.ex.submit(spec, avoid, urgent=role in ("backup", "moved"))
        except Exception as exc:  # the submission itself failed (batch system refused it)
            self.ledger.fail_attempt(spec.attempt, f"submission failed: {type(exc).__name__}: {exc}")
            self._count_error(job_id, f"submission failed: {exc}", spec.attempt)
            return True
        self.figures.submission_s += time.time() - t0
        self.figures.submitted += 1
        self._handed(spec, role, batch_id, t0)
        return True

    def _hold_for_array(self, free: int) -> bool:
        """A batch system takes many first attempts in one submission (an array job) much faster
        than one by one: while the bundler is still producing, hold ready jobs for up to
        ``ARRAY_WAIT_S`` until there are enough to fill the free slots."""
        if not getattr(self.ex, "queues", False) or not self.pending:
            return False
        if len(self.pending) >= free or self.bundler.idle():
            return False
        return time.time() - self.pending_since < ARRAY_WAIT_S

    def _fill(self) -> None:
        free = self._free_slots()
        if self._hold_for_array(free):
            return
        firsts: list[int] = []
        while self.pending and free > 0:
            job_id = self.pending.pop(0)
            if job_id not in self.open_jobs:
                continue
            free -= 1
            if self.jobs[job_id].errors or self.avoided:
                self._submit(job_id, "retry" if self.jobs[job_id].errors else "first")
            else:
                firsts.append(job_id)
        if not firsts:
            return
        t0 = time.time()
        specs = [self._new_attempt(j, "first") for j in firsts]
        try:
            ids = self.ex.submit_many(specs)
        except Exception as exc:
            for s in specs:
                self.ledger.fail_attempt(s.attempt, f"submission failed: {type(exc).__name__}: {exc}")
                self._count_error(s.job_id, f"submission failed: {exc}", s.attempt)
            return
        self.figures.submission_s += time.time() - t0
        self.figures.submitted += len(specs)
        for s, batch_id in zip(specs, ids):
            self._handed(s, "first", batch_id, t0)

    def _drop(self, a: _Attempt, outcome: str, reason: str) -> None:
        """End a live attempt that will not report (cancelled or timed out)."""
        self.live.pop(a.attempt_id, None)
        self.jobs[a.job_id].attempts.discard(a.attempt_id)
        self.ledger.stop_attempt(a.attempt_id, outcome, reason, a.worker)
        try:
            self.ex.cancel(a.attempt_id)
        except Exception:
            pass

    # -- events ----------------------------------------------------------------------------
    def _on_started(self, ev: Started) -> None:
        a = self.live.get(ev.attempt)
        if a is None:
            return
        if a.started is not None and a.worker and ev.worker != a.worker:
            # the attempt started again elsewhere: its worker died and Dask re-ran the task
            self.ledger.event("worker-lost", f"{a.worker} vanished while running attempt {a.attempt_id}; "
                              f"re-run on {ev.worker}", a.job_id, a.attempt_id)
            self._strike(a.worker, "vanished during an attempt", a.job_id, evidence=True)
        a.started, a.worker = float(ev.started), ev.worker
        self.ledger.start_attempt(a.attempt_id, a.worker, a.started, ev.host, ev.pid)
        self._count_workers()

    def _on_finished(self, ev: Finished) -> None:
        a = self.live.pop(ev.attempt, None)
        if a is None:  # cancelled or moved: its result is not wanted
            if ev.report.get("result"):
                self.stage.delete(ev.report["result"])
            return
        report = ev.report
        st = self.jobs[a.job_id]
        if "images_digest" in report and report["images_digest"] != self._planned_digest(a.job_id):
            # the result holds other images than the ledger planned for this job: never commit it
            self.live[a.attempt_id] = a
            self.stage.delete(report["result"])
            self._on_failed(Failed(a.attempt_id, f"its result holds {report.get('n_images')} rows that are not the "
                                                 "job's planned images", kind="error", worker=report.get("worker")))
            return
        st.attempts.discard(a.attempt_id)
        outcome = self.ledger.finish_attempt(a.attempt_id, report)
        took = report["finished"] - report["started"]
        med = self._median()
        worker = report.get("worker")
        if (med and took > self.o.speculate_factor * med and len(self.durations) >= 3
                and worker in self.warm):  # a worker's first job pays its imports: not a strike
            self._strike(worker, f"{took:.1f} s for a {med:.1f} s median job", a.job_id)
        self.warm.add(worker)
        self.durations.append(took)
        if worker:
            self.worker_durations.setdefault(worker, []).append(took)
        if outcome == "discarded":
            self.stage.delete(report["result"])
        if a.job_id in self.open_jobs:
            self.open_jobs.discard(a.job_id)
            self.figures.committed += 1
            for other in [self.live[k] for k in list(st.attempts) if k in self.live]:
                self._drop(other, "cancelled", f"job committed by attempt {a.attempt_id}")
            if not self.o.keep_bundles:
                bundle = self.ledger.job(a.job_id)["bundle"]
                if bundle:
                    self.stage.delete(bundle)
            self.progress.update(done=1, images=report["n_images"], running=len(self.live))

    def _planned_digest(self, job_id: int) -> str:
        return images_digest(r["image"] for r in self.ledger.job_images(job_id))

    def _on_failed(self, ev: Failed) -> None:
        a = self.live.pop(ev.attempt, None)
        if a is None:
            return
        st = self.jobs[a.job_id]
        st.attempts.discard(a.attempt_id)
        worker = ev.worker or a.worker
        outcome = "lost" if ev.kind == "lost" else "error"
        self.ledger.fail_attempt(a.attempt_id, ev.error, outcome=outcome, report={**ev.report, "worker": worker})
        if ev.kind == "lost":
            self._strike(worker, ev.error, a.job_id, evidence=True)
            if worker:
                st.bad_workers.add(worker)
        if a.job_id not in self.open_jobs or st.attempts:
            return  # another attempt of the job is still running
        if ev.kind == "corrupt":
            if st.restaged == 0:
                st.restaged += 1
                self.ledger.event("restage", f"bundle failed its check ({ev.error}); staging it again", a.job_id,
                                  a.attempt_id)
                self._queue_bundle(a.job_id, force=True)
            else:
                self._fail_job(a.job_id, f"the bundle failed its sha256 check again after re-staging: {ev.error}")
            return
        st.errors += 1
        if st.errors >= self.o.max_attempts:
            self._fail_job(a.job_id, f"failed {st.errors} attempt(s); last: {ev.error}")
        elif ev.kind == "lost":
            self.ledger.event("moved", f"attempt {a.attempt_id} on {worker} vanished ({ev.error}); "
                              "running the job again elsewhere", a.job_id, a.attempt_id)
            if not self._submit(a.job_id, "moved", st.bad_workers):
                self._submit(a.job_id, "moved")
        else:
            self.ledger.event("retry", ev.error, a.job_id, a.attempt_id)
            self.pending.insert(0, a.job_id)

    def _count_error(self, job_id: int, reason: str, attempt_id: int) -> None:
        st = self.jobs[job_id]
        st.errors += 1
        if st.errors >= self.o.max_attempts:
            self._fail_job(job_id, f"failed {st.errors} attempt(s); last: {reason}")
        else:
            self.ledger.event("retry", reason, job_id, attempt_id)
            self.pending.append(job_id)

    def _fail_job(self, job_id: int, reason: str) -> None:
        self.ledger.set_job_state(job_id, "failed", reason)
        self.open_jobs.discard(job_id)
        self.progress.update(failed=1, running=len(self.live))

    # -- the tail --------------------------------------------------------------------------
    def _median(self) -> float | None:
        return statistics.median(self.durations) if self.durations else None

    def _timeout(self, med: float | None) -> float | None:
        if self.o.job_timeout is not None:
            return self.o.job_timeout or None
        # an executor that learns of starts and ends late (a grid CE) gets its lag on top
        return max(self.o.timeout_factor * med, self.o.timeout_min_s) + self.lag if med else None

    def _locate(self, now: float) -> None:
        """Where did the executor place attempts that have not signalled a start? (A frozen or
        swamped worker holds them without running them; the tail policy needs to know which.)"""
        waiting = [a.attempt_id for a in self.live.values() if a.worker is None and now - a.submitted > 2 * TICK_S]
        if not waiting:
            return
        try:
            placed = self.ex.locate(waiting)
        except Exception:
            return
        for attempt, worker in placed.items():
            if attempt in self.live and self.live[attempt].worker is None:
                self.live[attempt].worker = worker

    def _move(self, a: _Attempt, outcome: str, why: str) -> None:
        st = self.jobs[a.job_id]
        st.moves += 1
        # timed out (over timeout_factor x the median, or stuck in a queue): evidence enough
        self._strike(a.worker, why, a.job_id, evidence=True)
        self.ledger.event(outcome, f"attempt {why} on {a.worker or 'no worker yet'}; moved", a.job_id, a.attempt_id)
        self._drop(a, outcome, why)
        if a.worker:
            st.bad_workers.add(a.worker)
        if not st.attempts and not self._submit(a.job_id, "moved", st.bad_workers):
            self._submit(a.job_id, "moved")

    def _tail(self) -> None:
        now = time.time()
        self._locate(now)
        med = self._median()
        timeout = self._timeout(med)
        share = self.figures.committed / max(len(self.todo), 1)
        queues = getattr(self.ex, "queues", False)
        for a in list(self.live.values()):
            if a.attempt_id not in self.live:
                continue
            st = self.jobs[a.job_id]
            if queues and a.started is None:  # still in a batch queue: only the queue timeout applies
                waited = now - a.submitted
                if self.o.queue_timeout and waited > self.o.queue_timeout and st.moves < self.o.max_moves:
                    self._move(a, "timeout", f"waited {waited:.1f} s in the queue (limit {self.o.queue_timeout:.1f} s)")
                continue
            ran = now - (a.started or a.submitted)
            if timeout and ran > timeout and st.moves < self.o.max_moves:
                self._move(a, "timeout", f"timed out after {ran:.1f} s (limit {timeout:.1f} s)")
                continue
            if timeout and ran > timeout and len(st.attempts) == 1:
                # moved max_moves times already: this was its last chance; no job runs forever
                self._drop(a, "timeout", f"timed out after {ran:.1f} s (limit {timeout:.1f} s), its last move")
                self._fail_job(a.job_id, f"timed out {st.moves + 1} times (limit {timeout:.1f} s)")
                continue
            if (self.o.speculate and med and not st.backup and len(st.attempts) == 1 and a.worker is not None
                    and share >= self.o.speculate_after and ran > self.o.speculate_factor * med + self.lag):
                st.bad_workers.add(a.worker)
                if self._submit(a.job_id, "backup", st.bad_workers):
                    st.backup = True
                    self._strike(a.worker, f"needed a backup after {ran:.1f} s", a.job_id)
                    self.ledger.event("backup", f"attempt on {a.worker} ran {ran:.1f} s > "
                                      f"{self.o.speculate_factor:g} x median {med:.1f} s", a.job_id, a.attempt_id)

    def _count_workers(self) -> None:
        if getattr(self.ex, "queues", False):  # batch jobs: as many workers as attempts running at once
            n = sum(1 for a in self.live.values() if a.started is not None)
        else:
            n = self.ex.capacity(set())
        self.peak_workers = max(self.peak_workers, n)

    # -- the loop --------------------------------------------------------------------------
    def _handle(self, ev) -> None:
        if isinstance(ev, BundleReady):
            self.ledger.set_bundle(ev.job_id, ev.name, ev.sha256, ev.nbytes)
            if not self.pending:
                self.pending_since = time.time()
            self.pending.append(ev.job_id)
        elif isinstance(ev, BundleFailed):
            self._fail_job(ev.job_id, ev.reason)
        elif isinstance(ev, Started):
            self._on_started(ev)
        elif isinstance(ev, Finished):
            self._on_finished(ev)
        elif isinstance(ev, Failed):
            self._on_failed(ev)

    def run(self) -> SessionFigures:
        self.ex.start(self.events)
        self._count_workers()
        for job_id in self.todo:
            self._queue_bundle(job_id)
        self.bundler.start()
        images = sum(j["n_images"] for j in self.ledger.jobs() if j["job_id"] in self.open_jobs)
        self.progress = Progress(self.console, len(self.todo), images)
        last_tick = time.monotonic()
        try:
            with self.progress:
                while self.open_jobs:
                    try:  # every event waiting, then one submission round (a batch of ready jobs
                        # becomes one array job)
                        self._handle(self.events.get(timeout=TICK_S))
                        while True:
                            self._handle(self.events.get_nowait())
                    except queue.Empty:
                        pass
                    if time.monotonic() - last_tick >= TICK_S:
                        last_tick = time.monotonic()
                        self.ex.tick()
                        self._count_workers()
                        self._tail()
                    self._fill()
                    self.progress.update(running=len(self.live))
        finally:
            self.bundler.stop()
            for a in list(self.live.values()):
                self._drop(a, "cancelled", "the session ended")
            # an interrupt between an attempt's ledger row and its hand-over leaves it out of
            # ``live``: the ledger, not memory, says what this session left running
            for attempt_id in self.ledger.running_attempts(self.session):
                self.ledger.stop_attempt(attempt_id, "cancelled", "the session ended")
                try:
                    self.ex.cancel(attempt_id)
                except Exception:
                    pass
            self.figures.bundling_s = self.bundler.busy_s
        return self.figures
