"""Cold start: numba's cache lives in the user's cache folder (medfeat._numba_cache), never inside the
installed package; a second process, and every Dask worker, loads what one process compiled; an
unwritable cache folder costs nothing but the cache. Real processes, no timing assertions."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import medfeat
from medfeat import _numba_cache
from medfeat.io.netpbm import write_netpbm

PACKAGE = Path(medfeat.__file__).parent
TIMEOUT = 900  # a loaded 2-core CI machine compiles every kernel in about a minute


def clean_env(**extra) -> dict:
    """This environment without any numba cache choice (pytest's own process made one)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "_MEDFEAT_NUMBA_CACHE_DIR", "NUMBA_DEBUG_CACHE", "MEDFEAT_CACHE_DIR")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def medfeat_cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=TIMEOUT)


def cache_files(folder: Path) -> dict:
    """{path: (size, mtime_ns)} of numba's index (.nbi) and data (.nbc) files under FOLDER."""
    out = {}
    for pattern in ("*.nbi", "*.nbc"):
        for p in folder.rglob(pattern):
            try:
                st = p.stat()
            except FileNotFoundError:  # removed by another process meanwhile
                continue
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import nibabel as nib

    d = tmp_path_factory.mktemp("cold_inputs")
    rng = np.random.default_rng(0)
    write_netpbm(d / "pic.pgm", rng.integers(0, 256, size=(32, 32), dtype=np.uint8))
    z, y, x = np.mgrid[:8, :16, :16]
    vol = (60 * (((z - 3.5) ** 2 / 9 + (y - 7.5) ** 2 / 36 + (x - 7.5) ** 2 / 36) < 1)
           + rng.normal(0, 15, z.shape)).astype(np.int16)
    mask = (((z - 3.5) ** 2 / 9 + (y - 7.5) ** 2 / 36 + (x - 7.5) ** 2 / 36) < 1).astype(np.uint8)
    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), aff), d / "vol.nii.gz")
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), aff), d / "mask.nii.gz")
    return d


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A MEDFEAT_CACHE_DIR filled by `medfeat warmup` (once for this module: it compiles everything)."""
    d = tmp_path_factory.mktemp("warm_cache")
    r = medfeat_cli("warmup", env=clean_env(MEDFEAT_CACHE_DIR=d), cwd=d)
    assert r.returncode == 0, r.stderr
    assert str(d / "numba") in r.stdout, r.stdout
    return d


def test_extract_caches_in_the_user_folder_and_a_second_process_compiles_nothing(inputs, tmp_path):
    cache = tmp_path / "cache"
    in_package = cache_files(PACKAGE)
    env = clean_env(MEDFEAT_CACHE_DIR=cache, NUMBA_DEBUG_CACHE=1)
    args = ("extract", inputs / "pic.pgm", "--families", "stat,ih,glcm", "-o", tmp_path / "a.csv")
    first = medfeat_cli(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[cache] data saved to" in first.stdout  # an empty cache: compiled, and kept
    written = cache_files(cache)
    assert any(p.suffix == ".nbi" for p in written) and any(p.suffix == ".nbc" for p in written)
    assert all(p.is_relative_to(cache / "numba") for p in written)
    new_in_package = set(cache_files(PACKAGE)) - set(in_package)
    assert not new_in_package, f"numba wrote into the installed package: {sorted(new_in_package)}"

    second = medfeat_cli(*args, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "[cache] data loaded from" in second.stdout
    assert "[cache] data saved to" not in second.stdout, second.stdout
    assert "[cache] index saved to" not in second.stdout, second.stdout
    assert cache_files(cache) == written  # nothing compiled, nothing rewritten


def test_unwritable_cache_folder_falls_back_quietly(inputs, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = clean_env(MEDFEAT_CACHE_DIR=blocker, TMPDIR=tmp, TEMP=tmp, TMP=tmp)
    r = medfeat_cli("extract", inputs / "pic.pgm", "--families", "stat,ih", "-o", tmp_path / "a.csv",
                    env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "warning" not in r.stderr.lower(), r.stderr
    assert (tmp_path / "a.csv").read_text().count("\n") == 2
    assert blocker.read_text().startswith("a file")
    fallback = cache_files(tmp)  # the private temp folder medfeat-<uid>/numba-...
    assert fallback and all("medfeat" in p.relative_to(tmp).parts[0] for p in fallback)
    if hasattr(os, "getuid"):
        top = tmp / f"medfeat-{os.getuid()}"
        assert top.is_dir() and top.stat().st_mode & 0o077 == 0


def test_user_choice_of_numba_cache_dir_is_kept(tmp_path):
    env = clean_env(NUMBA_CACHE_DIR=tmp_path / "mine", MEDFEAT_CACHE_DIR=tmp_path / "medfeat")
    code = "import medfeat, numba; print(numba.config.CACHE_DIR)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "mine")


def test_numba_imported_before_medfeat_still_gets_the_folder(tmp_path):
    code = ("import numba, medfeat\nfrom medfeat.features import glcm\n"
            "print(numba.config.CACHE_DIR)\nprint(glcm._pair_counts.stats.cache_path)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=clean_env(MEDFEAT_CACHE_DIR=tmp_path), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    config_dir, kernel_dir = r.stdout.split()
    assert config_dir == str(tmp_path / "numba")
    assert Path(kernel_dir).is_relative_to(tmp_path / "numba")


def test_default_folder_is_per_user_and_versioned(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDFEAT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    name = _numba_cache.folder_name(medfeat.__version__)
    import numba

    assert name == (f"numba-{medfeat.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"
                    f"-numba{numba.__version__}")
    if sys.platform.startswith("linux"):
        assert _numba_cache._primary(medfeat.__version__) == str(tmp_path / "xdg" / "medfeat" / name)


def test_warmup_leaves_nothing_for_the_first_extract_to_compile(warm_cache, inputs, tmp_path):
    before = cache_files(warm_cache)
    env = clean_env(MEDFEAT_CACHE_DIR=warm_cache, NUMBA_DEBUG_CACHE=1)
    for args in ([inputs / "vol.nii.gz", "--mask", inputs / "mask.nii.gz"],  # auto: default-3d
                 [inputs / "pic.pgm"]):  # auto: default-2d
        r = medfeat_cli("extract", *args, "-o", tmp_path / "f.csv", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "[cache] data loaded from" in r.stdout
        assert "[cache] data saved to" not in r.stdout, r.stdout
    assert cache_files(warm_cache) == before


def test_dask_workers_load_from_the_same_folder(warm_cache, inputs, tmp_path):
    """LocalCluster worker processes (as the local backend starts them) inherit the folder and load
    the compiled kernels: no worker compiles."""
    script = tmp_path / "workers.py"
    script.write_text(textwrap.dedent(f"""
        import json, os
        import medfeat
        from distributed import Client, LocalCluster

        def on_worker():
            import medfeat
            from medfeat.features import glcm, glrlm
            medfeat.extract({str(inputs / "vol.nii.gz")!r}, {str(inputs / "mask.nii.gz")!r},
                            families=("stat", "glcm", "glrlm"))
            return {{"dir": os.environ.get("NUMBA_CACHE_DIR"),
                     "paths": [glcm._pair_counts.stats.cache_path, glrlm._count_runs.stats.cache_path],
                     "misses": sum(len(k.stats.cache_misses) for k in (glcm._pair_counts, glrlm._count_runs)),
                     "hits": sum(len(k.stats.cache_hits) for k in (glcm._pair_counts, glrlm._count_runs)),
                     "pid": os.getpid()}}

        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                              silence_logs=40) as cluster, Client(cluster) as client:
                print(json.dumps({{"client": os.getpid(), "workers": list(client.run(on_worker).values())}}))
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                       env=clean_env(MEDFEAT_CACHE_DIR=warm_cache), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(out["workers"]) == 2
    for w in out["workers"]:
        assert w["pid"] != out["client"]
        assert w["dir"] == str(warm_cache / "numba")
        assert all(Path(p).is_relative_to(warm_cache / "numba") for p in w["paths"])
        assert w["misses"] == 0 and w["hits"] >= 2, w  # loaded, never compiled
