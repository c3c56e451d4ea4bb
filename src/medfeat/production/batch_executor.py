"""Jobs mode: every production job is one batch job that needs no connection back to the client.

For grid and HPC sites whose worker nodes cannot reach the submitting machine (the seed
production's lesson). The client writes each attempt's :class:`~medfeat.production.spec.JobSpec`
to the stage, submits a small shell script with the system's own command (an array job when
several first attempts go at once), and follows the attempts through two channels only:

* the **stage**: ``medfeat job-run`` writes a "started" note when it begins and the attempt's
  report when it ends (success, or the error and its kind), next to the result;
* the **batch system's status command**: a job that left the system without a report was
  cancelled (``scancel``/``qdel``), killed (walltime, memory) or failed on its node -- the
  attempt is *lost*, and the driver runs the job again.

The driver's tail policy applies unchanged: backups and moved jobs are new batch jobs that
exclude the slow node where the system lets one (``--exclude``, ``-l h=!node`` ...), timeouts
cancel with the system's cancel command, and the ledger stays the single truth: exactly one
committed result per job. A :class:`BatchSystem` holds what differs between systems; a backend
module (``backends/slurm.py`` ...) is that class and a few lines.
"""
from __future__ import annotations

import json
import os
import posixpath
import queue
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medfeat.errors import InputError
from medfeat.production.executor import Executor, Failed, Finished, Started
from medfeat.production.spec import JobSpec, reports_dir

POLL_S = 1.0            # how often the stage and the batch system are asked
LOST_GRACE_S = 5.0      # a job gone from the system may still have its report on the way
COMMAND_TIMEOUT_S = 60.0
DEFAULT_IN_FLIGHT = 64  # batch jobs queued or running at once, unless --workers says otherwise


@dataclass
class BatchJob:
    """What the status command says of one batch job (or array task)."""

    state: str              # queued | running | done
    node: str | None = None


class BatchSystem:
    """One batch system's commands. Subclasses set the class attributes and the methods."""

    name = "batch"
    directive = "#"              # script header prefix, e.g. "#SBATCH"
    array_index = ""             # shell expression of the array task index (1-based)
    has_arrays = True

    def __init__(self, options: dict):
        self.options = dict(options)

    def header(self, job_name: str, log_dir: Path, array: int | None, avoid: frozenset[str]) -> list[str]:
        """The script's directive lines (queue, account, walltime, memory, extras, array, exclusion)."""
        raise NotImplementedError

    def submit_command(self, script: Path) -> list[str]:
        raise NotImplementedError

    def parse_submit(self, stdout: str, array: int | None) -> list[str]:
        """Batch ids of the submitted job, one per array task (in task order)."""
        raise NotImplementedError

    def status(self, job_name: str) -> dict[str, BatchJob]:
        """Every job of this run still known to the system (queued or running), by batch id."""
        raise NotImplementedError

    def cancel_command(self, batch_ids: list[str]) -> list[str]:
        raise NotImplementedError

    def cancel(self, batch_ids: list[str]) -> None:
        """Cancel jobs (or array tasks); one already gone is no error worth stopping for."""
        run_command(self.cancel_command(batch_ids), f"{self.name}: cancelling {' '.join(batch_ids)}")

    # -- helpers for subclasses -------------------------------------------------------------
    def extra(self) -> list[str]:
        extra = self.options.get("job_extra") or []
        return [extra] if isinstance(extra, str) else list(extra)


def run_command(cmd: list[str], what: str, cwd: Path | None = None, silent_failure_is_empty: bool = False) -> str:
    """Run a batch command; a failure becomes one readable line (never a traceback).
    ``silent_failure_is_empty``: a failure that prints nothing means "nothing to list" (Slurm's PBS
    ``qstat`` wrapper exits 153 when there are no jobs at all)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, cwd=cwd)
    except FileNotFoundError:
        raise InputError(cmd[0], f"{what}: command not found (is the batch system's client installed "
                                 "and on PATH?)") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what}: `{' '.join(cmd[:2])} ...` did not answer in {COMMAND_TIMEOUT_S:.0f} s") from None
    if r.returncode != 0 and silent_failure_is_empty and not (r.stdout.strip() or r.stderr.strip()):
        return ""
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(f"{what}: `{cmd[0]}` exited {r.returncode}: {msg[-1] if msg else ''}")
    return r.stdout


class BatchExecutor(Executor):
    """Runs attempts as batch jobs of ``system``; ``spec`` is the run's BackendSpec."""

    queues = True
    status_lag_s = POLL_S

    def __init__(self, system: BatchSystem, spec, ctx):
        from medfeat.production.staging import Stage

        self.system = system
        self.name = system.name
        self.spec = spec
        self.ctx = ctx
        self.stage = Stage(ctx.stage_url)
        self.job_name = f"medfeat-{ctx.run_id or 'run'}"
        self.dir = Path(ctx.run_dir) / "batch"
        self.in_flight = spec.size()[1] or DEFAULT_IN_FLIGHT
        self.batch_id: dict[int, str] = {}          # attempt -> batch id
        self.specs: dict[int, JobSpec] = {}
        self.started: set[int] = set()
        self.gone_since: dict[int, float] = {}
        self.hosts: dict[str, int] = {}
        self.last_poll = 0.0
        self.submissions = 0

    # -- life --------------------------------------------------------------------------------
    def start(self, events: queue.Queue) -> None:
        self.events = events
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        try:  # a bad --env fails here, once, not at every submission
            self.prologue = self._prologue()
        except ValueError as exc:
            raise InputError(f"--env {self.spec.options.get('env')}", str(exc)) from None

    def describe(self) -> dict:
        return {"backend": self.name, "address": self.system.options.get("ce") or "", "mode": "jobs",
                "options": self.spec.public_options()}

    def close(self) -> None:
        live = list(self.batch_id.values())
        if live:
            try:
                self.system.cancel(live)
            except Exception:
                pass

    # -- capacity ----------------------------------------------------------------------------
    def workers(self) -> dict[str, int]:
        return dict(self.hosts)

    def capacity(self, avoided: set[str]) -> int:
        return self.in_flight

    # -- submission ----------------------------------------------------------------------------
    def _url(self, name: str) -> str:
        base = self.stage.url.rstrip("/")
        return f"{base}/{name}" if "://" in base else posixpath.join(os.path.abspath(base), name)

    def _prologue(self) -> str:
        try:
            from medfeat.production.environment import job_prologue
        except ImportError:  # pragma: no cover - environment.py ships with medfeat
            return f"MEDFEAT={shlex.quote(sys.executable + ' -m medfeat')}"
        return job_prologue(self.spec.options.get("env"))

    def _script(self, specs: list[JobSpec], avoid: frozenset[str]) -> Path:
        self.submissions += 1
        n = self.submissions
        array = len(specs) if len(specs) > 1 else None
        lines = ["#!/bin/bash"] + self.system.header(self.job_name, self.dir / "logs", array, avoid)
        lines += ["set -u", self.prologue]
        if array:
            urls = self.dir / f"submission-{n:05d}.specs"
            urls.write_text("".join(self._url(s.name) + "\n" for s in specs))
            lines.append(f'SPEC=$(sed -n "$(({self.system.array_index}))p" {shlex.quote(str(urls))})')
        else:
            lines.append(f"SPEC={shlex.quote(self._url(specs[0].name))}")
        lines.append('exec $MEDFEAT job-run "$SPEC"')
        path = self.dir / f"submission-{n:05d}.sh"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    def _submit(self, specs: list[JobSpec], avoid: frozenset[str]) -> list[str]:
        for s in specs:
            self.stage.put(s.name, s.to_json().encode())
        script = self._script(specs, avoid)
        out = run_command(self.system.submit_command(script), f"{self.name}: submitting {script.name}",
                          cwd=self.dir / "logs")
        ids = self.system.parse_submit(out, len(specs) if len(specs) > 1 else None)
        for s, b in zip(specs, ids):
            self.batch_id[s.attempt] = b
            self.specs[s.attempt] = s
        return ids

    def submit(self, spec: JobSpec, avoid: frozenset[str] = frozenset(), urgent: bool = False) -> str | None:
        return self._submit([spec], avoid)[0]

    def submit_many(self, specs: list[JobSpec]) -> list[str | None]:
        if len(specs) > 1 and self.system.has_arrays:
            return self._submit(specs, frozenset())
        return [self.submit(s) for s in specs]

    def cancel(self, attempt: int) -> None:
        batch_id = self.batch_id.pop(attempt, None)
        spec = self.specs.pop(attempt, None)
        if batch_id is not None:
            try:
                self.system.cancel([batch_id])
            except Exception:
                pass  # already gone
        if spec is not None:
            self._clean(spec, keep_result=False)

    # -- following ---------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        if now - self.last_poll < POLL_S or not self.batch_id:
            return
        self.last_poll = now
        notes = self._notes()
        try:
            known = self.system.status(self.job_name)
        except Exception:
            known = None  # the status command failed this time: decide nothing about lost jobs
        for attempt in list(self.batch_id):
            spec = self.specs[attempt]
            base = posixpath.basename(spec.report)
            if attempt not in self.started and base.replace(".json", ".started.json") in notes:
                self._on_started(spec)
            if base in notes:
                self._on_report(spec)
                continue
            if known is None:
                continue
            if self.batch_id[attempt] in known:
                job = known[self.batch_id[attempt]]
                if job.node and job.state == "running" and attempt not in self.started:
                    self.hosts.setdefault(job.node, 1)
                self.gone_since.pop(attempt, None)
                continue
            first = self.gone_since.setdefault(attempt, now)
            if now - first >= LOST_GRACE_S:
                self._on_lost(spec)

    def _notes(self) -> set[str]:
        try:
            return {posixpath.basename(p) for p in self.stage.fs.ls(self.stage.path(reports_dir(self.ctx.run_id)),
                                                                     detail=False)}
        except (FileNotFoundError, OSError):
            return set()

    def _read(self, name: str) -> dict | None:
        """A note or report, read once (not retried: a missing one is simply not there yet)."""
        try:
            with self.stage.fs.open(self.stage.path(name), "rb") as fh:
                return json.loads(fh.read())
        except Exception:
            return None

    def _on_started(self, spec: JobSpec) -> None:
        note = self._read(spec.started)
        if note is None:
            return
        self.started.add(spec.attempt)
        host = note.get("host") or "?"
        self.hosts.setdefault(host, 1)
        self.events.put(Started(spec.attempt, host, float(note["started"]), host, note.get("pid"),
                                self.batch_id.get(spec.attempt)))

    def _on_report(self, spec: JobSpec) -> None:
        data = self._read(spec.report)
        if data is None:
            return  # half-visible on an eventually consistent store: next poll
        if spec.attempt not in self.started:
            self._on_started(spec)
        self.batch_id.pop(spec.attempt, None)
        self.specs.pop(spec.attempt, None)
        if data.get("ok"):
            report = dict(data["report"])
            report["worker"] = report.get("host") or report.get("worker")
            self.events.put(Finished(spec.attempt, report))
            self._clean(spec, keep_result=True)
        else:
            self.events.put(Failed(spec.attempt, data.get("error", "failed"), kind=data.get("kind", "error"),
                                   worker=data.get("host")))
            self._clean(spec, keep_result=False)

    def _on_lost(self, spec: JobSpec) -> None:
        batch_id = self.batch_id.pop(spec.attempt, None)
        try:  # a job held in an error state stays in the queue: take it out
            self.system.cancel([batch_id])
        except Exception:
            pass
        self.specs.pop(spec.attempt, None)
        self.gone_since.pop(spec.attempt, None)
        self.events.put(Failed(spec.attempt, f"batch job {batch_id} left {self.name} without a report "
                                             f"(cancelled, killed or failed on its node){self._log_tail(batch_id)}",
                               kind="lost"))
        self._clean(spec, keep_result=False)

    def _log_tail(self, batch_id: str | None) -> str:
        logs = sorted((self.dir / "logs").glob(f"*{batch_id}*")) if batch_id else []
        for log in logs:
            try:
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            except OSError:
                continue
            if lines:
                return f"; its log {log.name} ends: {lines[-1][:200]}"
        return ""

    def _clean(self, spec: JobSpec, keep_result: bool) -> None:
        for name in (spec.name, spec.started, spec.report) + (() if keep_result else (spec.result,)):
            try:
                self.stage.delete(name)
            except Exception:
                pass
