"""``ssh``: a scheduler and workers started over SSH on a list of hosts (distributed's SSHCluster)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdpflow.engine.backends import Backend, register
from sdpflow.errors import ClusterError, ConfigError

if TYPE_CHECKING:
    from distributed.deploy import Cluster

    from sdpflow.config.cluster import ClusterConfig, SSHConfig


def read_hostfile(path: str | Path) -> list[str]:
    """Host names in a hostfile: one per line, blank lines and ``#`` comments ignored.

    A line may say ``host slots=N`` (as MPI hostfiles do); only the host is kept.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cluster.ssh.hostfile {path} cannot be read: {error.strerror}") from None
    hosts = [line.split("#", 1)[0].split()[0] for line in text.splitlines() if line.split("#", 1)[0].strip()]
    if not hosts:
        raise ConfigError(f"cluster.ssh.hostfile {path} names no host: write one host name per line")
    return hosts


def ssh_hosts(ssh: SSHConfig, arg: str | None) -> list[str]:
    """The hosts to use: ``ssh:a,b`` from the spec, else ``ssh.hosts``, else ``ssh.hostfile``."""
    if arg:
        return [h for h in arg.split(",") if h]
    if ssh.hosts:
        return list(ssh.hosts)
    if ssh.hostfile:
        return read_hostfile(ssh.hostfile)
    raise ConfigError("cluster spec 'ssh' needs hosts: set cluster.ssh.hosts or cluster.ssh.hostfile, or use ssh:host1,host2")


def connect_options(ssh: SSHConfig) -> dict[str, Any]:
    """Keywords for ``asyncssh.connect`` from the ``ssh`` section."""
    options: dict[str, Any] = {"port": ssh.port}
    if ssh.username:
        options["username"] = ssh.username
    if ssh.key_file:
        options["client_keys"] = [os.path.expanduser(ssh.key_file)]
    if ssh.known_hosts:
        options["known_hosts"] = os.path.expanduser(ssh.known_hosts)
    return options


@register
class SSHBackend(Backend):
    """The first host runs the scheduler; every host runs ``workers_per_host`` workers."""

    name = "ssh"

    def start(self, config: ClusterConfig, arg: str | None) -> Cluster:
        from distributed import SSHCluster

        ssh = config.ssh
        hosts = ssh_hosts(ssh, arg)
        worker_options: dict[str, Any] = {"n_workers": ssh.workers_per_host, "nthreads": ssh.threads_per_worker}
        if config.memory_limit:
            worker_options["memory_limit"] = config.memory_limit
        try:
            return SSHCluster(
                hosts=[hosts[0], *hosts],
                connect_options=connect_options(ssh),
                worker_options=worker_options,
                scheduler_options={"port": ssh.scheduler_port, "dashboard_address": config.dashboard_address},
                remote_python=ssh.remote_python,
            )
        except Exception as error:  # asyncssh and OSError subclasses, and errors from the remote side
            raise ClusterError(
                f"cannot start Dask over SSH on {', '.join(hosts)} port {ssh.port}: "
                f"{type(error).__name__}: {error}; check `ssh -p {ssh.port} {hosts[0]} true` works without a "
                "password and the hosts have sdpflow's python (cluster.ssh.remote_python)"
            ) from None

    def expected_workers(self, cluster, config, arg) -> int:
        return len(ssh_hosts(config.ssh, arg)) * config.ssh.workers_per_host

    def scale(self, cluster, jobs, config) -> int:
        return len(cluster.workers) * config.ssh.workers_per_host
