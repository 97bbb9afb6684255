"""Where a pipeline runs: the ``cluster:`` section."""

from __future__ import annotations

from pydantic import Field

from sdpflow.config.base import Section


class ClusterConfig(Section):
    """Which Dask cluster to open. ``spec`` is what ``--cluster`` takes."""

    spec: str | None = Field(
        default=None,
        description="local, local:N, tcp://host:port (default: $SDPFLOW_SCHEDULER, else local)",
    )
    n_workers: int | None = Field(default=None, ge=1, description="local: worker processes (default: one per core)")
    threads_per_worker: int | None = Field(default=None, ge=1, description="local: threads per worker process")
