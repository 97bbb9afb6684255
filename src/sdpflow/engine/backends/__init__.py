"""The registry of cluster backends: one small base, one short adapter per scheduler.

A backend turns a :class:`~sdpflow.config.ClusterConfig` (and the part of the spec after
the colon, as in ``slurm:4``) into a running Dask cluster object, or into the address of
a scheduler that already runs. :func:`sdpflow.engine.cluster.open_cluster` does the rest
(Dask settings, the client, waiting for workers, shutting down).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from sdpflow.errors import ClusterSpecError

if TYPE_CHECKING:
    from distributed.deploy import Cluster

    from sdpflow.config.cluster import ClusterConfig


class Backend:
    """One kind of Dask cluster. Subclasses set ``name`` and implement :meth:`start`."""

    name: ClassVar[str]
    #: Whether workers come from a batch queue (and can sit pending).
    batch: ClassVar[bool] = False

    def start(self, config: ClusterConfig, arg: str | None) -> Cluster | str:
        """Start a cluster (returned, to be closed by the caller) or return a scheduler address."""
        raise NotImplementedError

    def check(self, config: ClusterConfig, arg: str | None) -> None:
        """Raise :class:`ClusterSpecError` for a spec argument this backend cannot take (before anything starts)."""

    def reach(self, config: ClusterConfig, arg: str | None) -> None:
        """Raise :class:`~sdpflow.errors.ClusterError` when a cluster that must already run cannot be
        reached (before anything is created or recorded); backends that start their cluster do nothing."""

    def worker_memory(self, config: ClusterConfig, arg: str | None) -> int | None:
        """Bytes of memory each worker may use, known before anything starts (None: not known here)."""
        return parse_memory(config.memory_limit) if config.memory_limit else None

    def expected_workers(self, cluster: Cluster | None, config: ClusterConfig, arg: str | None) -> int:
        """How many workers to wait for before work starts (0: do not wait)."""
        return 0

    def scale(self, cluster: Cluster, jobs: int, config: ClusterConfig) -> int:
        """Ask for a fixed number of jobs (batch) or workers; returns the workers to expect."""
        cluster.scale(jobs)
        return jobs

    def pending(self, cluster: Cluster) -> str:
        """Why workers have not arrived, in a few words ('' when the backend cannot tell)."""
        return ""


def parse_memory(text: str) -> int:
    """'4GiB', '4Gi', '2 GB' → bytes (Kubernetes' 'Gi'/'Mi' too)."""
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


#: Environment of every worker process sdpflow starts, set before the process starts (glibc
#: reads it once). Dask gives its workers MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's
#: mmap threshold at 128 KiB: every larger array is then mapped afresh and page-faulted in at
#: each allocation, and a gridding major cycle ran 13% slower in a worker than in a plain
#: process (1.39-1.65 s against 1.23-1.36 s per 3.9 M visibilities). 32 MiB, the ceiling of
#: glibc's own dynamic threshold, lets arrays up to that size reuse heap memory; Dask's
#: trimming stays.
WORKER_ENVIRONMENT: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}

#: Backend classes by spec name; modules are imported on first use.
_MODULES = {
    "local": "sdpflow.engine.backends.local",
    "address": "sdpflow.engine.backends.address",
    "slurm": "sdpflow.engine.backends.jobqueue",
    "pbs": "sdpflow.engine.backends.jobqueue",
    "ssh": "sdpflow.engine.backends.ssh",
    "kubernetes": "sdpflow.engine.backends.kubernetes",
}
BACKENDS: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available under its ``name``."""
    BACKENDS[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    """The names a cluster spec may start with."""
    return sorted(set(_MODULES) | set(BACKENDS))


def get_backend(name: str) -> Backend:
    """A fresh backend object for a spec name; :class:`ClusterSpecError` for an unknown name."""
    if name not in BACKENDS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    try:
        return BACKENDS[name]()
    except KeyError:
        known = ", ".join(n for n in backend_names() if n != "address")
        raise ClusterSpecError(
            f"unknown cluster spec {name!r}: use one of {known}, or tcp://host:port of a running scheduler"
        ) from None
