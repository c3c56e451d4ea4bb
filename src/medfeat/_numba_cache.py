"""Where numba keeps medfeat's compiled kernels, and ``medfeat warmup`` that fills it ahead.

medfeat's kernels are ``numba.njit(cache=True)``: compiled once, then loaded from numba's cache by
every later process. Left to itself numba writes that cache next to the sources (``__pycache__``
inside the installed package): a read-only install cannot keep it, and every fresh install compiles
again. :func:`configure` (run by ``import medfeat``, before any kernel module is imported) points
numba at a per-user folder instead, unless the user chose one (``NUMBA_CACHE_DIR``):

* ``$MEDFEAT_CACHE_DIR/numba`` when ``MEDFEAT_CACHE_DIR`` is set;
* else the platform's user cache: ``$XDG_CACHE_HOME`` or ``~/.cache`` (Linux),
  ``~/Library/Caches`` (macOS), ``%LOCALAPPDATA%`` (Windows), plus
  ``medfeat/numba-<medfeat version>-py<major.minor>-numba<numba version>``;
* when that folder cannot be created or written (read-only home, a file in its place): a private
  folder under the system's temp folder (``medfeat-<uid>/numba-...``, mode 0700, ours alone).

The folder goes into the environment (``NUMBA_CACHE_DIR``, marked as medfeat's own choice by
``_MEDFEAT_NUMBA_CACHE_DIR``): processes started from this one (Dask LocalCluster workers, batch jobs
that inherit the environment) choose the same folder by the same rules, and keep the inherited one when
those rules give them none they can write (a temp folder, a node without the user's home), so workers
load what one process compiled instead of compiling again. Nothing here raises: at worst numba keeps
its own choice.
"""
from __future__ import annotations

import os
import sys
import time

_NUMBA_ENV = "NUMBA_CACHE_DIR"
_MEDFEAT_ENV = "MEDFEAT_CACHE_DIR"
_MARK_ENV = "_MEDFEAT_NUMBA_CACHE_DIR"  # the folder medfeat chose (not the user): checked again in children


def user_cache_root() -> str:
    """The platform's per-user cache folder for medfeat (``MEDFEAT_CACHE_DIR`` is not looked at)."""
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(home, ".cache")
    return os.path.join(base, "medfeat")


def _numba_version() -> str:
    """numba's version without importing numba (~0.2 s): its dist-info folder's name, else the
    installed distribution's metadata."""
    mod = sys.modules.get("numba")
    if mod is not None and getattr(mod, "__version__", None):
        return str(mod.__version__)
    try:
        from importlib.util import find_spec

        spec = find_spec("numba")
        if spec is not None and spec.origin:
            site = os.path.dirname(os.path.dirname(spec.origin))
            found = [n[len("numba-"):-len(".dist-info")] for n in os.listdir(site)
                     if n.startswith("numba-") and n.endswith(".dist-info")]
            if len(found) == 1:
                return found[0]
        from importlib.metadata import version

        return version("numba")
    except Exception:
        return "unknown"


def folder_name(medfeat_version: str) -> str:
    """``numba-<medfeat version>-py<major.minor>-numba<numba version>``."""
    return f"numba-{medfeat_version}-py{sys.version_info[0]}.{sys.version_info[1]}-numba{_numba_version()}"


def _writable(path: str) -> bool:
    """Create ``path`` (and its parents) if needed and check a file can be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".medfeat-probe-{os.getpid()}")
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
        return True
    except (OSError, ValueError):
        return False


def _private_temp_folder(name: str) -> str | None:
    """``<tmp>/medfeat-<uid>/<name>``: shared by this user's processes, never by other users (numba's
    cache holds pickles: a folder someone else can write into must not be loaded from)."""
    try:
        import tempfile

        tmp = tempfile.gettempdir()
        if hasattr(os, "getuid"):
            top = os.path.join(tmp, f"medfeat-{os.getuid()}")
            try:
                os.mkdir(top, 0o700)
            except FileExistsError:
                pass
            import stat

            st = os.lstat(top)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
                top = tempfile.mkdtemp(prefix="medfeat-")  # someone else's, or open to others: a fresh one
        else:  # Windows: the temp folder is the user's own
            top = os.path.join(tmp, "medfeat")
        path = os.path.join(top, name)
        if _writable(path):
            return path
    except Exception:
        pass
    return None


def _primary(medfeat_version: str) -> str:
    """``$MEDFEAT_CACHE_DIR/numba``, else the user cache's ``medfeat/numba-...`` folder."""
    own = os.environ.get(_MEDFEAT_ENV, "")
    if own:  # absolute: workers started in another folder find the same one
        return os.path.join(os.path.abspath(os.path.expanduser(own)), "numba")
    root = user_cache_root()
    # no home (``~`` unexpanded): no folder, rather than one relative to wherever medfeat runs
    return os.path.join(root, folder_name(medfeat_version)) if os.path.isabs(root) else ""


def configure(medfeat_version: str) -> str | None:
    """Point numba's cache at medfeat's folder unless the user chose one; returns the folder numba
    will use (None: numba's own default). Never raises."""
    try:
        current = os.environ.get(_NUMBA_ENV, "")
        if current and current != os.environ.get(_MARK_ENV):
            return current  # the user's choice
        path = _primary(medfeat_version)
        if not _writable(path):
            # chosen by the medfeat process that started this one (a temp folder): the same one if it
            # works here, so that workers load what another compiled
            path = current if current and _writable(current) else _private_temp_folder(folder_name(medfeat_version))
            if path is None:
                return None
        os.environ[_NUMBA_ENV] = os.environ[_MARK_ENV] = path
        config = sys.modules.get("numba.core.config")
        if config is not None:  # numba already imported: its config read the environment before us
            config.CACHE_DIR = path
        return path
    except Exception:  # a cache location must never cost the user their run
        return None


def cache_dir() -> str | None:
    """The folder numba caches medfeat's kernels in (None: next to the sources, numba's default)."""
    config = sys.modules.get("numba.core.config")
    if config is not None:
        return getattr(config, "CACHE_DIR", "") or None
    return os.environ.get(_NUMBA_ENV) or None


def _cases():
    """Tiny synthetic images covering the kernels' signatures: a volume and a single slice, integer
    and float voxels, with a mask and without."""
    import numpy as np

    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:6, :12, :12]
    blob = ((z - 2.5) ** 2 / 6 + (y - 5.5) ** 2 / 16 + (x - 5.5) ** 2 / 16) < 1
    vol = (80 * blob + rng.normal(0, 20, blob.shape)).astype(np.int16)
    yield "3d int", vol, blob.astype(np.uint8)
    yield "3d float", vol.astype(np.float32) / 7, None
    yy, xx = np.mgrid[:24, :24]
    disc = ((yy - 11.5) ** 2 + (xx - 11.5) ** 2) < 80
    pic = rng.integers(0, 256, size=(1, 24, 24), dtype=np.uint8)
    yield "2d int", pic, disc[None].astype(np.uint8)
    yield "2d float", pic.astype(np.float64) / 255, None


def warmup(presets: tuple[str, ...] | None = None) -> dict:
    """Compile every kernel ``medfeat extract`` uses (or load it, when already cached) by extracting
    every family except ``gift`` from tiny synthetic images with the shipped presets; the compiled
    code lands in numba's cache, so later processes (the first ``medfeat extract`` included) only
    load it. Returns ``{"seconds", "cache_dir", "compiled", "loaded", "runs"}``
    (kernel signatures compiled now, loaded from the cache; extractions run)."""
    t0 = time.perf_counter()
    import warnings

    from medfeat.families import FAMILIES
    from medfeat.pipeline import extract
    from medfeat.settings import Settings
    from medfeat.image import Image

    if presets is None:
        from importlib.resources import files

        presets = ("auto",) + tuple(sorted(p.name[:-5] for p in files("medfeat.presets").iterdir()
                                           if p.name.endswith(".toml") and p.name != "auto.toml"))
    families = tuple(k for k in FAMILIES if k != "gift")  # gift is numpy only
    runs = 0
    for preset in presets:
        settings = Settings.resolve(preset)
        for _, arr, mask in _cases():
            img = Image(arr, spacing=(2.0, 0.8, 0.8))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    extract(img, mask, settings, families=families)
                except Exception:  # a case a preset refuses (e.g. a volume's setting on a slice)
                    continue
            runs += 1
    # the feature maps' sliding-window kernels (`medfeat maps`), 3D and 2D, integer and float
    from medfeat.maps import feature_maps

    for preset in ("default-3d", "default-2d"):
        for _, arr, mask in _cases():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    feature_maps(Image(arr, spacing=(2.0, 0.8, 0.8)), mask, preset, families=("stat", "ih", "glcm"))
                except Exception:
                    continue
            runs += 1
    # the recursive Gaussian of PyRadiomics' LoG image type (float64 and float32 input, float32 passes)
    import numpy as np

    from medfeat.filters.recursive_gaussian import laplacian_recursive_gaussian

    for dtype in (np.float64, np.float32):
        laplacian_recursive_gaussian(np.zeros((5, 6, 7), dtype=dtype), 1.0, (2.0, 0.8, 0.8))
        runs += 1
    compiled, loaded = _kernel_stats()
    return {"seconds": time.perf_counter() - t0, "cache_dir": cache_dir(), "compiled": compiled, "loaded": loaded,
            "runs": runs}


def _kernel_stats() -> tuple[int, int]:
    """(signatures compiled, signatures loaded from the cache) by this process's medfeat kernels
    (kernels called only from other kernels are compiled into their callers and not counted)."""
    try:
        from numba.core.registry import CPUDispatcher
    except Exception:
        return 0, 0
    compiled = loaded = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("medfeat.") or mod is None:
            continue
        values = list(vars(mod).values()) + list((getattr(mod, "_COMPILED", None) or {}).values())
        for v in values:
            if isinstance(v, CPUDispatcher) and getattr(v.py_func, "__module__", None) == name:
                stats = v.stats
                compiled += sum(1 for _ in stats.cache_misses)
                loaded += sum(1 for _ in stats.cache_hits)
    return compiled, loaded
