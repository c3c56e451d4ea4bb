"""``kubernetes``: Dask on Kubernetes through the Dask operator (dask-kubernetes' ``KubeCluster``),
``--mode workers`` only. An optional extra: ``pip install 'medfeat[kubernetes]'``; the cluster needs
the Dask operator installed (its custom resources and controller).

medfeat creates one ``DaskCluster`` resource -- built by :func:`cluster_spec`, its worker pods by
:func:`pod_spec` -- whose scheduler and workers run as pods; this process connects to the scheduler
(``scheduler_service_type = "LoadBalancer"`` or ``"NodePort"`` when it runs outside the cluster;
dask-kubernetes port-forwards a ``ClusterIP`` service otherwise). The workers read bundles from and
write results to the stage, so ``--stage`` must be a store the pods reach (``s3://``, ``gs://``,
``abfs://`` ...), not a local folder; pass its credentials with ``environment``.

Options:

======================= ======================================================================
image                   (required) a container image with medfeat (this version) and dask
namespace               where the pods run (default: the kube config's current namespace)
cores, memory           each worker pod's CPU and memory (requests = limits; default 1, 2GB);
                        also the worker's threads and memory limit
environment             a table of environment variables for the pods (kept in the ledger: no
                        secrets here)
pass_env                names of variables copied from this process's environment into the pods
                        (credentials of the stage, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
service_account         the pods' service account (e.g. one allowed to read the bucket)
node_selector           a table of node labels; ``tolerations``: a list of tables
image_pull_policy       default ``IfNotPresent``; ``image_pull_secrets``: a list of secret names
scheduler_service_type  ``ClusterIP`` (default), ``NodePort`` or ``LoadBalancer``
worker_ttl              a worker silent this long is dropped (default 60s)
worker_command          default ``dask worker``
cluster_name            the DaskCluster's name (default ``medfeat-RUN_ID``)
======================= ======================================================================

Any other option is passed to ``KubeCluster`` as a keyword (``resource_timeout``,
``scheduler_forward_port``, ``idle_timeout`` ...). Size: ``N`` sets the worker group's replicas (the
operator replaces a pod that dies); ``MIN:MAX`` creates a ``DaskAutoscaler`` with that range.
"""
from __future__ import annotations

import re
from typing import Any

from medfeat.errors import InputError
from medfeat.production.backends import Backend

WHERE = "--backend kubernetes"
DEFAULTS: dict[str, Any] = {"cores": 1, "memory": "2GB", "worker_ttl": "60s", "image_pull_policy": "IfNotPresent",
                            "scheduler_service_type": "ClusterIP", "worker_command": "dask worker"}
# options that shape the resource built here; any other goes to KubeCluster
_MAPPED = {"image", "cores", "memory", "environment", "pass_env", "service_account", "node_selector", "tolerations",
           "image_pull_policy", "image_pull_secrets", "scheduler_service_type", "worker_ttl", "worker_command",
           "cluster_name", "namespace"}
_NOT_HERE = {"queue", "account", "walltime", "job_extra", "hosts", "ssh_port", "ssh_user", "ssh_key", "ce", "env",
             "scheduler"}


def require_remote_stage(stage_url: str, where: str) -> None:
    """Workers on other machines (pods, cloud VMs) cannot read a folder on this one."""
    import fsspec.core

    protocol, _ = fsspec.core.split_protocol(str(stage_url))
    if protocol in (None, "file", "local"):
        raise InputError(where, f"the workers cannot reach the stage {stage_url}: give --stage a store they "
                                "reach (s3://..., gs://..., abfs://...)")


def public_options(spec) -> dict[str, Any]:
    """The options without secrets, tables included (an ``environment`` may name a token)."""
    from medfeat.production.options import is_secret

    return {k: ({ek: "***" if is_secret(str(ek)) else ev for ek, ev in v.items()} if isinstance(v, dict) else v)
            for k, v in spec.public_options().items()}


def k8s_quantity(memory) -> str:
    """Dask's "2GB"/"2GiB"/"512 MB" as a Kubernetes quantity ("2G", "2Gi", "512M")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(i?)[bB]?", str(memory).strip())
    if not m:
        raise InputError(WHERE, f"memory {memory!r} is not like 2GB or 2GiB")
    number, unit, binary = m.groups()
    unit = unit.upper()
    if binary:
        return f"{number}{unit}i" if unit else number
    return f"{number}{'k' if unit == 'K' else unit}"


def environment(o: dict, where: str = WHERE) -> dict[str, str]:
    """The pods' environment: the ``environment`` table, plus the variables named in ``pass_env``
    copied from this process's environment (so that credentials never sit in the options, which
    the ledger keeps)."""
    import os

    env = {str(k): str(v) for k, v in (o.get("environment") or {}).items()}
    names = o.get("pass_env") or []
    for name in [names] if isinstance(names, str) else names:
        if name not in os.environ:
            raise InputError(where, f"pass_env: {name} is not set in this environment")
        env[str(name)] = os.environ[name]
    return env


def _options(spec) -> dict[str, Any]:
    o = {**DEFAULTS, **{k: v for k, v in spec.options.items() if v not in (None, "")}}
    bad = sorted(k for k in spec.options if k in _NOT_HERE and spec.options[k] not in (None, "", []))
    if bad:
        raise InputError(WHERE, f"option(s) {', '.join(bad)} are for batch systems or other backends")
    if not o.get("image"):
        raise InputError(WHERE, "needs option image: a container image with medfeat and dask")
    return o


def pod_spec(spec) -> dict[str, Any]:
    """The worker pods' spec (a Kubernetes ``PodSpec``) for this BackendSpec."""
    o = _options(spec)
    cores = int(o["cores"])
    memory = str(o["memory"])
    command = o["worker_command"].split() if isinstance(o["worker_command"], str) else list(o["worker_command"])
    args = command + ["--name", "$(DASK_WORKER_NAME)", "--nthreads", str(cores), "--memory-limit", memory,
                      "--dashboard", "--dashboard-address", "8788"]
    env = [{"name": k, "value": v} for k, v in environment(o).items()]
    quantity = {"cpu": str(cores), "memory": k8s_quantity(memory)}
    container = {
        "name": "worker",
        "image": o["image"],
        "imagePullPolicy": o["image_pull_policy"],
        "args": args,
        "env": env,
        "resources": {"requests": dict(quantity), "limits": dict(quantity)},
        "ports": [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}],
    }
    return _pod(o, container)


def _pod(o: dict, container: dict) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if o.get("service_account"):
        pod["serviceAccountName"] = str(o["service_account"])
    if o.get("node_selector"):
        pod["nodeSelector"] = {str(k): str(v) for k, v in dict(o["node_selector"]).items()}
    if o.get("tolerations"):
        pod["tolerations"] = [dict(t) for t in o["tolerations"]]
    if o.get("image_pull_secrets"):
        pod["imagePullSecrets"] = [{"name": str(s)} for s in o["image_pull_secrets"]]
    return pod


def scheduler_pod_spec(spec) -> dict[str, Any]:
    """The scheduler pod's spec: ``dask scheduler`` with the worker TTL, probes on /health."""
    o = _options(spec)
    # the scheduler reads no data: the environment table, but not the pass_env credentials
    env = [{"name": k, "value": v} for k, v in environment({**o, "pass_env": None}).items()]
    if o.get("worker_ttl"):
        env.append({"name": "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL", "value": str(o["worker_ttl"])})
    container = {
        "name": "scheduler",
        "image": o["image"],
        "imagePullPolicy": o["image_pull_policy"],
        "args": ["dask", "scheduler", "--host", "0.0.0.0"],
        "env": env,
        "ports": [{"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                  {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"}, "initialDelaySeconds": 0,
                           "periodSeconds": 1, "timeoutSeconds": 300},
        "livenessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"}, "initialDelaySeconds": 15,
                          "periodSeconds": 20},
    }
    return _pod(o, container)


def cluster_spec(spec, ctx) -> dict[str, Any]:
    """The ``DaskCluster`` resource (kubernetes.dask.org/v1) medfeat creates for this run."""
    o = _options(spec)
    name = str(o.get("cluster_name") or (f"medfeat-{ctx.run_id}" if ctx.run_id else "medfeat"))
    lo, hi = spec.size()
    replicas = (hi or 1) if lo == hi else (lo or 0)
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "medfeat"}},
        "spec": {
            "worker": {"replicas": replicas, "spec": pod_spec(spec)},
            "scheduler": {
                "spec": scheduler_pod_spec(spec),
                "service": {
                    "type": o["scheduler_service_type"],
                    "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                    "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                              {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
                               "targetPort": "http-dashboard"}],
                },
            },
        },
    }


def make(spec, ctx):

    from medfeat.production.dask_executor import DaskExecutor

    require_remote_stage(ctx.stage_url, WHERE)
    resource = cluster_spec(spec, ctx)
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError:
        raise InputError(WHERE, "needs dask-kubernetes (pip install 'medfeat[kubernetes]')") from None
    extra = {k: v for k, v in spec.options.items() if k not in _MAPPED and k not in _NOT_HERE}
    try:
        cluster = KubeCluster(custom_cluster_spec=resource, namespace=spec.options.get("namespace"),
                              shutdown_on_close=True, **extra)
    except Exception as exc:
        raise InputError(WHERE, f"cannot create the Dask cluster: {type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    # a fixed size is kept by the operator (it replaces lost pods): no keep_size here
    return DaskExecutor.on_cluster(cluster, spec, "kubernetes", {**public_options(spec), "workers": spec.workers or 1})


BACKEND = Backend("kubernetes", ("workers",), make, "Dask on Kubernetes (dask-kubernetes' operator)")
