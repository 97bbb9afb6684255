"""``sdpflow cluster check SPEC``: start a cluster, run a probe on every worker, shut it down."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Optional

import typer
from rich.table import Table

from sdpflow.cli.common import console, settings
from sdpflow.config.cluster import ClusterConfig
from sdpflow.errors import ClusterError

cluster_app = typer.Typer(help="Check the clusters sdpflow can run on.", no_args_is_help=True)


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes else "unlimited"


@cluster_app.command("check")
def check(
    ctx: typer.Context,
    spec: Annotated[
        Optional[str],
        typer.Argument(help="local, local:N, tcp://host:port, slurm, pbs, ssh[:HOSTS], kubernetes (default: --cluster)."),
    ] = None,
    config_file: Annotated[
        Optional[str], typer.Option("--config", "-c", help="YAML file whose cluster: section configures the backend.")
    ] = None,
    overrides: Annotated[
        Optional[list[str]], typer.Option("--set", help="cluster key=value, e.g. cluster_kwargs.queue=debug.")
    ] = None,
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", min=1, help="Batch jobs (slurm, pbs) to start for the check.")
    ] = None,
    timeout: Annotated[
        Optional[float], typer.Option("--timeout", min=1, help="Seconds to wait for workers (default: cluster.start_timeout).")
    ] = None,
) -> None:
    """Start the cluster, run a probe on every worker, print them and the dashboard link, shut it down.

    Fails fast with one line (exit 3) when the scheduler is unreachable, the network interface
    is wrong or jobs stay pending past the timeout.
    """
    from sdpflow.engine.cluster import cluster_session, probe_workers

    if settings(ctx).verbose == 0:  # distributed logs every worker's arrival at INFO
        logging.getLogger("distributed").setLevel(logging.WARNING)
    config = _load(config_file, overrides or [])
    if timeout is not None:
        config.start_timeout = timeout
    override = spec or settings(ctx).cluster_spec
    start = time.monotonic()
    with cluster_session(config, override=override, wait=jobs is None,
                         on_dashboard=lambda link: console.print(f"dashboard: {link}")) as session:
        if jobs is not None:
            session.wait(session.scale(jobs))
        probes = probe_workers(session.client)
        if not probes:
            raise ClusterError(f"{session.config.spec}: the scheduler has no workers; start some or use a spec "
                               "that starts them (local, slurm --jobs N, ssh)")
        table = Table(title=f"{session.config.spec}: {len(probes)} workers")
        for column in ("worker", "host", "pid", "threads", "memory"):
            table.add_column(column)
        for p in probes:
            table.add_row(p.address, p.host, str(p.pid), str(p.nthreads), _gib(p.memory_limit))
        console.print(table)
        threads = sum(p.nthreads for p in probes)
        memory = sum(p.memory_limit for p in probes)
        console.print(f"workers: {len(probes)}  threads: {threads}  memory: {_gib(memory)}  "
                      f"ready in {time.monotonic() - start:.1f} s")
    console.print("ok: cluster shut down" if session.started else "ok: left the running scheduler as it was")


def _load(path: str | None, overrides: list[str]) -> ClusterConfig:
    """The cluster section of a YAML file (its ``cluster:`` key, or the whole file), with overrides."""
    from sdpflow.config import load_config

    return load_config(ClusterConfig, path, overrides, section="cluster")


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")
