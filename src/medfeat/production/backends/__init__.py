"""Backends: where a production's jobs run. One short module per kind of resource.

Each module defines ``BACKEND``, a :class:`Backend`: its name, the modes it runs in, and
``make(spec, ctx)``, which starts what is needed and returns an
:class:`~medfeat.production.executor.Executor`. Two cores carry them:

* ``--mode workers`` -- Dask workers, wherever they run (:mod:`medfeat.production.dask_executor`);
  the batch systems start them as batch jobs through dask-jobqueue (:mod:`.jobqueue`);
* ``--mode jobs`` -- every production job is a batch job running ``medfeat job-run`` that needs
  no connection back to the client (:mod:`medfeat.production.batch_executor`).

========== ============== ===================================================================
name       modes          what
========== ============== ===================================================================
local      workers        an embedded Dask LocalCluster on this machine (default)
dask       workers        an existing Dask scheduler (``--scheduler ADDRESS``)
ssh        workers        Dask workers started over SSH on listed hosts (distributed's SSHCluster)
slurm      workers, jobs  Slurm (dask-jobqueue's SLURMCluster; ``sbatch`` arrays)
pbs        workers, jobs  PBS Pro / Torque (PBSCluster; ``qsub -J``/``-t`` arrays)
sge        workers, jobs  (Son of) Grid Engine (SGECluster; ``qsub -t`` arrays)
htcondor   workers, jobs  HTCondor (HTCondorCluster; ``condor_submit`` with ``queue N``)
lsf        workers        IBM Spectrum LSF (LSFCluster)
oar        workers        OAR (OARCluster)
moab       workers        Moab (MoabCluster)
arc        jobs           a NorduGrid ARC computing element (``arcsub``/``arcstat``/``arcget``)
kubernetes workers        Dask on Kubernetes (dask-kubernetes' KubeCluster; optional extra)
cloud      workers        Dask on cloud VMs (dask-cloudprovider, e.g. EC2Cluster; optional extra)
========== ============== ===================================================================
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medfeat.errors import InputError

NAMES = ("local", "dask", "ssh", "slurm", "pbs", "sge", "htcondor", "lsf", "oar", "moab", "arc", "kubernetes",
         "cloud")


@dataclass(frozen=True)
class RunContext:
    """What a backend may need to know of the run it serves."""

    run_dir: Path
    run_id: str
    stage_url: str


@dataclass(frozen=True)
class Backend:
    name: str
    modes: tuple[str, ...]
    make_executor: Callable  # (BackendSpec, RunContext) -> Executor
    summary: str = ""

    def make(self, spec, ctx: RunContext):
        if spec.mode not in self.modes:
            raise InputError(f"--backend {self.name}", f"mode {spec.mode!r} is not available; "
                             f"modes: {', '.join(self.modes)}")
        return self.make_executor(spec, ctx)


def get_backend(name: str) -> Backend:
    if name not in NAMES:
        raise InputError(f"--backend {name}", f"unknown backend; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"medfeat.production.backends.{name}")
    return module.BACKEND
