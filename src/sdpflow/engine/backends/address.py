"""``tcp://host:port``: a scheduler somebody else started (``dask scheduler``, a service)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdpflow.engine.backends import Backend, register
from sdpflow.errors import ClusterSpecError

if TYPE_CHECKING:
    from sdpflow.config.cluster import ClusterConfig


@register
class AddressBackend(Backend):
    """Connect only: sdpflow neither starts nor stops this scheduler and its workers."""

    name = "address"

    def check(self, config: ClusterConfig, arg: str | None) -> None:
        from urllib.parse import urlsplit

        try:
            port = urlsplit(str(arg)).port
        except ValueError:
            port = None
        if port is None:
            raise ClusterSpecError(f"scheduler address {arg!r} has no port: give it as tcp://HOST:PORT, e.g. "
                                   "tcp://head-node:8786")
        if str(arg).startswith("tls://") and not config.tls.ca_file:
            raise ClusterSpecError(f"scheduler address {arg} speaks TLS: give cluster.tls.ca_file, cert and key "
                                   "(PEM files of its CA and of a certificate it signed)")

    def start(self, config: ClusterConfig, arg: str | None) -> str:
        self.check(config, arg)
        return str(arg)

    def scale(self, cluster, jobs, config) -> int:
        return jobs
