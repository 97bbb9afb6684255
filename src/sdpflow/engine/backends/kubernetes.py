"""``kubernetes``: a DaskCluster resource handled by the Dask Kubernetes operator.

The resource is built here (:func:`cluster_resource`) so that it can be checked without a
Kubernetes API, and handed to dask-kubernetes's ``KubeCluster``, which creates it and
deletes it again on close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdpflow import __version__
from sdpflow.engine.backends import WORKER_ENVIRONMENT, Backend, parse_memory, register
from sdpflow.errors import ClusterError

if TYPE_CHECKING:
    from distributed.deploy import Cluster

    from sdpflow.config.cluster import ClusterConfig, KubernetesConfig

#: The image repository deploy/docker builds; its tag is the package version.
IMAGE_REPOSITORY = "ghcr.io/sdpflow/sdpflow"


def default_image() -> str:
    """The sdpflow image of this version, e.g. ``ghcr.io/sdpflow/sdpflow:0.1.0``."""
    return f"{IMAGE_REPOSITORY}:{__version__}"


def _container(role: str, image: str, args: list[str], k8s: KubernetesConfig, ports: list[dict]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": role,
        "image": image,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in sorted({**WORKER_ENVIRONMENT, **k8s.env}.items())],
        "ports": ports,
    }
    if role == "worker":
        limits = {"cpu": k8s.cpu, "memory": k8s.memory}
        container["resources"] = {"requests": dict(limits), "limits": dict(limits)}
    if k8s.pvc:
        container["volumeMounts"] = [{"name": "results", "mountPath": k8s.mount_path}]
    return container


def _pod(container: dict[str, Any], k8s: KubernetesConfig) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [container]}
    if k8s.pvc:
        pod["volumes"] = [{"name": "results", "persistentVolumeClaim": {"claimName": k8s.pvc}}]
    return pod


def cluster_resource(k8s: KubernetesConfig) -> dict[str, Any]:
    """The ``DaskCluster`` custom resource (kubernetes.dask.org/v1) for the ``kubernetes`` section.

    Workers request and are limited to ``cpu`` and ``memory``; their Dask memory limit
    follows the pod's, and they use one thread per requested CPU (at least one).
    """
    image = k8s.image or default_image()
    labels = {"dask.org/cluster-name": k8s.name, "dask.org/component": "scheduler"}
    scheduler_ports = [
        {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
        {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"},
    ]
    nthreads = max(1, int(float(k8s.cpu[:-1]) / 1000) if k8s.cpu.endswith("m") else int(float(k8s.cpu)))
    worker_args = ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", str(nthreads),
                   "--memory-limit", k8s.memory.replace("Gi", "GiB").replace("Mi", "MiB"),
                   "--dashboard-address", "8788"]
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": k8s.name},
        "spec": {
            "idleTimeout": 0,
            "scheduler": {
                "spec": _pod(_container("scheduler", image, ["dask", "scheduler", "--host", "0.0.0.0"], k8s,
                                        scheduler_ports), k8s),
                "service": {
                    "type": "ClusterIP",
                    "selector": labels,
                    "ports": [
                        {"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                        {"name": "http-dashboard", "protocol": "TCP", "port": 8787, "targetPort": "http-dashboard"},
                    ],
                },
            },
            "worker": {
                "replicas": k8s.n_workers,
                "spec": _pod(_container("worker", image, worker_args, k8s,
                                        [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}]), k8s),
            },
        },
    }


@register
class KubernetesBackend(Backend):
    """Pods made by the Dask operator; the DaskCluster is deleted on close."""

    name = "kubernetes"

    def start(self, config: ClusterConfig, arg: str | None) -> Cluster:
        try:
            from dask_kubernetes.operator import KubeCluster
        except ImportError:
            raise ClusterError(
                "the kubernetes backend needs dask-kubernetes: pip install 'sdpflow[kubernetes]'"
            ) from None
        k8s = config.kubernetes
        try:
            return KubeCluster(
                custom_cluster_spec=cluster_resource(k8s),
                namespace=k8s.namespace,
                shutdown_on_close=True,
                resource_timeout=int(config.start_timeout),
                quiet=True,
            )
        except Exception as error:  # kr8s API errors, missing kubeconfig, timeouts
            raise ClusterError(
                f"cannot create DaskCluster {k8s.name!r}: {type(error).__name__}: {error}; check `kubectl get "
                "daskclusters` works (a kubeconfig and the Dask operator installed)"
            ) from None

    def worker_memory(self, config: ClusterConfig, arg: str | None) -> int | None:
        return parse_memory(config.kubernetes.memory)

    def expected_workers(self, cluster, config, arg) -> int:
        return config.kubernetes.n_workers
