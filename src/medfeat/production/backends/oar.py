"""``oar``: OAR, ``--mode workers`` only: Dask workers as ``oarsub`` jobs (dask-jobqueue's
OARCluster; see :mod:`.jobqueue` for the options). ``account`` is the project (``--project``);
set ``memory_per_core_property_name`` for OAR to reserve the workers' memory."""
from __future__ import annotations

from medfeat.production.backends import Backend


def make(spec, ctx):
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("oar", "OARCluster", spec, ctx)


BACKEND = Backend("oar", ("workers",), make, "OAR: Dask workers as oarsub jobs")
