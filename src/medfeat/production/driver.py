"""The client's control loop of a production session: stage, submit, watch, commit, beat the tail.

A bundler thread packs and stages bundles ahead of the workers. The main thread hands ready jobs
to Dask only as worker threads come free (plus ``lookahead``), so that what waits, waits here and
can still be placed well: on a worker that is not slow, or as a backup on another worker. Every
attempt is in the ledger from submission on; its worker signals when it starts (an event through
the scheduler), so the loop knows how long each attempt has been running.

Tail policy, checked twice a second:

* **speculation** -- once ``speculate_after`` of the session's jobs are committed, an attempt
  running longer than ``speculate_factor`` x the median job time gets one backup attempt on a
  different worker; the first result committed wins and the other attempt is cancelled;
* **timeout** -- an attempt running longer than ``job_timeout`` (default: ``timeout_factor`` x the
  median, at least ``timeout_min_s``) is cancelled and its job moved to another worker (at most
  ``max_moves`` times per job);
* **slow workers** -- a worker whose attempt was slow (needed a backup, timed out, or finished
  after ``speculate_factor`` x the median) ``slow_after`` times gets no new jobs; it is named in
  the ledger's events and the report.

Dask itself re-runs the tasks of a worker that dies; a frozen worker is dropped after the
scheduler's ``worker-ttl`` (60 s on clusters medfeat starts), and before that the timeout moves
its jobs. An attempt's report reaches the client through the scheduler's event stream, so a worker
that freezes just after a job, holding the task's result, never holds up the commit. A job whose code raises is retried up to ``max_attempts``; a bundle that fails its
sha256 check is re-staged from the dataset once, then the job fails with that reason.
"""
from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from medfeat.production.job import FINISHED_TOPIC, STARTED_TOPIC, run_job
from medfeat.production.staging import BundleCorrupt

TICK_S = 0.5
# A finished attempt whose report did not come through the event stream is fetched from its
# worker, but never waited on longer than this: the worker may have frozen holding the result.
RESULT_FETCH_S = 20.0


@dataclass
class _Attempt:
    job_id: int
    attempt_id: int
    key: str
    fut: object
    submitted: float
    role: str
    started: float | None = None
    worker: str | None = None


@dataclass
class _JobState:
    keys: set = field(default_factory=set)
    errors: int = 0      # attempts whose code raised
    moves: int = 0       # attempts cancelled by the timeout
    restaged: int = 0    # bundles re-staged after a failed hash check
    backup: bool = False
    bad_workers: set = field(default_factory=set)  # where this job timed out or straggled


class _Driver:
    def __init__(self, production, client, session: int, todo: list[int]):
        self.p = production
        self.o = production.options
        self.ledger = production.ledger
        self.client = client
        self.session = session
        self.events: queue.Queue = queue.Queue()
        self.bundle_work: queue.Queue = queue.Queue()
        self.ledger_updates = production.ledger_updates = queue.Queue()
        self.stop = threading.Event()
        self.todo = list(todo)
        self.open_jobs = set(todo)
        self.pending: list[int] = []               # staged, waiting for a worker thread
        self.live: dict[str, _Attempt] = {}        # Dask key -> attempt
        self.by_attempt: dict[int, _Attempt] = {}
        self.jobs: dict[int, _JobState] = {j: _JobState() for j in todo}
        self.durations: list[float] = []           # running times of reporting attempts
        self.strikes: Counter = Counter()
        self.avoided: set[str] = set()
        self.warm: set[str] = set()                # workers that completed an attempt
        self.nthreads: dict[str, int] = {}
        self.committed = 0
        self.submission_s = 0.0
        self.submitted = 0
        self.spec_base = {"stage_url": production.stage.url, "settings": production.settings,
                          "families": production.families, "staging_retry_s": self.o.staging_retry_s}

    # -- bundles ---------------------------------------------------------------------------
    def _bundler(self) -> None:
        while not self.stop.is_set():
            try:
                job_id, staged, items, force = self.bundle_work.get(timeout=0.2)
            except queue.Empty:
                continue
            t0 = time.time()
            try:
                if force and staged:
                    self.p.stage.delete(staged)
                self.p._bundle(job_id, None if force else staged, items)
                self.events.put(("ready", job_id, None))
            except Exception as exc:  # the job fails with the reason; the others go on
                self.events.put(("unstaged", job_id, f"staging the bundle failed: {type(exc).__name__}: {exc}"))
            finally:
                self.p.planning_s += time.time() - t0

    def _queue_bundle(self, job_id: int, force: bool = False) -> None:
        # the bundler thread never touches SQLite: it gets everything it needs here
        self.bundle_work.put((job_id, self.ledger.job(job_id)["bundle"], self.p._items(job_id), force))

    def _apply_ledger_updates(self) -> None:
        while not self.ledger_updates.empty():
            _, job_id, name, sha, nbytes = self.ledger_updates.get()
            self.ledger.set_bundle(job_id, name, sha, nbytes)

    # -- workers ---------------------------------------------------------------------------
    def _refresh_workers(self) -> None:
        try:
            self.nthreads = dict(self.client.nthreads())
        except Exception:  # the scheduler is busy or briefly unreachable: keep the last view
            pass

    def _good_workers(self, exclude: set | frozenset = frozenset()) -> list[str]:
        return [w for w in self.nthreads if w not in self.avoided and w not in exclude]

    def _free_slots(self) -> int:
        good = self._good_workers()
        slots = sum(self.nthreads[w] for w in good) if good else sum(self.nthreads.values())
        busy = sum(1 for a in self.live.values() if a.worker is None or a.worker not in self.avoided)
        # never zero while nothing runs: a cluster still starting (or adaptive) needs work to see
        return max(slots + self.o.lookahead, 1 if not self.live else 0) - busy

    def _strike(self, worker: str | None, why: str, job_id: int | None = None) -> None:
        if not worker:
            return
        self.strikes[worker] += 1
        if self.strikes[worker] >= self.o.slow_after and worker not in self.avoided:
            self.avoided.add(worker)
            self.ledger.event("slow-worker", f"{worker}: {self.strikes[worker]} slow attempts (last: {why}); "
                              "no new jobs go to it", job_id)

    # -- submission ------------------------------------------------------------------------
    def _submit(self, job_id: int, role: str, exclude: set | frozenset = frozenset()) -> bool:
        kwargs: dict = {}
        good = self._good_workers(exclude)
        if exclude and not good:
            return False  # nowhere else to go
        if (exclude or self.avoided) and good:
            kwargs = {"workers": good, "allow_other_workers": False}
        if role in ("backup", "moved"):
            kwargs["priority"] = 10
        job = self.ledger.job(job_id)
        t0 = time.time()
        attempt_id = self.ledger.new_attempt(job_id, self.session, None, t0, role)
        key = f"medfeat-job-{job_id:05d}-s{self.session}-a{attempt_id}"
        spec = dict(self.spec_base, job_id=job_id, attempt=attempt_id, bundle=job["bundle"],
                    bundle_sha256=job["bundle_sha256"], result=f"results/job-{job_id:05d}/attempt-{attempt_id}.parquet")
        fut = self.client.submit(run_job, spec, key=key, pure=False, retries=0, **kwargs)
        self.submission_s += time.time() - t0
        self.submitted += 1
        self.ledger.set_attempt_key(attempt_id, key)
        a = _Attempt(job_id, attempt_id, key, fut, t0, role)
        self.live[key] = a
        self.by_attempt[attempt_id] = a
        self.jobs[job_id].keys.add(key)
        fut.add_done_callback(lambda f: self.events.put(("done", f.key, f)))
        return True

    def _fill(self) -> None:
        while self.pending and self._free_slots() > 0:
            job_id = self.pending.pop(0)
            if job_id in self.open_jobs:
                self._submit(job_id, "retry" if self.jobs[job_id].errors else "first")

    def _drop(self, a: _Attempt, outcome: str, reason: str) -> None:
        """End a live attempt that will not report (cancelled or timed out)."""
        self.live.pop(a.key, None)
        self.jobs[a.job_id].keys.discard(a.key)
        self.ledger.stop_attempt(a.attempt_id, outcome, reason, a.worker)
        try:
            a.fut.cancel()
            a.fut.release()
        except Exception:
            pass

    # -- events ----------------------------------------------------------------------------
    def _on_started(self, msg: dict) -> None:
        a = self.by_attempt.get(msg.get("attempt"))
        if a is None or a.key not in self.live:
            return
        a.started, a.worker = float(msg["started"]), msg["worker"]
        self.ledger.start_attempt(a.attempt_id, a.worker, a.started, msg.get("host"), msg.get("pid"))

    def _on_finished(self, msg: dict) -> None:
        """An attempt's report, sent by its worker through the scheduler ahead of the task's own
        completion: the attempt is committed from it, so the result never has to be fetched from
        the worker's memory (a worker that freezes just after a job does not stall the run)."""
        a = self.by_attempt.get(msg.get("attempt"))
        if a is not None and a.key in self.live:
            self._commit(a, msg["report"])

    def _commit(self, a: _Attempt, report: dict) -> None:
        self.live.pop(a.key, None)
        st = self.jobs[a.job_id]
        st.keys.discard(a.key)
        outcome = self.ledger.finish_attempt(a.attempt_id, report)
        took = report["finished"] - report["started"]
        med = self._median()
        worker = report.get("worker")
        if (med and took > self.o.speculate_factor * med and len(self.durations) >= 3
                and worker in self.warm):  # a worker's first job pays its imports: not a strike
            self._strike(worker, f"{took:.1f} s for a {med:.1f} s median job", a.job_id)
        self.warm.add(worker)
        self.durations.append(took)
        if outcome == "discarded":
            self.p.stage.delete(report["result"])
        if a.job_id in self.open_jobs:
            self.open_jobs.discard(a.job_id)
            self.committed += 1
            for other in [self.live[k] for k in list(st.keys)]:
                self._drop(other, "cancelled", f"job committed by attempt {a.attempt_id}")
            self.progress.update(done=1, images=report["n_images"], running=len(self.live))

    def _on_done(self, key: str, fut) -> None:
        a = self.live.get(key)
        if a is None:  # committed from its report, cancelled or moved: nothing left to do
            self._release(fut)
            return
        st = self.jobs[a.job_id]
        if fut.status == "finished":
            # no report came through the scheduler (it always should): fetch the task's result,
            # but never wait on a worker that may have frozen holding it
            try:
                self._commit(a, fut.result(timeout=RESULT_FETCH_S))
            except Exception as exc:
                self.live.pop(key, None)
                st.keys.discard(key)
                self.ledger.fail_attempt(a.attempt_id, f"finished, but its report could not be fetched from "
                                         f"{a.worker} in {RESULT_FETCH_S:g} s ({type(exc).__name__})", outcome="lost")
                self._strike(a.worker, "its finished result could not be fetched", a.job_id)
                if a.worker:
                    st.bad_workers.add(a.worker)
                if a.job_id in self.open_jobs and not st.keys:
                    self.ledger.event("moved", f"the result of attempt {a.attempt_id} on {a.worker} is "
                                      "unreachable; running the job again elsewhere", a.job_id, a.attempt_id)
                    if not self._submit(a.job_id, "moved", st.bad_workers):
                        self._submit(a.job_id, "moved")
        else:
            self.live.pop(key, None)
            st.keys.discard(key)
            exc = fut.exception() if fut.status == "error" else None
            msg = f"{type(exc).__name__}: {exc}" if exc is not None else f"attempt {fut.status}"
            self.ledger.fail_attempt(a.attempt_id, msg)
            if a.job_id in self.open_jobs and not st.keys:
                if isinstance(exc, BundleCorrupt) and st.restaged == 0:
                    st.restaged += 1
                    self.ledger.event("restage", f"bundle failed its check ({exc}); staging it again", a.job_id,
                                      a.attempt_id)
                    self._queue_bundle(a.job_id, force=True)
                elif isinstance(exc, BundleCorrupt):
                    self._fail_job(a.job_id, f"the bundle failed its sha256 check again after re-staging: {msg}")
                else:
                    st.errors += 1
                    if st.errors < self.o.max_attempts:
                        self.ledger.event("retry", msg, a.job_id, a.attempt_id)
                        self.pending.insert(0, a.job_id)
                    else:
                        self._fail_job(a.job_id, f"failed {st.errors} attempt(s); last: {msg}")
        self._release(fut)

    @staticmethod
    def _release(fut) -> None:
        try:
            fut.release()
        except Exception:
            pass

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
        return max(self.o.timeout_factor * med, self.o.timeout_min_s) if med else None

    def _locate(self, now: float) -> None:
        """Where did Dask place attempts that have not signalled a start? (A frozen or swamped
        worker holds them without running them; the tail policy needs to know which.)"""
        if not any(a.worker is None and now - a.submitted > 2 * TICK_S for a in self.live.values()):
            return
        try:
            placed = {k: w for w, keys in self.client.processing().items() for k in keys}
        except Exception:
            return
        for a in self.live.values():
            if a.worker is None and a.key in placed:
                a.worker = placed[a.key]

    def _tail(self) -> None:
        now = time.time()
        self._locate(now)
        med = self._median()
        timeout = self._timeout(med)
        share = self.committed / max(len(self.todo), 1)
        for a in list(self.live.values()):
            if a.key not in self.live:
                continue
            st = self.jobs[a.job_id]
            ran = now - (a.started or a.submitted)
            if timeout and ran > timeout and st.moves < self.o.max_moves:
                st.moves += 1
                self._strike(a.worker, f"timed out after {ran:.0f} s", a.job_id)
                self.ledger.event("timeout", f"attempt ran {ran:.1f} s > {timeout:.1f} s on {a.worker}; "
                                  "moved to another worker", a.job_id, a.attempt_id)
                self._drop(a, "timeout", f"timed out after {ran:.1f} s (limit {timeout:.1f} s)")
                if a.worker:
                    st.bad_workers.add(a.worker)
                if not st.keys and not self._submit(a.job_id, "moved", st.bad_workers):
                    self._submit(a.job_id, "moved")
                continue
            if (self.o.speculate and med and not st.backup and len(st.keys) == 1 and a.worker is not None
                    and share >= self.o.speculate_after and ran > self.o.speculate_factor * med):
                st.bad_workers.add(a.worker)
                if self._submit(a.job_id, "backup", st.bad_workers):
                    st.backup = True
                    self._strike(a.worker, f"needed a backup after {ran:.1f} s", a.job_id)
                    self.ledger.event("backup", f"attempt on {a.worker} ran {ran:.1f} s > "
                                      f"{self.o.speculate_factor:g} x median {med:.1f} s", a.job_id, a.attempt_id)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> tuple[float, int]:
        from medfeat.production.engine import _Progress

        self.client.subscribe_topic(STARTED_TOPIC, lambda ev: self.events.put(("started", None, ev[1])))
        self.client.subscribe_topic(FINISHED_TOPIC, lambda ev: self.events.put(("finished", None, ev[1])))
        for job_id in self.todo:
            self._queue_bundle(job_id)
        thread = threading.Thread(target=self._bundler, name="medfeat-bundler", daemon=True)
        thread.start()
        self.progress = _Progress(self.p.console if self.o.progress else None, len(self.todo),
                                  sum(j["n_images"] for j in self.ledger.jobs() if j["job_id"] in self.open_jobs))
        self._refresh_workers()
        last_tick = time.monotonic()
        try:
            with self.progress:
                while self.open_jobs:
                    try:
                        kind, ref, payload = self.events.get(timeout=TICK_S)
                    except queue.Empty:
                        kind = None
                    self._apply_ledger_updates()
                    if kind == "ready":
                        self.pending.append(ref)
                    elif kind == "unstaged":
                        self._fail_job(ref, payload)
                    elif kind == "started":
                        self._on_started(payload)
                    elif kind == "finished":
                        self._on_finished(payload)
                    elif kind == "done":
                        self._on_done(ref, payload)
                    if time.monotonic() - last_tick >= TICK_S:
                        last_tick = time.monotonic()
                        self._refresh_workers()
                        self._tail()
                    self._fill()
                    self.progress.update(running=len(self.live))
        finally:
            self.stop.set()
            thread.join(timeout=60)
            for a in list(self.live.values()):
                self._drop(a, "cancelled", "the session ended")
            for topic in (STARTED_TOPIC, FINISHED_TOPIC):
                try:
                    self.client.unsubscribe_topic(topic)
                except Exception:
                    pass
        return self.submission_s, self.submitted
