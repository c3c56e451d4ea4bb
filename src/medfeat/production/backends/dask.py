"""``dask``: an existing Dask scheduler (``--scheduler tcp://HOST:8786`` or option ``scheduler``);
medfeat neither starts nor stops its workers."""
from __future__ import annotations

from medfeat.errors import InputError
from medfeat.production.backends import Backend
from medfeat.production.dask_executor import DaskExecutor

CONNECT_TIMEOUT = "30s"


def _probe(address: str) -> None:
    """A refused or unroutable TCP address fails at once (distributed retries it for its whole
    connect timeout, 30 s, before saying so)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname:
        return  # other comms (inproc, ucx, ws) are left to distributed
    try:
        with socket.create_connection((parts.hostname, parts.port or 8786), timeout=5):
            pass
    except OSError as exc:
        raise InputError(address, f"cannot reach the Dask scheduler: {exc.strerror or exc}") from None


def make(spec, ctx) -> DaskExecutor:
    from distributed import Client

    address = spec.options.get("scheduler")
    if not address:
        raise InputError("--backend dask", "needs --scheduler ADDRESS (or scheduler = \"...\" in [backend])")
    _probe(address)
    try:
        client = Client(address, timeout=spec.options.get("connect_timeout", CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise InputError(address, f"cannot reach the Dask scheduler: {type(exc).__name__}: {exc}") from None
    return DaskExecutor(client, None, owned=True, name="dask", options={"scheduler": address})


BACKEND = Backend("dask", ("workers",), make, "an existing Dask scheduler")
