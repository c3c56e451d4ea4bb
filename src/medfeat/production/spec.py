"""A job attempt that describes itself: everything a worker needs, as JSON.

A worker that cannot reach the client (a grid or HPC node) gets one :class:`JobSpec` file and needs
nothing else: the settings as plain values, where to read the bundle and its sha256, and where to
write the result, the "started" note and the attempt's report. Names are relative to
``stage_url``, which holds one folder per run (``run_id``), so runs sharing a store never collide::

    STAGE/RUN_ID/bundles/job-00003.tar
    STAGE/RUN_ID/specs/attempt-00017.json
    STAGE/RUN_ID/results/job-00003/attempt-00017.arrow   (Arrow IPC: production.results)
    STAGE/RUN_ID/reports/attempt-00017.started.json     (written when the attempt begins)
    STAGE/RUN_ID/reports/attempt-00017.json             (its report: success or error)
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from dataclasses import dataclass, field


@dataclass
class JobSpec:
    run_id: str
    job_id: int
    attempt: int
    stage_url: str
    bundle: str
    bundle_sha256: str
    result: str
    report: str
    started: str
    settings: dict = field(default_factory=dict)
    staging_retry_s: float = 60.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobSpec":
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in ("settings", "staging_retry_s"))
        if missing:
            raise ValueError(f"job spec lacks {missing}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def name(self) -> str:
        """Where this spec is stored, relative to the stage."""
        return spec_name(self.run_id, self.attempt)


def run_prefix(run_id: str) -> str:
    return run_id or ""


REFERENCE_SUFFIX = ".ref.tar"  # a bundle that lists its inputs' paths instead of carrying them


def bundle_name(run_id: str, job_id: int, reference: bool = False) -> str:
    """A job's bundle; ``reference``: one that lists its inputs' paths instead of carrying them."""
    return posixpath.join(run_prefix(run_id), "bundles",
                          f"job-{job_id:05d}" + (REFERENCE_SUFFIX if reference else ".tar"))


def is_reference_bundle(name: str) -> bool:
    return name.endswith(REFERENCE_SUFFIX)


def spec_name(run_id: str, attempt: int) -> str:
    return posixpath.join(run_prefix(run_id), "specs", f"attempt-{attempt:05d}.json")


def result_name(run_id: str, job_id: int, attempt: int) -> str:
    return posixpath.join(run_prefix(run_id), "results", f"job-{job_id:05d}", f"attempt-{attempt:05d}.arrow")


def report_name(run_id: str, attempt: int) -> str:
    return posixpath.join(run_prefix(run_id), "reports", f"attempt-{attempt:05d}.json")


def started_name(run_id: str, attempt: int) -> str:
    return posixpath.join(run_prefix(run_id), "reports", f"attempt-{attempt:05d}.started.json")


def reports_dir(run_id: str) -> str:
    return posixpath.join(run_prefix(run_id), "reports")


def make_spec(run_id: str, job_id: int, attempt: int, stage_url: str, bundle: str, bundle_sha256: str,
              settings: dict, staging_retry_s: float = 60.0) -> JobSpec:
    return JobSpec(run_id=run_id, job_id=job_id, attempt=attempt, stage_url=stage_url, bundle=bundle,
                   bundle_sha256=bundle_sha256, result=result_name(run_id, job_id, attempt),
                   report=report_name(run_id, attempt), started=started_name(run_id, attempt),
                   settings=settings, staging_retry_s=staging_retry_s)


def images_digest(images) -> str:
    """A job's image list, in plan order, as one sha256: the worker reports the digest of the rows it
    wrote, the client compares it with the ledger's plan before committing."""
    import hashlib

    h = hashlib.sha256()
    for name in images:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()

