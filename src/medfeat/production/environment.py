"""Worker environments for nodes without medfeat: ``medfeat pack-env`` and the batch job prologue.

In jobs mode (``medfeat run --mode jobs``) every production job is a batch job running
``$MEDFEAT job-run SPEC_URL`` on a node that may not have medfeat and cannot reach the submitting
machine. :func:`job_prologue` writes the shell lines that set ``MEDFEAT``:

* no environment (``--env`` not given): ``MEDFEAT="<this python> -m medfeat"`` -- medfeat is
  installed on the node at the same path (a shared filesystem);
* ``--env ENV`` (a path, or a ``file://`` URL, readable on the node): ENV is an archive made by
  :func:`pack_env` (``medfeat pack-env ENV``). The first job on a node turns it into a virtual
  environment under ``${MEDFEAT_ENV_CACHE:-${TMPDIR:-/tmp}/medfeat-env-$(id -u)}/<sha256[:16]>``;
  every later job on that node finds it there and starts at once.

What the archive is: a **wheelhouse plus a bootstrap**. One uncompressed ``.tar`` holding
``medfeat-env/wheels/*.whl`` (medfeat, built from its source tree, and every installed
dependency at the version installed here, plus pip itself), ``manifest.json`` (Python version,
machine, wheels) and ``bootstrap.py`` (stdlib only; the prologue carries the same code). On the
node the bootstrap checks the interpreter (a clear message, not a pip traceback, when the
Python minor version or the machine differs), makes ``venv --without-pip`` from the node's
``python3`` (or ``$MEDFEAT_PYTHON``), installs the wheels offline with pip run from its own
wheel (``pip.whl/pip install --isolated --no-index --no-deps``: no index, no pip config of the
node, no ensurepip needed), under a temporary name that is renamed into place only when complete
(atomic), while holding an ``flock`` on ``<dir>.lock``: two jobs starting at once on one node
build it once, and the other waits; where locks do not work (some NFS) the rename alone keeps it
correct. A job killed half-way leaves only a ``*.tmp-HOST-PID`` folder, removed by the next build.

Why this one (measured on this 2-core machine, medfeat + 52 distributions + pip, CPython 3.11;
"node" = user ``nobody``, Debian's ``/usr/bin/python3`` 3.11.2, a fresh cache; packed from the
pyenv 3.11.7 venv; start = ``medfeat --help`` wall time):

=====================  =========  ==========  ======================  ===========  ================================
way                    build      archive     first start on a node   later start  the node needs
=====================  =========  ==========  ======================  ===========  ================================
wheelhouse+bootstrap   5-6 s      252 MB      7 s; 9 s for two jobs   0.15-0.2 s   CPython 3.11 (same minor) at
(this module)          (27 s      (.tar)      at once (pip install,                **any path** with its venv
                       offline)               730 MB unpacked)                     module; nothing else
pex ``--no-compress``  32 s       731 MB      4.8 s (733 MB)          0.3 s        CPython 3.11 at any path;
                                                                                   ``PEX_ROOT`` (default ~/.pex)
pex (compressed)       45 s       252 MB      5.4 s                   0.25 s       same as above
shiv                   55 s       250 MB      4.8 s (716 MB)          0.2 s        CPython 3.11 at any path;
                                                                                   ``SHIV_ROOT`` (default ~/.shiv)
venv-pack (tar.gz)     20 s venv  305 MB      8.1 s untar (866 MB)    0.17 s       CPython 3.11 at **the same
                       + 14 s                                                      path** as the build (or at
                                                                                   ``--python-prefix``)
=====================  =========  ==========  ======================  ===========  ================================

Heavier imports (``medfeat.pipeline``, ``medfeat.production.job``, ``pyarrow.parquet``,
``scipy.ndimage``) after the first start: 0.26 s (wheelhouse, first import 0.46 s as it writes
its ``.pyc`` lazily), 0.33-0.5 s (pex), 0.38 s (shiv), 0.33-0.41 s (venv-pack).

The wheelhouse wins on portability and build cost: the venv is made on the node from whatever
CPython 3.11 is there, so the interpreter path does not matter (venv-pack's does: its
``bin/python`` links to the build machine's interpreter, here ``/root/.pyenv/...``, which
``nobody`` cannot even run; the row above was packed with ``--python-prefix /usr``); it needs no
tool beyond pip at build time (pex and shiv are extra dependencies and took 6-10 times longer to
build); its archive is as small as a compressed pex or shiv (the wheels stay compressed as
PyPI ships them); and its node-side step is ours to make safe (lock + atomic rename + a cache
named by content; shiv and pex have their own, but under ``$HOME`` by default, often an NFS home
or read-only on grid nodes). Its price is a first start of 7-9 s per node (the pip install;
``.pyc`` are written lazily, ``--no-compile``: compiling everything up front took 16 s) against
pex's and shiv's 5 s, paid once per node and cache. Every way needs the same Python minor
version and a compatible glibc, since numpy, scipy, pyarrow, numba ... are binary wheels:
:func:`pack_env` writes what the node needs into the manifest (``medfeat pack-env`` prints it);
to serve another Python, run pack-env with that Python.

Building: ``pip wheel --no-deps`` of the source tree (a copy: setuptools writes into it) and of
every dependency pinned to the version installed here (PyPI or the configured index). When that
fails -- no network, e.g. on a cluster's login node -- :func:`pack_env` falls back to repacking
the installed distributions themselves into wheels (from their ``RECORD``; ``wheels="installed"``
asks for that directly), fully offline.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = "medfeat-env"              # the archive's top folder
FORMAT = 1                        # manifest format
KEY_CHARS = 16                    # hex digits of the archive's sha256 naming its cache folder
SETUP_FAILED = 3                  # exit status of a batch job whose environment could not be set up
_HEREDOC = "MEDFEAT_BOOTSTRAP_EOF"


class PackError(RuntimeError):
    """The environment could not be packed; the message says why."""


# ---------------------------------------------------------------------------------------------
# The node's side: stdlib only, any Python 3.6+ (so that a wrong Python gets a clear message).
# Shipped in the archive as bootstrap.py, and carried by the prologue (python3 - <<EOF).
# ---------------------------------------------------------------------------------------------
BOOTSTRAP = r'''"""Set up a medfeat worker environment from an archive made by `medfeat pack-env`.

usage: python3 bootstrap.py ARCHIVE --cache DIR [--key KEY]   (sets up DIR/KEY; KEY: sha256 prefix)
       python3 bootstrap.py ARCHIVE --dest DIR [--key KEY] [--compile]
Prints the folder; medfeat is then FOLDER/venv/bin/python -m medfeat. The folder appears only
when complete (built under a temporary name, then renamed); a lock serialises builders.
"""
import argparse
import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
import venv

ROOT = "medfeat-env"
DONE = "medfeat-env.json"


def fail(msg):
    sys.stderr.write("medfeat env: error: %s\n" % msg)
    sys.exit(3)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ready(dest):
    return os.path.isfile(os.path.join(dest, DONE)) and os.path.isfile(os.path.join(dest, "venv", "pyvenv.cfg"))


@contextlib.contextmanager
def locked(path):
    fh = open(path, "a")
    try:
        try:
            import fcntl
            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no locks here (some NFS): the atomic rename still holds
            pass
        yield
    finally:
        fh.close()


def check(manifest, archive):
    if manifest.get("format") != 1:
        fail("%s: unknown worker environment format %r (made by a newer medfeat?)" % (archive, manifest.get("format")))
    have = "%d.%d" % tuple(sys.version_info[:2])
    impl = sys.implementation.name
    if impl != manifest["implementation"] or have != manifest["python"]:
        fail("%s was packed for %s %s; this node's %s is %s %s: set MEDFEAT_PYTHON to a %s %s interpreter, "
             "or pack the environment with that Python" % (archive, manifest["implementation"], manifest["python"],
                                                            sys.executable, impl, platform.python_version(),
                                                            manifest["implementation"], manifest["python"]))
    machine = platform.machine()
    if manifest.get("machine") and machine != manifest["machine"]:
        fail("%s was packed for %s machines; this node is %s" % (archive, manifest["machine"], machine))


def unpack_wheels(archive, into):
    """Check the manifest, copy the archive's wheels into INTO; returns (manifest, wheel paths)."""
    with tarfile.open(archive) as tar:
        try:
            manifest = json.loads(tar.extractfile(ROOT + "/manifest.json").read().decode())
        except (KeyError, AttributeError, ValueError):
            fail("%s: not a medfeat worker environment (no %s/manifest.json)" % (archive, ROOT))
        check(manifest, archive)
        paths = []
        for member in tar:
            name = member.name
            if not member.isfile() or not name.startswith(ROOT + "/wheels/"):
                continue
            base = name[len(ROOT + "/wheels/"):]
            if "/" in base or not base.endswith(".whl") or base.startswith("."):
                continue
            target = os.path.join(into, base)
            src = tar.extractfile(member)
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            paths.append(target)
    return manifest, paths


def clean_stale(dest):
    """Remove DEST.tmp-HOST-PID folders of dead builders on this host (we hold the lock)."""
    parent, stem = os.path.split(dest)
    host = socket.gethostname()
    for name in os.listdir(parent):
        if not name.startswith(stem + ".tmp-"):
            continue
        owner, _, pid = name[len(stem) + 5:].rpartition("-")
        if owner != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (the lock is not working here): leave it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def build(archive, dest, key, compile_):
    tmp = "%s.tmp-%s-%d" % (dest, socket.gethostname(), os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    wheels = os.path.join(tmp, "wheels")
    os.makedirs(wheels)
    try:
        if key and not sha256(archive).startswith(key):
            fail("%s changed after the jobs were submitted (its sha256 no longer starts with %s)" % (archive, key))
        manifest, paths = unpack_wheels(archive, wheels)
        pip = [p for p in paths if os.path.basename(p).startswith("pip-")]
        if not pip:
            fail("%s: no pip wheel inside" % archive)
        others = sorted(p for p in paths if p not in pip)
        venv.EnvBuilder(with_pip=False, symlinks=(os.name != "nt")).create(os.path.join(tmp, "venv"))
        py = os.path.join(tmp, "venv", "bin", "python")
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            env.pop(var, None)
        cmd = [py, os.path.join(pip[0], "pip"), "install", "--isolated", "--no-index", "--no-deps",
               "--no-cache-dir", "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
               "--only-binary=:all:"] + ([] if compile_ else ["--no-compile"]) + others
        # pip's output goes to stderr: stdout carries only the folder's name
        if subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno()) != 0:
            fail("installing %s with %s failed (pip's message is above)" % (archive, sys.executable))
        shutil.rmtree(wheels)
        bindir = os.path.join(tmp, "venv", "bin")
        for name in os.listdir(bindir):  # console scripts name the temporary folder: point them home
            path = os.path.join(bindir, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                head = fh.read(2)
                if head != b"#!":
                    continue
                data = head + fh.read()
            with open(path, "wb") as fh:
                fh.write(data.replace(tmp.encode(), dest.encode()))
        manifest["node"] = {"python": sys.executable, "version": platform.python_version(),
                            "host": socket.gethostname(), "archive": archive}
        with open(os.path.join(tmp, DONE), "w") as fh:
            json.dump(manifest, fh, indent=1)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and ready(dest):  # another builder was first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(prog="bootstrap.py", description="Set up a medfeat worker environment.")
    p.add_argument("archive")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--cache", help="cache folder: the environment goes to CACHE/KEY")
    where.add_argument("--dest", help="the environment's folder")
    p.add_argument("--key", default="", help="sha256 prefix of the archive (checked when building)")
    p.add_argument("--compile", action="store_true", help="write .pyc files now (read-only images)")
    a = p.parse_args(argv)
    archive = a.archive
    if archive.startswith("file://"):
        from urllib.parse import unquote, urlparse
        archive = unquote(urlparse(archive).path)
    archive = os.path.abspath(archive)
    if not os.path.isfile(archive):
        fail("%s: no such file on %s (the worker environment must be readable on the node)"
             % (archive, socket.gethostname()))
    if a.dest:
        dest = os.path.abspath(a.dest)
    else:
        key = a.key or sha256(archive)[:16]
        dest = os.path.join(os.path.abspath(a.cache), key)
    if not ready(dest):
        parent = os.path.dirname(dest)
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            fail("cannot create the cache folder %s: %s (set MEDFEAT_ENV_CACHE)" % (parent, exc.strerror or exc))
        with locked(dest + ".lock"):
            if not ready(dest):
                clean_stale(dest)
                if os.path.lexists(dest):  # a broken one (a cleaner took files away): set it aside
                    aside = "%s.broken-%s-%d" % (dest, socket.gethostname(), os.getpid())
                    os.rename(dest, aside)
                    shutil.rmtree(aside, ignore_errors=True)
                build(archive, dest, a.key, a.compile)
    sys.stdout.write(dest + "\n")


if __name__ == "__main__":
    main()
'''


# ---------------------------------------------------------------------------------------------
# The client's side
# ---------------------------------------------------------------------------------------------
def _env_path(env: str) -> str:
    """The archive's path from ``--env`` (a path or a file:// URL), made absolute."""
    if "://" in env:
        u = urlparse(env)
        if u.scheme != "file" or u.netloc not in ("", "localhost"):
            raise ValueError(f"--env {env}: give a path or a file:// URL readable on the nodes "
                             f"(copy the archive to a shared filesystem first)")
        env = unquote(u.path)
    return os.path.abspath(os.path.expanduser(env))


@functools.lru_cache(maxsize=8)
def _key_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:KEY_CHARS]


def env_key(path: str) -> str | None:
    """The cache key (sha256 prefix) of an archive readable here, else None (the node computes it)."""
    try:
        st = os.stat(path)
        return _key_of(path, st.st_size, st.st_mtime_ns)
    except OSError:
        return None


def job_prologue(env: str | None) -> str:
    """Shell lines (POSIX sh or bash, ``set -u`` safe) that set ``MEDFEAT`` to a command running medfeat.

    A batch job runs them before ``$MEDFEAT job-run SPEC_URL`` (``$MEDFEAT`` unquoted: it is a
    command and its arguments). ``env`` None: medfeat as installed here, at the same path on the
    node. ``env`` a path or ``file://`` URL of an archive of :func:`pack_env`: set it up once per
    node (see the module's docstring) and use it; the job exits with status 3 when that fails,
    after saying why on stderr. The node may set ``MEDFEAT_PYTHON`` (default ``python3``) and
    ``MEDFEAT_ENV_CACHE`` (default ``${TMPDIR:-/tmp}/medfeat-env-$(id -u)``).
    """
    if env is None or str(env).strip() == "":
        return f"MEDFEAT={shlex.quote(sys.executable + ' -m medfeat')}"
    path = _env_path(str(env))
    key = env_key(path)
    q = shlex.quote(path)
    py = '"${MEDFEAT_PYTHON:-python3}"'
    if key:
        key_line = f"MEDFEAT_ENV_KEY={key}"
    else:  # not readable on the submitting machine: hash it on the node
        key_line = ('MEDFEAT_ENV_KEY=$( (sha256sum "$MEDFEAT_ENV_ARCHIVE" 2>/dev/null || ' + py +
                    " -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],\"rb\").read()).hexdigest())' "
                    f'"$MEDFEAT_ENV_ARCHIVE") | cut -c1-{KEY_CHARS})')
    lines = [
        "# medfeat worker environment (medfeat pack-env), set up once per node",
        f"MEDFEAT_ENV_ARCHIVE={q}",
        key_line,
        'MEDFEAT_ENV_DIR="${MEDFEAT_ENV_CACHE:-${TMPDIR:-/tmp}/medfeat-env-$(id -u)}/$MEDFEAT_ENV_KEY"',
        'if [ ! -f "$MEDFEAT_ENV_DIR/medfeat-env.json" ]; then',
        f'{py} - "$MEDFEAT_ENV_ARCHIVE" --dest "$MEDFEAT_ENV_DIR" --key "$MEDFEAT_ENV_KEY" >&2 <<\'{_HEREDOC}\' || '
        f'{{ echo "medfeat: cannot set up the worker environment $MEDFEAT_ENV_ARCHIVE on $(hostname)" >&2; '
        f'exit {SETUP_FAILED}; }}',
        BOOTSTRAP.rstrip("\n"),
        _HEREDOC,
        "fi",
        'MEDFEAT="$MEDFEAT_ENV_DIR/venv/bin/python -m medfeat"',
    ]
    return "\n".join(lines)


# -- packing -------------------------------------------------------------------------------------
def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(root: str = "medfeat") -> dict:
    """The installed distributions ``root`` needs here (its requirements, their extras, recursively)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    dists: dict = {}
    done: set = set()
    todo = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = _canon(name)
        try:
            dist = dists.get(key) or distribution(name)
        except PackageNotFoundError:
            raise PackError(f"{name} (needed by medfeat) is not installed here") from None
        dists[key] = dist
        for extra in ("",) + tuple(sorted(extras)):
            if (key, extra) in done:
                continue
            done.add((key, extra))
            for line in dist.requires or []:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                    continue
                if extra and (req.marker is None or "extra" not in str(req.marker)):
                    continue  # a base requirement, handled with extra ""
                todo.append((req.name, frozenset(req.extras)))
    return dists


def _source_tree() -> Path | None:
    """The source tree medfeat runs from (an editable install: ``<tree>/src/medfeat``), or None."""
    import medfeat

    pkg = Path(medfeat.__file__).resolve().parent
    for tree in (pkg.parent.parent, pkg.parent):
        pp = tree / "pyproject.toml"
        if pp.is_file() and re.search(r'(?m)^name\s*=\s*"medfeat"', pp.read_text(errors="replace")):
            return tree
    return None


def _copy_tree(tree: Path, into: Path) -> Path:
    """Copy what a build needs (top-level files, src/) without caches, builds and eggs."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*")
    dst = into / "medfeat-src"
    dst.mkdir()
    for p in tree.iterdir():
        if p.name.startswith(".") or p.name in ("build", "dist", "tests", "bench", "docs"):
            continue
        if p.is_file():
            shutil.copy2(p, dst / p.name)
        elif p.is_dir() and p.name == "src":
            shutil.copytree(p, dst / p.name, ignore=skip)
    return dst


def _is_editable(dist) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(info.get("dir_info", {}).get("editable"))


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _repack(dist, out_dir: Path) -> Path:
    """Write an installed distribution back into a wheel (offline): its files under site-packages
    from its RECORD (console scripts are made again from entry_points.txt by pip), its
    dist-info less the installer's files. An editable install is packed from its package
    folders instead (pure Python)."""
    name, version = dist.metadata["Name"], dist.version
    files: list[tuple[str, Path]] = []
    info_dir = None
    for f in dist.files or []:
        if f.parts and f.parts[0].endswith(".dist-info"):
            info_dir = f.parts[0]
            break
    if info_dir is None:
        info_dir = f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    drop = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"}
    if _is_editable(dist) or not dist.files:
        import importlib

        tops = (dist.read_text("top_level.txt") or _canon(name).replace("-", "_")).split()
        for top in tops:
            mod = importlib.import_module(top)
            base = Path(mod.__file__).resolve().parent
            for p in sorted(base.rglob("*")):
                rel = p.relative_to(base.parent)
                if p.is_file() and "__pycache__" not in rel.parts and p.suffix != ".pyc":
                    files.append((rel.as_posix(), p))
        wheel_txt = "Wheel-Version: 1.0\nGenerator: medfeat pack-env\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        meta_names = ["METADATA", "entry_points.txt", "top_level.txt"]
    else:
        for f in dist.files:
            parts = f.parts
            if not parts or parts[0] == ".." or "__pycache__" in parts or f.suffix == ".pyc":
                continue
            if parts[0] == info_dir and len(parts) == 2 and parts[1] in drop:
                continue  # the installer's files; WHEEL and RECORD are written below
            files.append((f.as_posix(), Path(dist.locate_file(f))))
        wheel_txt = dist.read_text("WHEEL") or ""
        meta_names = []
    tags = [line.split(":", 1)[1].strip() for line in wheel_txt.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise PackError(f"{name} {version}: its installed WHEEL file names no tag; cannot repack it")
    pys, abis, plats = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    tag = "-".join(".".join(x) for x in (pys, abis, plats))
    target = out_dir / f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for arcname, path in files:
            data = path.read_bytes()
            zf.writestr(zipfile.ZipInfo.from_file(path, arcname), data, compress_type=zipfile.ZIP_DEFLATED)
            record.append(_record_line(arcname, data))
        for meta in meta_names:
            text = dist.read_text(meta)
            if text is None:
                continue
            data = text.encode()
            zf.writestr(f"{info_dir}/{meta}", data)
            record.append(_record_line(f"{info_dir}/{meta}", data))
        zf.writestr(f"{info_dir}/WHEEL", wheel_txt.encode())
        record.append(_record_line(f"{info_dir}/WHEEL", wheel_txt.encode()))
        record.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return target


def _glibc_needed(wheels: list[str]) -> str | None:
    """The lowest glibc every wheel accepts (manylinux tags), e.g. '2.28'; None if all are pure."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    need = None
    for w in wheels:
        plats = w[:-4].split("-")[-1].split(".")
        vers = []
        for p in plats:
            m = re.match(r"manylinux_(\d+)_(\d+)_", p)
            if m:
                vers.append((int(m.group(1)), int(m.group(2))))
            else:
                for k, v in legacy.items():
                    if p.startswith(k + "_"):
                        vers.append(v)
        if vers:
            lo = min(vers)
            need = lo if need is None or lo > need else need
    return None if need is None else f"{need[0]}.{need[1]}"


def _check_tags(wheels: list[Path]) -> None:
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    here = set(sys_tags())
    for w in wheels:
        if not here & set(parse_wheel_filename(w.name)[3]):
            raise PackError(f"{w.name} does not fit this interpreter; the environment would not install")


def pack_env(out: Path, *, source: Path | None = None, wheels: str = "auto") -> dict:
    """Pack medfeat and everything it needs into one archive (``.tar``) for nodes without medfeat.

    Parameters
    ----------
    out : Path
        The archive to write (replaced atomically).
    source : Path, optional
        medfeat's source tree to build medfeat's wheel from (default: the tree this medfeat runs
        from, when it is an editable install; else the installed medfeat is repacked).
    wheels : str
        ``"pip"``: ``pip wheel`` every dependency at its installed version (needs the index);
        ``"installed"``: repack the installed distributions (offline); ``"auto"`` (default): pip,
        falling back to the installed ones when pip fails.

    Returns
    -------
    dict
        ``path, size, sha256, key`` (the cache key), ``python, implementation, machine, glibc``,
        ``wheels`` (their names), ``wheels_from`` (pip | installed), ``build_s``, ``needs`` (a
        sentence: what a node needs), ``installed_mb`` (its size once set up), ``notes``.
    """
    if wheels not in ("auto", "pip", "installed"):
        raise PackError(f"wheels must be auto, pip or installed, not {wheels!r}")
    t0 = time.perf_counter()
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    dists = _closure("medfeat")
    medfeat_dist = dists.pop("medfeat")
    try:
        from importlib.metadata import distribution

        dists["pip"] = distribution("pip")
    except Exception:
        raise PackError("pip is not installed here; the node needs its wheel to install the others") from None
    tree = Path(source).resolve() if source else _source_tree()
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="medfeat-pack-"))
    try:
        wdir = work / "wheels"
        wdir.mkdir()
        how = wheels
        if wheels in ("auto", "pip"):
            pins = [f"{d.metadata['Name']}=={d.version}" for d in dists.values()]
            cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--prefer-binary", "--disable-pip-version-check",
                   "--quiet", "--wheel-dir", str(wdir)]
            if tree is not None:
                cmd.append(str(_copy_tree(tree, work)))
            cmd += pins
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                how = "pip"
                if tree is None:
                    _repack(medfeat_dist, wdir)
            else:
                err = [ln for ln in (r.stderr or "").splitlines() if ln.strip() and "is ignored: it is neither" not in ln]
                msg = "; ".join(err[-3:]) or f"exit status {r.returncode}"
                if wheels == "pip":
                    raise PackError(f"pip wheel failed: {msg}")
                notes.append(f"pip wheel failed ({msg}); repacked the installed distributions instead")
                shutil.rmtree(wdir)
                wdir.mkdir()
                how = "installed"
        if how == "installed":
            for d in list(dists.values()) + [medfeat_dist]:
                _repack(d, wdir)
        built = sorted(wdir.glob("*.whl"))
        _check_tags(built)
        names = [w.name for w in built]
        installed = 0
        for w in built:
            with zipfile.ZipFile(w) as zf:
                installed += sum(i.file_size for i in zf.infolist())
        py = "%d.%d" % sys.version_info[:2]
        impl = sys.implementation.name
        machine = platform.machine()
        glibc = _glibc_needed(names)
        local = [n for n in names if n[:-4].split("-")[-1].startswith("linux_")]
        needs = (f"{'CPython' if impl == 'cpython' else impl} {py}.x for {machine} at any path (python3 on PATH, "
                 f"or MEDFEAT_PYTHON), with its standard venv module")
        if glibc:
            needs += f"; Linux with glibc >= {glibc}"
        if local:
            needs += f"; {', '.join(local)} built here: a node with the same system libraries"
        needs += f"; {installed / 1e6:.0f} MB in its cache (MEDFEAT_ENV_CACHE, default $TMPDIR/medfeat-env-UID)"
        manifest = {"format": FORMAT, "medfeat": medfeat_dist.version, "implementation": impl, "python": py,
                    "machine": machine, "platform": sysconfig.get_platform(), "glibc": glibc, "wheels": names,
                    "wheels_from": how, "installed_bytes": installed, "needs": needs,
                    "built_by": {"python": sys.version.split()[0], "host": platform.node(),
                                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
        tmp_out = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
                def add_bytes(name: str, data: bytes) -> None:
                    ti = tarfile.TarInfo(f"{ROOT}/{name}")
                    ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
                    tar.addfile(ti, io.BytesIO(data))

                add_bytes("manifest.json", json.dumps(manifest, indent=1).encode())
                add_bytes("bootstrap.py", BOOTSTRAP.encode())
                for w in built:
                    ti = tar.gettarinfo(str(w), f"{ROOT}/wheels/{w.name}")
                    ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = 0o644, 0, 0, "", ""
                    with open(w, "rb") as fh:
                        tar.addfile(ti, fh)
            os.chmod(tmp_out, 0o644)
            os.replace(tmp_out, out)
        finally:
            if tmp_out.exists():
                tmp_out.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    h = hashlib.sha256()
    with open(out, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"path": str(out), "size": out.stat().st_size, "sha256": h.hexdigest(), "key": h.hexdigest()[:KEY_CHARS],
            "python": py, "implementation": impl, "machine": machine, "glibc": glibc, "wheels": names,
            "wheels_from": how, "installed_mb": round(installed / 1e6), "build_s": round(time.perf_counter() - t0, 1),
            "needs": needs, "notes": notes}
