"""The production engine: plan (or resume) a run, run a session on a backend, assemble the table.

``Production(run_dir, dataset, settings)`` plans a new run (or opens the one in ``run_dir``,
refusing a different dataset or settings); ``run(backend, tail)`` runs every job without a
committed result through the :class:`~medfeat.production.driver.Driver` on the backend's executor,
then joins the committed results into ``features.parquet`` and ``errors.csv`` in the run folder.
Metrics come from the ledger afterwards (:func:`medfeat.report.metrics.run_metrics`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import time
import uuid
from pathlib import Path

from medfeat import __version__
from medfeat.errors import InputError
from medfeat.settings import Settings
from medfeat.production import plan as planning
from medfeat.production.job import peak_rss_mb
from medfeat.production.driver import Driver, SessionFigures
from medfeat.production.executor import Executor
from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, PlanOptions, TailPolicy
from medfeat.production.staging import Stage
from medfeat.production.stores import check_stage_url

FEATURES_FILE = "features.parquet"
FOLDED = "results-folded"  # ledger event: the committed results now live in features.parquet only
# Values per row group of features.parquet (the client holds one row group while assembling:
# 8 M values, 64 MB of float64).
ROW_GROUP_VALUES = 8 << 20
ERRORS_FILE = "errors.csv"


class RunRefused(InputError):
    """The run folder holds a different run (dataset or settings changed)."""


class Production:
    """A run folder and what it takes to complete it."""

    def __init__(self, run_dir: str | Path, dataset: str | None = None, settings=None, families=None,
                 plan: PlanOptions | None = None, console=None, workers_hint: int | None = None):
        """``workers_hint``: how many workers the run will have, for the automatic job size
        (``plan.images_per_job`` None); default the machine's cores."""
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
            if self.plan.images_per_job is None:
                self.plan = dataclasses.replace(self.plan, images_per_job=planning.auto_images_per_job(
                    len(items), workers_hint or os.cpu_count() or 1))
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
            if self.plan.images_per_job is not None and self.plan.images_per_job != info["images_per_job"]:
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

    def _folded(self) -> bool:
        """Whether the committed results were folded into features.parquet (and deleted) and the
        table is still there: then it is the run's result and nothing is re-assembled."""
        return (self.run_dir / FEATURES_FILE).exists() and any(e["kind"] == FOLDED for e in self.ledger.events())

    def _fold_results(self) -> None:
        """Once every job is committed and features.parquet holds every row, the job results in the
        stage are copies of it: delete them, so the run folder holds the table and the ledger only."""
        jobs = self.ledger.jobs()
        if not jobs or any(j["state"] != "committed" for j in jobs):
            return  # a resume will need the committed results to assemble the table again
        for j in jobs:
            self.stage.delete(j["result"])
        # and what cancelled or discarded attempts left behind (a backup that finished as the run ended)
        for folder in {posixpath.dirname(posixpath.dirname(j["result"])) for j in jobs}:
            try:
                strays = self.stage.fs.find(self.stage.path(folder))
            except (FileNotFoundError, OSError):
                continue
            for p in strays:
                self.stage.delete(posixpath.relpath(p, self.stage.root))
        self.ledger.event(FOLDED, f"{len(jobs)} job results folded into {FEATURES_FILE} and deleted from the stage")

    def _check_results(self) -> None:
        """Committed results must still be in the stage; a job whose result is gone runs again."""
        committed = [j for j in self.ledger.jobs() if j["state"] == "committed"]
        if not committed or self._folded():
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
            if not (self._folded() and not todo):  # a folded, complete run: its table stands
                self._assemble()
                if not tail.keep_results:
                    self._fold_results()
            peak = self.ledger.peak_concurrency(session) if getattr(ex, "queues", False) else driver.peak_workers
            self.ledger.update_session_workers(session, peak)
            self.ledger.end_session(session, planning_s=self.planning_s + figures.bundling_s,
                                    submission_s=figures.submission_s, submitted_jobs=figures.submitted,
                                    client_rss_peak_mb=peak_rss_mb())
            self.planning_s = 0.0
        finally:
            if not isinstance(backend, Executor):
                ex.close()
        return figures

    # -- output ----------------------------------------------------------------------------
    def _assemble(self) -> None:
        """Join the committed results into features.parquet and errors.csv (atomically), one job's
        table at a time: the client never holds the whole table (22,250 rows x 3,700 gift columns
        would be 660 MB, twice over while concatenated)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        from medfeat.columns import single_slice_only_columns
        from medfeat.production.job import result_table
        from medfeat.production.results import read_result, read_result_schema
        from medfeat.tables import FIRST_GIFT_CODE, GIFT_CODES, ImageResult, pack_gift_codes, provenance, unused_columns, with_provenance

        def tables(schema_only: bool = False):
            """Each job's table (``schema_only``: its schema, from the file's footer)."""
            for job in self.ledger.jobs():
                if job["state"] == "committed" and schema_only:
                    with self.stage.fs.open(self.stage.path(job["result"]), "rb") as fh:
                        schema = read_result_schema(fh)
                    if FIRST_GIFT_CODE in schema.names:  # an earlier medfeat's result: its packed schema
                        schema = pack_gift_codes(read_result(self.stage.get(job["result"]))).schema
                    yield schema
                elif job["state"] == "committed":
                    # (an earlier medfeat's result has the gift codes in 3,412 columns: packed as the others)
                    yield pack_gift_codes(read_result(self.stage.get(job["result"])))
                elif job["state"] == "failed":
                    # every image of a failed job is accounted for, with the job's reason
                    images = self.ledger.job_images(job["job_id"])
                    rows = [ImageResult(r["image"], "", error=f"{r['image']}: job failed: {job['error']}")
                            for r in images]
                    items = [{**r, "ids": json.loads(r["ids"]) if r.get("ids") else []} for r in images]
                    table = result_table(rows, self.settings, self.families, job["job_id"], items)
                    yield table.schema if schema_only else table

        # pass 1 (schemas only, and which columns some row fills): the table's one schema
        fields: dict[str, pa.Field] = {}
        filled: set[str] = set()
        volume_only, slice_only = single_slice_only_columns(self.settings)
        optional = volume_only | slice_only
        if FIRST_GIFT_CODE in optional:  # the gift codes are packed in one column
            optional |= {GIFT_CODES}
        any_ok = False
        last = None
        for t in tables(schema_only=not optional):
            schema = t.schema if optional else t
            # results of one run nearly always share one schema: its 3,700 fields are walked once
            if last is None or not schema.equals(last):
                last = schema
                for f in schema:
                    if f.name not in fields:
                        fields[f.name] = f
                    elif fields[f.name].type != f.type and pa.types.is_null(fields[f.name].type):
                        fields[f.name] = f
            if optional:
                filled |= {c for c in optional & set(t.column_names) if t[c].null_count < t.num_rows}
                any_ok = any_ok or bool(pc.any(pc.equal(t["error"], "")).as_py())
        if not fields:
            return
        drop = unused_columns(self.settings, None, filled, any_ok) if optional else set()
        schema = pa.schema([f for name, f in fields.items() if name not in drop])
        prov = provenance(self.settings, run_id=self.run_id, dataset=self.info["dataset"],
                          dataset_fingerprint=self.info["dataset_fingerprint"], planned_with=self.info["medfeat_version"])
        schema = with_provenance(schema.empty_table(), prov).schema
        tmp = self.run_dir / (FEATURES_FILE + ".tmp")
        errors = []
        plain = schema.remove_metadata()
        # pass 2: each job's rows, in the one schema (a missing column as nulls), written in row
        # groups of about ROW_GROUP_VALUES values: one row group per job would write 3,700 column
        # chunks for every 250 rows of the gift family (minutes of footer and page overhead)
        rows_per_group = max(1, ROW_GROUP_VALUES // max(len(schema), 1))
        pending: list = []
        with pq.ParquetWriter(tmp, schema) as writer:
            def flush():
                if pending:
                    writer.write_table(pa.concat_tables(pending), row_group_size=rows_per_group)
                    pending.clear()

            for t in tables():
                if t.schema.remove_metadata().equals(plain):
                    part = t.replace_schema_metadata(schema.metadata)
                else:
                    cols = [t[f.name].cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
                            for f in schema]
                    part = pa.Table.from_arrays(cols, schema=schema)
                pending.append(part)
                small = part.select(["image", "job", "error"])  # (filtering 3,700 columns first costs seconds)
                errors.append(small.filter(pc.not_equal(small["error"], "")))
                if sum(p.num_rows for p in pending) >= rows_per_group:
                    flush()
            flush()
        os.replace(tmp, self.run_dir / FEATURES_FILE)
        errors_table = pa.concat_tables(errors) if errors else pa.table(
            {"image": pa.array([], pa.string()), "job": pa.array([], pa.int32()), "error": pa.array([], pa.string())})
        tmp = self.run_dir / (ERRORS_FILE + ".tmp")
        pacsv.write_csv(errors_table, tmp)
        os.replace(tmp, self.run_dir / ERRORS_FILE)
