"""Attempts as Dask tasks: the executor of every backend whose workers are Dask workers
(``local``, ``dask``, ``ssh``, the batch systems in ``--mode workers``, Kubernetes, cloud VMs).

Each attempt is one task (``pure=False``, no Dask retries: the driver decides). Its worker sends
the "started" note and then the attempt's report through the scheduler's event stream
(:mod:`medfeat.production.job`), ahead of the task's own completion, so the result is never
fetched from the worker's memory: a worker that freezes just after a job cannot stall the run.
Only when no report came is the result fetched, within ``RESULT_FETCH_S``, in a thread of this
executor; failing that the attempt is reported lost.
"""
from __future__ import annotations

import queue
import threading

from medfeat.production.executor import Executor, Failed, Finished, Started
from medfeat.production.job import FINISHED_TOPIC, STARTED_TOPIC, failure_kind, run_job
from medfeat.production.spec import JobSpec

# A finished attempt whose report did not come through the event stream is fetched from its
# worker, but never waited on longer than this: the worker may have frozen holding the result.
RESULT_FETCH_S = 20.0


#: A medfeat job is one long task: a worker should hold exactly one per thread. Dask's default
#: (1.1) lets the scheduler send a second task to a busy worker while another is idle, which then
#: waits there until work stealing moves it (0.4 - 2 s each time, measured on the seed production).
WORKER_SATURATION = 1.0


def one_task_per_thread():
    """Dask config for a scheduler made in this process (LocalCluster, dask-jobqueue)."""
    import dask.config

    return dask.config.set({"distributed.scheduler.worker-saturation": WORKER_SATURATION})


class DaskExecutor(Executor):
    """Runs attempts on the Dask cluster behind ``client``; closes ``cluster`` (and the client)
    at the end when it was started for this run (``owned``)."""

    name = "dask"

    def __init__(self, client, cluster=None, *, owned: bool = False, name: str | None = None,
                 options: dict | None = None, keep_size: int | None = None):
        self.client = client
        self.cluster = cluster
        self.owned = owned
        if name:
            self.name = name
        self.options = dict(options or {})
        self.keep_size = keep_size       # batch-job workers: ask for replacements of lost ones
        self.futures: dict[int, object] = {}
        self.attempt_of: dict[str, int] = {}
        self.reported: set[int] = set()
        self.cancelled: set[int] = set()
        self.nthreads: dict[str, int] = {}
        self._done: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    @classmethod
    def on_cluster(cls, cluster, spec, name: str, options: dict, keep_size: int | None = None) -> "DaskExecutor":
        """The executor of a cluster a backend has just started: adaptive for ``MIN:MAX`` sizes;
        the cluster is closed again if no client can connect to it."""
        from distributed import Client

        lo, hi = spec.size()
        try:
            if lo is not None and lo != hi:
                cluster.adapt(minimum=lo, maximum=hi)
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        return cls(client, cluster, owned=True, name=name, options=options, keep_size=keep_size)

    # -- life --------------------------------------------------------------------------------
    def start(self, events: queue.Queue) -> None:
        self.events = events
        self.client.subscribe_topic(STARTED_TOPIC, lambda ev: self._on_started(ev[1]))
        self.client.subscribe_topic(FINISHED_TOPIC, lambda ev: self._on_finished(ev[1]))
        self._thread = threading.Thread(target=self._done_loop, name="medfeat-dask-done", daemon=True)
        self._thread.start()
        self.tick()

    def close(self) -> None:
        self._stop.set()
        for topic in (STARTED_TOPIC, FINISHED_TOPIC):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:
                pass
        if self.owned:
            try:
                self.client.close()
            finally:
                if self.cluster is not None:
                    self.cluster.close()

    def describe(self) -> dict:
        info = {"backend": self.name, "address": self.client.scheduler.address, "options": self.options}
        if self.cluster is not None:
            info["dashboard"] = self.client.dashboard_link
        return info

    # -- workers ----------------------------------------------------------------------------
    def tick(self) -> None:
        try:
            self.nthreads = dict(self.client.nthreads())
        except Exception:  # the scheduler is busy or briefly unreachable: keep the last view
            pass
        if self.keep_size and self.cluster is not None and len(self.nthreads) < self.keep_size:
            try:  # a worker's batch job ended (cancelled, walltime): ask for another
                self.cluster.scale(self.keep_size)
            except Exception:
                pass

    def workers(self) -> dict[str, int]:
        return dict(self.nthreads)

    def locate(self, attempts: list[int]) -> dict[int, str]:
        placed = {k: w for w, keys in self.client.processing().items() for k in keys}
        keys = {a: self.futures[a].key for a in attempts if a in self.futures}
        return {a: placed[k] for a, k in keys.items() if k in placed}

    # -- attempts ---------------------------------------------------------------------------
    def submit(self, spec: JobSpec, avoid: frozenset[str] = frozenset(), urgent: bool = False) -> str | None:
        kwargs: dict = {}
        good = [w for w in self.nthreads if w not in avoid]
        if avoid and good:
            kwargs = {"workers": good, "allow_other_workers": False}
        if urgent:
            kwargs["priority"] = 10
        key = f"medfeat-{spec.run_id}-job{spec.job_id:05d}-a{spec.attempt}"
        fut = self.client.submit(run_job, spec, key=key, pure=False, retries=0, **kwargs)
        self.futures[spec.attempt] = fut
        self.attempt_of[key] = spec.attempt
        fut.add_done_callback(lambda f: self._done.put(f))
        return None

    def cancel(self, attempt: int) -> None:
        self.cancelled.add(attempt)
        fut = self.futures.pop(attempt, None)
        if fut is not None:
            try:
                fut.cancel()
                fut.release()
            except Exception:
                pass

    # -- events (scheduler's event stream, in the client's loop thread) --------------------
    def _on_started(self, msg: dict) -> None:
        self.events.put(Started(msg["attempt"], msg["worker"], float(msg["started"]), msg.get("host"), msg.get("pid")))

    def _on_finished(self, msg: dict) -> None:
        """An attempt's report, sent by its worker ahead of the task's completion message."""
        self.reported.add(msg["attempt"])
        self.events.put(Finished(msg["attempt"], msg["report"]))

    def _done_loop(self) -> None:
        while not self._stop.is_set():
            try:
                fut = self._done.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._on_done(fut)
            except Exception:  # never let one odd future stop the loop
                pass

    def _on_done(self, fut) -> None:
        attempt = self.attempt_of.get(fut.key)
        if attempt is None or attempt in self.reported or attempt in self.cancelled:
            self._release(fut)
            return
        if fut.status == "finished":
            # no report came through the scheduler (it always should): fetch the task's result,
            # but never wait on a worker that may have frozen holding it
            try:
                report = fut.result(timeout=RESULT_FETCH_S)
                self.reported.add(attempt)
                self.events.put(Finished(attempt, report))
            except Exception as exc:
                self.events.put(Failed(attempt, f"finished, but its report could not be fetched in "
                                                f"{RESULT_FETCH_S:g} s ({type(exc).__name__})", kind="lost"))
        else:
            exc = fut.exception() if fut.status == "error" else None
            msg = f"{type(exc).__name__}: {exc}" if exc is not None else f"attempt {fut.status}"
            self.events.put(Failed(attempt, msg, kind=failure_kind(exc) if exc is not None else "lost"))
        self._release(fut)
        self.futures.pop(attempt, None)

    @staticmethod
    def _release(fut) -> None:
        try:
            fut.release()
        except Exception:
            pass
