"""``arc``: a NorduGrid ARC computing element (CE), ``--mode jobs`` only -- the seed production's
NorduGrid run.

Every production job attempt is one ARC job that needs no connection back to the client and no
shared filesystem: ARC's own data staging carries everything. The job description (xRSL) lists
as input files, uploaded by ``arcsub`` into the job's session directory:

* ``spec.json`` -- the attempt's :class:`~medfeat.production.spec.JobSpec`, rewritten so that its
  stage is the session directory itself (``stage_url = "."``) and the bundle, result, report and
  "started" note are local names;
* ``bundle.tar`` -- the job's bundle, taken from the stage by the client (downloaded to a
  temporary file first when the stage is not a local path);
* ``medfeat-job.sh`` -- the executable: :func:`~medfeat.production.environment.job_prologue`'s
  lines (``MEDFEAT``), then ``$MEDFEAT job-run spec.json``;
* ``medfeat-env.tar`` -- the packed worker environment (``--env``, made by ``medfeat pack-env``),
  when given; the prologue sets it up once per node.

and as output files, left in the session directory for the client: ``result.parquet``,
``report.json`` and ``job.log`` (stdout and stderr). The client follows its jobs with one
``arcstat`` call for all of them every few seconds, fetches finished ones with ``arcget`` (which
also cleans them from the CE), publishes the result into the stage under the spec's result name
and reports the attempt: ``Started`` when ARC says Running (or, for a job seen only once done,
with the report's start time), ``Finished`` with the report, whose worker is ``CE/ARC-JOB-ID``;
``Failed`` ``lost`` when the job ended Failed/Killed/Deleted or vanished without a report, and
``error``/``corrupt`` from a report saying the code failed. ``arckill`` cancels an attempt (the
job is cleaned with ``arcclean`` once ARC has killed it; one cancelled in a session's last
seconds is cleaned by the run's next session, or by ``arcclean -j RUN_DIR/arc/jobs.dat -a``).
Several first attempts go in one ``arcsub`` call (a multi-job xRSL, ``+(&...)(&...)``).
``RUN_DIR/arc/`` holds the run's ARC job list (``jobs.dat``), the job script and
``events.jsonl`` (submissions with their ``arcsub`` time, states seen, fetches, losses).

Options: ``ce`` (required: ``--ce HOST`` or a CE URL), ``env`` (the packed environment; without
it the node must have medfeat at this machine's path), ``queue``, ``walltime`` (``HH:MM:SS`` or
minutes), ``memory`` (per job, e.g. ``2GB``), ``cores`` (per job), ``job_extra`` (extra xRSL
relations, e.g. ``(runtimeenvironment="X")``). The credentials are the ARC client's own
(``X509_USER_PROXY`` ...), read from the environment and never stored.

What ARC adds to a job's time: the CE's own loop (a job stays ``Accepted`` 10-40 s on a fork CE)
and the poll period; the driver's job timeout counts from the moment ARC says Running, so give
``--job-timeout`` room for the CE's latency.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from medfeat.errors import InputError
from medfeat.production.backends import Backend
from medfeat.production.executor import Executor, Failed, Finished, Started
from medfeat.production.spec import JobSpec

POLL_S = 3.0              # how often arcstat is asked (one call for every job of the run)
LOST_GRACE_S = 30.0       # a job missing from arcstat's answer this long (the CE answering) is lost
FETCH_TRIES = 3           # arcget failures of a finished job before its attempt is lost
COMMAND_TIMEOUT_S = 120.0
UPLOAD_BYTES_PER_S = 10e6  # arcsub's timeout grows with what it uploads (at least this fast)
STATUS_BATCH = 200        # job ids per arcstat/arcget/arckill call
DEFAULT_IN_FLIGHT = 64    # ARC jobs queued or running at once, unless --workers says otherwise

# names in the job's session directory
SCRIPT = "medfeat-job.sh"
SPEC = "spec.json"
BUNDLE = "bundle.tar"
ENV = "medfeat-env.tar"
RESULT = "result.parquet"
REPORT = "report.json"
STARTED = "started.json"
LOG = "job.log"

RUNNING = {"Running", "Finishing"}
DONE = {"Finished", "Failed"}
GONE = {"Killed", "Deleted"}


@dataclass
class ArcJob:
    """What ``arcstat`` says of one job."""

    state: str = "Undefined"
    name: str | None = None
    exit_code: str | None = None
    error: str | None = None


def parse_arcstat(text: str) -> dict[str, ArcJob]:
    """``arcstat``'s answer, by job id (the job URL)."""
    jobs: dict[str, ArcJob] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("Job: "):
            cur = line[5:].strip()
            jobs[cur] = ArcJob()
        elif cur is not None and line.startswith(" ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            value = value.strip()
            if key == "State":
                jobs[cur].state = value.split()[0] if value else "Undefined"
            elif key == "Name":
                jobs[cur].name = value
            elif key == "Exit Code":
                jobs[cur].exit_code = value
            elif key == "Job Error":
                jobs[cur].error = value
        elif not line.strip():
            cur = None
    return jobs


def parse_submitted(text: str) -> list[str]:
    """The job ids ``arcsub`` printed, in submission order."""
    return re.findall(r"Job submitted with jobid:\s*(\S+)", text)


def short_id(job_id: str) -> str:
    """The CE's own id of a job (the last part of its URL): also arcget's folder name."""
    return job_id.rstrip("/").rsplit("/", 1)[-1]


def xrsl_value(text) -> str:
    """A quoted xRSL string (a double quote is doubled)."""
    return '"' + str(text).replace('"', '""') + '"'


def _minutes(walltime) -> int:
    """``HH:MM:SS``, ``MM:SS`` or minutes -> whole minutes (xRSL's unit), rounded up."""
    text = str(walltime).strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            while len(parts) < 3:
                parts.insert(0, 0)
            h, m, s = parts[-3:]
            return max(1, h * 60 + m + (1 if s else 0))
        return max(1, int(float(text)))
    except ValueError:
        raise InputError("--walltime", f"{walltime!r} is not HH:MM:SS or minutes") from None


def _megabytes(memory) -> int:
    """``2GB``, ``512MB``, ``1.5G`` or MB -> MB (xRSL's unit)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)i?B?\s*", str(memory), re.I)
    if not m:
        raise InputError("--memory", f"{memory!r} is not a size such as 2GB")
    scale = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2).upper()]
    return max(1, int(float(m.group(1)) * scale))


def run_arc(cmd: list[str], what: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run an ARC client command (its exit status is the caller's to judge)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise InputError(cmd[0], f"{what}: command not found (is the NorduGrid ARC client installed "
                                 "and on PATH?)") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what}: `{cmd[0]}` did not answer in {timeout:.0f} s") from None


def _last_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in ((r.stderr or "") + "\n" + (r.stdout or "")).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or [""])[-1][:300]


class ArcExecutor(Executor):
    """Runs attempts as ARC jobs on one computing element; ``spec`` is the run's BackendSpec."""

    name = "arc"
    queues = True        # attempts wait in the CE's queue: the driver applies the queue timeout until Running
    # a CE reports Running and Finished late (here: Running only once the job had ended on its node,
    # a kill acted on ~1 min later): the driver adds this to its timeout and backup threshold
    status_lag_s = 60.0
    can_avoid = False    # a CE places jobs itself: there is no node to keep a job from

    def __init__(self, spec, ctx):
        from medfeat.production.staging import Stage

        opts = dict(spec.options)
        self.ce = str(opts.get("ce") or "").strip()
        if not self.ce:
            raise InputError("--backend arc", "needs the computing element: --ce HOST (or ce = \"HOST\" in [backend])")
        self.ce_host = (urlparse(self.ce).hostname or self.ce) if "://" in self.ce else self.ce
        self.spec = spec
        self.ctx = ctx
        self.opts = opts
        self.stage = Stage(ctx.stage_url)
        self.local_stage = "file" in (self.stage.fs.protocol if isinstance(self.stage.fs.protocol, tuple)
                                      else (self.stage.fs.protocol,))
        self.dir = Path(ctx.run_dir) / "arc"
        self.jobs_file = self.dir / "jobs.dat"
        self.in_flight = spec.size()[1] or DEFAULT_IN_FLIGHT
        self.env = self._env_path(opts.get("env"))
        self.job_prefix = f"medfeat-{ctx.run_id or 'run'}"
        self.ids: dict[int, str] = {}             # attempt -> ARC job id (URL)
        self.attempt_of: dict[str, int] = {}      # ARC job id -> attempt
        self.specs: dict[int, JobSpec] = {}
        self.submitted_at: dict[int, float] = {}
        self.started: set[int] = set()
        self.missing_since: dict[int, float] = {}
        self.fetch_failures: Counter = Counter()
        self.to_clean: dict[str, int] = {}        # cancelled or lost ARC jobs -> clean tries
        self.last_poll = 0.0
        self.submissions = 0
        self.script: Path | None = None
        self.timings: list[dict] = []             # per arcsub call: jobs, submitted, seconds, bytes uploaded

    # -- set-up --------------------------------------------------------------------------------
    @staticmethod
    def _env_path(env) -> str | None:
        if env is None or str(env).strip() == "":
            return None
        text = str(env)
        if "://" in text:
            u = urlparse(text)
            if u.scheme != "file" or u.netloc not in ("", "localhost"):
                raise InputError(f"--env {text}", "the arc backend uploads the worker environment with each job: "
                                 "give a path or a file:// URL on this machine")
            text = unquote(u.path)
        path = os.path.abspath(os.path.expanduser(text))
        if not os.path.isfile(path):
            raise InputError(path, "worker environment not found (make it with `medfeat pack-env`)")
        return path

    def _prologue(self) -> str:
        """job_prologue's lines, with the archive read from the job's session directory."""
        from medfeat.production.environment import job_prologue

        text = job_prologue(self.env)
        if self.env is None:
            return text
        old = f"MEDFEAT_ENV_ARCHIVE={shlex.quote(self.env)}"
        if old not in text:
            raise RuntimeError("arc: job_prologue no longer sets MEDFEAT_ENV_ARCHIVE as expected; "
                               "cannot point it at the staged copy of the worker environment")
        return text.replace(old, f'MEDFEAT_ENV_ARCHIVE="$PWD"/{ENV}', 1)

    def _write_script(self) -> Path:
        lines = ["#!/bin/bash",
                 "# medfeat: one production job attempt, run by ARC in the job's session directory",
                 "set -u", self._prologue(),
                 f"$MEDFEAT job-run {SPEC}",
                 "rc=$?",
                 f"[ -s {REPORT} ] && exit 0",
                 'echo "medfeat: job-run exited with status $rc and wrote no report" >&2',
                 'if [ "$rc" -eq 0 ]; then exit 1; fi',
                 'exit "$rc"']
        path = self.dir / SCRIPT
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    # -- life ------------------------------------------------------------------------------------
    def start(self, events: queue.Queue) -> None:
        self.events = events
        self.dir.mkdir(parents=True, exist_ok=True)
        self.script = self._write_script()
        self._leftovers()

    def _leftovers(self) -> None:
        """Jobs of an earlier session of this run still in its job list (a client that was killed,
        or jobs cancelled at its end): their attempts are already lost in the ledger; kill them and
        clean them off the CE as they end."""
        if not self.jobs_file.exists():
            return
        try:
            r = run_arc(["arcstat", "-j", str(self.jobs_file), "-a"], "arc: arcstat")
        except (RuntimeError, InputError):
            return
        old = list(parse_arcstat(r.stdout))
        if old:
            self._kill(old)

    def describe(self) -> dict:
        return {"backend": self.name, "address": self.ce, "mode": "jobs", "options": self.spec.public_options()}

    def workers(self) -> dict[str, int]:
        return {self.ce_host: self.in_flight}

    def capacity(self, avoided: set[str]) -> int:
        return self.in_flight

    def close(self) -> None:
        live = list(self.ids.values())
        self.ids.clear()
        if live:
            self._kill(live)
        if self.to_clean:
            self._clean_jobs(list(self.to_clean), force=False)

    # -- submission --------------------------------------------------------------------------
    def _description(self, spec: JobSpec, spec_file: Path, bundle: str) -> str:
        o = self.opts
        inputs = [(SCRIPT, str(self.script)), (SPEC, str(spec_file)), (BUNDLE, bundle)]
        if self.env:
            inputs.append((ENV, self.env))
        rel = [f"(executable={xrsl_value(SCRIPT)})", f"(jobname={xrsl_value(self._job_name(spec.attempt))})",
               "(inputfiles=" + "".join(f"({xrsl_value(a)} {xrsl_value(b)})" for a, b in inputs) + ")",
               "(outputfiles=" + "".join(f"({xrsl_value(n)} \"\")" for n in (RESULT, REPORT, LOG)) + ")",
               f"(stdout={xrsl_value(LOG)})", '(join="yes")']
        if o.get("queue"):
            rel.append(f"(queue={xrsl_value(o['queue'])})")
        if o.get("walltime"):
            rel.append(f'(walltime="{_minutes(o["walltime"])}")')
        if o.get("memory"):
            rel.append(f'(memory="{_megabytes(o["memory"])}")')
        if o.get("cores") and int(o["cores"]) > 1:
            rel.append(f'(count="{int(o["cores"])}")(countpernode="{int(o["cores"])}")')
        extra = o.get("job_extra") or []
        rel += [extra] if isinstance(extra, str) else list(extra)
        return "&" + "".join(rel)

    def _job_name(self, attempt: int) -> str:
        return f"{self.job_prefix}-a{attempt:05d}"

    def _bundle_source(self, spec: JobSpec, into: Path) -> tuple[str, int]:
        """A local path of the job's bundle for arcsub to upload, and its size."""
        if self.local_stage:
            path = self.stage.path(spec.bundle)
            return path, os.path.getsize(path)
        data = self.stage.get(spec.bundle)
        path = into / f"bundle-{spec.job_id:05d}.tar"
        path.write_bytes(data)
        return str(path), len(data)

    def _submit(self, specs: list[JobSpec]) -> list[str | None]:
        self.submissions += 1
        sub = Path(tempfile.mkdtemp(prefix=f"submission-{self.submissions:05d}-", dir=self.dir))
        ok = False
        try:
            descs, upload = [], 0
            for s in specs:
                local = dataclasses.replace(s, stage_url=".", bundle=BUNDLE, result=RESULT, report=REPORT,
                                            started=STARTED)
                spec_file = sub / f"attempt-{s.attempt:05d}.json"
                spec_file.write_text(local.to_json())
                bundle, size = self._bundle_source(s, sub)
                upload += size + (os.path.getsize(self.env) if self.env else 0)
                descs.append(self._description(s, spec_file, bundle))
            text = descs[0] if len(descs) == 1 else "+" + "".join(f"({d})" for d in descs)
            xrsl = sub / "jobs.xrsl"
            xrsl.write_text(text + "\n")
            t0 = time.time()
            r = run_arc(["arcsub", "-C", self.ce, "-j", str(self.jobs_file), str(xrsl)], "arc: arcsub",
                        timeout=COMMAND_TIMEOUT_S + upload / UPLOAD_BYTES_PER_S)
            took = time.time() - t0
            ids = parse_submitted(r.stdout)
            self.timings.append({"jobs": len(specs), "submitted": len(ids), "seconds": took, "upload_bytes": upload})
            if not ids:
                raise RuntimeError(f"arc: arcsub to {self.ce} submitted none of {len(specs)} job(s): {_last_line(r)}")
            ok = True
            by_spec = self._match(specs, ids)
            now = time.time()
            out: list[str | None] = []
            for s in specs:
                job_id = by_spec.get(s.attempt)
                out.append(job_id)
                if job_id is None:  # this one was refused: the driver runs it again
                    self.events.put(Failed(s.attempt, f"arcsub did not submit it: {_last_line(r)}", kind="lost"))
                    continue
                self.ids[s.attempt] = job_id
                self.attempt_of[job_id] = s.attempt
                self.specs[s.attempt] = s
                self.submitted_at[s.attempt] = now
            self._log(now, "submitted", {s.attempt: by_spec.get(s.attempt) for s in specs}, took=round(took, 3))
            return out
        finally:
            if ok:
                shutil.rmtree(sub, ignore_errors=True)
            else:  # keep the description for the reader of the error; not the bundle copies
                for p in sub.glob("bundle-*.tar"):
                    p.unlink(missing_ok=True)

    def _match(self, specs: list[JobSpec], ids: list[str]) -> dict[int, str]:
        """Which job id is which attempt: arcsub prints them in order; when some were refused,
        ask arcstat for the jobs' names."""
        if len(ids) == len(specs):
            return {s.attempt: j for s, j in zip(specs, ids)}
        names = {self._job_name(s.attempt): s.attempt for s in specs}
        out = {}
        for job_id, job in self._status(ids)[0].items():
            if job.name in names:
                out[names[job.name]] = job_id
        for job_id in ids:  # submitted but unnamed: not ours to follow; take it off the CE
            if job_id not in out.values():
                self._kill([job_id])
        return out

    def submit(self, spec: JobSpec, avoid: frozenset[str] = frozenset(), urgent: bool = False) -> str | None:
        return self._submit([spec])[0]

    def submit_many(self, specs: list[JobSpec]) -> list[str | None]:
        return self._submit(specs) if specs else []

    def cancel(self, attempt: int) -> None:
        job_id = self.ids.pop(attempt, None)
        self._forget(attempt)
        if job_id is not None:
            self.attempt_of.pop(job_id, None)
            self._kill([job_id])

    # -- ARC commands ----------------------------------------------------------------------------
    def _status(self, job_ids: list[str]) -> tuple[dict[str, ArcJob], bool]:
        """arcstat of ``job_ids``; the flag says whether a job missing from the answer is really
        gone (the CE answered without an error)."""
        jobs: dict[str, ArcJob] = {}
        reliable = True
        for i in range(0, len(job_ids), STATUS_BATCH):
            chunk = job_ids[i:i + STATUS_BATCH]
            try:
                r = run_arc(["arcstat", "-j", str(self.jobs_file)] + chunk, "arc: arcstat")
            except RuntimeError:
                reliable = False
                continue
            jobs.update(parse_arcstat(r.stdout))
            if "ERROR" in (r.stderr or "") or (r.returncode != 0 and "No jobs" not in (r.stdout + r.stderr)):
                reliable = False
        return jobs, reliable

    def _kill(self, job_ids: list[str]) -> None:
        """arckill (which also cleans a job it can); a job not cleaned yet is cleaned once ARC has
        killed it (or it ended anyway)."""
        for i in range(0, len(job_ids), STATUS_BATCH):
            chunk = job_ids[i:i + STATUS_BATCH]
            try:
                r = run_arc(["arckill", "-j", str(self.jobs_file)] + chunk, "arc: arckill")
                m = re.search(r"processed:\s*(\d+).*cleaned:\s*(\d+)", r.stdout)
                cleaned = m is not None and m.group(1) == m.group(2) == str(len(chunk))
            except (RuntimeError, InputError):
                cleaned = False
            self._log(time.time(), "killed", {j: None for j in chunk}, cleaned=cleaned)
            if not cleaned:
                for j in chunk:
                    self.to_clean.setdefault(j, 0)

    def _clean_jobs(self, job_ids: list[str], force: bool) -> None:
        for i in range(0, len(job_ids), STATUS_BATCH):
            chunk = job_ids[i:i + STATUS_BATCH]
            try:
                r = run_arc(["arcclean", "-j", str(self.jobs_file)] + (["-f"] if force else []) + chunk,
                            "arc: arcclean")
                done = r.returncode == 0
            except (RuntimeError, InputError):
                done = False
            for j in chunk:
                if done or force:
                    self.to_clean.pop(j, None)
                else:
                    self.to_clean[j] = self.to_clean.get(j, 0) + 1

    # -- following -------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        if now - self.last_poll < POLL_S or not (self.ids or self.to_clean):
            return
        self.last_poll = now
        jobs, reliable = self._status(list(self.ids.values()) + list(self.to_clean))
        done: list[int] = []
        for attempt, job_id in list(self.ids.items()):
            job = jobs.get(job_id)
            if job is None:
                if not reliable:
                    continue
                first = self.missing_since.setdefault(attempt, now)
                if now - first >= LOST_GRACE_S:
                    self._lost(attempt, f"ARC job {job_id} vanished from {self.ce} without a report")
                continue
            self.missing_since.pop(attempt, None)
            if job.state in RUNNING and attempt not in self.started:
                self.started.add(attempt)
                self._log(now, "running", {attempt: job_id})
                self.events.put(Started(attempt, self._worker(job_id), now, None, None, job_id))
            if job.state in DONE:
                done.append(attempt)
            elif job.state in GONE:
                self._lost(attempt, f"ARC job {job_id} was {job.state.lower()} on {self.ce}"
                                    f"{f' ({job.error})' if job.error else ''} before it reported", clean=True)
        if done:
            self._fetch(done, jobs)
        stale = []
        for job_id in list(self.to_clean):
            job = jobs.get(job_id)
            if job is None and reliable:
                self.to_clean.pop(job_id, None)   # already gone from the CE
            elif job is not None and (job.state in DONE or job.state in GONE):
                stale.append(job_id)
        if stale:
            self._clean_jobs(stale, force=False)
            for job_id in stale:
                if self.to_clean.get(job_id, 0) >= 5:
                    self._clean_jobs([job_id], force=True)

    def _worker(self, job_id: str) -> str:
        return f"{self.ce_host}/{short_id(job_id)}"

    def _fetch(self, attempts: list[int], jobs: dict[str, ArcJob]) -> None:
        """arcget finished (or failed) jobs into a temporary folder, then report each attempt."""
        where = Path(tempfile.mkdtemp(prefix="fetch-", dir=self.dir))
        try:
            ids = [self.ids[a] for a in attempts]
            msg = ""
            for i in range(0, len(ids), STATUS_BATCH):
                try:
                    r = run_arc(["arcget", "-j", str(self.jobs_file), "-D", str(where)] + ids[i:i + STATUS_BATCH],
                                "arc: arcget")
                    if r.returncode:
                        msg = _last_line(r)
                except RuntimeError as exc:
                    msg = str(exc)
            now = time.time()
            for attempt in attempts:
                job_id = self.ids.get(attempt)
                if job_id is None:
                    continue
                folder = where / short_id(job_id)   # arcget's folder for the job
                if not folder.is_dir():
                    self.fetch_failures[attempt] += 1
                    if self.fetch_failures[attempt] >= FETCH_TRIES:
                        self._lost(attempt, f"ARC job {job_id} ended ({jobs[job_id].state}) but its outputs could "
                                            f"not be fetched {FETCH_TRIES} times: {msg}", clean=True)
                    continue
                self._log(now, "fetched", {attempt: job_id}, state=jobs[job_id].state)
                self._outcome(attempt, job_id, folder, jobs[job_id])
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def _outcome(self, attempt: int, job_id: str, folder: Path, job: ArcJob) -> None:
        spec = self.specs[attempt]
        worker = self._worker(job_id)
        try:
            data = json.loads((folder / REPORT).read_text())
        except (OSError, ValueError):
            data = None
        if data is None:
            why = f"; ARC: {job.error}" if job.error else ""
            self._lost(attempt, f"ARC job {job_id} ended {job.state} without a report{why}{self._log_tail(folder)}")
            return
        if not data.get("ok"):
            self._forget(attempt)
            self.ids.pop(attempt, None)
            self.attempt_of.pop(job_id, None)
            self.events.put(Failed(attempt, data.get("error", "failed"), kind=data.get("kind", "error"),
                                   worker=worker))
            return
        report = dict(data["report"])
        result = folder / RESULT
        if report.get("attempt") not in (None, attempt) or not result.is_file():
            what = "its result file is missing" if not result.is_file() else "the report is another attempt's"
            self._lost(attempt, f"ARC job {job_id} reported success but {what}{self._log_tail(folder)}")
            return
        self.stage.put(spec.result, result.read_bytes())
        report["result"] = spec.result
        report["worker"] = worker
        if attempt not in self.started:  # seen only once done: its start is the report's
            self.events.put(Started(attempt, worker, float(report["started"]), report.get("host"), report.get("pid"),
                                    job_id))
        self.ids.pop(attempt, None)
        self.attempt_of.pop(job_id, None)
        self._forget(attempt)
        self.events.put(Finished(attempt, report))

    def _lost(self, attempt: int, why: str, clean: bool = False) -> None:
        job_id = self.ids.pop(attempt, None)
        if job_id is not None:
            self.attempt_of.pop(job_id, None)
            if clean:
                self.to_clean.setdefault(job_id, 0)
        self._forget(attempt)
        self._log(time.time(), "lost", {attempt: job_id}, why=why)
        self.events.put(Failed(attempt, why, kind="lost"))

    def _forget(self, attempt: int) -> None:
        self.specs.pop(attempt, None)
        self.submitted_at.pop(attempt, None)
        self.missing_since.pop(attempt, None)
        self.fetch_failures.pop(attempt, None)
        self.started.discard(attempt)

    @staticmethod
    def _log_tail(folder: Path) -> str:
        try:
            lines = [ln for ln in (folder / LOG).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f"; its log ends: {lines[-1][:200]}" if lines else ""

    def _log(self, t: float, what: str, jobs: dict, **extra) -> None:
        """One line per event in RUN_DIR/arc/events.jsonl (submissions, states seen, fetches)."""
        try:
            with open(self.dir / "events.jsonl", "a") as fh:
                fh.write(json.dumps({"t": round(t, 3), "event": what, "jobs": {str(k): v for k, v in jobs.items()},
                                     **extra}) + "\n")
        except OSError:
            pass


def make(spec, ctx):
    return ArcExecutor(spec, ctx)


BACKEND = Backend("arc", ("jobs",), make, "NorduGrid ARC: one ARC job per production job, ARC's own data staging")
