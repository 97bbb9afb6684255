"""Open a Dask client from a cluster spec (interim: local and tcp:// only)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from distributed import Client, LocalCluster

from sdpflow.config.cluster import ClusterConfig
from sdpflow.errors import ClusterError


@contextmanager
def open_cluster(spec: str | ClusterConfig | None = None) -> Iterator[Client]:
    config = spec if isinstance(spec, ClusterConfig) else ClusterConfig(spec=spec)
    target = config.spec or os.environ.get("SDPFLOW_SCHEDULER") or "local"
    if target.startswith("tcp://"):
        try:
            client = Client(target, timeout="10s")
        except OSError as error:
            raise ClusterError(f"cannot reach Dask scheduler {target}: {error}") from None
        with client:
            yield client
        return
    n_workers = config.n_workers or (int(target.split(":")[1]) if ":" in target else os.cpu_count() or 1)
    with LocalCluster(n_workers=n_workers, threads_per_worker=config.threads_per_worker or 1,
                      dashboard_address="127.0.0.1:0", processes=True) as cluster, Client(cluster) as client:
        yield client
