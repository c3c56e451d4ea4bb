"""``local``: an embedded Dask LocalCluster on this machine, one single-threaded worker process per
core (``--workers N``, or ``MIN:MAX`` for an adaptive cluster)."""
from __future__ import annotations

import os

from medfeat.production.backends import Backend
from medfeat.production.dask_executor import DaskExecutor, one_task_per_thread

# A worker silent this long (frozen, cut off) is dropped and its jobs go elsewhere (Dask's default
# waits 5 minutes). Option ``worker_ttl``; "" or None switches it off.
WORKER_TTL = "60s"

# Dask's statistical profiler (the dashboard's Profile page) samples each worker thread's stack every
# 10 ms. The workers this backend starts run without it: seed-shaped gift jobs were 3.6% faster per
# image (9.28 -> 8.94 ms, 4 of 4 paired runs of 20 jobs x 250 images on 2 workers, measured here).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def make(spec, ctx) -> DaskExecutor:
    import dask.config
    from distributed import LocalCluster

    lo, hi = spec.size()
    n = hi or os.cpu_count() or 1
    ttl = spec.options.get("worker_ttl", WORKER_TTL)
    with one_task_per_thread(), dask.config.set(WORKER_CONFIG):  # the nannies hand this config to their workers
        cluster = LocalCluster(n_workers=n if lo == hi else (lo or 0), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=40,
                               **({"scheduler_kwargs": {"worker_ttl": ttl}} if ttl else {}))
    return DaskExecutor.on_cluster(cluster, spec, "local", {"workers": spec.workers or n})


BACKEND = Backend("local", ("workers",), make, "an embedded Dask LocalCluster")
