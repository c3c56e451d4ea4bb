"""``pbs``: PBS Pro / OpenPBS / Torque, in ``--mode workers`` (dask-jobqueue's PBSCluster) or
``--mode jobs`` (one ``qsub`` job per production job, ``qdel`` for timeouts).

Jobs mode submits one job per attempt, no arrays: array task ids differ between PBS Pro
(``123[4]``), Torque (``123-4``) and the Slurm PBS wrappers (a plain id per task, with no way back
to its index), while plain jobs are the same everywhere. PBS has no portable way to keep a job off a
node, so slow-node avoidance is not applied (backups and timeouts still are).

Options: ``queue``, ``account`` (``-A``), ``walltime``, ``memory``, ``cores`` (``ncpus``),
``job_extra`` (extra ``#PBS`` lines); workers mode passes any other option to PBSCluster.
"""
from __future__ import annotations

from pathlib import Path

from medfeat.production.backends import Backend
from medfeat.production.batch_executor import BatchExecutor, BatchJob, BatchSystem, run_command

DONE_STATES = ("C", "F", "X")   # completed (Torque), finished / expired (PBS Pro)


class PBS(BatchSystem):
    name = "pbs"
    directive = "#PBS"
    has_arrays = False

    def header(self, job_name: str, log_dir: Path, array: int | None, avoid: frozenset[str]) -> list[str]:
        o, d = self.options, self.directive
        lines = [f"{d} -N {job_name}", f"{d} -j oe", f"{d} -o {log_dir}/", f"{d} -l nodes=1:ppn={o.get('cores', 1)}"]
        for flag, key in (("-q", "queue"), ("-A", "account"), ("-l walltime=", "walltime"), ("-l mem=", "memory")):
            if o.get(key):
                lines.append(f"{d} {flag}{o[key]}" if flag.endswith("=") else f"{d} {flag} {o[key]}")
        return lines + [f"{d} {x}" for x in self.extra()]

    def submit_command(self, script: Path) -> list[str]:
        return ["qsub", str(script)]

    def parse_submit(self, stdout: str, array: int | None) -> list[str]:
        return [stdout.strip().splitlines()[-1].strip()]

    def status(self, job_name: str) -> dict[str, BatchJob]:
        # Job id  Name  User  Time Use  S  Queue  (ids may carry ".server", which qstat may cut)
        out = run_command(["qstat"], "pbs: qstat", silent_failure_is_empty=True)
        jobs = {}
        for line in out.splitlines()[2:]:
            f = line.split()
            if len(f) < 6 or f[4] in DONE_STATES:
                continue
            jobs[f[0].split(".")[0]] = BatchJob("running" if f[4] in ("R", "E") else "queued")
        return _by_full_id(jobs)

    def cancel_command(self, batch_ids: list[str]) -> list[str]:
        return ["qdel"] + batch_ids


class _by_full_id(dict):
    """Look up "123.server" as "123" (qstat shortens ids; qsub prints them whole)."""

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, str(key).split(".")[0])

    def __getitem__(self, key):
        return dict.__getitem__(self, str(key).split(".")[0])


def make(spec, ctx):
    if spec.mode == "jobs":
        return BatchExecutor(PBS(spec.options), spec, ctx)
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("pbs", "PBSCluster", spec, ctx)


BACKEND = Backend("pbs", ("workers", "jobs"), make, "PBS Pro / Torque: qsub jobs or Dask workers as jobs")
