"""``local`` and ``local:N``: a LocalCluster of worker processes on this machine."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sdpflow.engine.backends import Backend, register
from sdpflow.errors import ClusterSpecError

if TYPE_CHECKING:
    from distributed import LocalCluster

    from sdpflow.config.cluster import ClusterConfig


def max_local_workers() -> int:
    """The most worker processes ``local:N`` starts: 16 per core (at least 64); more is a typo, not a plan."""
    return max(64, 16 * (os.cpu_count() or 1))


@register
class LocalBackend(Backend):
    """Worker processes on this machine, sized to it unless the config says otherwise."""

    name = "local"

    def check(self, config: ClusterConfig, arg: str | None) -> None:
        if arg is not None and (not arg.isdigit() or int(arg) < 1):
            raise ClusterSpecError(f"cluster spec 'local:{arg}': give a number of workers of at least 1, e.g. local:4")
        n_workers = int(arg) if arg is not None else config.n_workers
        if n_workers is not None and n_workers > max_local_workers():
            where = f"cluster spec 'local:{arg}'" if arg is not None else f"cluster.n_workers {n_workers}"
            raise ClusterSpecError(f"{where}: {n_workers} worker processes on a machine of {os.cpu_count()} cores "
                                   f"would not start; give at most {max_local_workers()}")

    def worker_memory(self, config: ClusterConfig, arg: str | None) -> int | None:
        """``cluster.memory_limit``, else this machine's memory (or its cgroup's) shared out as
        LocalCluster shares it: in proportion to each worker's threads."""
        if config.memory_limit:
            return super().worker_memory(config, arg)
        from distributed.deploy.utils import nprocesses_nthreads
        from distributed.system import MEMORY_LIMIT

        cores = os.cpu_count() or 1
        n_workers = int(arg) if arg else config.n_workers
        if n_workers is None:
            n_workers, threads = nprocesses_nthreads(cores)
        threads = config.threads_per_worker or max(1, cores // n_workers)
        return int(MEMORY_LIMIT * min(1.0, threads / cores))

    def start(self, config: ClusterConfig, arg: str | None) -> LocalCluster:
        from distributed import LocalCluster

        self.check(config, arg)
        n_workers = int(arg) if arg else config.n_workers
        # Bound to the loopback interface: a laptop's scheduler and dashboard stay private.
        from sdpflow.engine.security import local_security

        return LocalCluster(
            security=local_security(config),
            n_workers=n_workers,
            threads_per_worker=config.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address=config.dashboard_address,
            memory_limit=config.memory_limit or "auto",
        )

    def expected_workers(self, cluster, config, arg) -> int:
        return len(cluster.workers) if cluster is not None else 0
