"""Staging: job bundles and results in a store any worker can reach, through fsspec.

A *bundle* is a tar file holding a job's input files and a ``manifest.json`` with the sha256 of
each, so a worker needs no shared filesystem: it pulls the bundle, checks it, unpacks it safely
into local scratch, and pushes one result file back. Every write to the store is atomic (a
temporary name, then a rename), so a reader never sees half a file.

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

import hashlib
import io
import json
import os
import posixpath
import tarfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Mapping

import fsspec
import fsspec.config
from fsspec.registry import registry as _fs_classes  # filesystem classes imported so far

from medfeat.errors import InputError

MANIFEST = "manifest.json"


class StageError(RuntimeError):
    """The staging store failed (unreachable, full, refused) or returned corrupt data."""


class BundleCorrupt(StageError):
    """A bundle's bytes do not match the sha256 recorded when it was staged (the engine re-stages
    the bundle once from the dataset, then fails the job with this reason)."""


# Transient store failures (unreachable, disk full, permission denied, a folder briefly missing)
# are retried with exponential backoff for up to this long before the operation fails.
RETRY_S = 60.0
RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 5.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Stage:
    """A folder in an fsspec filesystem (local path, ``file://``, ``sftp://``, ``s3://`` ...)."""

    def __init__(self, url: str, retry_s: float = RETRY_S):
        self.url = check_stage_url(str(url))
        self.retry_s = float(retry_s)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **store_kwargs(self.url))
        except Exception as exc:  # unknown protocol or its package missing; sftp connects here:
            # unreachable, key refused, unknown host key (on a worker: the attempt fails and is retried)
            raise InputError(self.url, f"cannot open the stage: {type(exc).__name__}: {one_line(exc)}") from None
        self.root = self.root.rstrip("/") or "/"
        self.retries = 0  # transient failures survived (reported by jobs)

    def __reduce__(self):  # ship the URL to workers, not a live connection
        return (Stage, (self.url, self.retry_s))

    def _retrying(self, what: str, op):
        """Run ``op()``; on ``OSError`` retry with exponential backoff for up to ``retry_s`` seconds,
        then raise :class:`StageError` naming the operation, the tries and the last error."""
        deadline = time.monotonic() + self.retry_s
        delay, tries = RETRY_FIRST_DELAY_S, 0
        while True:
            tries += 1
            try:
                return op()
            except OSError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StageError(f"staging: {what} failed {tries} time(s) over {self.retry_s:.0f} s; "
                                     f"last error: {type(exc).__name__}: {exc}") from None
                self.retries += 1
                time.sleep(min(delay, left))
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def put(self, name: str, data: bytes) -> None:
        """Write ``data`` under ``name`` atomically (temporary name, then rename), retrying
        transient failures; a reader sees the whole file or none."""
        self._retrying(f"writing {self.path(name)}", lambda: self._put_once(name, data))

    def _put_once(self, name: str, data: bytes) -> None:
        final = self.path(name)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, final)
        except BaseException:
            try:
                self.fs.rm(tmp)
            except Exception:
                pass
            raise

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``, retrying transient failures (a missing file included:
        on a briefly unreachable store it looks the same)."""
        def once():
            with self.fs.open(self.path(name), "rb") as fh:
                return fh.read()

        return self._retrying(f"reading {self.path(name)}", once)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def delete(self, name: str) -> None:
        try:
            self.fs.rm(self.path(name))
        except FileNotFoundError:
            pass


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (botocore and paramiko messages may span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- stores: URLs, credentials, probes ------------------------------------------------------

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


def _read_source(url: str) -> list[tuple[str, bytes]]:
    """Bytes of an input: one file, or every file of a folder (a DICOM series), with relative names."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        if fs.isdir(path):
            out = []
            for p in sorted(fs.find(path)):
                with fs.open(p, "rb") as fh:
                    out.append((posixpath.relpath(p, path), fh.read()))
            return out
        with fs.open(path, "rb") as fh:
            return [("", fh.read())]
    except FileNotFoundError:
        raise InputError(url, "file not found while building the job bundle") from None


def build_bundle(items) -> tuple[bytes, list[dict]]:
    """Pack ``items`` (plan Items) into a tar bundle.

    Returns the tar's bytes and the manifest's item list. A file that cannot be read is recorded in
    the manifest with its error, so the job reports it for that image and goes on with the others.
    """
    manifest_items, files, blobs = [], {}, []
    for idx, it in enumerate(items):
        entry = {"index": idx, "image": it.image, "mask": it.mask, "image_member": None, "mask_member": None,
                 "sha256": "", "error": ""}
        for role in ("image", "mask"):
            url = getattr(it, role)
            if not url:
                continue
            base = posixpath.basename(url.rstrip("/")) or role
            member = f"files/{idx:05d}-{role}-{base}"
            try:
                parts = _read_source(url)
            except (InputError, OSError) as exc:
                entry["error"] = str(exc) if isinstance(exc, InputError) else f"{url}: cannot read: {exc}"
                break
            if len(parts) == 1 and parts[0][0] == "":
                files[member] = sha256_bytes(parts[0][1])
                blobs.append((member, parts[0][1]))
                if role == "image":
                    entry["sha256"] = files[member]
            else:  # a folder: pack each file under the member folder
                h = hashlib.sha256()
                for rel, data in parts:
                    files[f"{member}/{rel}"] = sha256_bytes(data)
                    blobs.append((f"{member}/{rel}", data))
                    h.update(data)
                if role == "image":
                    entry["sha256"] = h.hexdigest()
            entry[f"{role}_member"] = member
        manifest_items.append(entry)
    manifest = {"version": 1, "items": manifest_items, "files": files}
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode())] + blobs:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), manifest_items


def _safe_member(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name:
        return False
    parts = name.split("/")
    return ".." not in parts and not any(p == "" for p in parts[:-1])


def unpack_bundle(data: bytes, dest: str | os.PathLike, expected_sha256: str | None = None) -> dict:
    """Check and unpack a bundle into ``dest``; return its manifest.

    Refuses (``StageError``) a bundle whose sha256 differs from ``expected_sha256``, any member
    with an absolute path, ``..``, a link or a device, and any file whose sha256 differs from the
    manifest's.
    """
    if expected_sha256 is not None:
        got = sha256_bytes(data)
        if got != expected_sha256:
            raise BundleCorrupt(f"bundle sha256 {got[:12]} does not match the planned {expected_sha256[:12]}")
    dest = Path(dest)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except tarfile.TarError as exc:
        raise StageError(f"bundle is not a valid tar file: {exc}") from None
    with tar:
        members = tar.getmembers()
        for m in members:
            if not _safe_member(m.name):
                raise StageError(f"bundle member {m.name!r} has an unsafe path")
            if not m.isfile():
                raise StageError(f"bundle member {m.name!r} is not a regular file (links and devices are refused)")
        try:
            manifest = json.loads(tar.extractfile(MANIFEST).read())
        except (KeyError, ValueError) as exc:
            raise StageError(f"bundle manifest missing or unreadable: {exc}") from None
        expected = manifest.get("files", {})
        seen = set()
        for m in members:
            if m.name == MANIFEST:
                continue
            blob = tar.extractfile(m).read()
            want = expected.get(m.name)
            if want is None:
                raise StageError(f"bundle member {m.name!r} is not in its manifest")
            if sha256_bytes(blob) != want:
                raise BundleCorrupt(f"bundle member {m.name!r} fails its sha256 check")
            target = dest / m.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
            seen.add(m.name)
        missing = set(expected) - seen
        if missing:
            raise StageError(f"bundle lacks {len(missing)} file(s) listed in its manifest, e.g. {sorted(missing)[0]!r}")
    return manifest
