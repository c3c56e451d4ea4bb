"""``moab``: Moab, ``--mode workers`` only: Dask workers as ``msub`` jobs (dask-jobqueue's
MoabCluster, which writes ``#PBS`` directives; see :mod:`.jobqueue` for the options)."""
from __future__ import annotations

from medfeat.production.backends import Backend


def make(spec, ctx):
    from medfeat.production.backends.jobqueue import workers_executor

    return workers_executor("moab", "MoabCluster", spec, ctx)


BACKEND = Backend("moab", ("workers",), make, "Moab: Dask workers as msub jobs")
