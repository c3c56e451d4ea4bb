"""Dask workers as batch jobs: ``--mode workers`` of every batch system, through dask-jobqueue.

:func:`workers_executor` starts a dask-jobqueue cluster -- a Dask scheduler in this process whose
workers are batch jobs (``SLURMCluster``, ``PBSCluster``, ``SGECluster``, ``HTCondorCluster``,
``LSFCluster``, ``OARCluster``, ``MoabCluster``) -- and returns a
:class:`~medfeat.production.dask_executor.DaskExecutor` on it, named after the backend. The backend
modules (``slurm.py``, ``pbs.py``, ``lsf.py`` ...) are a few lines that call it.

Options (``[backend]`` table of ``--config``, or the flags):

=================== ============================================================================
queue               partition / queue (``#SBATCH -p``, ``#PBS -q``, ``#$ -q``, ``#BSUB -q``);
                    HTCondor has none (choose machines with ``job_extra``)
account             what to charge: ``account`` where the system calls it so (Slurm, PBS, Moab),
                    ``project`` elsewhere (SGE, LSF, OAR), ``accounting_group`` on HTCondor
walltime            of each worker job, ``HH:MM:SS`` or seconds (LSF: rounded up to ``HH:MM``;
                    HTCondor: a ``periodic_remove`` once the job ran that long)
memory              of each worker job (default 2GB); also the workers' memory limit
cores               of each worker job (default 1)
processes           Dask worker processes per job (default 1; the job's cores are split among them)
job_extra           extra directives, a list (``["--qos=short"]``); HTCondor: ``"key = value"``
                    strings or a table
job_script_prologue shell lines run before the worker starts (``module load ...``, ``source
                    venv/bin/activate``), a list or one string
scheduler_host      the address the scheduler listens on and workers connect to. Unset:
                    dask-jobqueue's own choice (the ``interface`` option, else this host's
                    address). A loopback address (``127.0.0.1``: everything on this machine) also
                    makes the workers listen there
worker_host         the workers' ``--host`` (rarely needed)
interface           network interface of the scheduler and the workers, e.g. ``ib0``
worker_ttl          a worker silent this long is dropped and its jobs run elsewhere (default 60s)
dashboard_address   the scheduler's dashboard (default ``:0``, a free port)
log_directory       the worker jobs' stdout/stderr (default ``RUN_DIR/batch-logs``)
local_directory     worker scratch on the node (e.g. ``$TMPDIR``)
job_name            the worker jobs' name in the queue (default ``medfeat-RUN_ID``)
=================== ============================================================================

**Any other option is passed to the cluster class as a keyword**, so whatever dask-jobqueue
accepts can be set: ``python``, ``resource_spec``, ``job_directives_skip``, ``death_timeout``,
``worker_extra_args``, ``scheduler_options``, ``job_cpu``, ``job_mem``, ``lsf_units``, ``disk``,
``submit_command_extra`` ... (see the dask-jobqueue documentation of each class). An option the
class does not accept is refused with its name. What is set neither here nor in the options comes
from dask's configuration (``jobqueue.<system>.*``, e.g. ``~/.config/dask/jobqueue.yaml``), and only
then from :data:`DEFAULTS`.

Size (``--workers``): ``N`` keeps N workers -- a worker whose batch job ends (cancelled,
walltime, preempted) is replaced once Dask declares it lost (``distributed.deploy.lost-worker-timeout``,
15 s by default), and the driver runs its attempt again elsewhere; ``MIN:MAX`` lets Dask's adaptive
scaling submit and cancel worker jobs within that range. Unset: one worker.

Errors at the edge are :class:`~medfeat.errors.InputError` with a one-line reason: dask-jobqueue
missing, the batch system's submit command not on ``PATH``, an option the class refuses, or the
batch system refusing the first worker jobs (a fixed size is submitted before this returns).
"""
from __future__ import annotations

import inspect
import ipaddress
import math
import re
import shutil
from typing import Any

from medfeat.errors import InputError
from medfeat.production.dask_executor import DaskExecutor, one_task_per_thread

CLUSTER_CLASSES = ("SLURMCluster", "PBSCluster", "SGECluster", "HTCondorCluster", "LSFCluster", "OARCluster",
                   "MoabCluster")

#: medfeat's defaults, used where neither the options nor dask's ``jobqueue.<system>`` config set a value.
#: Keys a cluster class does not know are skipped for it (``disk`` is HTCondor's).
DEFAULTS: dict[str, Any] = {
    "memory": "2GB",
    "cores": 1,
    "processes": 1,
    "disk": "2GB",                 # HTCondor only: scratch disk per worker job
    "worker_ttl": "60s",           # the scheduler drops a worker silent this long
    "dashboard_address": ":0",
}

# options of other backends or modes, named so that the refusal says why
_NOT_HERE = {
    "env": "is for --mode jobs; in workers mode set python or job_script_prologue",
    "hosts": "is the ssh backend's", "ssh_port": "is the ssh backend's", "ssh_user": "is the ssh backend's",
    "ssh_key": "is the ssh backend's", "ce": "is the arc backend's",
    "scheduler": "names an existing Dask scheduler: use --backend dask",
}
# options handled here rather than passed through as they are
_MAPPED = {"queue", "account", "walltime", "memory", "cores", "processes", "disk", "job_extra", "job_extra_directives",
           "job_script_prologue", "scheduler_host", "worker_host", "worker_ttl", "dashboard_address",
           "log_directory", "job_name", "worker_extra_args", "scheduler_options"}


def workers_executor(name: str, cluster_class: str, spec, ctx, **defaults) -> DaskExecutor:
    """Start Dask workers as batch jobs of ``cluster_class`` (a dask-jobqueue class name) for
    backend ``name``; return a DaskExecutor that owns (and at the end closes) the cluster.

    ``spec`` is the :class:`~medfeat.production.options.BackendSpec`, ``ctx`` the
    :class:`~medfeat.production.backends.RunContext`; ``defaults`` (a backend module's own)
    override :data:`DEFAULTS` but not the options or dask's configuration."""
    from distributed import Client

    where = f"--backend {name}"
    cls = _cluster_class(where, cluster_class)
    kwargs = cluster_kwargs(name, cluster_class, spec, ctx, **defaults)
    _check_submit_command(where, cls)
    lo, hi = spec.size()
    try:
        with one_task_per_thread():
            cluster = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(where, f"{cluster_class} refused the options: {_one_line(exc)}") from None
    except Exception as exc:  # the scheduler could not start (address taken, no such interface)
        raise InputError(where, f"{cluster_class} could not start: {_one_line(exc)}") from None
    what = f"{_submit_name(cls)} refused the worker jobs"
    try:
        if lo is None or lo == hi:
            keep = hi or 1
            # submit the first worker jobs before returning, so that a refusal (an unknown queue,
            # over a limit) is an error here rather than a run waiting forever for workers
            cluster.sync(_submit, cluster, keep)
        else:
            keep = None
            cluster.adapt(minimum=lo, maximum=hi)
        what = "cannot connect to the cluster's scheduler"
        client = Client(cluster)
    except Exception as exc:
        _close_quietly(cluster)
        raise InputError(where, f"{what}: {_one_line(exc)}") from None
    except BaseException:
        _close_quietly(cluster)
        raise
    options = {**spec.public_options(), "workers": spec.workers if spec.workers not in (None, "") else keep}
    return DaskExecutor(client, cluster, owned=True, name=name, options=options, keep_size=keep)


def cluster_kwargs(name: str, cluster_class: str, spec, ctx, **defaults) -> dict[str, Any]:
    """The keywords :func:`workers_executor` gives ``cluster_class`` for these options (no cluster is
    started: tests and ``job_script()`` checks use this)."""
    import dask.config

    where = f"--backend {name}"
    cls = _cluster_class(where, cluster_class)
    job_cls = cls.job_cls
    config = job_cls.config_name
    accepted = _accepted(cls)
    base = {**DEFAULTS, **defaults}
    o = dict(spec.options)

    def conf(key: str, default=None):
        return dask.config.get(f"jobqueue.{config}.{key.replace('_', '-')}", default)

    for key, why in _NOT_HERE.items():
        if o.get(key) not in (None, "", [], {}):
            raise InputError(where, f"option {key!r} {why}")
    unknown = sorted(k for k in o if k not in _MAPPED and k not in accepted and k not in _NOT_HERE)
    if unknown:
        raise InputError(where, f"{cluster_class} does not accept option(s) {', '.join(unknown)}")

    kw: dict[str, Any] = {}
    # sizes of each worker job: options, then dask's config, then medfeat's defaults
    for key, parse in (("memory", str), ("cores", int), ("processes", int), ("disk", str)):
        if key not in accepted:
            continue
        value = o.get(key)
        if value in (None, ""):
            if conf(key) is not None:
                continue
            value = base.get(key)
        if value is not None:
            try:
                kw[key] = parse(value)
            except (TypeError, ValueError):
                raise InputError(where, f"option {key}: {value!r} is not a valid {parse.__name__}") from None
    if kw.get("cores") is not None and kw.get("processes") is not None and kw["processes"] > kw["cores"]:
        raise InputError(where, f"processes ({kw['processes']}) > cores ({kw['cores']}): each worker needs a core")

    directives = _directives(where, cluster_class, o.get("job_extra", o.get("job_extra_directives")))
    if o.get("queue"):
        if "queue" not in accepted:
            raise InputError(where, f"{cluster_class} has no queues; choose machines with job_extra")
        kw["queue"] = str(o["queue"])
    if o.get("account"):
        if "account" in accepted:
            kw["account"] = str(o["account"])
        elif "project" in accepted:
            kw["project"] = str(o["account"])
        elif isinstance(directives, dict):
            directives.setdefault("accounting_group", str(o["account"]))
        else:
            raise InputError(where, f"{cluster_class} takes no account; use job_extra")
    if o.get("walltime") not in (None, ""):
        _walltime(where, cluster_class, o["walltime"], kw, directives, accepted)
    if directives:
        kw["job_extra_directives"] = directives

    prologue = o.get("job_script_prologue")
    if prologue:
        kw["job_script_prologue"] = [prologue] if isinstance(prologue, str) else [str(x) for x in prologue]
    kw["log_directory"] = str(o.get("log_directory") or (ctx.run_dir / "batch-logs"))
    kw["job_name"] = str(o.get("job_name") or (f"medfeat-{ctx.run_id}" if ctx.run_id else "medfeat-worker"))

    # where the scheduler listens and the workers connect
    scheduler_options = {"dashboard_address": base["dashboard_address"]}
    if base.get("worker_ttl"):
        scheduler_options["worker_ttl"] = base["worker_ttl"]
    scheduler_options.update(conf("scheduler_options", None) or {})
    for key in ("dashboard_address", "worker_ttl"):
        if o.get(key) not in (None, ""):
            scheduler_options[key] = o[key]
    scheduler_options.update(o.get("scheduler_options") or {})
    if scheduler_options.get("worker_ttl") in ("", None, 0, "0", "off", "none"):
        scheduler_options.pop("worker_ttl", None)
    host = o.get("scheduler_host")
    if host:
        scheduler_options["host"] = str(host)
    kw["scheduler_options"] = scheduler_options

    worker_args = list(conf("worker_extra_args", None) or []) + [str(x) for x in (o.get("worker_extra_args") or [])]
    worker_host = o.get("worker_host") or (host if host and _is_loopback(str(host)) else None)
    if worker_host and "--host" not in worker_args:
        worker_args += ["--host", str(worker_host)]
    if worker_args:
        kw["worker_extra_args"] = worker_args

    # everything else as it is
    for key, value in o.items():
        if key not in _MAPPED and key not in _NOT_HERE and key not in kw:
            kw[key] = value
    return kw


def job_script(name: str, cluster_class: str, spec, ctx, **defaults) -> str:
    """The batch script one worker job would be submitted with (nothing is started or submitted,
    but the log directory is created as dask-jobqueue does; the scheduler's address is a placeholder)."""
    from dask_jobqueue.core import Job

    cls = _cluster_class(f"--backend {name}", cluster_class)
    kw = cluster_kwargs(name, cluster_class, spec, ctx, **defaults)
    job_params = _params(cls.job_cls.__init__) | _params(Job.__init__)
    job = cls.job_cls("tcp://scheduler-address:8786", name="dummy-name",
                      **{k: v for k, v in kw.items() if k in job_params and k not in ("scheduler", "name")})
    return job.job_script()


# -- helpers ------------------------------------------------------------------------------------
def _cluster_class(where: str, cluster_class: str):
    if cluster_class not in CLUSTER_CLASSES:
        raise InputError(where, f"unknown dask-jobqueue class {cluster_class!r}; known: {', '.join(CLUSTER_CLASSES)}")
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError(where, "--mode workers needs dask-jobqueue (pip install dask-jobqueue)") from None
    return getattr(dask_jobqueue, cluster_class)


def _accepted(cls) -> set[str]:
    """Keywords the cluster class takes: its own, its job class's and the base Job's."""
    from dask_jobqueue.core import Job

    names = _params(cls.__init__) | _params(cls.job_cls.__init__) | _params(Job.__init__)
    return names - {"scheduler", "job_cls", "loop", "asynchronous", "config_name"}


def _params(f) -> set[str]:
    return {p.name for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}


async def _submit(cluster, n: int) -> None:
    """Scale to ``n`` workers (as ``cluster.scale`` does) and wait until their jobs are submitted,
    so that the submission's errors reach the caller."""
    jobs = math.ceil(n / cluster._dummy_job.worker_processes)
    while len(cluster.worker_spec) < jobs:
        cluster.worker_spec.update(cluster.new_worker_spec())
    await cluster._correct_state()


def _submit_name(cls) -> str:
    return str(cls.job_cls.submit_command).split()[0]


def _check_submit_command(where: str, cls) -> None:
    cmd = _submit_name(cls)
    if shutil.which(cmd) is None:
        raise InputError(where, f"the batch command {cmd!r} was not found on PATH "
                                "(run medfeat where the batch system's commands are)")


def _directives(where: str, cluster_class: str, extra):
    """job_extra as dask-jobqueue wants it: a list of directive arguments (a dict for HTCondor)."""
    if cluster_class == "HTCondorCluster":
        out: dict[str, Any] = {}
        if isinstance(extra, dict):
            out.update(extra)
        else:
            for line in [extra] if isinstance(extra, str) else (extra or []):
                key, sep, value = str(line).partition("=")
                if not sep or not key.strip():
                    raise InputError(where, f"job_extra {line!r}: HTCondor directives are 'key = value'")
                out[key.strip()] = value.strip()
        return out
    if isinstance(extra, dict):
        raise InputError(where, "job_extra is a list of directives")
    return [extra] if isinstance(extra, str) else [str(x) for x in (extra or [])]


def _seconds(where: str, walltime) -> int:
    if isinstance(walltime, (int, float)):
        return int(math.ceil(walltime))
    text = str(walltime).strip()
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return int(math.ceil(float(text)))
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})", text)
    if not m:
        raise InputError(where, f"walltime {walltime!r} is not [D-]HH:MM:SS or seconds")
    d, h, mi, s = (int(x or 0) for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def _walltime(where, cluster_class, walltime, kw, directives, accepted) -> None:
    if cluster_class == "HTCondorCluster":
        secs = _seconds(where, walltime)
        directives.setdefault("periodic_remove", f"(JobStatus == 2) && ((time() - EnteredCurrentStatus) > {secs})")
        return
    if "walltime" not in accepted:
        raise InputError(where, f"{cluster_class} takes no walltime; use job_extra")
    text = str(walltime).strip()
    numeric = isinstance(walltime, (int, float)) or re.fullmatch(r"\d+(\.\d*)?", text)
    if cluster_class == "LSFCluster":  # bsub -W [hours:]minutes
        if numeric or text.count(":") == 2:
            minutes = math.ceil(_seconds(where, walltime) / 60)
            text = f"{minutes // 60:02d}:{minutes % 60:02d}"
    elif numeric:
        secs = _seconds(where, walltime)
        text = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    kw["walltime"] = text


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(exc: BaseException) -> str:
    """The telling line of an error: a batch command's stderr (else stdout, else its exit code),
    otherwise the message's first line."""
    text = str(exc)
    m = re.search(r"Exit code: (-?\d+)\n.*?stdout:\n(.*?)\nstderr:\n(.*)", text, re.S)
    if m:
        err = [ln.strip() for ln in m.group(3).splitlines() if ln.strip()]
        out = [ln.strip() for ln in m.group(2).splitlines() if ln.strip()]
        line = (err or out or [f"exit code {m.group(1)}"])[-1]
    else:
        cause = exc.__cause__ or exc.__context__
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines and cause is not None:
            lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _close_quietly(cluster) -> None:
    try:
        cluster.close()
    except Exception:
        pass
