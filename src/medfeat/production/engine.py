"""The production engine: plan (or resume) a run, run a session on a backend, assemble the table.

``Production(run_dir, dataset, settings)`` plans a new run (or opens the one in ``run_dir``,
refusing a different dataset or settings); ``run(backend, tail)`` runs every job without a
committed result through the :class:`~medfeat.production.driver.Driver` on the backend's executor,
then joins the committed results into ``features.parquet`` and ``errors.csv`` in the run folder.
Metrics come from the ledger afterwards (:func:`medfeat.report.metrics.run_metrics`).
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import time
import uuid
from pathlib import Path

from medfeat import __version__
from medfeat.errors import InputError
from medfeat.extract import Settings
from medfeat.production import plan as planning
from medfeat.production.driver import Driver, SessionFigures
from medfeat.production.executor import Executor
from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, PlanOptions, TailPolicy
from medfeat.production.staging import Stage
from medfeat.production.stores import check_stage_url

FEATURES_FILE = "features.parquet"
ERRORS_FILE = "errors.csv"


class RunRefused(InputError):
    """The run folder holds a different run (dataset or settings changed)."""


class Production:
    """A run folder and what it takes to complete it."""

    def __init__(self, run_dir: str | Path, dataset: str | None = None, settings=None, families=None,
                 plan: PlanOptions | None = None, console=None):
        self.run_dir = Path(run_dir)
        self.plan = plan or PlanOptions()
        self.ledger = Ledger(self.run_dir)
        self.console = console
        info = self.ledger.run_info()
        t0 = time.time()
        if info is None:
            if dataset is None:
                raise InputError(self.run_dir, "no run here to resume (no ledger.sqlite)")
            self.settings = Settings.resolve(settings)
            self.settings = self.settings.replace(families=tuple(families) if families else self.settings.families)
            items = planning.discover(dataset, **self._discovery())
            jobs = planning.plan_jobs(items, self.plan.images_per_job)
            stage_url = check_stage_url(self.plan.stage) if self.plan.stage else str((self.run_dir / "stage").resolve())
            self.ledger.create_run(version=__version__, dataset=str(dataset), fingerprint=planning.fingerprint(items),
                                   settings=self.settings.to_dict(), families=self.settings.families,
                                   images_per_job=self.plan.images_per_job, stage_url=stage_url, jobs=jobs,
                                   run_id=uuid.uuid4().hex[:12])
        else:
            self._check_same_run(info, dataset, settings, families)
            self.settings = Settings.from_dict(json.loads(info["settings"]), name="run")
        self.planning_s = time.time() - t0
        self.info = self.ledger.run_info()
        self.run_id = self.info.get("run_id") or ""   # "" for runs planned before stage prefixes
        self.stage = Stage(self.info["stage_url"])

    @property
    def families(self) -> tuple[str, ...]:
        return self.settings.families

    def _discovery(self) -> dict:
        return {"label": self.plan.label, "roi": self.plan.roi, "mask_pattern": self.plan.mask_pattern}

    def _check_same_run(self, info: dict, dataset, settings, families) -> None:
        if dataset is not None:
            items = planning.discover(dataset, **self._discovery())
            if planning.fingerprint(items) != info["dataset_fingerprint"]:
                raise RunRefused(self.run_dir, f"the dataset {dataset} changed since this run was planned "
                                 "(files added, removed or modified); start a new run folder")
            if self.plan.images_per_job != info["images_per_job"]:
                raise RunRefused(self.run_dir, f"this run was planned with {info['images_per_job']} images per job, "
                                 f"not {self.plan.images_per_job}")
        if settings is not None or families is not None:
            s = Settings.resolve(settings) if settings is not None else Settings.from_dict(json.loads(info["settings"]))
            fams = tuple(families) if families else s.families
            if s.replace(families=fams).to_dict() != json.loads(info["settings"]):
                raise RunRefused(self.run_dir, "the settings or families differ from this run's; start a new run folder")

    # -- running ---------------------------------------------------------------------------
    def executor(self, backend: BackendSpec) -> Executor:
        """Start what the backend needs and return its executor."""
        from medfeat.production.backends import RunContext, get_backend

        ctx = RunContext(run_dir=self.run_dir, run_id=self.run_id, stage_url=self.stage.url)
        return get_backend(backend.name).make(backend, ctx)

    def run(self, backend: BackendSpec | Executor | None = None, tail: TailPolicy | None = None,
            since: float | None = None) -> SessionFigures:
        """Run every job without a committed result on ``backend`` (a spec, or a ready executor,
        which is then not closed); return the session's own figures. The table is written at the end."""
        tail = tail or TailPolicy()
        spec = backend if isinstance(backend, BackendSpec) else None
        self.ledger.lock()
        try:
            return self._run(backend, spec, tail, since)
        finally:
            self.ledger.unlock()

    def _check_results(self) -> None:
        """Committed results must still be in the stage; a job whose result is gone runs again."""
        committed = [j for j in self.ledger.jobs() if j["state"] == "committed"]
        if not committed:
            return
        present: set[str] = set()
        for folder in {posixpath.dirname(posixpath.dirname(j["result"])) for j in committed}:
            try:
                present |= {posixpath.relpath(p, self.stage.root) for p in self.stage.fs.find(self.stage.path(folder))}
            except (FileNotFoundError, OSError):
                pass
        for j in committed:
            if j["result"] not in present:
                self.ledger.uncommit(j["job_id"], f"its result {j['result']} is gone from the stage; run again")

    def _run(self, backend, spec: BackendSpec | None, tail: TailPolicy, since: float | None) -> SessionFigures:
        self.ledger.mark_lost_attempts()
        self._check_results()
        # every job without a committed result runs, those that failed in an earlier session too
        # (their reason may have been passing: a full disk, an unreachable store)
        todo = [j["job_id"] for j in self.ledger.jobs() if j["state"] != "committed"]
        t0 = time.time()
        ex = self.executor(spec or BackendSpec()) if not isinstance(backend, Executor) else backend
        # client time before the first submission: planning, and starting the workers
        self.planning_s = time.time() - since if since else self.planning_s + time.time() - t0
        t0 = since or t0
        try:
            info = ex.describe()
            session = self.ledger.start_session(0, info.get("address") or "", info.get("backend"),
                                                spec.public_options() if spec else info.get("options"), started=t0)
            if self.console is not None and info.get("dashboard"):
                self.console.print(f"Dask dashboard: {info['dashboard']}")
            driver = Driver(self.ledger, ex, self.stage, tail, run_id=self.run_id, settings=self.settings.to_dict(),
                            session=session, todo=todo, console=self.console)
            figures = driver.run()
            self._assemble()
            peak = self.ledger.peak_concurrency(session) if getattr(ex, "queues", False) else driver.peak_workers
            self.ledger.update_session_workers(session, peak)
            self.ledger.end_session(session, planning_s=self.planning_s + figures.bundling_s,
                                    submission_s=figures.submission_s, submitted_jobs=figures.submitted)
            self.planning_s = 0.0
        finally:
            if not isinstance(backend, Executor):
                ex.close()
        return figures

    # -- output ----------------------------------------------------------------------------
    def _assemble(self) -> None:
        """Join the committed results into features.parquet and errors.csv (atomically)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        from medfeat.production.job import result_table
        from medfeat.tables import ImageResult, drop_unused_columns, provenance, with_provenance

        tables = []
        for job in self.ledger.jobs():
            if job["state"] == "committed":
                tables.append(pq.read_table(io.BytesIO(self.stage.get(job["result"]))))
            elif job["state"] == "failed":
                # every image of a failed job is accounted for, with the job's reason
                images = self.ledger.job_images(job["job_id"])
                rows = [ImageResult(r["image"], "", error=f"{r['image']}: job failed: {job['error']}") for r in images]
                items = [{**r, "ids": json.loads(r["ids"]) if r.get("ids") else []} for r in images]
                tables.append(result_table(rows, self.settings, self.families, job["job_id"], items))
        if not tables:
            return
        table = drop_unused_columns(pa.concat_tables(tables, promote_options="default"), self.settings)
        prov = provenance(self.settings, run_id=self.run_id, dataset=self.info["dataset"],
                          dataset_fingerprint=self.info["dataset_fingerprint"], planned_with=self.info["medfeat_version"])
        tmp = self.run_dir / (FEATURES_FILE + ".tmp")
        pq.write_table(with_provenance(table, prov), tmp)
        os.replace(tmp, self.run_dir / FEATURES_FILE)
        errors = table.filter(pc.not_equal(table["error"], "")).select(["image", "job", "error"])
        tmp = self.run_dir / (ERRORS_FILE + ".tmp")
        pacsv.write_csv(errors, tmp)
        os.replace(tmp, self.run_dir / ERRORS_FILE)
