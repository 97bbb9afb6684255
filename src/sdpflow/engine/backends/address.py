"""``tcp://host:port``: a scheduler somebody else started (``dask scheduler``, a service)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdpflow.engine.backends import Backend, register

if TYPE_CHECKING:
    from sdpflow.config.cluster import ClusterConfig


@register
class AddressBackend(Backend):
    """Connect only: sdpflow neither starts nor stops this scheduler and its workers."""

    name = "address"

    def start(self, config: ClusterConfig, arg: str | None) -> str:
        return str(arg)

    def scale(self, cluster, jobs, config) -> int:
        return jobs
