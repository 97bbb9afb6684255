"""``slurm`` and ``pbs``: workers in batch jobs, through dask-jobqueue.

The scheduler runs in this process; each job runs ``processes`` workers. Workers get a
lifetime shorter than the walltime (staggered), so they drain and hand their results
back before the batch system kills them, and adaptive scaling starts replacements.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import dask

from sdpflow.engine.backends import WORKER_ENVIRONMENT, Backend, parse_memory, register
from sdpflow.errors import ClusterError, ConfigError

if TYPE_CHECKING:
    from distributed.deploy import Cluster

    from sdpflow.config.cluster import ClusterConfig


def walltime_seconds(walltime: str) -> int:
    """Seconds in a walltime written ``[D-]HH:MM:SS``, ``HH:MM:SS``, ``MM:SS`` or ``MM``."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", walltime.strip())
    if not match:
        raise ConfigError(f"cluster.cluster_kwargs.walltime {walltime!r}: write it as HH:MM:SS or D-HH:MM:SS")
    days, *parts = match.groups()
    numbers = [int(p) for p in parts if p is not None]
    if len(numbers) == 1:
        seconds = numbers[0] * 60
    elif len(numbers) == 2:
        seconds = numbers[0] * 60 + numbers[1] if days is None else numbers[0] * 3600 + numbers[1] * 60
    else:
        seconds = numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    return seconds + int(days or 0) * 86400


def lifetime_args(walltime: str, margin: float | None) -> list[str]:
    """``dask worker`` arguments that end a worker gracefully before its job's walltime.

    The lifetime is ``walltime - margin`` seconds, staggered by ``margin / 2`` so the
    workers of one batch do not all leave at once; ``margin`` defaults to 10% of the
    walltime, kept between 60 and 900 seconds.
    """
    total = walltime_seconds(walltime)
    if margin is None:
        margin = min(max(0.1 * total, 60.0), 900.0)
    lifetime = total - margin
    if lifetime < 30:
        raise ConfigError(
            f"cluster.cluster_kwargs.walltime {walltime!r} leaves no time to work after the "
            f"{margin:.0f} s drain margin: raise the walltime or lower lifetime_margin"
        )
    return ["--lifetime", f"{int(lifetime)}s", "--lifetime-stagger", f"{int(margin / 2)}s"]


def dask_env_lines(keys: tuple[str, ...] | None = None) -> list[str]:
    """``export DASK_...=value`` lines carrying this process's Dask settings to a job.

    ``keys`` default to the communication settings of the safe-scaling set, the ones that
    matter on the worker side (the scheduler's own process already has them all).
    """
    if keys is None:
        from sdpflow.engine.cluster import SAFE_SCALING  # the cluster module imports the backends

        keys = tuple(key for key in SAFE_SCALING if key.startswith("distributed.comm."))
    lines = []
    for key in keys:
        value = dask.config.get(key, None)
        if value is None:
            continue
        name = "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def worker_environment_lines() -> list[str]:
    """``export NAME=value`` lines for :data:`WORKER_ENVIRONMENT` (set before the worker starts)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in sorted(WORKER_ENVIRONMENT.items())]


def check_interface(interface: str | None) -> None:
    """:class:`ClusterError` when a network interface does not exist on this host."""
    if interface is None:
        return
    import psutil

    names = sorted(psutil.net_if_addrs())
    if interface not in names:
        raise ClusterError(
            f"network interface {interface!r} does not exist on this host (it has {', '.join(names)}): "
            "set cluster.cluster_kwargs.interface to one the compute nodes share, or leave it empty"
        )


class JobqueueBackend(Backend):
    """The part SLURM and PBS share; subclasses name the dask-jobqueue class."""

    batch = True
    cluster_class: str

    def start(self, config: ClusterConfig, arg: str | None) -> Cluster:
        try:
            import dask_jobqueue
        except ImportError:
            raise ClusterError(
                f"the {self.name} backend needs dask-jobqueue: pip install 'sdpflow[cluster]'"
            ) from None
        kw = config.cluster_kwargs
        check_interface(kw.interface)
        job_kwargs: dict[str, Any] = dict(
            cores=kw.cores,
            processes=kw.processes,
            memory=kw.memory,
            walltime=kw.walltime,
            queue=kw.queue,
            account=kw.account,
            job_extra_directives=list(kw.job_extra_directives),
            job_directives_skip=list(kw.job_directives_skip),
            job_script_prologue=dask_env_lines() + worker_environment_lines() + list(kw.job_script_prologue),
            local_directory=kw.local_directory,
            log_directory=kw.log_directory,
            interface=kw.interface,
            python=kw.python or sys.executable,
            worker_extra_args=lifetime_args(kw.walltime, kw.lifetime_margin) + list(kw.worker_extra_args),
            scheduler_options={"dashboard_address": config.dashboard_address},
        )
        from sdpflow.engine.security import configured_security

        security = configured_security(config)
        if security is not None:  # the workers read the same PEM files from the shared file system
            job_kwargs.update(security=security, protocol="tls://")
        cls = getattr(dask_jobqueue, self.cluster_class)
        try:
            cluster = cls(**{k: v for k, v in job_kwargs.items() if v is not None})
        except (ValueError, TypeError) as error:
            raise ConfigError(f"cluster.cluster_kwargs: {error}") from None
        try:
            self.preflight(cluster)
        except BaseException:
            cluster.close()
            raise
        jobs = self._fixed_jobs(config, arg)
        if jobs is not None:
            cluster.scale(jobs=jobs)
        else:
            a = config.adapt_kwargs
            cluster.adapt(
                minimum_jobs=a.minimum_jobs,
                maximum_jobs=a.maximum_jobs,
                wait_count=a.wait_count,
                interval=a.interval,
                target_duration=a.target_duration,
            )
        return cluster

    def preflight(self, cluster: Cluster) -> None:
        """Check the job script with the batch system before submitting jobs (when it can)."""

    def _fixed_jobs(self, config: ClusterConfig, arg: str | None) -> int | None:
        if arg:
            if not arg.isdigit():
                raise ClusterError(f"cluster spec '{self.name}:{arg}': give a number of jobs, e.g. {self.name}:4")
            return int(arg)
        return config.jobs

    def worker_memory(self, config: ClusterConfig, arg: str | None) -> int | None:
        """Each job's memory shared by its worker processes (as dask-jobqueue shares it)."""
        kw = config.cluster_kwargs
        return int(parse_memory(kw.memory) / kw.processes) if kw.memory else None

    def expected_workers(self, cluster, config, arg) -> int:
        jobs = self._fixed_jobs(config, arg)
        if jobs is None:
            jobs = config.adapt_kwargs.minimum_jobs
        return jobs * config.cluster_kwargs.processes

    def scale(self, cluster, jobs, config) -> int:
        cluster.scale(jobs=jobs)
        return jobs * config.cluster_kwargs.processes

    def job_ids(self, cluster: Cluster) -> list[str]:
        """Batch ids of the jobs this cluster submitted and still tracks."""
        return [str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)]


#: What sbatch prints when it cannot reach slurmctld (as opposed to rejecting the job).
CONTROLLER_UNREACHABLE = ("Unable to contact slurm controller", "Socket timed out", "Zero Bytes were transmitted")


@register
class SlurmBackend(JobqueueBackend):
    """SLURM jobs through ``dask_jobqueue.SLURMCluster``."""

    name = "slurm"
    cluster_class = "SLURMCluster"

    def preflight(self, cluster) -> None:
        """``sbatch --test-only`` the job script: a job SLURM would reject fails here, at once."""
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="sdpflow-job-") as script:
            script.write(cluster.job_script())
            script.flush()
            try:
                result = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True, text=True,
                                        timeout=30, check=False)
            except FileNotFoundError:
                raise ClusterError("sbatch not found: run sdpflow on a SLURM login node, or pick another --cluster") from None
            except subprocess.TimeoutExpired:
                raise ClusterError("sbatch --test-only did not answer in 30 s: is slurmctld up? (try `sinfo`)") from None
        if result.returncode != 0:
            why = [line.removeprefix("sbatch: error: ") for line in result.stderr.splitlines() if line.strip()]
            if any(sign in result.stderr for sign in CONTROLLER_UNREACHABLE):
                raise ClusterError(f"the SLURM controller does not answer ({'; '.join(why)}): is slurmctld up? "
                                   "Check with `scontrol ping` on this machine, or ask the site's administrators")
            raise ClusterError(f"SLURM rejects the worker job: {'; '.join(why) or 'no reason given'}; "
                               "fix cluster.cluster_kwargs (cores, memory, walltime, queue, account)")

    def pending(self, cluster) -> str:
        ids = self.job_ids(cluster)
        if not ids:
            return "no job was accepted; see the job logs (cluster.cluster_kwargs.log_directory)"
        try:
            out = subprocess.run(
                ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return f"jobs {', '.join(ids)} (squeue did not answer)"
        rows = [line.split(None, 2) for line in out.splitlines() if line.strip()]
        if not rows:
            return f"jobs {', '.join(ids)} ended without a worker joining; see their output files"
        return "; ".join(f"job {r[0]} {r[1]} ({r[2] if len(r) > 2 else '?'})" for r in rows)


@register
class PBSBackend(JobqueueBackend):
    """PBS/Torque jobs through ``dask_jobqueue.PBSCluster``."""

    name = "pbs"
    cluster_class = "PBSCluster"

    def pending(self, cluster) -> str:
        ids = self.job_ids(cluster)
        return f"PBS jobs {', '.join(ids)} not running yet (see qstat -f)" if ids else "no job was accepted"
