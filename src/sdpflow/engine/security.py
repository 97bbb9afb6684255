"""Who may connect to a cluster: TLS credentials for the schedulers sdpflow starts or joins.

A local cluster gets credentials made for the run (``distributed.Security.temporary()``): its
scheduler and workers listen on ``tls://`` and accept only the run's own client, so another
user of the machine cannot connect and run code as you. A scheduler elsewhere (an address, a
batch job's) uses ``cluster.tls``: PEM files of a CA, and a certificate and key it signed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sdpflow.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Security

    from sdpflow.config.cluster import ClusterConfig


def configured_security(config: ClusterConfig) -> Security | None:
    """The ``Security`` of ``cluster.tls`` (None when no CA is configured)."""
    tls = config.tls
    if not (tls.ca_file or tls.cert or tls.key):
        return None
    missing = [name for name in ("ca_file", "cert", "key") if not getattr(tls, name)]
    if missing:
        raise ConfigError(f"cluster.tls: give ca_file, cert and key together ({', '.join(missing)} missing)")
    for name in ("ca_file", "cert", "key"):
        if not Path(getattr(tls, name)).is_file():
            raise ConfigError(f"cluster.tls.{name}: {getattr(tls, name)} is not a file")
    from distributed import Security

    return Security(tls_ca_file=tls.ca_file, tls_client_cert=tls.cert, tls_client_key=tls.key,
                    tls_worker_cert=tls.cert, tls_worker_key=tls.key, tls_scheduler_cert=tls.cert,
                    tls_scheduler_key=tls.key, require_encryption=True)


def local_security(config: ClusterConfig) -> Security | None:
    """Credentials for a local cluster: ``cluster.tls`` when given, else made for this run (``local_tls``)."""
    configured = configured_security(config)
    if configured is not None or not config.local_tls:
        return configured
    from distributed import Security

    return Security.temporary()
