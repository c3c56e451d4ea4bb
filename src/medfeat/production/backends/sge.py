"""``sge``: (Son of) Grid Engine, in ``--mode workers`` (dask-jobqueue's SGECluster) or
``--mode jobs`` (one ``qsub`` job per production job, ``-t`` array jobs for a batch of first
attempts, ``-l h=!node`` for slow nodes, ``qdel`` for timeouts).

Options: ``queue``, ``account`` (``-P`` project), ``walltime`` (``h_rt``), ``memory``
(``h_vmem``), ``job_extra`` (extra ``#$`` lines); workers mode passes any other option to
SGECluster. Needs ``SGE_ROOT``/``SGE_CELL`` in the environment, as every SGE client does.
"""
from __future__ import annotations

from pathlib import Path

from medfeat.production.backends import Backend
from medfeat.production.batch_executor import BatchExecutor, BatchJob, BatchSystem, run_command


class GridEngine(BatchSystem):
    name = "sge"
    directive = "#$"
    array_index = "SGE_TASK_ID"

    def header(self, job_name: str, log_dir: Path, array: int | None, avoid: frozenset[str]) -> list[str]:
        o, d = self.options, self.directive
        task = ".$TASK_ID" if array else ""
        lines = [f"{d} -N {job_name}", f"{d} -S /bin/bash", f"{d} -j y", f"{d} -o {log_dir}/$JOB_ID{task}.log"]
        for flag, key in (("-q", "queue"), ("-P", "account"), ("-l h_rt=", "walltime"), ("-l h_vmem=", "memory")):
            if o.get(key):
                lines.append(f"{d} {flag}{o[key]}" if flag.endswith("=") else f"{d} {flag} {o[key]}")
        if array:
            lines.append(f"{d} -t 1-{array}")
        if avoid:
            lines.append(f"{d} -l h=!({'|'.join(sorted(avoid))})" if len(avoid) > 1 else f"{d} -l h=!{next(iter(avoid))}")
        return lines + [f"{d} {x}" for x in self.extra()]

    def submit_command(self, script: Path) -> list[str]:
        return ["qsub", "-terse", str(script)]

    def parse_submit(self, stdout: str, array: int | None) -> list[str]:
        job = stdout.strip().splitlines()[-1].split(".")[0]
        return [f"{job}.{i}" for i in range(1, array + 1)] if array else [job]

    def status(self, job_name: str) -> dict[str, BatchJob]:
        # -g d: one line per array task. Columns: job-ID prior name user state date time [queue] slots [task]
        out = run_command(["qstat", "-g", "d"], "sge: qstat")
        jobs = {}
        for line in out.splitlines()[2:]:
            f = line.split()
            if len(f) < 8 or not f[0].isdigit():
                continue
            state = f[4]
            if "E" in state:  # an error state: the job will not run; leave it for lost
                continue
            running = any(c in state for c in "rtR")
            base = 9 if running else 8
            task = f[base] if len(f) > base else None
            node = f[7].split("@", 1)[1] if running and "@" in f[7] else None
            jobs[f"{f[0]}.{task}" if task else f[0]] = BatchJob("running" if running else "queued", node)
        return jobs

    def cancel_command(self, batch_ids: list[str]) -> list[str]:
        return ["qdel"] + batch_ids

    def cancel(self, batch_ids: list[str]) -> None:
        plain = [b for b in batch_ids if "." not in b]
        if plain:
            run_command(["qdel"] + plain, "sge: qdel")
        for b in batch_ids:
            if "." in b:  # one task of an array job
                job, task = b.split(".", 1)
                run_command(["qdel", job, "-t", task], f"sge: qdel {b}")


def make(spec, ctx):
    if spec.mode == "jobs":
        return BatchExecutor(GridEngine(spec.options), spec, ctx)
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("sge", "SGECluster", spec, ctx)


BACKEND = Backend("sge", ("workers", "jobs"), make, "Grid Engine: qsub jobs or Dask workers as jobs")
