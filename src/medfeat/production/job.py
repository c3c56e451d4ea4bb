"""One job, as a worker runs it: stage in, extract, stage out, clean up.

The function is self-contained and idempotent: it reads its bundle from the stage, writes its
result under a name unique to the attempt, and touches nothing else, so running it twice (a
retry, a backup) is harmless; the client commits exactly one result per job.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from medfeat.errors import InputError
from medfeat.production.results import result_bytes
from medfeat.production.spec import JobSpec, images_digest
from medfeat.production.staging import BundleCorrupt, Stage, check_in_place, content_sha256, unpack_bundle
from medfeat.production.tuning import freeze_at_exit, tune_malloc


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


STARTED_TOPIC = "medfeat-attempt-started"
FINISHED_TOPIC = "medfeat-attempt-finished"


def _publish(topic: str, msg: dict) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(topic, msg)
    except (ImportError, ValueError):  # not on a Dask worker (tests, local runs)
        pass


def _signal_started(spec: JobSpec, report: dict) -> None:
    """Tell the client this attempt began, and where (through the scheduler's event stream), so
    it can time the attempt for speculation and timeouts before the attempt reports."""
    _publish(STARTED_TOPIC, {"attempt": spec.attempt, "worker": report["worker"], "host": report["host"],
                             "pid": report["pid"], "started": report["started"]})


def _signal_finished(spec: JobSpec, report: dict) -> None:
    """Send the attempt's report to the client through the scheduler, ahead of the task's own
    completion message on the same stream. The client then never has to fetch the result from
    the worker's memory: a worker that freezes right after a job must not stall the run."""
    _publish(FINISHED_TOPIC, {"attempt": spec.attempt, "report": report})


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MiB (None where the OS does not say)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _scratch_root() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


def extract_items(manifest: dict, root: Path, settings, families, job_id: int):
    """Extract every item of an unpacked bundle; bad images give error rows, never an exception.
    Masks are read by :func:`medfeat.extract` itself, so a job reads them exactly as
    ``medfeat extract`` does: label images (with the item's ``label``) or an RTSTRUCT (its ``roi``)."""
    from medfeat.pipeline import extract
    from medfeat.io import read_image
    from medfeat.tables import ImageResult

    results = []
    for item in manifest["items"]:
        name = item["image"]
        if item.get("error"):
            results.append(ImageResult(name, item.get("sha256", ""), error=item["error"]))
            continue
        try:
            if item.get("image_path"):  # a reference bundle: read in place, as planned
                check_in_place(name, item["image_path"], item["image_stat"])
                if item.get("mask_path"):
                    check_in_place(item["mask"], item["mask_path"], item["mask_stat"])
            img = read_image(item.get("image_path") or root / item["image_member"])
            img.source = name
            if not item.get("sha256"):  # read in place: the file's hash as a copied bundle has it
                item["sha256"] = img.sha256 if os.path.isfile(item["image_path"]) else \
                    content_sha256(item["image_path"])
            mask = (item.get("mask_path") or root / item["mask_member"]) if item.get("mask_member") or \
                item.get("mask_path") else None
            notes: list[str] = []
            feats = extract(img, mask, settings, families=families, label=item.get("label"), roi=item.get("roi"),
                            notes=notes, pack_gift=True)
            results.append(ImageResult(name, item["sha256"], feats, note="; ".join(notes)))
        except InputError as exc:
            if item.get("image_path") and not item.get("sha256"):
                try:
                    item["sha256"] = content_sha256(item["image_path"])
                except OSError:
                    pass
            # name the dataset's file, not the scratch copy
            mask_name = item.get("mask_member") or item.get("mask_path")
            which = item["mask"] if exc.path and mask_name and (mask_name in exc.path or exc.path == item["mask"]) \
                else name
            results.append(ImageResult(name, item.get("sha256", ""), error=f"{which}: {exc.reason}"))
        except Exception as exc:  # a bug on one image must not lose the job's other images
            results.append(ImageResult(name, item["sha256"], error=f"{name}: internal error: {type(exc).__name__}: {exc}"))
    return results


def result_table(results, settings, families, job_id: int, items: list[dict] | None = None):
    """The job's rows as an Arrow table: ``image, sha256, job, mask, label, roi``, the cohort's
    identifier columns, ``error`` and the feature columns (the gift family's codes packed in one
    ``gift_codes`` column, see :func:`medfeat.tables.pack_gift_codes`). ``items`` (manifest entries or plan
    items as dicts, in the order of ``results``) give each row's mask, label, ROI and identifiers."""
    import pyarrow as pa

    from medfeat.columns import feature_columns
    from medfeat.tables import wide_table

    table = wide_table(results, feature_columns(settings, families), pack_gift=True)
    n = len(results)
    items = items or [{}] * n
    table = table.add_column(2, pa.field("job", pa.int32()), pa.array([job_id] * n, pa.int32()))
    table = table.add_column(3, pa.field("mask", pa.string()), pa.array([it.get("mask") or "" for it in items]))
    table = table.add_column(4, pa.field("label", pa.int64()), pa.array([it.get("label") for it in items], pa.int64()))
    table = table.add_column(5, pa.field("roi", pa.string()), pa.array([it.get("roi") or "" for it in items]))
    names: list[str] = []
    for it in items:
        for k, _ in it.get("ids") or ():
            if k not in names:
                names.append(k)
    for j, k in enumerate(names):
        values = [dict(map(tuple, it.get("ids") or ())).get(k, "") for it in items]
        table = table.add_column(6 + j, pa.field(k if k not in table.column_names else f"id_{k}", pa.string()),
                                 pa.array(values, pa.string()))
    return table


def run_job(spec: JobSpec | dict, notes: bool = False) -> dict:
    """Run one attempt of a job (a :class:`~medfeat.production.spec.JobSpec`).

    Returns the attempt's report: worker, host, pid, the wall-clock end of each phase (``started``,
    ``staged_in``, ``computed``, ``staged_out``, ``finished``), images and failures, bytes moved.
    With ``notes`` (a batch job that cannot call back), a "started" note and the report are also
    written to the stage, where the client looks for them.
    """

    from medfeat.settings import Settings

    if isinstance(spec, dict):
        spec = JobSpec(**spec)
    started, cpu0 = time.time(), time.thread_time()
    tune_malloc()  # once per process; see medfeat.production.tuning
    freeze_at_exit()
    report = {"worker": _worker_name(), "host": socket.gethostname(), "pid": os.getpid(), "started": started,
              "attempt": spec.attempt, "job_id": spec.job_id}
    stage = Stage(spec.stage_url, spec.staging_retry_s)
    _signal_started(spec, report)
    if notes:
        stage.put(spec.started, json.dumps(report).encode())
    settings = Settings.from_dict(spec.settings, name="run")
    scratch = tempfile.mkdtemp(prefix=f"medfeat-job{spec.job_id:05d}-", dir=_scratch_root())
    try:
        data = stage.get(spec.bundle)
        manifest = unpack_bundle(data, scratch, spec.bundle_sha256)
        report["staged_in"] = time.time()
        report["bytes_in"] = len(data)
        del data
        results = extract_items(manifest, Path(scratch), settings, settings.families, spec.job_id)
        report["computed"] = time.time()
        table = result_table(results, settings, settings.families, spec.job_id, manifest["items"])
        out = result_bytes(table)
        stage.put(spec.result, out)
        report["staged_out"] = time.time()
        report.update(result=spec.result, n_images=len(results), n_failed=sum(1 for r in results if r.error),
                      images_digest=images_digest(r.image for r in results),
                      bytes_out=len(out), staging_retries=stage.retries)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["cpu_s"] = time.thread_time() - cpu0  # this thread's: other jobs on the worker run in their own
    report["rss_peak_mb"] = peak_rss_mb()
    report["finished"] = time.time()
    if notes:
        stage.put(spec.report, json.dumps({"ok": True, "report": report}).encode())
    _signal_finished(spec, report)
    return report


def failure_kind(exc: BaseException) -> str:
    """How the client treats a failed attempt: ``corrupt`` (re-stage the bundle) or ``error``."""
    return "corrupt" if isinstance(exc, BundleCorrupt) else "error"


def run_spec_url(spec_url: str) -> int:
    """``medfeat job-run SPEC_URL``: run one job standalone (pull, verify, extract, push the result
    and its report to the stage). Returns the exit status: 0 committed-able, 1 failed (the
    reason is in the report in the stage when the stage is reachable), 2 unreadable spec."""
    import fsspec

    try:
        with fsspec.open(spec_url, "rb") as fh:
            spec = JobSpec.from_json(fh.read())
    except Exception as exc:
        print(f"medfeat job-run: error: {spec_url}: cannot read the job spec: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    try:
        run_job(spec, notes=True)
        return 0
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}"
        print(f"medfeat job-run: error: job {spec.job_id} attempt {spec.attempt}: {msg}", file=sys.stderr)
        try:
            Stage(spec.stage_url, min(spec.staging_retry_s, 10.0)).put(spec.report, json.dumps(
                {"ok": False, "error": msg, "kind": failure_kind(exc), "host": socket.gethostname(),
                 "finished": time.time()}).encode())
        except Exception:
            pass  # the client sees the batch job end without a report: the attempt is lost
        return 1
