"""Stores: how a stage URL is reached, with credentials that never reach the ledger.

Stores (``--stage URL``; a plain path or ``file://`` is a local or shared folder):

* ``s3://BUCKET/PREFIX`` -- s3fs. Endpoint and credentials come from the usual variables
  (``AWS_ENDPOINT_URL[_S3]``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, or an AWS profile), or from the ``[stage]`` table
  of the run's config (see :func:`configure_store`).
* ``sftp://[USER@]HOST[:PORT]/PATH`` -- fsspec's sftp (paramiko), key authentication: the key
  file is ``ssh_key`` in ``[stage]`` (or ``FSSPEC_SFTP_KEY_FILENAME``, or the SSH backend's
  ``--ssh-key``), else paramiko's defaults (``~/.ssh/id_*``, an ssh-agent); paramiko does not
  read ``~/.ssh/config``. With ``known_hosts`` (``[stage]``, ``MEDFEAT_SFTP_KNOWN_HOSTS``, or the
  SSH backend's) the server's host key must be listed there; without it fsspec accepts any host
  key on first contact.

A stage URL never carries a password or a secret (it is stored in the ledger and shown in the
report): :func:`check_stage_url` refuses one.
"""
from __future__ import annotations

import os
import posixpath
import threading
import urllib.parse
import uuid
from typing import Mapping

import fsspec
import fsspec.config
from fsspec.registry import registry as _fs_classes  # filesystem classes imported so far

from medfeat.errors import InputError


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (botocore and paramiko messages may span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


#: ``[stage]`` table keys and the variables they set. Variables rather than arguments, because the
#: stage is opened from its URL alone in every process that touches it -- the client, its bundler,
#: Dask workers, batch jobs running ``medfeat job-run`` -- and the URL is what the ledger and the job
#: specs hold; secrets must stay out of both. Worker processes started after :func:`configure_store`
#: inherit the variables; workers already running elsewhere get them from :func:`share_store_env`.
STAGE_OPTIONS = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "FSSPEC_S3_ENDPOINT_URL"),  # s3: an S3-compatible server
    "key": ("AWS_ACCESS_KEY_ID",),                                      # s3: access key id
    "secret": ("AWS_SECRET_ACCESS_KEY",),                               # s3: secret access key
    "token": ("AWS_SESSION_TOKEN",),                                    # s3: session token
    "region": ("AWS_DEFAULT_REGION",),                                  # s3: region
    "ssh_key": ("FSSPEC_SFTP_KEY_FILENAME",),                           # sftp: private key file
    "known_hosts": ("MEDFEAT_SFTP_KNOWN_HOSTS",),                       # sftp: verify the host key
}
STAGE_ALIASES = {"access_key_id": "key", "aws_access_key_id": "key", "secret_access_key": "secret",
                 "aws_secret_access_key": "secret", "session_token": "token", "key_filename": "ssh_key",
                 "endpoint": "endpoint_url"}
#: Variables a worker needs to reach the stage (what :func:`share_store_env` ships), besides FSSPEC_*.
STORE_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "MEDFEAT_SFTP_KNOWN_HOSTS")
SFTP_TIMEOUT_S = 15.0   # TCP connect and SSH banner timeout of an sftp stage (paramiko has none)


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def check_stage_url(url: str) -> str:
    """``url`` itself if it carries no credentials; else :class:`InputError` (with the secret
    masked). The stage URL is stored in the ledger and in every job spec, so a password in
    ``user:password@host`` or a secret-looking query parameter is refused, not silently stripped:
    credentials go in ``[stage]`` or the environment. A user name alone (``sftp://me@host/``) is fine."""
    from medfeat.production.options import is_secret

    for part in str(url).split("::"):  # chained URLs: "simplecache::s3://..."
        try:
            parts = urllib.parse.urlsplit(part)
            has_password = parts.password is not None
        except ValueError as exc:
            raise InputError("--stage", f"not a valid URL: {exc}") from None
        if has_password:
            raise InputError(_redact(part), "the stage URL holds a password; it would be stored in the ledger "
                             "and job specs: give credentials in the config's [stage] table or the environment")
        secret = [k for k, _ in urllib.parse.parse_qsl(parts.query) if is_secret(k) or k.lower() in ("key", "sig")]
        if parts.scheme and secret:
            raise InputError(parts._replace(query="...").geturl(), f"the stage URL holds {', '.join(sorted(secret))}; "
                             "give credentials in the config's [stage] table or the environment")
    return str(url)


def configure_store(options: Mapping | None = None, backend_options: Mapping | None = None) -> list[str]:
    """Make the staging store's connection options effective for this process and for the
    worker processes it starts from now on; return the names (never the values) of the variables set.

    ``options`` is the run config's ``[stage]`` table (keys in :data:`STAGE_OPTIONS`, plus aliases
    such as ``access_key_id``); a key given there wins over the same variable already in the
    environment. ``backend_options`` (the SSH backend's ``ssh_key`` and ``known_hosts``) are the
    sftp key and known-hosts file when neither ``[stage]`` nor the environment names one.
    ``AWS_ENDPOINT_URL[_S3]`` is also handed to s3fs as ``FSSPEC_S3_ENDPOINT_URL``: botocore reads it
    only from 1.31 on, fsspec's config works with any version.

    Call it before the run's Stage is opened and before any worker starts. Raises
    :class:`InputError` for an unknown key or a missing key/known-hosts file."""
    opts: dict = {}
    for k, v in (options or {}).items():
        name = STAGE_ALIASES.get(str(k).lower(), str(k).lower())
        if name not in STAGE_OPTIONS:
            raise InputError("[stage]", f"unknown option {k!r}; known: {', '.join(sorted(STAGE_OPTIONS))}")
        if v is not None and v != "":
            opts[name] = str(v)
    backend_options = backend_options or {}
    label = {"ssh_key": "[stage] ssh_key", "known_hosts": "[stage] known_hosts"}
    for name, env, flag in (("ssh_key", "FSSPEC_SFTP_KEY_FILENAME", "--ssh-key"),
                            ("known_hosts", "MEDFEAT_SFTP_KNOWN_HOSTS", "[backend] known_hosts")):
        if name not in opts and not os.environ.get(env) and backend_options.get(name):
            opts[name] = str(backend_options[name])
            label[name] = flag
    for name in ("ssh_key", "known_hosts"):
        if name in opts:
            opts[name] = os.path.abspath(os.path.expanduser(opts[name]))
            if not os.path.isfile(opts[name]):
                raise InputError(opts[name], f"{label[name]}: no such file")
    env: dict[str, str] = {}
    for name, value in opts.items():
        for var in STAGE_OPTIONS[name]:
            env[var] = value
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL_S3") \
        or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and not os.environ.get("FSSPEC_S3_ENDPOINT_URL"):
        env.setdefault("FSSPEC_S3_ENDPOINT_URL", endpoint)
    _apply_env(env)
    return sorted(env)


def _apply_env(env: Mapping[str, str]) -> None:
    """Set variables in this process, refresh fsspec's config from them (it reads FSSPEC_* once, at
    import) and drop cached filesystems, which would otherwise keep their old connection options."""
    if not env:
        return
    os.environ.update(env)
    fsspec.config.set_conf_env(fsspec.config.conf)
    for proto in ("s3", "s3a", "sftp", "ssh"):
        cls = _fs_classes.get(proto)
        if cls is not None:
            try:
                cls.clear_instance_cache()
            except Exception:
                pass


def store_env() -> dict[str, str]:
    """The store variables set in this process (what a worker elsewhere needs to reach the stage).
    Holds secrets: never log or store it."""
    return {k: v for k, v in os.environ.items() if k in STORE_ENV or k.startswith("FSSPEC_")}


def share_store_env(client) -> None:
    """Hand :func:`store_env` to every worker of ``client``'s cluster, now and as workers join or
    restart (a Dask worker plugin kept by the scheduler). For workers not started by this process
    (SSH hosts, an existing scheduler): they do not inherit its environment. The values travel over
    the Dask connection (use TLS on untrusted networks) and are never on a command line."""
    env = store_env()
    if env:
        client.register_plugin(_store_env_plugin(env), name="medfeat-store-env")


def _store_env_plugin(env: dict):
    # the class is made on first use (module __getattr__): importing distributed costs ~0.2 s
    return __getattr__("StoreEnv")(env)


def __getattr__(name: str):
    if name == "StoreEnv":
        if "StoreEnv" not in globals():
            globals()["StoreEnv"] = _make_store_env_class()
        return globals()["StoreEnv"]
    raise AttributeError(name)


def _make_store_env_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class StoreEnv(WorkerPlugin):
        """Sets the store variables in a worker process (see :func:`share_store_env`)."""

        def __init__(self, env: dict):
            self.env = dict(env)

        def __repr__(self) -> str:  # never the values
            return f"StoreEnv({sorted(self.env)})"

        def setup(self, worker) -> None:
            _apply_env(self.env)

    StoreEnv.__module__ = __name__
    StoreEnv.__qualname__ = "StoreEnv"
    return StoreEnv


_POLICIES: dict[str, object] = {}
_POLICIES_LOCK = threading.Lock()


def _known_hosts_policy(path: str):
    """A paramiko host-key policy accepting only the host keys listed in ``path`` (fsspec's sftp
    never loads known hosts itself, so every server key reaches the "missing" policy)."""
    with _POLICIES_LOCK:
        if path in _POLICIES:
            return _POLICIES[path]
        import paramiko

        class KnownHosts(paramiko.MissingHostKeyPolicy):
            def __repr__(self) -> str:  # stable: part of fsspec's instance-cache token
                return f"KnownHosts({path!r})"

            def missing_host_key(self, client, hostname, key):
                try:
                    known = paramiko.HostKeys(path)
                except OSError as exc:
                    raise paramiko.SSHException(f"cannot read known hosts {path}: {exc}") from None
                if not known.check(hostname, key):
                    raise paramiko.SSHException(f"host key of {hostname} is not in {path}")

        _POLICIES[path] = KnownHosts()
        return _POLICIES[path]


def store_kwargs(url: str) -> dict:
    """Options a stage at ``url`` is opened with, besides fsspec's config: no listing cache on S3
    (workers write what the client lists; a cached listing would hide new files); on sftp a
    connect timeout and, with ``MEDFEAT_SFTP_KNOWN_HOSTS``, host-key checking."""
    if "::" in url:
        return {}
    proto = fsspec.core.split_protocol(url)[0]
    if proto in ("s3", "s3a"):
        return {"use_listings_cache": False}
    if proto in ("sftp", "ssh"):
        conf = fsspec.config.conf.get("sftp", {})
        kw: dict = {}
        if "timeout" not in conf:
            kw["timeout"] = SFTP_TIMEOUT_S
        if "banner_timeout" not in conf:
            kw["banner_timeout"] = SFTP_TIMEOUT_S
        known = os.environ.get("MEDFEAT_SFTP_KNOWN_HOSTS")
        if known:
            import fsspec.implementations.sftp as sftp

            if not hasattr(sftp, "HOST_KEY_POLICIES"):  # older fsspec would hand the policy to paramiko
                raise InputError(url, "known_hosts for an sftp stage needs a newer fsspec (sftp with "
                                 f"host_key_policy); this is {fsspec.__version__}")
            kw["host_key_policy"] = _known_hosts_policy(known)
        return kw
    return {}


def probe_stage(url: str) -> None:
    """Write, read back and delete a small object in the stage at ``url``, once, without retries;
    :class:`InputError` with a one-line reason when that fails (wrong secret, unknown bucket,
    unreachable server, key refused). Run it before a production starts, so that a bad store is
    named at once instead of after the staging retries."""
    check_stage_url(url)
    name = f".medfeat-probe-{uuid.uuid4().hex[:12]}"
    try:
        fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True, **store_kwargs(url))
        root = root.rstrip("/") or "/"
        path = posixpath.join(root, name)
        fs.makedirs(root, exist_ok=True)
        fs.pipe_file(path, b"ok")
        if fs.cat_file(path) != b"ok":
            raise OSError("read back other bytes than written")
        fs.rm(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(url, f"cannot use the stage: {type(exc).__name__}: {one_line(exc)}") from None
