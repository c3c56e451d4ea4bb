"""The interface between the production driver and whatever runs jobs.

The driver (:mod:`medfeat.production.driver`) decides *what* runs *where not*: which job next,
backups, timeouts, slow workers. An :class:`Executor` only runs attempts: Dask workers
(:mod:`medfeat.production.dask_executor`), batch jobs that cannot call back
(:mod:`medfeat.production.batch_executor`), or a fake one in the tail-policy tests. It reports
what happens as events on the queue handed to :meth:`Executor.start`:

* :class:`Started` -- an attempt began on a worker (host, pid, when);
* :class:`Finished` -- an attempt succeeded; its report is the job's result;
* :class:`Failed` -- an attempt ended without a result: its code raised (``error``), its bundle
  failed its sha256 check (``corrupt``), or it vanished (``lost``: worker or batch job gone,
  result unreachable).

Each attempt is named by its ledger ``attempt`` id; an executor keeps its own handles.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass, field

from medfeat.production.spec import JobSpec


@dataclass
class Started:
    attempt: int
    worker: str
    started: float
    host: str | None = None
    pid: int | None = None
    batch_id: str | None = None


@dataclass
class Finished:
    attempt: int
    report: dict


@dataclass
class Failed:
    attempt: int
    error: str
    kind: str = "error"                 # error | corrupt | lost
    worker: str | None = None
    report: dict = field(default_factory=dict)


class Executor:
    """Runs job attempts somewhere. Subclasses implement every method but :meth:`submit_many`."""

    name = "executor"
    #: True where a worker's name is a place one can avoid (Dask worker, batch node)
    can_avoid = True
    #: True where attempts wait in a queue before they start (batch systems): only the queue
    #: timeout applies to an attempt that has not started
    queues = False
    #: seconds by which starts and ends may be reported late (polling, a grid's status lag); added
    #: to the timeout and the backup threshold so that healthy attempts are not moved
    status_lag_s = 0.0

    def start(self, events: "queue.Queue") -> None:
        """Connect (or start workers); events go to ``events`` from now on."""
        raise NotImplementedError

    def workers(self) -> dict[str, int]:
        """Known workers (or nodes) and their slots: the places a job can be sent to or kept from."""
        raise NotImplementedError

    def capacity(self, avoided: set[str]) -> int:
        """How many attempts may run (or queue) at once, not counting ``avoided`` workers."""
        good = {w: n for w, n in self.workers().items() if w not in avoided}
        return sum(good.values()) if good else sum(self.workers().values())

    def submit(self, spec: JobSpec, avoid: frozenset[str] = frozenset(), urgent: bool = False) -> str | None:
        """Start an attempt anywhere but on ``avoid``; ``urgent`` (a backup, a moved job) goes before
        queued work where the executor can do that. Returns a batch job id where there is one."""
        raise NotImplementedError

    def submit_many(self, specs: list[JobSpec]) -> list[str | None]:
        """Several first attempts at once (a batch system submits them as one array job)."""
        return [self.submit(s) for s in specs]

    def cancel(self, attempt: int) -> None:
        """Stop an attempt (another attempt won, or it timed out); no event follows for it."""
        raise NotImplementedError

    def locate(self, attempts: list[int]) -> dict[int, str]:
        """Where attempts that have not signalled a start were placed (worker names), if known."""
        return {}

    def tick(self) -> None:
        """Called about twice a second by the driver: poll what needs polling."""

    def describe(self) -> dict:
        """Name, address and options of what runs the jobs (no secrets), for the ledger."""
        return {"backend": self.name}

    def close(self) -> None:
        """Stop everything this executor started (not a cluster it was handed)."""


def drain(events: "queue.Queue") -> list:
    """Every event waiting on ``events`` (tests)."""
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out
