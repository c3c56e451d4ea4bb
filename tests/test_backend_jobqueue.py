"""``--mode workers`` on real batch systems: Dask workers as batch jobs through dask-jobqueue
(:mod:`medfeat.production.backends.jobqueue`).

Productions run on the Slurm (SLURMCluster), PBS-over-Slurm (PBSCluster through Slurm's qsub
wrappers) and Son of Grid Engine (SGECluster) systems that ``shared/scripts/slurm-up.sh`` and
``sge-up.sh`` start on 127.0.0.1 (state in ``$BE_STATE_DIR``, default /tmp/medfeat-backends). In each,
one worker's batch job is cancelled (``scancel`` / ``qdel``) while it runs an attempt, after two
jobs were committed; the run must still complete with one row per image, values equal to
single-process extraction, a consistent ledger and the backend named in the metrics, and a
replacement worker job must be submitted (``keep_size``). A test is skipped, with the reason,
only when its batch system is not running here.

Jobs on 48x48 images take ~10 ms, less than a cancellation takes to land, so each worker loads a
Dask preload (``--preload``, passed through ``worker_extra_args``) that makes every job sleep
``SLOW_S`` first: the cancelled worker is then surely mid-attempt.

HTCondor and LSF cannot run here: their worker job scripts are checked instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask.config
import distributed  # noqa: F401  (its config defaults must exist before a dask.config.set context)
import pytest

from medfeat.errors import InputError
from medfeat.production.backends import RunContext
from medfeat.production.backends.jobqueue import cluster_kwargs, job_script, workers_executor
from medfeat.production.ledger import Ledger
from medfeat.production.options import BackendSpec, TailPolicy
from medfeat.report.metrics import run_metrics
from production_helpers import check_run, make_images, plan

STATE = Path(os.environ.get("BE_STATE_DIR", "/tmp/medfeat-backends"))
PBS_BIN = STATE / "slurm" / "pbs-bin"
SGE_ENV = {"SGE_ROOT": os.environ.get("SGE_ROOT", "/var/lib/gridengine"),
           "SGE_CELL": os.environ.get("SGE_CELL", "default")}
SLOW_S = 1.0
PRELOAD = f'''"""Dask worker preload (test): every medfeat job sleeps {SLOW_S} s before extracting."""
import time

import medfeat.production.job as job

_extract_items = job.extract_items


def _slow(*args, **kwargs):
    time.sleep({SLOW_S})
    return _extract_items(*args, **kwargs)


def dask_setup(worker):
    job.extract_items = _slow
'''


def _probe(cmd: list[str], env: dict | None = None) -> str | None:
    """None when ``cmd`` answers (exit 0) within 10 s, else why not."""
    if shutil.which(cmd[0], path=(env or os.environ).get("PATH")) is None:
        return f"{cmd[0]} not installed"
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, env=env)
    except subprocess.TimeoutExpired:
        return f"{' '.join(cmd)} did not answer within 10 s"
    if r.returncode != 0:
        return f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[:200]}"
    return None


def _slurm_down() -> str | None:
    why = _probe(["sinfo", "-h", "-p", "debug", "-o", "%a"])
    if why is None:
        r = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%a"], capture_output=True, text=True, timeout=10)
        why = None if "up" in r.stdout else "Slurm partition debug is not up"
    return why


def _sge_env() -> dict:
    return {**os.environ, **SGE_ENV}


def _sge_down() -> str | None:
    if not Path(SGE_ENV["SGE_ROOT"], SGE_ENV["SGE_CELL"], "common", "act_qmaster").exists():
        return f"no SGE cell at {SGE_ENV['SGE_ROOT']}/{SGE_ENV['SGE_CELL']}"
    return _probe(["qstat", "-q", "all.q"], _sge_env()) or _probe(["qconf", "-sq", "all.q"], _sge_env())


SYSTEMS = {
    # name: (cluster class, queue, cancel command)
    "slurm": ("SLURMCluster", "debug", ["scancel"]),
    "pbs": ("PBSCluster", "debug", ["qdel"]),
    "sge": ("SGECluster", "all.q", ["qdel"]),
}


@pytest.fixture
def batch_system(request, monkeypatch, tmp_path):
    """Puts the environment in place for one system (skips when it is not running here)."""
    name = request.param
    # Slurm's PBS emulation ignores the directory in "#PBS -o DIR/" and writes the job's output
    # where qsub ran: keep that in the test's folder, not the working tree
    monkeypatch.chdir(tmp_path)
    if name == "sge":
        why = _sge_down()
        for k, v in SGE_ENV.items():
            monkeypatch.setenv(k, v)
    else:
        why = _slurm_down()
        if why is None and name == "pbs":
            why = None if (PBS_BIN / "qsub").exists() else f"no PBS wrappers in {PBS_BIN} (slurm-up.sh makes them)"
            # Slurm's qsub/qstat/qdel, ahead of SGE's in /usr/bin
            monkeypatch.setenv("PATH", f"{PBS_BIN}{os.pathsep}{os.environ['PATH']}")
    if why:
        pytest.skip(f"{name} is not running here: {why}")
    return name


def _write_preload(tmp_path: Path) -> Path:
    path = tmp_path / "slowjobs.py"
    path.write_text(PRELOAD)
    return path


def _batch_ids(ex) -> dict[str, str]:
    """Dask worker name -> batch job id of the executor's cluster."""
    return {name: job.job_id for name, job in list(ex.cluster.workers.items()) if job.job_id}


def _live_batch_jobs(system: str) -> set[str]:
    """Ids of the jobs the batch system still lists (queued, running, completing)."""
    if system == "sge":
        out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, timeout=30, env=_sge_env()).stdout
        return {ln.split()[0] for ln in out.splitlines() if ln.split() and ln.split()[0].isdigit()}
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    return {ln.strip() for ln in out.splitlines() if ln.strip()}


def _assert_gone(system: str, ids: set[str], within: float = 30) -> None:
    deadline = time.time() + within
    while (left := ids & _live_batch_jobs(system)) and time.time() < deadline:
        time.sleep(0.3)
    assert not left, f"worker jobs {sorted(left)} outlived the executor"


class CancelMidRun(threading.Thread):
    """Once ``after`` jobs are committed, cancels the batch job of a worker running an attempt."""

    def __init__(self, ex, run_dir: Path, cancel: list[str], after: int = 2, timeout: float = 90):
        super().__init__(daemon=True)
        self.ex, self.run_dir, self.cancel, self.after, self.timeout = ex, run_dir, cancel, after, timeout
        self.victim: tuple[str, str, str] | None = None   # (worker address, batch job id, task key)
        self.error: BaseException | None = None

    def _ledger(self):
        led = Ledger(self.run_dir)
        try:
            return led.jobs(), {a["attempt_id"]: a for a in led.attempts()}
        finally:
            led.close()

    def run(self) -> None:
        try:
            deadline = time.time() + self.timeout
            while time.time() < deadline:
                jobs, attempts = self._ledger()
                if sum(1 for j in jobs if j["state"] == "committed") >= self.after:
                    break
                time.sleep(0.05)
            while time.time() < deadline and self.victim is None:
                _, attempts = self._ledger()
                names = {a: w["name"] for a, w in self.ex.client.scheduler_info()["workers"].items()}
                ids = _batch_ids(self.ex)
                for addr, keys in self.ex.client.processing().items():
                    if not keys or names.get(addr) not in ids:
                        continue
                    a = attempts.get(int(keys[0].rsplit("-a", 1)[1]))
                    # an attempt that began on this worker less than half a job ago: it is still
                    # running when the cancellation lands
                    if a and a["started"] and a["worker"] == addr and time.time() - a["started"] < SLOW_S / 2:
                        batch_id = ids[names[addr]]
                        r = subprocess.run(self.cancel + [batch_id], capture_output=True, text=True, timeout=30)
                        assert r.returncode == 0, r.stdout + r.stderr
                        self.victim = (addr, batch_id, keys[0])
                        return
                time.sleep(0.02)
            raise AssertionError("found no worker running an attempt to cancel")
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.timeout(240)
@pytest.mark.parametrize("batch_system", ["slurm", "pbs", "sge"], indirect=True)
def test_workers_mode_survives_a_cancelled_worker_job(tmp_path, batch_system):
    name = batch_system
    cluster_class, queue, cancel = SYSTEMS[name]
    paths = make_images(tmp_path / "data", 16)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 2)
    ctx = RunContext(run_dir=run_dir, run_id=prod.run_id, stage_url=prod.stage.url)
    spec = BackendSpec(name, "workers", 2, {
        "queue": queue, "scheduler_host": "127.0.0.1", "memory": "1GB", "walltime": "00:10:00",
        "worker_extra_args": ["--preload", str(_write_preload(tmp_path))],
        # a cancelled worker is lost at once: its replacement need not wait the default 15 s
    })
    t0 = time.time()
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}):
        ex = workers_executor(name, cluster_class, spec, ctx)
        try:
            first_ids = set(_batch_ids(ex).values())
            assert len(first_ids) == 2  # both worker jobs were submitted before workers_executor returned
            saboteur = CancelMidRun(ex, run_dir, cancel)
            saboteur.start()
            prod.run(ex, TailPolicy())
            saboteur.join(timeout=30)
            assert saboteur.error is None, saboteur.error
            assert saboteur.victim is not None
            victim_addr, victim_id, key = saboteur.victim
            assert victim_id in first_ids
            # the cancelled job was replaced by a new worker job (DaskExecutor keep_size)
            deadline = time.time() + 60
            while time.time() < deadline:
                ex.tick()
                ids = set(_batch_ids(ex).values())
                if victim_id not in ids and len(ids - first_ids) >= 1 and len(ex.workers()) == 2:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"no replacement worker job: jobs {_batch_ids(ex)}, workers {ex.workers()}")
        finally:
            all_ids = first_ids | set(_batch_ids(ex).values())
            ex.close()
    took = time.time() - t0
    _assert_gone(name, all_ids)  # closing the executor cancelled every worker job

    check_run(run_dir, paths, compare=4)
    m = run_metrics(run_dir)
    assert m["backend"] == name
    assert (m["jobs"], m["images"], m["failed_images"]) == (8, 16, 0)
    # the attempt that ran on the cancelled worker was committed by another worker
    job_id = int(key.split("-job")[1].split("-")[0])
    led = Ledger(run_dir)
    try:
        committed = [a for a in led.attempts(job_id) if a["outcome"] == "committed"]
        assert len(committed) == 1 and committed[0]["worker"] != victim_addr, led.attempts(job_id)
        workers = {a["worker"] for a in led.attempts() if a["outcome"] == "committed"}
        assert len(workers) >= 2
        # the driver saw the attempt start again elsewhere and named the vanished worker
        lost = [e for e in led.events() if e["kind"] == "worker-lost" and e["job_id"] == job_id]
        assert lost and lost[0]["detail"].startswith(victim_addr)
    finally:
        led.close()
    assert took < 180


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_system", ["slurm"], indirect=True)
def test_refused_worker_jobs_are_an_input_error(tmp_path, batch_system):
    ctx = RunContext(run_dir=tmp_path, run_id="r1", stage_url=str(tmp_path / "stage"))
    spec = BackendSpec("slurm", "workers", 1, {"queue": "no-such-partition", "scheduler_host": "127.0.0.1"})
    with pytest.raises(InputError, match=r"sbatch refused the worker jobs: .*(partition|Partition)") as err:
        workers_executor("slurm", "SLURMCluster", spec, ctx)
    assert "\n" not in str(err.value)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_system", ["slurm"], indirect=True)
def test_adaptive_workers_through_the_registry(tmp_path, batch_system):
    """``--backend slurm --mode workers --workers 1:2`` as the engine builds it (backends/slurm.py
    calls workers_executor), with dask-jobqueue's own choice of scheduler address."""
    pytest.importorskip("medfeat.production.backends.slurm")
    paths = make_images(tmp_path / "data", 8)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 2)
    prod.run(BackendSpec("slurm", "workers", "1:2", {"queue": "debug", "memory": "1GB"}), TailPolicy())
    check_run(run_dir, paths)
    m = run_metrics(run_dir)
    assert m["backend"] == "slurm" and 1 <= m["workers"] <= 2
    assert list((run_dir / "batch-logs").iterdir()), "the worker jobs' logs go to RUN_DIR/batch-logs"
    deadline = time.time() + 30
    while time.time() < deadline:  # the worker jobs are cancelled when the run ends
        squeue = subprocess.run(["squeue", "-h", "-n", f"medfeat-{prod.run_id}"], capture_output=True, text=True,
                                timeout=30)
        if not squeue.stdout.strip():
            break
        time.sleep(0.3)
    assert not squeue.stdout.strip(), squeue.stdout


# -- without a batch system ------------------------------------------------------------------
@pytest.fixture
def ctx(tmp_path):
    """A run folder (dask-jobqueue creates the log directory in it even for a job script)."""
    return RunContext(run_dir=tmp_path / "r", run_id="abc123", stage_url=str(tmp_path / "r" / "stage"))


def test_lsf_job_script_carries_the_mapped_options(ctx):
    spec = BackendSpec("lsf", "workers", 4, {"queue": "short", "account": "radiomics", "walltime": "01:30:20",
                                              "memory": "6GB", "cores": 2, "processes": 2,
                                              "job_extra": ["-R \"select[avx2]\""],
                                              "job_script_prologue": ["module load python/3.11"],
                                              "lsf_units": "mb"})
    script = job_script("lsf", "LSFCluster", spec, ctx)
    for line in ("#BSUB -q short", '#BSUB -P "radiomics"', "#BSUB -W 01:31", "#BSUB -n 2", "#BSUB -M 6000",
                 '#BSUB -R "select[avx2]"', "#BSUB -J medfeat-abc123", f"#BSUB -o {ctx.run_dir}/batch-logs/"):
        assert line in script, (line, script)
    assert "module load python/3.11" in script
    assert "--nthreads 1" in script and "--nworkers 2" in script and "--memory-limit 2.79GiB" in script  # 6GB / 2
    # no host given: dask-jobqueue's own choice, no --host for the workers
    assert "--host" not in script
    kw = cluster_kwargs("lsf", "LSFCluster", spec, ctx)
    assert "host" not in kw["scheduler_options"] and kw["scheduler_options"]["worker_ttl"] == "60s"


def test_htcondor_job_script_carries_the_mapped_options(ctx):
    spec = BackendSpec("htcondor", "workers", 2, {"account": "group_med.alice", "walltime": "02:00:00",
                                                  "memory": "4GB", "cores": 2, "disk": "10GB",
                                                  "job_extra": ["requirements = (OpSysMajorVer == 9)",
                                                                "+MaxRuntime = 7200"],
                                                  "job_script_prologue": "source /opt/venv/bin/activate",
                                                  "scheduler_host": "10.0.0.5"})
    script = job_script("htcondor", "HTCondorCluster", spec, ctx)
    for line in ("accounting_group = group_med.alice", "requirements = (OpSysMajorVer == 9)", "+MaxRuntime = 7200",
                 "periodic_remove = (JobStatus == 2) && ((time() - EnteredCurrentStatus) > 7200)",
                 "MY.DaskWorkerMemory = 4000000000", "MY.DaskWorkerCores = 2", "MY.DaskWorkerDisk = 10000000000",
                 f"LogDirectory = {ctx.run_dir}/batch-logs"):
        assert line in script, (line, script)
    assert "source /opt/venv/bin/activate; " in script
    # a routable scheduler host is not forced onto the workers (they run elsewhere)
    assert "--host" not in script
    kw = cluster_kwargs("htcondor", "HTCondorCluster", spec, ctx)
    assert kw["scheduler_options"]["host"] == "10.0.0.5"


def test_options_are_mapped_passed_through_or_refused(ctx):
    kw = cluster_kwargs("slurm", "SLURMCluster", BackendSpec("slurm", "workers", 2, {
        "queue": "debug", "account": "a1", "walltime": 5400, "job_extra": "--qos=short", "scheduler_host": "127.0.0.1",
        "job_cpu": 2, "death_timeout": 30, "worker_ttl": "off"}), ctx)
    assert kw["queue"] == "debug" and kw["account"] == "a1" and kw["walltime"] == "01:30:00"
    assert kw["job_extra_directives"] == ["--qos=short"]
    assert kw["job_cpu"] == 2 and kw["death_timeout"] == 30                      # passed through
    assert kw["scheduler_options"]["host"] == "127.0.0.1" and "worker_ttl" not in kw["scheduler_options"]
    assert kw["worker_extra_args"] == ["--host", "127.0.0.1"]                     # loopback: workers here too
    assert (kw["memory"], kw["cores"], kw["processes"]) == ("2GB", 1, 1)          # DEFAULTS
    assert kw["log_directory"] == f"{ctx.run_dir}/batch-logs" and kw["job_name"] == "medfeat-abc123"
    # SGE and LSF call the account "project"
    assert cluster_kwargs("sge", "SGECluster", BackendSpec("sge", "workers", 1, {"account": "p"}), ctx)["project"] == "p"
    for cls, opts, match in (
            ("SLURMCluster", {"no_such_option": 1}, "does not accept option.*no_such_option"),
            ("SLURMCluster", {"hosts": ["a", "b"]}, "ssh backend"),
            ("SLURMCluster", {"env": "env.tar.gz"}, "mode jobs"),
            ("SLURMCluster", {"cores": 1, "processes": 2}, "processes"),
            ("HTCondorCluster", {"queue": "x"}, "no queues"),
            ("NoSuchCluster", {}, "unknown dask-jobqueue class")):
        with pytest.raises(InputError, match=match):
            cluster_kwargs("x", cls, BackendSpec("x", "workers", 1, opts), ctx)


def test_missing_batch_command_is_an_input_error(tmp_path, monkeypatch, ctx):
    monkeypatch.setenv("PATH", str(tmp_path))
    for cls, cmd in (("SLURMCluster", "sbatch"), ("LSFCluster", "bsub"), ("OARCluster", "oarsub")):
        with pytest.raises(InputError, match=f"'{cmd}' was not found on PATH"):
            workers_executor("x", cls, BackendSpec("x", "workers", 1, {}), ctx)


def test_missing_dask_jobqueue_is_an_input_error(monkeypatch, ctx):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails
    with pytest.raises(InputError, match="needs dask-jobqueue"):
        workers_executor("slurm", "SLURMCluster", BackendSpec("slurm", "workers", 1, {}), ctx)


def test_workers_only_backends_are_registered(ctx):
    from medfeat.production.backends import get_backend

    for name in ("lsf", "oar", "moab"):
        backend = get_backend(name)
        assert backend.name == name and backend.modes == ("workers",)
        with pytest.raises(InputError, match="mode 'jobs' is not available"):
            backend.make(BackendSpec(name, "jobs", 1, {}), ctx)


# -- Kubernetes and cloud machines: the specs they would launch (no such cluster here) -------
REMOTE = RunContext(run_dir=Path("run-on-this-machine"), run_id="abc123", stage_url="s3://bucket/medfeat-stage")


def test_kubernetes_pod_and_cluster_spec(monkeypatch):
    from medfeat.production.backends.kubernetes import cluster_spec, pod_spec, public_options

    monkeypatch.setenv("MEDFEAT_TEST_SECRET_KEY", "s3cr3t")
    spec = BackendSpec("kubernetes", "workers", 3, {
        "image": "registry.example/medfeat:0.1.0", "cores": 2, "memory": "3GiB", "namespace": "radiomics",
        "environment": {"AWS_DEFAULT_REGION": "eu-west-1", "API_TOKEN": "t0k"},
        "pass_env": ["MEDFEAT_TEST_SECRET_KEY"], "node_selector": {"pool": "cpu"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "service_account": "medfeat-reader", "image_pull_secrets": ["regcred"]})
    pod = pod_spec(spec)
    (c,) = pod["containers"]
    assert c["image"] == "registry.example/medfeat:0.1.0"
    assert c["args"][:2] == ["dask", "worker"]
    assert c["args"][c["args"].index("--nthreads") + 1] == "2"
    assert c["args"][c["args"].index("--memory-limit") + 1] == "3GiB"
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"AWS_DEFAULT_REGION": "eu-west-1", "API_TOKEN": "t0k", "MEDFEAT_TEST_SECRET_KEY": "s3cr3t"}
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["tolerations"][0]["key"] == "spot"
    assert pod["serviceAccountName"] == "medfeat-reader" and pod["imagePullSecrets"] == [{"name": "regcred"}]

    res = cluster_spec(spec, REMOTE)
    assert (res["apiVersion"], res["kind"], res["metadata"]["name"]) == ("kubernetes.dask.org/v1", "DaskCluster",
                                                                         "medfeat-abc123")
    assert res["spec"]["worker"]["replicas"] == 3 and res["spec"]["worker"]["spec"] == pod
    sched = res["spec"]["scheduler"]
    (sc,) = sched["spec"]["containers"]
    assert sc["args"][:2] == ["dask", "scheduler"]
    senv = {e["name"]: e["value"] for e in sc["env"]}
    assert senv["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] == "60s"
    assert "MEDFEAT_TEST_SECRET_KEY" not in senv  # the scheduler reads no data
    assert sched["service"]["type"] == "ClusterIP"
    assert {p["port"] for p in sched["service"]["ports"]} == {8786, 8787}
    # adaptive: the worker group starts at MIN
    adaptive = BackendSpec("kubernetes", "workers", "2:8", {"image": "x"})
    assert cluster_spec(adaptive, REMOTE)["spec"]["worker"]["replicas"] == 2
    # what the ledger keeps: no token, and the pass_env values never were options
    kept = public_options(spec)
    assert kept["environment"]["API_TOKEN"] == "***" and "s3cr3t" not in repr(kept)


def test_kubernetes_refusals(monkeypatch, ctx):
    from medfeat.production.backends import get_backend

    backend = get_backend("kubernetes")
    assert backend.modes == ("workers",)
    with pytest.raises(InputError, match="needs option image"):
        backend.make(BackendSpec("kubernetes", "workers", 1, {}), REMOTE)
    with pytest.raises(InputError, match="cannot reach the stage"):
        backend.make(BackendSpec("kubernetes", "workers", 1, {"image": "x"}), ctx)  # a local folder
    with pytest.raises(InputError, match="queue"):
        backend.make(BackendSpec("kubernetes", "workers", 1, {"image": "x", "queue": "debug"}), REMOTE)
    with pytest.raises(InputError, match="pass_env: NOT_SET_ANYWHERE"):
        backend.make(BackendSpec("kubernetes", "workers", 1, {"image": "x", "pass_env": ["NOT_SET_ANYWHERE"]}),
                     REMOTE)
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)  # the optional extra is not installed
    with pytest.raises(InputError, match=r"needs dask-kubernetes \(pip install 'medfeat\[kubernetes\]'\)"):
        backend.make(BackendSpec("kubernetes", "workers", 1, {"image": "x"}), REMOTE)


def test_cloud_kwargs_per_provider(monkeypatch):
    from medfeat.production.backends.cloud import cloud_kwargs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    target, kw = cloud_kwargs(BackendSpec("cloud", "workers", 4, {
        "image": "ghcr.io/x/medfeat:0.1.0", "instance_type": "c6i.large", "cores": 2, "memory": "4GB",
        "region": "eu-west-1", "security_groups": ["sg-1"], "pass_env": "AWS_SECRET_ACCESS_KEY"}))
    assert target == "dask_cloudprovider.aws.EC2Cluster"
    assert kw == {"n_workers": 4, "docker_image": "ghcr.io/x/medfeat:0.1.0", "instance_type": "c6i.large",
                  "worker_options": {"nthreads": 2, "memory_limit": 4_000_000_000},
                  "scheduler_options": {"worker_ttl": "60s"}, "env_vars": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"},
                  "region": "eu-west-1", "security_groups": ["sg-1"]}
    target, kw = cloud_kwargs(BackendSpec("cloud", "workers", "0:6", {"provider": "fargate", "image": "img",
                                                                      "cores": 1, "memory": "2GiB"}))
    assert target == "dask_cloudprovider.aws.FargateCluster"
    assert (kw["n_workers"], kw["image"], kw["worker_cpu"], kw["worker_mem"], kw["worker_nthreads"]) == (0, "img", 1024,
                                                                                                       2048, 1)
    assert kw["environment"]["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] == "60s"
    for provider, cls, machine in (("gcp", "gcp.GCPCluster", "machine_type"), ("azure", "azure.AzureVMCluster", "vm_size"),
                                   ("hetzner", "hetzner.HetznerCluster", "server_type")):
        target, kw = cloud_kwargs(BackendSpec("cloud", "workers", 2, {"provider": provider, "image": "img",
                                                                      "instance_type": "m1"}))
        assert target == f"dask_cloudprovider.{cls}" and kw[machine] == "m1" and kw["docker_image"] == "img"
    for opts, match in (({"provider": "nimbus", "image": "x"}, "unknown provider"),
                        ({"provider": "ec2"}, "needs option image"),
                        ({"provider": "fargate", "image": "x", "instance_type": "m5.large"}, "not instance_type"),
                        ({"image": "x", "walltime": "01:00:00"}, "walltime")):
        with pytest.raises(InputError, match=match):
            cloud_kwargs(BackendSpec("cloud", "workers", 1, opts))


def test_cloud_refusals(monkeypatch, ctx):
    from medfeat.production.backends import get_backend

    backend = get_backend("cloud")
    with pytest.raises(InputError, match="cannot reach the stage"):
        backend.make(BackendSpec("cloud", "workers", 1, {"image": "x"}), ctx)
    monkeypatch.setitem(sys.modules, "dask_cloudprovider", None)
    monkeypatch.setitem(sys.modules, "dask_cloudprovider.aws", None)
    with pytest.raises(InputError, match=r"needs dask-cloudprovider\[aws\]"):
        backend.make(BackendSpec("cloud", "workers", 1, {"image": "x"}), REMOTE)
