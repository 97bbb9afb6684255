"""Where a pipeline runs: the ``cluster:`` section.

``spec`` picks the backend (what ``--cluster`` takes); the sub-sections configure the
backends that need more than a name: ``cluster_kwargs``/``adapt_kwargs`` for batch
schedulers (SLURM, PBS, through dask-jobqueue), ``ssh`` and ``kubernetes``. Sizes are
Dask strings (``"4GiB"``), durations are seconds unless the field says otherwise.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sdpflow.config.base import Section


class BatchJobConfig(Section):
    """One batch job of Dask workers (dask-jobqueue's cluster keywords)."""

    cores: int = Field(default=1, ge=1, description="cores per job (threads split over its processes)")
    processes: int = Field(default=1, ge=1, description="worker processes per job")
    memory: str = Field(default="2GiB", description="memory per job; each worker gets memory/processes")
    walltime: str = Field(default="01:00:00", description="job walltime, [[D-]HH:]MM:SS")
    queue: str | None = Field(default=None, description="partition (SLURM) or queue (PBS)")
    account: str | None = Field(default=None, description="account charged for the jobs")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH/#PBS lines")
    job_directives_skip: list[str] = Field(default_factory=list, description="default directives to leave out")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker")
    local_directory: str | None = Field(default=None, description="worker scratch space, e.g. $TMPDIR")
    log_directory: str | None = Field(default=None, description="where job output files go")
    interface: str | None = Field(default=None, description="network interface of scheduler and workers, e.g. ib0")
    python: str | None = Field(default=None, description="worker python (default: the one running sdpflow)")
    worker_extra_args: list[str] = Field(default_factory=list, description="extra `dask worker` arguments")
    lifetime_margin: float | None = Field(
        default=None,
        ge=0,
        description="seconds before the walltime at which a worker drains and leaves "
        "(default: 10% of the walltime, between 60 and 900); lifetimes are staggered by half of it",
    )


class AdaptConfig(Section):
    """Adaptive scaling of batch jobs between ``minimum_jobs`` and ``maximum_jobs``."""

    minimum_jobs: int = Field(default=0, ge=0, description="jobs kept even when idle")
    maximum_jobs: int = Field(default=4, ge=1, description="jobs at most")
    wait_count: int = Field(default=10, ge=1, description="idle checks in a row before a worker is retired")
    interval: str = Field(default="10s", description="time between scaling decisions")
    target_duration: str = Field(default="60s", description="aim to finish the queued work in this time")


class SSHConfig(Section):
    """Workers started over SSH: the first host also runs the scheduler."""

    hosts: list[str] = Field(default_factory=list, description="host names; the first runs the scheduler")
    hostfile: str | None = Field(default=None, description="file with one host per line (# comments)")
    workers_per_host: int = Field(default=1, ge=1, description="worker processes on each host")
    threads_per_worker: int = Field(default=1, ge=1, description="threads of each worker")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    username: str | None = Field(default=None, description="SSH user (default: as ~/.ssh/config says)")
    key_file: str | None = Field(default=None, description="private key (default: the SSH agent and ~/.ssh)")
    known_hosts: str | None = Field(default=None, description="known_hosts file (default: ~/.ssh/known_hosts)")
    remote_python: str | None = Field(default=None, description="python on the hosts (default: this one's path)")
    scheduler_port: int = Field(default=0, ge=0, le=65535, description="scheduler port (0: any free one)")


class KubernetesConfig(Section):
    """A Dask cluster made by the Dask Kubernetes operator (``dask-kubernetes`` extra)."""

    name: str = Field(default="sdpflow", description="DaskCluster resource name")
    namespace: str | None = Field(default=None, description="namespace (default: the context's)")
    image: str | None = Field(default=None, description="container image (default: sdpflow's of this version)")
    n_workers: int = Field(default=2, ge=0, description="worker pods")
    cpu: str = Field(default="1", description="CPU request and limit of a worker, e.g. '2' or '500m'")
    memory: str = Field(default="4Gi", description="memory request and limit of a worker")
    pvc: str | None = Field(default=None, description="PersistentVolumeClaim mounted in every pod for outputs")
    mount_path: str = Field(default="/data", description="where the volume is mounted")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment of every pod")


class TLSConfig(Section):
    """TLS for a scheduler sdpflow connects to or starts as a batch job: PEM files on storage the workers share."""

    ca_file: str | None = Field(default=None, description="CA certificate that signed every certificate below")
    cert: str | None = Field(default=None, description="certificate of this client and of the workers")
    key: str | None = Field(default=None, description="private key of that certificate (readable by you only)")


class ClusterConfig(Section):
    """Which Dask cluster to open. ``spec`` is what ``--cluster`` takes."""

    spec: str | None = Field(
        default=None,
        description="local, local:N, tcp://host:port, slurm[:JOBS], pbs[:JOBS], ssh[:HOST,HOST...], kubernetes "
        "(default: $SDPFLOW_SCHEDULER, else local)",
    )
    n_workers: int | None = Field(default=None, ge=1, description="local: worker processes (default: one per core)")
    threads_per_worker: int | None = Field(default=None, ge=1, description="local: threads per worker process")
    memory_limit: str | None = Field(
        default=None,
        description="local: memory budget of each worker, e.g. '4GiB' (default: the machine's, shared out); "
        "batch backends derive it from cluster_kwargs.memory / processes",
    )
    dashboard_address: str = Field(default="127.0.0.1:0", description="where a started scheduler serves its dashboard")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to reach a scheduler before giving up")
    start_timeout: float = Field(
        default=300.0, gt=0, description="seconds to wait for the first workers (e.g. jobs pending in the queue)"
    )
    jobs: int | None = Field(default=None, ge=0, description="slurm/pbs: a fixed number of jobs instead of adapting")
    cluster_kwargs: BatchJobConfig = Field(default_factory=BatchJobConfig)
    adapt_kwargs: AdaptConfig = Field(default_factory=AdaptConfig)
    safe_scaling: bool = Field(
        default=True,
        description="apply the scheduler settings that keep finished work from being recomputed under scaling",
    )
    dask_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Dask settings by dotted key (distributed.scheduler.worker-ttl: 1h); they win over safe_scaling",
    )
    local_tls: bool = Field(
        default=True,
        description="local: encrypt and authenticate the cluster with credentials made for this run only, so no "
        "other user of the machine can connect to its scheduler",
    )
    tls: TLSConfig = Field(default_factory=TLSConfig)
    ssh: SSHConfig = Field(default_factory=SSHConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
