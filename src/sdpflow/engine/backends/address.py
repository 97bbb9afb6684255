"""``tcp://host:port``: a scheduler somebody else started (``dask scheduler``, a service)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdpflow.engine.backends import Backend, register
from sdpflow.errors import ClusterError, ClusterSpecError

if TYPE_CHECKING:
    from sdpflow.config.cluster import ClusterConfig


#: The longest a run waits to learn that its scheduler cannot be reached.
MAX_REACH_S = 10.0


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

    def reach(self, config: ClusterConfig, arg: str | None) -> None:
        """A TCP connection to the scheduler's port within ``cluster.connect_timeout`` (at most 10 s)."""
        import socket
        from urllib.parse import urlsplit

        self.check(config, arg)
        address = urlsplit(str(arg))
        timeout = min(config.connect_timeout, MAX_REACH_S)
        try:
            socket.create_connection((address.hostname, address.port), timeout=timeout).close()
        except OSError as error:
            reason = f"no answer within {timeout:g} s" if isinstance(error, TimeoutError) else \
                (error.strerror or type(error).__name__)
            raise ClusterError(f"cannot reach the Dask scheduler at {arg} ({reason}): start it (`dask scheduler`) "
                               "or fix --cluster / $SDPFLOW_SCHEDULER") from None

    def start(self, config: ClusterConfig, arg: str | None) -> str:
        self.check(config, arg)
        return str(arg)

    def scale(self, cluster, jobs, config) -> int:
        return jobs
