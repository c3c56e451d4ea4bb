"""``htcondor``: HTCondor, in ``--mode workers`` (dask-jobqueue's HTCondorCluster) or ``--mode
jobs`` (one cluster of ``condor_submit`` procs per batch of attempts, ``Machine`` requirements
to keep slow machines out, ``condor_rm`` for timeouts).

HTCondor describes jobs in a submit file rather than in script directives: :meth:`HTCondor.header`
returns no lines and :meth:`HTCondor.submit_command` writes ``SCRIPT.sub`` beside the script.
Options: ``memory`` (``request_memory``), ``cores`` (``request_cpus``), ``disk``,
``job_extra`` (extra submit-file lines, e.g. ``+ProjectName = "x"``). HTCondor cannot be installed
on the machines medfeat is developed on: the submit file and the parsing are tested, not a pool.
"""
from __future__ import annotations

from pathlib import Path

from medfeat.production.backends import Backend
from medfeat.production.batch_executor import BatchExecutor, BatchJob, BatchSystem, run_command

# JobStatus: 1 idle, 2 running, 3 removed, 4 completed, 5 held, 6 transferring output, 7 suspended
STATES = {"1": "queued", "2": "running", "5": "queued", "6": "running", "7": "queued"}


class HTCondor(BatchSystem):
    name = "htcondor"
    directive = ""
    array_index = "$1 + 1"   # the script gets $(Process) (0-based) as its first argument

    def header(self, job_name: str, log_dir: Path, array: int | None, avoid: frozenset[str]) -> list[str]:
        o = self.options
        sub = [f"batch_name = {job_name}", "universe = vanilla", "arguments = $(Process)",
               f"output = {log_dir}/$(Cluster).$(Process).log", f"error = {log_dir}/$(Cluster).$(Process).log",
               f"log = {log_dir}/condor.log", "getenv = True", f"request_cpus = {o.get('cores', 1)}"]
        if o.get("memory"):
            sub.append(f"request_memory = {o['memory']}")
        if o.get("disk"):
            sub.append(f"request_disk = {o['disk']}")
        if avoid:
            sub.append("requirements = " + " && ".join(f'(Machine != "{h}")' for h in sorted(avoid)))
        sub += self.extra()
        sub.append(f"queue {array or 1}")
        self._pending = sub
        return []

    def submit_command(self, script: Path) -> list[str]:
        sub = script.with_suffix(".sub")
        sub.write_text("\n".join([f"executable = {script}"] + self._pending) + "\n")
        return ["condor_submit", "-terse", str(sub)]

    def parse_submit(self, stdout: str, array: int | None) -> list[str]:
        # "123.0 - 123.4"
        first = stdout.strip().split()[0]
        cluster = first.split(".")[0]
        return [f"{cluster}.{i}" for i in range(array or 1)]

    def status(self, job_name: str) -> dict[str, BatchJob]:
        out = run_command(["condor_q", "-constraint", f'JobBatchName == "{job_name}"', "-af:j", "JobStatus",
                           "RemoteHost"], "htcondor: condor_q")
        jobs = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 2 and f[1] in STATES:
                host = f[2].split("@")[-1] if len(f) > 2 and f[2] != "undefined" else None
                jobs[f[0]] = BatchJob(STATES[f[1]], host)
        return jobs

    def cancel_command(self, batch_ids: list[str]) -> list[str]:
        return ["condor_rm"] + batch_ids


def make(spec, ctx):
    if spec.mode == "jobs":
        return BatchExecutor(HTCondor(spec.options), spec, ctx)
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("htcondor", "HTCondorCluster", spec, ctx)


BACKEND = Backend("htcondor", ("workers", "jobs"), make, "HTCondor: submit files or Dask workers as jobs")
