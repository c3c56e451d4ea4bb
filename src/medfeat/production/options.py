"""What a production is told: the plan (stored in the ledger), the tail policy, and the backend.

The three are kept apart because they live differently: the plan is fixed when a run is created
(resuming with another plan is refused), the tail policy and the backend may change from one
session to the next (resume a Slurm run on SSH hosts with other timeouts). A TOML file given with
``--config`` holds ``[backend]`` and ``[tail]`` tables (and optionally ``[plan]``); command-line
flags override it::

    [plan]
    images_per_job = 50
    stage = "s3://bucket/medfeat-stage"

    [backend]
    name = "slurm"
    mode = "jobs"            # or "workers"
    workers = 16             # jobs in flight (jobs mode) or Dask workers ("MIN:MAX": adaptive)
    queue = "debug"
    walltime = "01:00:00"
    job_extra = ["--qos=short"]

    [tail]
    speculate_factor = 3.0
    job_timeout = 600

    [stage]                  # the staging store's connection (never written to the ledger or report)
    endpoint_url = "http://127.0.0.1:8333"
    key = "..."
    secret = "..."
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from medfeat.errors import InputError

BUNDLE_MODES = ("auto", "copy", "reference")

# Option names whose values never reach the ledger, logs or report.
SECRET_WORDS = ("secret", "password", "token", "key_id", "access_key", "credential", "passphrase")


@dataclass
class PlanOptions:
    """How the dataset is cut into jobs and where they are staged (stored in the ledger)."""

    images_per_job: int | None = None   # None: auto (plan.auto_images_per_job: ~4 jobs per worker, <= 250)
    stage: str | None = None            # fsspec URL of the staging store (default RUN_DIR/stage)
    label: int | None = None            # mask label for items that name none (CSV ``label`` wins)
    roi: str | None = None              # RTSTRUCT ROI name for items that name none (CSV ``roi`` wins)
    mask_pattern: str | None = None     # IMAGE_GLOB:MASK_GLOB pairing images and masks in a folder


@dataclass
class TailPolicy:
    """Retries and the tail (see docs/production.md, "Beating the tail")."""

    max_attempts: int = 3               # attempts per job whose code raises (or whose batch job vanished)
    speculate: bool = True              # backup attempts for stragglers
    speculate_after: float = 0.5        # ... once this share of the session's jobs is committed
    speculate_factor: float = 2.0       # ... for an attempt running longer than this x the median job
    job_timeout: float | None = None    # s; None: max(timeout_factor x median, timeout_min_s); 0: off
    timeout_factor: float = 5.0
    timeout_min_s: float = 30.0
    queue_timeout: float | None = None  # s an attempt may wait in a batch queue before it is resubmitted
    max_moves: int = 3                  # timeouts per job before it is left to run
    slow_after: int = 2                 # a worker slow on this many jobs gets no new ones
    lookahead: int = 0                  # jobs handed to the executor beyond its free slots
    staging_retry_s: float = 60.0       # transient staging failures are retried for this long
    keep_bundles: bool = False          # keep a job's bundle in the stage after its result is committed
    keep_results: bool = False          # keep the job results in the stage once features.parquet holds them all
    bundles: str = "auto"               # "copy": bundles carry the inputs; "reference": they list local paths
                                        # the workers read in place (a shared filesystem); "auto": reference
                                        # on the local backend, copy elsewhere

    def __post_init__(self):
        if self.bundles not in BUNDLE_MODES:
            raise InputError("bundles", f"{self.bundles!r} is not one of {', '.join(BUNDLE_MODES)}")


@dataclass
class BackendSpec:
    """Where jobs run: a backend name (see :mod:`medfeat.production.backends`), its mode, a size,
    and the backend's own options (queue, walltime, hosts, ...)."""

    name: str = "local"
    mode: str = "workers"               # "workers": Dask workers; "jobs": one batch job per production job
    workers: str | int | None = None    # N, or "MIN:MAX" for an adaptive Dask cluster
    options: dict[str, Any] = field(default_factory=dict)

    def size(self) -> tuple[int | None, int | None]:
        """(minimum, maximum) workers; (N, N) for a fixed size, (None, None) when unset."""
        if self.workers is None or self.workers == "":
            return None, None
        text = str(self.workers)
        try:
            if ":" in text:
                lo, hi = text.split(":", 1)
                lo_i, hi_i = int(lo or 0), int(hi)
            else:
                lo_i = hi_i = int(text)
        except ValueError:
            raise InputError("--workers", f"{text!r} is not N or MIN:MAX") from None
        if lo_i < 0 or hi_i < 1 or lo_i > hi_i:
            raise InputError("--workers", f"{text!r}: need 0 <= MIN <= MAX and MAX >= 1")
        return lo_i, hi_i

    def public_options(self) -> dict[str, Any]:
        """The options without secrets (what the ledger and the report keep), nested tables too."""
        return _masked(self.options)


def _masked(value):
    if isinstance(value, dict):
        return {k: ("***" if is_secret(str(k)) else _masked(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def is_secret(name: str) -> bool:
    low = name.lower()
    return any(w in low for w in SECRET_WORDS)


def _apply(obj, table: dict, where: str):
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputError(where, f"unknown options {unknown}; known: {sorted(names)}")
    return dataclasses.replace(obj, **table)


@dataclass
class RunConfig:
    """Everything but the dataset and the settings: what ``--config`` and the flags build."""

    plan: PlanOptions = field(default_factory=PlanOptions)
    tail: TailPolicy = field(default_factory=TailPolicy)
    backend: BackendSpec = field(default_factory=BackendSpec)
    stage: dict[str, Any] = field(default_factory=dict)   # store connection options (may hold secrets)

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> "RunConfig":
        """Read ``[plan]``, ``[tail]`` and ``[backend]`` from a TOML file (None: defaults)."""
        cfg = cls()
        if path is None:
            return cfg
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise InputError(path, "config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(path, f"invalid TOML: {exc}") from None
        unknown = sorted(set(data) - {"plan", "tail", "backend", "stage"})
        if unknown:
            raise InputError(path, f"unknown tables {unknown}; known: backend, plan, stage, tail")
        cfg.stage = dict(data.get("stage", {}))
        cfg.plan = _apply(cfg.plan, data.get("plan", {}), f"{path} [plan]")
        cfg.tail = _apply(cfg.tail, data.get("tail", {}), f"{path} [tail]")
        b = dict(data.get("backend", {}))
        cfg.backend = BackendSpec(name=str(b.pop("name", "local")), mode=str(b.pop("mode", "workers")),
                                  workers=b.pop("workers", None), options=b)
        return cfg

    def override(self, plan: dict | None = None, tail: dict | None = None, backend: dict | None = None,
                 backend_options: dict | None = None) -> "RunConfig":
        """Flags given on the command line win over the file (``None`` values are "not given")."""
        def given(d):
            return {k: v for k, v in (d or {}).items() if v is not None}

        self.plan = dataclasses.replace(self.plan, **given(plan))
        self.tail = dataclasses.replace(self.tail, **given(tail))
        self.backend = dataclasses.replace(self.backend, **given(backend))
        self.backend.options = {**self.backend.options, **given(backend_options)}
        return self
