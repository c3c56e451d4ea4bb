"""``local``: an embedded Dask LocalCluster on this machine, one single-threaded worker process per
core (``--workers N``, or ``MIN:MAX`` for an adaptive cluster)."""
from __future__ import annotations

import os

from medfeat.production.backends import Backend
from medfeat.production.dask_executor import DaskExecutor, one_task_per_thread

# A worker silent this long (frozen, cut off) is dropped and its jobs go elsewhere (Dask's default
# waits 5 minutes). Option ``worker_ttl``; "" or None switches it off.
WORKER_TTL = "60s"


def make(spec, ctx) -> DaskExecutor:
    from distributed import LocalCluster

    lo, hi = spec.size()
    n = hi or os.cpu_count() or 1
    ttl = spec.options.get("worker_ttl", WORKER_TTL)
    with one_task_per_thread():
        cluster = LocalCluster(n_workers=n if lo == hi else (lo or 0), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=40,
                               **({"scheduler_kwargs": {"worker_ttl": ttl}} if ttl else {}))
    return DaskExecutor.on_cluster(cluster, spec, "local", {"workers": spec.workers or n})


BACKEND = Backend("local", ("workers",), make, "an embedded Dask LocalCluster")
