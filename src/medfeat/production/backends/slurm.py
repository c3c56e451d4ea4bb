"""``slurm``: Slurm, in ``--mode workers`` (Dask workers as batch jobs, dask-jobqueue's
SLURMCluster) or ``--mode jobs`` (one ``sbatch`` job per production job, array jobs for a batch
of first attempts, ``--exclude`` for slow nodes, ``scancel`` for timeouts).

Options: ``queue`` (partition), ``account``, ``walltime``, ``memory``, ``cores`` (per job, default
1), ``job_extra`` (extra ``#SBATCH`` lines, e.g. ``--qos=short``); workers mode passes any other
option to SLURMCluster.
"""
from __future__ import annotations

import re
from pathlib import Path

from medfeat.production.backends import Backend
from medfeat.production.batch_executor import BatchExecutor, BatchJob, BatchSystem, run_command


class Slurm(BatchSystem):
    name = "slurm"
    directive = "#SBATCH"
    array_index = "SLURM_ARRAY_TASK_ID"

    def header(self, job_name: str, log_dir: Path, array: int | None, avoid: frozenset[str]) -> list[str]:
        o, d = self.options, self.directive
        out = "%A_%a" if array else "%j"
        lines = [f"{d} --job-name={job_name}", f"{d} --output={log_dir}/{out}.log", f"{d} --ntasks=1",
                 f"{d} --cpus-per-task={o.get('cores', 1)}"]
        for flag, key in (("--partition", "queue"), ("--account", "account"), ("--time", "walltime"),
                          ("--mem", "memory")):
            if o.get(key):
                lines.append(f"{d} {flag}={_slurm_memory(o[key]) if key == 'memory' else o[key]}")
        if array:
            lines.append(f"{d} --array=1-{array}")
        if avoid:
            lines.append(f"{d} --exclude={','.join(sorted(avoid))}")
        return lines + [f"{d} {x}" for x in self.extra()]

    def submit_command(self, script: Path) -> list[str]:
        return ["sbatch", "--parsable", str(script)]

    def parse_submit(self, stdout: str, array: int | None) -> list[str]:
        job = stdout.strip().split(";")[0]
        return [f"{job}_{i}" for i in range(1, array + 1)] if array else [job]

    def status(self, job_name: str) -> dict[str, BatchJob]:
        out = run_command(["squeue", "-h", "-r", "--name", job_name, "-o", "%i|%T|%N"], "slurm: squeue")
        jobs = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                state = "running" if parts[1] in ("RUNNING", "COMPLETING") else "queued"
                jobs[parts[0]] = BatchJob(state, parts[2] or None)
        return jobs

    def cancel_command(self, batch_ids: list[str]) -> list[str]:
        return ["scancel"] + batch_ids


def _slurm_memory(text) -> str:
    """"2GB" -> "2G" (sbatch's units are K, M, G, T)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT])i?B?\s*", str(text), re.I)
    return f"{m.group(1)}{m.group(2).upper()}" if m else str(text)


def make(spec, ctx):
    if spec.mode == "jobs":
        return BatchExecutor(Slurm(spec.options), spec, ctx)
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("slurm", "SLURMCluster", spec, ctx)


BACKEND = Backend("slurm", ("workers", "jobs"), make, "Slurm: sbatch jobs or Dask workers as jobs")
