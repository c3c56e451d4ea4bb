"""The run's durable record: SQLite in the run folder.

Only the client process writes it (workers report back through Dask), every state change is
committed at once, and the database runs in WAL mode, so a crash at any moment leaves a ledger
that says exactly which jobs have a committed result. Resuming reruns every other job.

Tables
------
run       one row: settings, dataset fingerprint, medfeat version, plan parameters, start/end
jobs      one row per job: images, bundle name and sha256, state, committed attempt, result name
images    one row per image of a job (plan order), with its mask
attempts  one row per attempt of a job: where it ran and when each phase ended, and its outcome
events    notable happenings (a discarded duplicate result, a backup, a timeout, a slow worker,
          a re-staged bundle), for the report
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from medfeat.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created REAL NOT NULL,
    medfeat_version TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    families TEXT NOT NULL,
    images_per_job INTEGER NOT NULL,
    stage_url TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    ended REAL,
    workers INTEGER,
    scheduler TEXT,
    planning_s REAL,
    submission_s REAL,
    submitted_jobs INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    n_images INTEGER NOT NULL,
    bundle TEXT,
    bundle_sha256 TEXT,
    bundle_bytes INTEGER,
    state TEXT NOT NULL DEFAULT 'planned',  -- planned | staged | running | committed | failed
    committed_attempt INTEGER,
    result TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS images (
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    image TEXT NOT NULL,
    mask TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    session INTEGER,
    key TEXT,
    worker TEXT,
    host TEXT,
    pid INTEGER,
    submitted REAL,
    started REAL,
    staged_in REAL,
    computed REAL,
    staged_out REAL,
    finished REAL,
    outcome TEXT,            -- running | committed | discarded | error | lost | cancelled | timeout
    error TEXT,
    result TEXT,
    n_images INTEGER,
    n_failed INTEGER,
    bytes_in INTEGER,
    bytes_out INTEGER,
    role TEXT,               -- first | retry | backup | moved
    staging_retries INTEGER, -- transient staging failures the attempt survived
    cpu_s REAL,              -- CPU seconds of the attempt's thread (stage-in to stage-out)
    rss_peak_mb REAL         -- the worker process's peak resident memory when the attempt ended (MiB)
);
CREATE INDEX IF NOT EXISTS attempts_job ON attempts (job_id);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    job_id INTEGER,
    attempt_id INTEGER,
    detail TEXT
);
"""

LEDGER_NAME = "ledger.sqlite"

# Schema versions: each step adds columns (a fresh ledger gets them from SCHEMA via the same steps).
#   1: attempts.role, attempts.staging_retries (medfeat 0.1.0 had neither)
#   2: run.run_id (the run's prefix in the stage), the backend of each session, batch job ids
#   3: each image's mask label, RTSTRUCT ROI name and cohort identifiers (JSON)
#   4: each attempt's CPU time and its worker's peak resident memory
#   5: each session's client peak resident memory (the `medfeat run` process)
MIGRATIONS = (
    (1, (("attempts", "role", "TEXT"), ("attempts", "staging_retries", "INTEGER"))),
    (2, (("run", "run_id", "TEXT"), ("sessions", "backend", "TEXT"), ("sessions", "backend_options", "TEXT"),
         ("attempts", "batch_id", "TEXT"))),
    (3, (("images", "label", "INTEGER"), ("images", "roi", "TEXT"), ("images", "ids", "TEXT"))),
    (4, (("attempts", "cpu_s", "REAL"), ("attempts", "rss_peak_mb", "REAL"))),
    (5, (("sessions", "client_rss_peak_mb", "REAL"),)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class Ledger:
    """The SQLite ledger of one run folder."""

    def __init__(self, run_dir: str | Path, readonly: bool = False):
        """Open (or create) the ledger. ``readonly``: for readers of a run that may be going on
        (the report, a watcher): no write at all, so the running client is never held up; a ledger
        of an older schema is still migrated first."""
        self.path = Path(run_dir) / LEDGER_NAME
        if readonly and self.path.exists():
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            try:
                if self.db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                    return
            except sqlite3.DatabaseError as exc:  # not a database (a file overwritten, a disk error)
                self.db.close()
                raise InputError(self.path, f"cannot use the run's ledger: {exc}") from None
            self.db.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one; a read-only folder
            raise InputError(self.path, f"cannot use the run's ledger: {exc}") from None
        except OSError as exc:  # the run folder cannot be made (under a regular file, no permission)
            raise InputError(self.path.parent, f"cannot make the run folder: {exc.strerror or exc}") from None

    def _migrate(self) -> None:
        """Bring a ledger written by an older medfeat up to :data:`SCHEMA_VERSION`, one step at a
        time (``PRAGMA user_version`` says where it is), so old run folders still report and resume."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for target, statements in MIGRATIONS:
            if version >= target:
                continue
            with self.transaction() as db:
                for table, col, kind in statements:
                    if col not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
                db.execute(f"PRAGMA user_version = {target}")
            version = target

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- the run ---------------------------------------------------------------------------
    def run_info(self) -> dict | None:
        row = self.db.execute("SELECT * FROM run WHERE id = 1").fetchone()
        return dict(row) if row else None

    def create_run(self, *, version: str, dataset: str, fingerprint: str, settings: dict, families,
                   images_per_job: int, stage_url: str, jobs, run_id: str = "") -> None:
        if self.run_info() is not None:
            raise InputError(self.path.parent, "another medfeat planned a run in this folder at the same time")
        with self.transaction() as db:
            db.execute("INSERT INTO run (id, created, medfeat_version, dataset, dataset_fingerprint, settings, "
                       "families, images_per_job, stage_url, run_id) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (time.time(), version, dataset, fingerprint, json.dumps(settings, sort_keys=True),
                        json.dumps(list(families)), images_per_job, stage_url, run_id))
            for job in jobs:
                db.execute("INSERT INTO jobs (job_id, n_images) VALUES (?, ?)", (job.job_id, len(job.items)))
                db.executemany("INSERT INTO images (job_id, idx, image, mask, label, roi, ids) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [(job.job_id, i, it.image, it.mask, it.label, it.roi,
                                 json.dumps([list(p) for p in it.ids]) if it.ids else None)
                                for i, it in enumerate(job.items)])

    def start_session(self, workers: int, scheduler: str, backend: str | None = None,
                      backend_options: dict | None = None, started: float | None = None) -> int:
        """A session begins (``started``: when the user started it, e.g. before its cluster came up);
        ``backend_options`` must hold no secrets (see ``BackendSpec.public_options``)."""
        cur = self.db.execute("INSERT INTO sessions (started, workers, scheduler, backend, backend_options) "
                              "VALUES (?, ?, ?, ?, ?)", (started or time.time(), workers, scheduler, backend,
                                                         json.dumps(backend_options or {}, sort_keys=True,
                                                                    default=str)))
        return int(cur.lastrowid)

    def end_session(self, session: int, *, planning_s: float, submission_s: float, submitted_jobs: int,
                    client_rss_peak_mb: float | None = None) -> None:
        self.db.execute("UPDATE sessions SET ended = ?, planning_s = ?, submission_s = ?, submitted_jobs = ?, "
                        "client_rss_peak_mb = ? WHERE session = ?",
                        (time.time(), planning_s, submission_s, submitted_jobs, client_rss_peak_mb, session))

    def lock(self) -> None:
        """Hold the run folder for this process (released when it ends): a second ``medfeat run`` or
        ``resume`` of the same folder is refused instead of running the same jobs twice."""
        import fcntl

        self._lock = open(self.path.parent / ".medfeat.lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise InputError(self.path.parent, "the run folder is busy: another medfeat run or resume is "
                                               "working on it") from None

    def unlock(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()
            self._lock = None

    def peak_concurrency(self, session: int) -> int:
        """Most attempts of ``session`` running at the same moment (from their start and end times):
        the worker count of a session whose workers are batch jobs."""
        edges = []
        for r in self.db.execute("SELECT started, finished FROM attempts WHERE session = ? AND started IS NOT NULL "
                                 "AND finished IS NOT NULL", (session,)):
            edges += [(r["started"], 1), (r["finished"], -1)]
        peak = now = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            now += step
            peak = max(peak, now)
        return peak

    def update_session_workers(self, session: int, workers: int) -> None:
        self.db.execute("UPDATE sessions SET workers = MAX(COALESCE(workers, 0), ?) WHERE session = ?",
                        (workers, session))

    # -- jobs ------------------------------------------------------------------------------
    def jobs(self, state: str | None = None) -> list[dict]:
        q = "SELECT * FROM jobs" + (" WHERE state = ?" if state else "") + " ORDER BY job_id"
        return [dict(r) for r in self.db.execute(q, (state,) if state else ())]

    def job(self, job_id: int) -> dict:
        return dict(self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone())

    def job_images(self, job_id: int) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM images WHERE job_id = ? ORDER BY idx", (job_id,))]

    def set_bundle(self, job_id: int, bundle: str, sha256: str, nbytes: int) -> None:
        self.db.execute("UPDATE jobs SET bundle = ?, bundle_sha256 = ?, bundle_bytes = ?, "
                        "state = CASE WHEN state = 'planned' THEN 'staged' ELSE state END WHERE job_id = ?",
                        (bundle, sha256, nbytes, job_id))

    def set_job_state(self, job_id: int, state: str, error: str | None = None) -> None:
        self.db.execute("UPDATE jobs SET state = ?, error = ? WHERE job_id = ? AND state != 'committed'",
                        (state, error, job_id))

    # -- attempts --------------------------------------------------------------------------
    def new_attempt(self, job_id: int, session: int, key: str | None, submitted: float, role: str = "first") -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO attempts (job_id, session, key, submitted, outcome, role) "
                             "VALUES (?, ?, ?, ?, 'running', ?)", (job_id, session, key, submitted, role))
            db.execute("UPDATE jobs SET state = 'running' WHERE job_id = ? AND state != 'committed'", (job_id,))
        return int(cur.lastrowid)

    def set_attempt_key(self, attempt_id: int, key: str, batch_id: str | None = None) -> None:
        self.db.execute("UPDATE attempts SET key = ?, batch_id = COALESCE(?, batch_id) WHERE attempt_id = ?",
                        (key, batch_id, attempt_id))

    def start_attempt(self, attempt_id: int, worker: str, started: float, host: str | None = None,
                      pid: int | None = None) -> None:
        """A worker began the attempt (its start signal): where and when, before it reports."""
        self.db.execute("UPDATE attempts SET worker = ?, started = ?, host = COALESCE(?, host), "
                        "pid = COALESCE(?, pid) WHERE attempt_id = ? AND outcome = 'running'",
                        (worker, started, host, pid, attempt_id))

    def stop_attempt(self, attempt_id: int, outcome: str, reason: str, worker: str | None = None) -> None:
        """End a running attempt that will not report (``cancelled`` after another attempt won,
        ``timeout`` when moved elsewhere); its worker time so far counts as running time."""
        self.db.execute("UPDATE attempts SET outcome = ?, error = ?, finished = ?, worker = COALESCE(worker, ?) "
                        "WHERE attempt_id = ? AND outcome = 'running'",
                        (outcome, reason, time.time(), worker, attempt_id))

    def running_attempts(self, session: int) -> list[int]:
        """Attempts of ``session`` still 'running' in the ledger."""
        return [r[0] for r in self.db.execute("SELECT attempt_id FROM attempts WHERE session = ? AND outcome = 'running' "
                                              "ORDER BY attempt_id", (session,))]

    def attempts(self, job_id: int | None = None) -> list[dict]:
        q = "SELECT * FROM attempts" + (" WHERE job_id = ?" if job_id is not None else "") + " ORDER BY attempt_id"
        return [dict(r) for r in self.db.execute(q, (job_id,) if job_id is not None else ())]

    def finish_attempt(self, attempt_id: int, report: dict) -> str:
        """Record a successful attempt's report and commit its result unless the job already has one.

        Returns ``"committed"`` or ``"discarded"``. This is the one place a job gets its result, and it
        runs in a single transaction: exactly one committed result per job.
        """
        fields = ("worker", "host", "pid", "started", "staged_in", "computed", "staged_out", "finished",
                  "result", "n_images", "n_failed", "bytes_in", "bytes_out", "staging_retries", "cpu_s", "rss_peak_mb")
        with self.transaction() as db:
            job_id = db.execute("SELECT job_id FROM attempts WHERE attempt_id = ?", (attempt_id,)).fetchone()[0]
            state = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0]
            outcome = "discarded" if state == "committed" else "committed"
            db.execute(f"UPDATE attempts SET {', '.join(f + ' = ?' for f in fields)}, outcome = ? WHERE attempt_id = ?",
                       tuple(report.get(f) for f in fields) + (outcome, attempt_id))
            if outcome == "committed":
                db.execute("UPDATE jobs SET state = 'committed', committed_attempt = ?, result = ?, error = NULL "
                           "WHERE job_id = ?", (attempt_id, report["result"], job_id))
            else:
                db.execute("INSERT INTO events VALUES (?, 'duplicate-discarded', ?, ?, ?)",
                           (time.time(), job_id, attempt_id, report.get("result")))
        return outcome

    def fail_attempt(self, attempt_id: int, error: str, outcome: str = "error", report: dict | None = None) -> None:
        report = report or {}
        self.db.execute("UPDATE attempts SET outcome = ?, error = ?, finished = ?, worker = COALESCE(?, worker), "
                        "host = COALESCE(?, host), pid = COALESCE(?, pid), started = COALESCE(?, started) "
                        "WHERE attempt_id = ?",
                        (outcome, error, report.get("finished", time.time()), report.get("worker"),
                         report.get("host"), report.get("pid"), report.get("started"), attempt_id))

    def uncommit(self, job_id: int, reason: str) -> None:
        """A committed job whose result is gone from the stage runs again: its committed attempt is
        recorded lost (with ``reason``) and the job goes back to be staged."""
        with self.transaction() as db:
            row = db.execute("SELECT committed_attempt FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            db.execute("UPDATE attempts SET outcome = 'lost', error = ? WHERE attempt_id = ?", (reason, row[0]))
            db.execute("UPDATE jobs SET state = 'planned', committed_attempt = NULL, result = NULL, bundle = NULL, "
                       "error = NULL WHERE job_id = ?", (job_id,))
            db.execute("INSERT INTO events VALUES (?, 'result-lost', ?, ?, ?)", (time.time(), job_id, row[0], reason))

    def mark_lost_attempts(self) -> int:
        """Attempts left 'running' by a client that died: they are lost (their results, if any, are ignored)."""
        cur = self.db.execute("UPDATE attempts SET outcome = 'lost', error = 'client stopped before this attempt "
                              "reported' WHERE outcome = 'running'")
        self.db.execute("UPDATE jobs SET state = CASE WHEN bundle IS NULL THEN 'planned' ELSE 'staged' END "
                        "WHERE state = 'running'")
        return cur.rowcount

    def event(self, kind: str, detail: str = "", job_id: int | None = None, attempt_id: int | None = None) -> None:
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (time.time(), kind, job_id, attempt_id, detail))

    def events(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM events ORDER BY at")]

    def sessions(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM sessions ORDER BY session")]

    def check_consistency(self) -> list[str]:
        """Problems in the ledger (empty list when consistent): used by tests and `medfeat report`."""
        problems = []
        for r in self.db.execute("SELECT job_id, COUNT(*) n FROM attempts WHERE outcome = 'committed' GROUP BY job_id"):
            if r["n"] != 1:
                problems.append(f"job {r['job_id']} has {r['n']} committed attempts")
        for r in self.db.execute("SELECT j.job_id FROM jobs j WHERE j.state = 'committed' AND NOT EXISTS "
                                 "(SELECT 1 FROM attempts a WHERE a.attempt_id = j.committed_attempt "
                                 "AND a.outcome = 'committed')"):
            problems.append(f"job {r['job_id']} is committed without a committed attempt")
        for r in self.db.execute("SELECT j.job_id FROM jobs j WHERE j.n_images != "
                                 "(SELECT COUNT(*) FROM images i WHERE i.job_id = j.job_id)"):
            problems.append(f"job {r['job_id']} image count differs from its image list")
        return problems
