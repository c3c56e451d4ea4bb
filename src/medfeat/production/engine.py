"""The production engine: plan (or resume), stage bundles, run jobs on Dask, commit, assemble.

One client process drives a run. A bundler thread packs and stages job bundles ahead of the
workers; the main thread submits each staged job to Dask, records every attempt in the ledger,
retries jobs whose code raised, and commits exactly one result per job. At the end the committed
results are joined into ``features.parquet`` and ``errors.csv`` in the run folder.
"""
from __future__ import annotations

import dataclasses
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medfeat import __version__
from medfeat.errors import InputError
from medfeat.extract import Settings
from medfeat.production import plan as planning
from medfeat.production.ledger import Ledger
from medfeat.production.driver import _Driver
from medfeat.production.staging import Stage, build_bundle, sha256_bytes

FEATURES_FILE = "features.parquet"
ERRORS_FILE = "errors.csv"


@dataclass
class RunOptions:
    """How to run a production (everything but the dataset and settings)."""

    images_per_job: int = 250
    workers: int | None = None          # embedded LocalCluster size (default: CPU cores)
    scheduler: str | None = None        # address of an existing Dask scheduler
    stage: str | None = None            # fsspec URL of the staging area (default RUN_DIR/stage)
    max_attempts: int = 3               # attempts per job whose code raises
    progress: bool = True
    cluster: object | None = None       # an already started Dask cluster (backends hand theirs over)
    # -- the tail (see docs/production.md, "Beating the tail") --
    speculate: bool = True              # backup attempts for stragglers
    speculate_after: float = 0.5        # ... once this share of the session's jobs is committed
    speculate_factor: float = 2.0       # ... for an attempt running longer than this x the median job
    job_timeout: float | None = None    # s; None: max(timeout_factor x median, timeout_min_s); 0: off
    timeout_factor: float = 5.0
    timeout_min_s: float = 30.0
    max_moves: int = 3                  # timeouts per job before it is left to run
    slow_after: int = 2                 # a worker slow on this many jobs gets no new ones
    lookahead: int = 0                  # jobs handed to Dask beyond the free worker threads
    worker_ttl: str = "60s"             # embedded cluster: a silent worker is dropped after this
    staging_retry_s: float = 60.0       # transient staging failures are retried for this long


def local_cluster_config(options: RunOptions) -> dict:
    """Scheduler settings for a cluster medfeat starts itself: a worker silent for ``worker_ttl``
    (frozen, cut off) is removed and its jobs go elsewhere (Dask's default waits 5 minutes)."""
    return {"scheduler_kwargs": {"worker_ttl": options.worker_ttl}} if options.worker_ttl else {}


class RunRefused(InputError):
    """The run folder holds a different run (dataset or settings changed)."""


def _settings_dict(settings: Settings) -> dict:
    d = dataclasses.asdict(settings)
    d.pop("name", None)
    d.pop("description", None)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _item_list(ledger: Ledger, job_id: int) -> list[planning.Item]:
    return [planning.Item(r["image"], r["mask"]) for r in ledger.job_images(job_id)]


class Production:
    """A run folder and what it takes to complete it."""

    def __init__(self, run_dir: str | Path, dataset: str | None = None, settings=None, families=None,
                 options: RunOptions | None = None, console=None):
        self.run_dir = Path(run_dir)
        self.options = options or RunOptions()
        self.ledger = Ledger(self.run_dir)
        self.console = console
        info = self.ledger.run_info()
        self.planning_s = 0.0
        t0 = time.time()
        if info is None:
            if dataset is None:
                raise InputError(self.run_dir, "no run here to resume (no ledger.sqlite)")
            self.settings = Settings.resolve(settings)
            self.families = tuple(families) if families else self.settings.families
            self.settings = self.settings.replace(families=self.families)
            items = planning.discover(dataset)
            jobs = planning.plan_jobs(items, self.options.images_per_job)
            stage_url = self.options.stage or str((self.run_dir / "stage").resolve())
            self.ledger.create_run(version=__version__, dataset=str(dataset), fingerprint=planning.fingerprint(items),
                                   settings=_settings_dict(self.settings), families=self.families,
                                   images_per_job=self.options.images_per_job, stage_url=stage_url, jobs=jobs)
        else:
            self._check_same_run(info, dataset, settings, families)
            self.settings = Settings.from_dict(__import__("json").loads(info["settings"]), name="run")
            self.families = tuple(__import__("json").loads(info["families"]))
        self.planning_s += time.time() - t0
        self.info = self.ledger.run_info()
        self.stage = Stage(self.info["stage_url"])

    def _check_same_run(self, info: dict, dataset, settings, families) -> None:
        import json

        if dataset is not None:
            items = planning.discover(dataset)
            if planning.fingerprint(items) != info["dataset_fingerprint"]:
                raise RunRefused(self.run_dir, f"the dataset {dataset} changed since this run was planned "
                                 "(files added, removed or modified); start a new run folder")
            if self.options.images_per_job != info["images_per_job"]:
                raise RunRefused(self.run_dir, f"this run was planned with {info['images_per_job']} images per job, "
                                 f"not {self.options.images_per_job}")
        if settings is not None or families is not None:
            s = Settings.resolve(settings) if settings is not None else Settings.from_dict(json.loads(info["settings"]))
            fams = tuple(families) if families else s.families
            if _settings_dict(s.replace(families=fams)) != json.loads(info["settings"]):
                raise RunRefused(self.run_dir, "the settings or families differ from this run's; start a new run folder")

    # -- running ---------------------------------------------------------------------------
    def _client(self):
        from distributed import Client, LocalCluster

        if self.options.scheduler:
            return Client(self.options.scheduler, timeout="30s"), None
        if self.options.cluster is not None:
            return Client(self.options.cluster), None
        n = self.options.workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40, **local_cluster_config(self.options))
        return Client(cluster), cluster

    def _items(self, job_id: int) -> list[planning.Item]:
        return _item_list(self.ledger, job_id)

    def _bundle(self, job_id: int, staged: str | None, items: list[planning.Item]) -> None:
        """Pack and stage a job's bundle unless a good one is already staged (runs in the bundler
        thread: it touches the stage only; the ledger is updated by the main thread)."""
        if staged and self.stage.exists(staged):
            return
        data, _ = build_bundle(items)
        name = f"bundles/job-{job_id:05d}.tar"
        self.stage.put(name, data)
        self.ledger_updates.put(("bundle", job_id, name, sha256_bytes(data), len(data)))

    def run(self) -> dict:
        """Run every job without a committed result; return the run's metrics."""
        import distributed  # noqa: F401  (import early: fail fast without dask)

        self.ledger.mark_lost_attempts()
        todo = [j["job_id"] for j in self.ledger.jobs() if j["state"] not in ("committed", "failed")]
        client, cluster = self._client()
        try:
            workers = len(client.scheduler_info(n_workers=-1)["workers"]) if hasattr(client, "scheduler_info") else 0
            session = self.ledger.start_session(workers, client.scheduler.address)
            if self.console is not None and client.dashboard_link:
                self.console.print(f"Dask dashboard: {client.dashboard_link}")
            submission_s, submitted = self._drive(client, session, todo)
            self._assemble()
            self.ledger.update_session_workers(session, len(client.scheduler_info(n_workers=-1)["workers"]))
            self.ledger.end_session(session, planning_s=self.planning_s, submission_s=submission_s,
                                    submitted_jobs=submitted)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        from medfeat.report.metrics import run_metrics

        return run_metrics(self.run_dir)

    def _drive(self, client, session: int, todo: list[int]) -> tuple[float, int]:
        """Stage, submit, watch and commit every job of ``todo``; returns (submission s, submissions)."""
        return _Driver(self, client, session, todo).run()

    # -- output ----------------------------------------------------------------------------
    def _assemble(self) -> None:
        """Join the committed results into features.parquet and errors.csv (atomically)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        from medfeat.production.job import result_table
        from medfeat.tables import ImageResult

        tables = []
        for job in self.ledger.jobs():
            if job["state"] == "committed":
                tables.append(pq.read_table(io.BytesIO(self.stage.get(job["result"]))))
            elif job["state"] == "failed":
                # every image of a failed job is accounted for, with the job's reason
                rows = [ImageResult(r["image"], "", error=f"{r['image']}: job failed: {job['error']}")
                        for r in self.ledger.job_images(job["job_id"])]
                tables.append(result_table(rows, self.settings, self.families, job["job_id"]))
        if not tables:
            return
        table = pa.concat_tables(tables, promote_options="default")
        tmp = self.run_dir / (FEATURES_FILE + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.run_dir / FEATURES_FILE)
        errors = table.filter(pc.not_equal(table["error"], "")).select(["image", "job", "error"])
        tmp = self.run_dir / (ERRORS_FILE + ".tmp")
        pacsv.write_csv(errors, tmp)
        os.replace(tmp, self.run_dir / ERRORS_FILE)


class _Progress:
    """A rich progress bar: jobs done / running / failed, images per second, ETA."""

    def __init__(self, console, jobs: int, images: int):
        self.console, self.jobs, self.images = console, jobs, images
        self.done = self.failed = self.running = self.images_done = 0
        self.t0 = time.time()
        self.bar = None

    def __enter__(self):
        if self.console is not None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]jobs"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console,
                                transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("jobs", total=self.jobs, info="")
        return self

    def update(self, done: int = 0, failed: int = 0, images: int = 0, running: int | None = None) -> None:
        self.done += done
        self.failed += failed
        self.images_done += images
        if running is not None:
            self.running = running
        if self.bar is not None:
            rate = self.images_done / max(time.time() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done + self.failed,
                            info=f"running {self.running}  failed {self.failed}  {rate:.0f} images/s")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
