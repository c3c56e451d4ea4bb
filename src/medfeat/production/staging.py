"""Staging: job bundles and results in a store any worker can reach, through fsspec.

A *bundle* is a tar file holding a job's input files and a ``manifest.json`` with the sha256 of
each, so a worker needs no shared filesystem: it pulls the bundle, checks it, unpacks it safely
into local scratch, and pushes one result file back. Every write to the store is atomic (a
temporary name, then a rename), so a reader never sees half a file.

How stores are reached (s3://, sftp://, credentials) is in :mod:`medfeat.production.stores`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
import time
import uuid
from pathlib import Path

import fsspec

from medfeat.errors import NUL_IN_NAME, InputError
from medfeat.production.stores import check_stage_url, one_line, store_kwargs

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
        self.put_with(name, lambda fh: fh.write(data))

    def put_with(self, name: str, write) -> object:
        """Write ``name`` atomically by streaming: ``write(fh)`` writes the content into ``fh`` (a
        temporary file, renamed when complete) and its return value is returned. Retried from the
        start on transient failures, so ``write`` must be repeatable."""
        def once():
            final = self.path(name)
            tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            try:
                with self.fs.open(tmp, "wb") as fh:
                    out = write(fh)
                self.fs.mv(tmp, final)
                return out
            except BaseException:
                try:
                    self.fs.rm(tmp)
                except Exception:
                    pass
                raise

        return self._retrying(f"writing {self.path(name)}", once)

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


# A dataset file larger than this is refused while bundling (a character device, a runaway file):
# bundles are read into memory, and no medical image file medfeat reads comes near it.
MAX_INPUT_BYTES = 8 << 30


def _regular(fs, path: str, url: str) -> os.stat_result | None:
    """Refuse what is not a regular file before opening it: a FIFO blocks the reader forever, a
    device is read until memory runs out, a broken or looping link has nothing to read. Returns
    the file's stat on a local filesystem (None on other stores)."""
    if getattr(fs, "protocol", None) in ("file", ("file", "local"), "local") or isinstance(fs.protocol, tuple) \
            and "file" in fs.protocol:
        import stat

        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(url, "file not found while building the job bundle (a broken link?)") from None
        except OSError as exc:  # a link loop (ELOOP), no permission, a name too long
            raise InputError(url, f"cannot read: {exc.strerror or exc}") from None
        except ValueError:  # a NUL byte in the name
            raise InputError(url, NUL_IN_NAME) from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(url, "not a regular file (a FIFO, a device or a socket); refused")
        size = st.st_size
    else:
        st, size = None, int(fs.info(path).get("size") or 0)
    if size > MAX_INPUT_BYTES:
        raise InputError(url, f"file of {size / 2**30:.1f} GiB is larger than the {MAX_INPUT_BYTES >> 30} GiB "
                              "a job bundle takes")
    return st


def _read_source(url: str) -> list[tuple[str, bytes]]:
    """Bytes of an input: one file, or every file of a folder (a DICOM series), with relative names."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        if fs.isdir(path):
            out = []
            for p in sorted(fs.find(path)):
                _regular(fs, p, url)
                with fs.open(p, "rb") as fh:
                    out.append((posixpath.relpath(p, path), fh.read()))
            return out
        _regular(fs, path, url)
        with fs.open(path, "rb") as fh:
            return [("", fh.read())]
    except FileNotFoundError:
        raise InputError(url, "file not found while building the job bundle") from None


class _Hashing:
    """A write-only file that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner):
        self.inner, self.sha, self.n = inner, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.n += len(data)
        return self.inner.write(data)

    def tell(self) -> int:
        return self.n


def local_path(url: str) -> str | None:
    """The absolute local path of ``url`` (a path or a ``file://`` URL), None for other stores."""
    if "://" in url and not url.startswith("file://"):
        return None
    return os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)


def file_stats(path: str) -> list[list]:
    """``[[relative name, size, mtime_ns], ...]`` of a file (one entry, name "") or of every file
    under a folder (a DICOM series): what a reference bundle checks its inputs against."""
    fs = fsspec.filesystem("file")
    if os.path.isdir(path):
        out = []
        for folder, _, names in sorted(os.walk(path)):
            for n in sorted(names):
                p = os.path.join(folder, n)
                st = _regular(fs, p, path)
                out.append([os.path.relpath(p, path), st.st_size, st.st_mtime_ns])
        return out
    st = _regular(fs, path, path)
    return [["", st.st_size, st.st_mtime_ns]]


def write_bundle(fh, items, reference: bool = False) -> tuple[str, int, list[dict]]:
    """Pack ``items`` (plan Items) as a tar bundle into the open file ``fh``, one input file at a
    time (a bundle is never whole in memory), the manifest last. Returns the bundle's sha256 and
    size, hashed while written, and the manifest's item list. A file that cannot be read is
    recorded in the manifest with its error, so the job reports it for that image and goes on.

    ``reference``: local inputs are not packed; the manifest gives their path (``image_path``,
    ``mask_path``) and each file's size and modification time (``image_stat``, ``mask_stat``), and
    the job reads them in place after checking those (workers sharing the client's filesystem).
    Inputs on other stores (S3, SFTP, ...) are packed as usual."""
    out = _Hashing(fh)
    manifest_items, files = [], {}
    now = time.time()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))

        for idx, it in enumerate(items):
            entry = {"index": idx, "image": it.image, "mask": it.mask, "image_member": None, "mask_member": None,
                     "sha256": "", "error": "", "label": getattr(it, "label", None), "roi": getattr(it, "roi", None),
                     "ids": [list(p) for p in getattr(it, "ids", ())]}
            for role in ("image", "mask"):
                url = getattr(it, role)
                if not url:
                    continue
                base = posixpath.basename(url.rstrip("/")) or role
                member = f"files/{idx:05d}-{role}-{base}"
                path = local_path(url) if reference else None
                if path is not None:
                    try:
                        entry[f"{role}_stat"] = file_stats(path)
                    except FileNotFoundError:
                        entry["error"] = f"{url}: file not found while building the job bundle"
                        break
                    except InputError as exc:
                        entry["error"] = str(exc)
                        break
                    except OSError as exc:
                        entry["error"] = f"{url}: cannot read: {exc.strerror or exc}"
                        break
                    entry[f"{role}_path"] = path
                    continue
                try:
                    parts = _read_source(url)
                except (InputError, OSError) as exc:
                    entry["error"] = str(exc) if isinstance(exc, InputError) else f"{url}: cannot read: {exc}"
                    break
                if len(parts) == 1 and parts[0][0] == "":
                    files[member] = sha256_bytes(parts[0][1])
                    add(member, parts[0][1])
                    if role == "image":
                        entry["sha256"] = files[member]
                else:  # a folder: pack each file under the member folder
                    h = hashlib.sha256()
                    for rel, data in parts:
                        files[f"{member}/{rel}"] = sha256_bytes(data)
                        add(f"{member}/{rel}", data)
                        h.update(data)
                    if role == "image":
                        entry["sha256"] = h.hexdigest()
                del parts
                entry[f"{role}_member"] = member
            manifest_items.append(entry)
        add(MANIFEST, json.dumps({"version": 1, "items": manifest_items, "files": files}, indent=1).encode())
    return out.sha.hexdigest(), out.n, manifest_items


def build_bundle(items) -> tuple[bytes, list[dict]]:
    """A bundle in memory (see :func:`write_bundle`): its bytes and the manifest's item list."""
    buf = io.BytesIO()
    _, _, manifest_items = write_bundle(buf, items)
    return buf.getvalue(), manifest_items


def stage_bundle(stage: "Stage", name: str, items, reference: bool = False) -> tuple[str, int]:
    """Write ``items``' bundle straight into ``stage`` under ``name``; its sha256 and size."""
    sha, n, _ = stage.put_with(name, lambda fh: write_bundle(fh, items, reference))
    return sha, n


def content_sha256(path: str) -> str:
    """The sha256 a copied bundle gives an input: of a file's bytes, or of a folder's files' bytes in
    the order the bundle packs them (streamed, 1 MiB at a time)."""
    fs = fsspec.filesystem("file")
    h = hashlib.sha256()
    for p in (sorted(fs.find(path)) if os.path.isdir(path) else [path]):
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def check_in_place(url: str, path: str, stats: list[list]) -> None:
    """A reference bundle's input must be as planned: the same files, sizes and modification times
    (``InputError`` naming the file otherwise), so a job never reads a file changed under the run."""
    if not os.path.lexists(path):
        raise InputError(url, "no longer there (removed since the run was planned)")
    try:
        now = file_stats(path)
    except FileNotFoundError:
        raise InputError(url, "no longer there (removed since the run was planned)") from None
    except OSError as exc:
        raise InputError(url, f"cannot read: {exc.strerror or exc}") from None
    if now != [list(s) for s in stats]:
        raise InputError(url, "changed since the run was planned (files, sizes or modification times); "
                              "start a new run folder")


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
    # an item may only point at what was checked above: a member file, or the folder of members
    # (a DICOM series) -- never at a path outside the scratch folder
    folders = {name.rsplit("/", 1)[0] for name in seen if "/" in name}
    for item in manifest.get("items", []):
        for key in ("image_member", "mask_member"):
            member = item.get(key)
            if member is None:
                continue
            if not isinstance(member, str) or not _safe_member(member) or (member not in seen and member not in folders):
                raise StageError(f"bundle manifest item {item.get('index')} names {key} {member!r}, which is not "
                                 "one of the bundle's checked files")
    return manifest
