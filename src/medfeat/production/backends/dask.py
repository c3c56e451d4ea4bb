"""``dask``: an existing Dask scheduler (``--scheduler tcp://HOST:8786`` or option ``scheduler``);
medfeat neither starts nor stops its workers."""
from __future__ import annotations

from medfeat.errors import InputError
from medfeat.production.backends import Backend
from medfeat.production.dask_executor import DaskExecutor

CONNECT_TIMEOUT = "30s"


def make(spec, ctx) -> DaskExecutor:
    from distributed import Client

    address = spec.options.get("scheduler")
    if not address:
        raise InputError("--backend dask", "needs --scheduler ADDRESS (or scheduler = \"...\" in [backend])")
    try:
        client = Client(address, timeout=spec.options.get("connect_timeout", CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise InputError(address, f"cannot reach the Dask scheduler: {type(exc).__name__}: {exc}") from None
    return DaskExecutor(client, None, owned=True, name="dask", options={"scheduler": address})


BACKEND = Backend("dask", ("workers",), make, "an existing Dask scheduler")
