"""``medfeat pack-env`` and the jobs-mode prologue: medfeat runs on a node where it is not installed.

The worker environment is built once for the module (about 6 s here with ``pip wheel`` from the
package index; if that fails, the offline repack of the installed distributions, about 27 s).
Then a "node" is simulated: the unprivileged user ``nobody``, Debian's ``/usr/bin/python3`` (not
the interpreter that built it, nor at its path), ``env -i`` with an empty HOME and TMPDIR under
/tmp and no medfeat anywhere it can see. Two job scripts start at once on the fresh cache (one
builds, the other waits on the lock; about 10-15 s), then a real ``medfeat extract`` runs there
and must give the values medfeat computes in this process. The whole module takes about 30-40 s
on the 2-core CI machine; it needs root (to become nobody), ``setpriv`` and a /usr/bin/python3 of
this Python's minor version, and skips with the reason otherwise. Its files live in one
/tmp/medfeat-packenv-* folder, removed at the end.
"""
from __future__ import annotations

import io
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import medfeat
from medfeat.io.netpbm import write_netpbm
from medfeat.production import environment
from medfeat.production.environment import PackError, job_prologue, pack_env

NODE_PYTHON = "/usr/bin/python3"


def _node_python_minor() -> str | None:
    try:
        out = subprocess.run([NODE_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except OSError:
        return None


def _job_script(path: Path, env: str | None, command: str) -> Path:
    """A job script as batch_executor writes one: bash, ``set -u``, the prologue, then medfeat."""
    path.write_text("#!/bin/bash\nset -u\n" + job_prologue(env) + "\n" + command + "\n")
    path.chmod(0o755)
    return path


class Node:
    """A simulated batch node: user nobody, Debian's python3, empty HOME and TMPDIR, no medfeat."""

    def __init__(self, base: Path, archive: Path, info: dict):
        self.base, self.archive, self.info = base, archive, info
        self.home, self.tmp = base / "home", base / "tmp"
        self.cache = self.tmp / f"medfeat-env-{pwd.getpwnam('nobody').pw_uid}"
        self.env_dir = self.cache / info["key"]

    def popen(self, script: Path) -> subprocess.Popen:
        nobody = pwd.getpwnam("nobody")
        cmd = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
               "env", "-i", f"HOME={self.home}", f"TMPDIR={self.tmp}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
               "bash", str(script)]
        return subprocess.Popen(cmd, cwd=self.base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, script: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        p = self.popen(script)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def node():
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the node's side as the user nobody")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to become nobody")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody here")
    want = "%d.%d" % sys.version_info[:2]
    have = _node_python_minor()
    if have != want:
        pytest.skip(f"needs {NODE_PYTHON} of Python {want} (the packed wheels' version); it is {have or 'absent'}")
    base = Path(tempfile.mkdtemp(prefix="medfeat-packenv-", dir="/tmp"))
    try:
        base.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        for sub in ("home", "tmp"):
            (base / sub).mkdir()
            os.chown(base / sub, nobody.pw_uid, nobody.pw_gid)
        (base / "env").mkdir(mode=0o755)
        (base / "data").mkdir(mode=0o755)
        t0 = time.perf_counter()
        try:
            info = pack_env(base / "env" / "medfeat-env.tar")
        except (PackError, OSError) as exc:
            pytest.skip(f"cannot build the worker environment here: {exc}")
        info["test_build_s"] = time.perf_counter() - t0
        yield Node(base, base / "env" / "medfeat-env.tar", info)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_archive_says_what_the_node_needs(node):
    info = node.info
    assert info["size"] == node.archive.stat().st_size and info["sha256"].startswith(info["key"])
    assert info["python"] == "%d.%d" % sys.version_info[:2]
    assert any(w.startswith("medfeat-") for w in info["wheels"]) and any(w.startswith("pip-") for w in info["wheels"])
    assert any(w.startswith("numpy-") for w in info["wheels"]) and any(w.startswith("distributed-") for w in info["wheels"])
    assert f"{info['python']}.x" in info["needs"]
    with tarfile.open(node.archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("medfeat-env/manifest.json").read())
    assert "medfeat-env/bootstrap.py" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if "/wheels/" in n) == sorted(manifest["wheels"]) == info["wheels"]


def test_two_jobs_at_once_set_it_up_once_then_it_starts_at_once(node):
    # the same archive named two ways (path and file:// URL) must map to the same cache folder
    a = _job_script(node.base / "job-a.sh", str(node.archive), "exec $MEDFEAT --help")
    b = _job_script(node.base / "job-b.sh", node.archive.as_uri(), "exec $MEDFEAT --help")
    t0 = time.perf_counter()
    procs = [node.popen(a), node.popen(b)]
    outs = [p.communicate(timeout=300) for p in procs]
    first = time.perf_counter() - t0
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "job-run" in out and "pack-env" in out
    # one environment, no leftovers of the builder that lost or waited
    assert sorted(os.listdir(node.cache)) == [node.info["key"], node.info["key"] + ".lock"]
    done = json.loads((node.env_dir / "medfeat-env.json").read_text())
    assert os.path.realpath(done["node"]["python"]).startswith("/usr/bin/python3")
    assert not (node.env_dir / "wheels").exists()
    # the node's medfeat is the packed one, not this checkout's
    where = _job_script(node.base / "where.sh", str(node.archive),
                        'exec "$MEDFEAT_ENV_DIR/venv/bin/python" -c "import medfeat, sys; print(medfeat.__file__); '
                        'print(sys.executable)"')
    stamp = (node.env_dir / "medfeat-env.json").stat().st_mtime_ns
    t1 = time.perf_counter()
    r = node.run(where)
    later = time.perf_counter() - t1
    assert r.returncode == 0, r.stderr
    mod, exe = r.stdout.split()
    assert mod.startswith(str(node.env_dir)) and exe.startswith(str(node.env_dir))
    assert (node.env_dir / "medfeat-env.json").stat().st_mtime_ns == stamp  # not set up again
    print(f"build {node.info['test_build_s']:.1f} s ({node.info['wheels_from']}), "
          f"{node.info['size'] / 1e6:.0f} MB; first start (2 jobs at once) {first:.1f} s; later {later:.2f} s")


def test_a_node_without_medfeat_extracts_what_medfeat_extracts_here(node):
    rng = np.random.default_rng(7)
    img = node.base / "data" / "slice.pgm"
    write_netpbm(img, rng.integers(0, 256, size=(48, 40), dtype=np.uint8))
    img.chmod(0o644)
    out = node.tmp / "features.csv"
    job = _job_script(node.base / "extract.sh", str(node.archive),
                      f"exec $MEDFEAT extract {shlex.quote(str(img))} --settings default-2d --families stat,glcm "
                      f"-o {shlex.quote(str(out))}")
    r = node.run(job)
    assert r.returncode == 0, r.stderr
    import pyarrow.csv as pacsv

    row = pacsv.read_csv(out).to_pylist()[0]
    assert row["error"] in ("", None)
    assert row["sha256"] == medfeat.read_image(img).sha256
    expected = medfeat.extract(img, None, "default-2d", families=["stat", "glcm"])
    assert len(expected) > 20
    for k, v in expected.items():
        assert row[k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), k


def test_without_env_the_prologue_runs_this_medfeat(tmp_path):
    line = job_prologue(None)
    assert line == f"MEDFEAT={shlex.quote(sys.executable + ' -m medfeat')}"
    script = _job_script(tmp_path / "job.sh", None, "exec $MEDFEAT --help")
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "job-run" in r.stdout


def _fake_archive(path: Path, manifest: dict) -> Path:
    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest).encode()
        ti = tarfile.TarInfo("medfeat-env/manifest.json")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return path


def test_a_wrong_python_or_a_missing_archive_fails_the_job_with_a_reason(tmp_path):
    archive = _fake_archive(tmp_path / "old.tar", {"format": 1, "implementation": "cpython", "python": "2.7",
                                                   "machine": "", "wheels": []})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MEDFEAT_PYTHON": sys.executable,
           "MEDFEAT_ENV_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    script = _job_script(tmp_path / "job.sh", str(archive), "exec $MEDFEAT --help")
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == environment.SETUP_FAILED
    assert "was packed for cpython 2.7" in r.stderr and "MEDFEAT_PYTHON" in r.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{environment.env_key(str(archive))}.lock"]
    # an archive the submitting machine cannot read: the node hashes it, and says it is missing
    gone = tmp_path / "gone.tar"
    script = _job_script(tmp_path / "job2.sh", f"file://{gone}", "exec $MEDFEAT --help")
    assert "sha256sum" in script.read_text()
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == environment.SETUP_FAILED
    assert f"{gone}: no such file" in r.stderr
    with pytest.raises(ValueError, match="file:// URL"):
        job_prologue("s3://bucket/medfeat-env.tar")


def test_installed_distributions_repack_into_wheels_offline(tmp_path):
    closure = environment._closure("medfeat")
    assert {"numpy", "distributed", "pyarrow", "typer"} <= set(closure) and "pytest" not in closure
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = [environment._repack(closure[n], wheels) for n in ("toolz", "msgpack", "medfeat")]
    assert made[1].name.startswith("msgpack-") and "cp3" in made[1].name  # a binary one keeps its tags
    assert made[2].name == f"medfeat-{closure['medfeat'].version}-py3-none-any.whl"  # editable: from its package
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--isolated", "--no-index", "--no-deps",
                        "--target", str(target)] + [str(w) for w in made], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert list((target / "medfeat" / "presets").glob("*.toml"))
    assert not list(target.rglob("*.nbc")) and not list(target.rglob("__editable__*"))
    r = subprocess.run([sys.executable, "-c", "import toolz, msgpack, medfeat; print(medfeat.__file__); "
                        "print(msgpack.unpackb(msgpack.packb([1, 2])))"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].startswith(str(target)) and "[1, 2]" in r.stdout
