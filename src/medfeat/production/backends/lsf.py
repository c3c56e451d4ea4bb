"""``lsf``: IBM Spectrum LSF, ``--mode workers`` only: Dask workers as ``bsub`` jobs
(dask-jobqueue's LSFCluster; see :mod:`.jobqueue` for the options). ``queue`` is ``#BSUB -q``,
``account`` the project (``-P``), ``walltime`` is rounded up to ``-W HH:MM``, ``job_extra`` adds
``#BSUB`` lines; ``lsf_units`` and ``use_stdin`` pass through to LSFCluster."""
from __future__ import annotations

from medfeat.production.backends import Backend


def make(spec, ctx):
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("lsf", "LSFCluster", spec, ctx)


BACKEND = Backend("lsf", ("workers",), make, "IBM Spectrum LSF: Dask workers as bsub jobs")
