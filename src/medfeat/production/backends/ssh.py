"""``ssh``: Dask workers started over SSH on listed hosts (distributed's SSH deployment, asyncssh).

``--hosts h1,h2,...``: the first host also runs the scheduler; every host runs workers. ``--workers
N`` workers in all, dealt round-robin over the hosts (default: one per host); each is one
single-threaded worker process under a nanny (option ``threads`` for more threads). A fixed size
only: ``MIN:MAX`` is refused (nothing can start a worker on a host by itself).

Key authentication only: ``--ssh-key FILE`` (else the keys asyncssh finds: ``~/.ssh/id_*``, an
ssh-agent, ``~/.ssh/config``), ``--ssh-user`` (default: the local user), ``--ssh-port`` (default 22).
Host keys are checked against ``known_hosts`` (option; default ``~/.ssh/known_hosts``); an unknown
host is refused. Other options (``[backend]`` table): ``remote_python`` (default: this Python,
``sys.executable``, which must exist with medfeat on every host), ``scheduler_port`` (default 0:
any free port), ``interface`` (a network interface the scheduler and workers listen on; default: the
address each host was reached at over SSH), ``memory`` (per worker), ``connect_timeout`` (s, default
15), ``worker_ttl`` (default 60s), ``idle_timeout`` (the scheduler stops after this long without
work, so that nothing outlives a client that died; default 600s).

Before starting anything each host is checked once (login, ``remote_python -c "import medfeat,
distributed"``), so that a bad key, an unreachable host or a host without medfeat is named in one
line. Workers have no copy of this process's environment: the staging store's variables (see
:func:`medfeat.production.stores.configure_store`) reach them through a worker plugin.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shlex
import sys

from medfeat.errors import InputError
from medfeat.production.backends import Backend
from medfeat.production.dask_executor import DaskExecutor

CONNECT_TIMEOUT_S = 15.0
CHECK_TIMEOUT_S = 60.0      # login + importing medfeat on a host
START_TIMEOUT_S = 120.0     # workers registered with the scheduler
WORKER_TTL = "60s"
IDLE_TIMEOUT = "600s"
WHERE = "--backend ssh"


def _hosts(spec) -> list[str]:
    hosts = spec.options.get("hosts") or []
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    hosts = [str(h).strip() for h in hosts if str(h).strip()]
    if not hosts:
        raise InputError(WHERE, "needs --hosts HOST[,HOST...] (or hosts = [...] in [backend])")
    return hosts


def _file(path, what: str) -> str:
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise InputError(path, f"{what}: no such file")
    if not os.access(path, os.R_OK):
        raise InputError(path, f"{what}: not readable")
    return path


def _connect_options(spec) -> dict:
    o = spec.options
    opts: dict = {"connect_timeout": float(o.get("connect_timeout") or CONNECT_TIMEOUT_S),
                  "preferred_auth": "publickey"}  # key authentication only, never a password prompt
    if o.get("ssh_port"):
        try:
            opts["port"] = int(o["ssh_port"])
        except (TypeError, ValueError):
            raise InputError("--ssh-port", f"{o['ssh_port']!r} is not a port number") from None
    if o.get("ssh_user"):
        opts["username"] = str(o["ssh_user"])
    if o.get("ssh_key"):
        import asyncssh

        key = _file(o["ssh_key"], "--ssh-key")
        try:
            opts["client_keys"] = [asyncssh.read_private_key(key)]
        except asyncssh.KeyImportError as exc:
            raise InputError(key, f"--ssh-key: not a usable private key ({exc}); an encrypted key "
                             "belongs in an ssh-agent, without --ssh-key") from None
        opts["agent_path"] = None   # only the key given
    if o.get("known_hosts"):
        import asyncssh

        opts["known_hosts"] = _file(o["known_hosts"], "known_hosts")
        try:
            asyncssh.read_known_hosts(opts["known_hosts"])
        except (ValueError, asyncssh.Error) as exc:
            raise InputError(opts["known_hosts"], f"known_hosts: not a known-hosts file ({exc})") from None
    return opts


def _reason(exc: BaseException) -> str:
    """One line for why an SSH login or command failed."""
    import asyncssh

    if isinstance(exc, asyncssh.PermissionDenied):
        return "login refused (the key is not accepted for this user)"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not trusted ({' '.join(str(exc).split())}); add it to known_hosts"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer (timed out)"
    if isinstance(exc, OSError):
        return f"cannot connect ({type(exc).__name__}: {' '.join(str(exc).split())})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _check_host(host: str, opts: dict, python: str) -> str | None:
    """None if ``host`` takes the login and its Python imports medfeat and distributed; else why not."""
    import asyncssh

    cmd = f"{shlex.quote(python)} -c 'import medfeat, distributed'"
    try:
        async with asyncssh.connect(host, **opts) as conn:
            result = await conn.run(cmd, check=False, timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # asyncssh.Error, OSError, timeouts, a bad ~/.ssh/known_hosts
        return _reason(exc)
    if result.exit_status == 0:
        return None
    err = [line for line in str(result.stderr or "").splitlines() if line.strip()]
    if result.exit_status == 127:
        return f"{python} not found there (set remote_python)"
    return f"{python} cannot import medfeat and distributed: {err[-1].strip() if err else f'exit {result.exit_status}'}"


def _check_hosts(hosts: list[str], opts: dict, python: str, port: int) -> None:
    async def all_hosts():
        return await asyncio.gather(*(_check_host(h, opts, python) for h in hosts))

    # a thread of its own: make() may be called where an event loop already runs
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reasons = pool.submit(asyncio.run, all_hosts()).result()
    for host, why in zip(hosts, reasons):
        if why:
            raise InputError(f"{WHERE} {host}:{port}", why)


class _Lines(logging.Handler):
    """Keeps the remote processes' stderr lines (logged by distributed while they start)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(" ".join(record.getMessage().split()))


def _drain_output(cluster) -> None:
    """Keep reading the remote processes' output (and drop it). distributed reads it only until
    they have started, and asyncssh stops reading a channel with a window's worth (2 MB) unread:
    a worker that logs that much would then block on its next log line, and the run with it."""
    async def drain(stream):
        try:
            while await stream.read(65536):
                pass
        except Exception:  # the process ended or its connection closed
            pass

    for process in [cluster.scheduler, *cluster.workers.values()]:
        proc = getattr(process, "proc", None)
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                cluster.loop.add_callback(drain, stream)


def make(spec, ctx) -> DaskExecutor:
    from distributed import Client
    from distributed.deploy.spec import SpecCluster
    from distributed.deploy.ssh import Scheduler, Worker

    from medfeat.production.stores import share_store_env

    hosts = _hosts(spec)
    lo, hi = spec.size()
    if lo != hi:
        raise InputError("--workers", f"{spec.workers!r}: the ssh backend has a fixed size (--workers N)")
    n = hi or len(hosts)
    o = spec.options
    opts = _connect_options(spec)
    python = str(o.get("remote_python") or sys.executable)
    port = opts.get("port", 22)
    _check_hosts(list(dict.fromkeys(hosts)), opts, python, port)

    interface = o.get("interface")
    listen = (lambda host: {"interface": interface}) if interface else (lambda host: {"host": host})
    ttl = o.get("worker_ttl", WORKER_TTL)
    head = f"[{hosts[0]}]" if ":" in hosts[0] else hosts[0]
    scheduler_kwargs = {**listen(hosts[0]), "port": int(o.get("scheduler_port") or 0),
                        "dashboard_address": ":0" if interface else f"{head}:0",
                        "idle_timeout": o.get("idle_timeout", IDLE_TIMEOUT), **({"worker_ttl": ttl} if ttl else {})}
    worker_kwargs = {"nthreads": int(o.get("threads") or 1), "death_timeout": "60s",
                     **({"memory_limit": o["memory"]} if o.get("memory") else {})}
    scheduler = {"cls": Scheduler, "options": {"address": hosts[0], "connect_options": opts,
                                               "kwargs": scheduler_kwargs, "remote_python": python}}
    workers = {}
    for i in range(n):
        host = hosts[i % len(hosts)]
        workers[f"ssh-{i}"] = {"cls": Worker, "options": {"address": host, "connect_options": opts,
                                                          "kwargs": {**worker_kwargs, **listen(host)},
                                                          "remote_python": python}}
    lines = _Lines()
    log = logging.getLogger("distributed.deploy.ssh")
    log.addHandler(lines)
    old_level, old_propagate = log.level, log.propagate
    log.setLevel(logging.INFO)
    log.propagate = False   # kept for the error message, not printed
    quiet = logging.getLogger("distributed.deploy.spec")   # "Cluster closed without starting up"
    quiet_level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        cluster = SpecCluster(workers, scheduler, name="medfeat-ssh")
    except Exception as exc:
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        last = next((line for line in reversed(lines.lines) if line), "")
        why = _reason(root)
        raise InputError(f"{WHERE} {','.join(hosts)}", f"the Dask cluster did not start: {why}"
                         + (f"; last remote line: {last}" if last else "")) from None
    finally:
        log.removeHandler(lines)
        log.setLevel(old_level)
        log.propagate = old_propagate
        quiet.setLevel(quiet_level)
    _drain_output(cluster)
    client = None
    what = "could not connect to the scheduler"
    try:
        client = Client(cluster)
        what = f"{n} workers did not join the scheduler within {START_TIMEOUT_S:g} s"
        client.wait_for_workers(n, timeout=START_TIMEOUT_S)
        what = "the staging store's settings could not be handed to the workers"
        share_store_env(client)
    except Exception as exc:
        for closing in (client, cluster):
            try:
                if closing is not None:
                    closing.close()
            except Exception:
                pass
        raise InputError(f"{WHERE} {','.join(hosts)}", f"{what}: {_reason(exc)}") from None
    options = {"hosts": hosts, "workers": n, "ssh_port": port,
               **({"ssh_user": opts["username"]} if "username" in opts else {})}
    return DaskExecutor(client, cluster, owned=True, name="ssh", options=options)


BACKEND = Backend("ssh", ("workers",), make, "Dask workers started over SSH on listed hosts")
