"""``cloud``: Dask on cloud machines (dask-cloudprovider), ``--mode workers`` only. An optional
extra: ``pip install 'medfeat[cloud]'`` plus the provider's own (``dask-cloudprovider[aws]`` ...).

Option ``provider`` picks the cluster class (default ``ec2``):

============ ====================================================== ===========================
provider     class                                                  ``instance_type`` becomes
============ ====================================================== ===========================
ec2 (aws)    ``dask_cloudprovider.aws.EC2Cluster``                  ``instance_type``
fargate      ``dask_cloudprovider.aws.FargateCluster``              (``cores``/``memory`` only)
ecs          ``dask_cloudprovider.aws.ECSCluster``                  (``cores``/``memory`` only)
azure        ``dask_cloudprovider.azure.AzureVMCluster``            ``vm_size``
gcp          ``dask_cloudprovider.gcp.GCPCluster``                  ``machine_type``
digitalocean ``dask_cloudprovider.digitalocean.DropletCluster``     ``size``
hetzner      ``dask_cloudprovider.hetzner.HetznerCluster``          ``server_type``
============ ====================================================== ===========================

Other options: ``image`` (required: a Docker image with medfeat, this version, and dask),
``cores`` and ``memory`` per worker (default 1 and 2GB: the worker's threads and memory limit; on
Fargate/ECS also the task's CPU and memory), ``environment`` (a table for the machines; kept in the
ledger, so no secrets), ``pass_env`` (names of variables copied from this process's environment,
e.g. the stage's credentials), ``worker_ttl`` (default 60s). Any other option is passed to the
class as a keyword (``region``, ``subnet_id``, ``security_groups``, ``bootstrap``, ``zone``,
``projectid`` ...). :func:`cloud_kwargs` builds what the class is given; nothing is started there.

The workers read and write the stage, so ``--stage`` must be a store they reach (``s3://`` ...).
Size: ``N`` keeps N workers (a machine that vanishes is replaced); ``MIN:MAX`` is adaptive.
"""
from __future__ import annotations

import importlib
from typing import Any

from medfeat.errors import InputError
from medfeat.production.backends import Backend

WHERE = "--backend cloud"
DEFAULT_PROVIDER = "ec2"
DEFAULTS: dict[str, Any] = {"cores": 1, "memory": "2GB", "worker_ttl": "60s"}

# provider: (module, class, keyword of the machine type or None, keyword of the image, kind, pip extra)
PROVIDERS: dict[str, tuple[str, str, str | None, str, str, str]] = {
    "ec2": ("dask_cloudprovider.aws", "EC2Cluster", "instance_type", "docker_image", "vm", "aws"),
    "fargate": ("dask_cloudprovider.aws", "FargateCluster", None, "image", "ecs", "aws"),
    "ecs": ("dask_cloudprovider.aws", "ECSCluster", None, "image", "ecs", "aws"),
    "azure": ("dask_cloudprovider.azure", "AzureVMCluster", "vm_size", "docker_image", "vm", "azure"),
    "gcp": ("dask_cloudprovider.gcp", "GCPCluster", "machine_type", "docker_image", "vm", "gcp"),
    "digitalocean": ("dask_cloudprovider.digitalocean", "DropletCluster", "size", "docker_image", "vm",
                     "digitalocean"),
    "hetzner": ("dask_cloudprovider.hetzner", "HetznerCluster", "server_type", "docker_image", "vm", "hetzner"),
}
ALIASES = {"aws": "ec2"}

_MAPPED = {"provider", "image", "cores", "memory", "environment", "pass_env", "worker_ttl", "instance_type"}
_NOT_HERE = {"queue", "account", "walltime", "job_extra", "hosts", "ssh_port", "ssh_user", "ssh_key", "ce", "env",
             "scheduler"}


def provider_of(spec) -> str:
    name = str(spec.options.get("provider") or DEFAULT_PROVIDER).lower()
    name = ALIASES.get(name, name)
    if name not in PROVIDERS:
        raise InputError(WHERE, f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    return name


def cloud_kwargs(spec) -> tuple[str, dict[str, Any]]:
    """(``module.Class``, keywords) of the dask-cloudprovider cluster this BackendSpec launches."""
    from dask.utils import parse_bytes

    from medfeat.production.backends.kubernetes import environment

    provider = provider_of(spec)
    module, cls, machine_kw, image_kw, kind, _ = PROVIDERS[provider]
    o = {**DEFAULTS, **{k: v for k, v in spec.options.items() if v not in (None, "")}}
    bad = sorted(k for k in spec.options if k in _NOT_HERE and spec.options[k] not in (None, "", []))
    if bad:
        raise InputError(WHERE, f"option(s) {', '.join(bad)} are for batch systems or other backends")
    if not o.get("image"):
        raise InputError(WHERE, "needs option image: a Docker image with medfeat and dask")
    try:
        cores = int(o["cores"])
        memory = parse_bytes(str(o["memory"]))
    except (TypeError, ValueError) as exc:
        raise InputError(WHERE, f"cores/memory: {exc}") from None
    lo, hi = spec.size()
    kw: dict[str, Any] = {"n_workers": (hi or 1) if lo == hi else (lo or 0), image_kw: str(o["image"])}
    env = environment(o, WHERE)
    if kind == "vm":
        kw["worker_options"] = {"nthreads": cores, "memory_limit": memory}
        kw["scheduler_options"] = {"worker_ttl": o["worker_ttl"]} if o.get("worker_ttl") else {}
        if env:
            kw["env_vars"] = env
        if o.get("instance_type"):
            kw[machine_kw] = str(o["instance_type"])
    else:  # ECS / Fargate tasks: CPU in 1/1024 vCPU, memory in MiB
        kw.update(worker_cpu=1024 * cores, worker_mem=int(-(-memory // 2**20)), worker_nthreads=cores)
        if o.get("worker_ttl"):
            env = {**env, "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": str(o["worker_ttl"])}
        if env:
            kw["environment"] = env
        if o.get("instance_type"):
            raise InputError(WHERE, f"provider {provider} takes cores and memory, not instance_type")
    for key, value in o.items():
        if key not in _MAPPED and key not in _NOT_HERE and key not in DEFAULTS and key not in kw:
            kw[key] = value
    return f"{module}.{cls}", kw


def make(spec, ctx):
    from medfeat.production.backends.kubernetes import public_options, require_remote_stage
    from medfeat.production.dask_executor import DaskExecutor

    require_remote_stage(ctx.stage_url, WHERE)
    target, kw = cloud_kwargs(spec)
    module, cls_name = target.rsplit(".", 1)
    extra = PROVIDERS[provider_of(spec)][5]
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except ImportError as exc:
        raise InputError(WHERE, f"needs dask-cloudprovider[{extra}] (pip install 'dask-cloudprovider[{extra}]'): "
                                f"{exc}") from None
    try:
        cluster = cls(**kw)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise InputError(WHERE, f"{cls_name} could not start: {type(exc).__name__}: {text[0] if text else ''}") from None
    lo, hi = spec.size()
    keep = kw["n_workers"] if lo is None or lo == hi else None
    return DaskExecutor.on_cluster(cluster, spec, "cloud", {**public_options(spec), "workers": spec.workers or keep},
                                   keep_size=keep)


BACKEND = Backend("cloud", ("workers",), make, "Dask on cloud machines (dask-cloudprovider)")
