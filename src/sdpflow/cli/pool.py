"""``sdpflow pool``: run a task pool described in YAML, and draw its timeline."""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sdpflow.cli.common import console, settings
from sdpflow.errors import ConfigError, StageFailed
from sdpflow.importing import import_object

pool_app = typer.Typer(help="Task pools: many executables and Python functions, each one recorded.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(pool_app, name="pool")


@pool_app.command("run")
def run(
    ctx: typer.Context,
    tasks: Annotated[Path, typer.Argument(help="YAML file describing the pool (see sdpflow.config.pool).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for events.jsonl (default: pool-NAME).")] = None,
    nodes: Annotated[Optional[int], typer.Option("--nodes", min=1, help="Local cluster: worker processes.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Local cluster: threads per worker.")] = None,
    container: Annotated[Optional[str], typer.Option("--container", help="Prefix of every command, e.g. 'apptainer exec img.sif'.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a folder that holds other files "
                                            "(they are kept; none is ever replaced).")] = False,
) -> None:
    """Run every task of TASKS; exit status 1 if any task did not finish."""
    from sdpflow.config.pool import load_pool_config
    from sdpflow.engine.outdir import OutputLock, claim_output_folder, refuse_foreign
    from sdpflow.engine.taskpool import TaskPool, summarise
    from sdpflow.store.db import RunStore

    options = settings(ctx)
    if options.verbose == 0:
        _quiet_dask()
    config = load_pool_config(tasks)
    for position, task in enumerate(config.tasks):  # before the output folder is made
        if task.function:
            _import(task.function, tasks, position)
    if config.cluster is not None or options.cluster_spec:
        from sdpflow.engine.cluster import check_reachable, check_spec

        check_spec(config.cluster, override=options.cluster_spec)
        check_reachable(config.cluster, override=options.cluster_spec)  # exit 3 before the folder is made
    out_dir = claim_output_folder(out or Path(f"pool-{config.name}"), writer="sdpflow pool run", overwrite=overwrite,
                                  writes=["events.jsonl"])
    events = out_dir / "events.jsonl"
    refuse_foreign(out_dir, [events.name])
    ctx.with_resource(OutputLock(out_dir))  # held to the command's end: two pools would interleave events.jsonl
    store = RunStore(options.db_url)
    pool = TaskPool(config.name, events=events, db=store, out_dir=out_dir, chunk_size=config.chunk_size or "auto")
    _add_tasks(pool, config, tasks)

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not progress, transient=False)
    with bar:
        handle = bar.add_task(config.name, total=len(pool))
        pool.on_progress = lambda done, total: bar.update(handle, completed=done)
        began = time.perf_counter()
        where = options.cluster_spec
        if config.cluster is not None:  # the pool file's cluster section, its spec replaced by --cluster
            where = config.cluster.model_copy(update={"spec": options.cluster_spec or config.cluster.spec})
        pool.submit(where, nodes=nodes or config.nodes, threads_per_worker=threads or config.threads_per_worker,
                    container=container or config.container)
        pool.finished()
        bar.update(handle, completed=len(pool))
    seconds = time.perf_counter() - began
    statuses = pool.statuses()
    counts = summarise(statuses.values())
    table = Table(title=f"pool {config.name}")
    table.add_column("status")
    table.add_column("tasks", justify="right")
    for status in ("finished", "failed", "timed-out", "cancelled"):
        if counts.get(status):
            table.add_row(status, str(counts[status]))
    table.add_row("all", str(len(statuses)), style="bold")
    console.print(table)
    failures = [(name, status) for name, status in statuses.items() if status != "finished"]
    if failures:
        details = {row["name"]: row["error"] for row in store.get_tasks(pool.run_id) if row["status"] != "finished"}
        for name, status in failures[:10]:
            console.print(f"  [red]{status}[/] {name}: {details.get(name) or ''}", highlight=False)
        if len(failures) > 10:
            console.print(f"  ... and {len(failures) - 10} more (see {events})")
    console.print(f"run {pool.run_id}: {len(statuses)} tasks in {seconds:.2f} s "
                  f"({len(statuses) / seconds:.0f} tasks/s); events: {events}", highlight=False)
    if failures:
        raise StageFailed(f"{len(failures)} of {len(statuses)} tasks of pool {config.name!r} did not finish")


def _quiet_dask() -> None:
    """Dask's INFO lines (set per logger by its config) would bury the progress bar."""
    import distributed  # noqa: F401 - configures its loggers on import

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.WARNING)


def _add_tasks(pool, config, source: Path) -> None:
    defaults = config.defaults
    for position, task in enumerate(config.tasks):
        count = task.repeat or 1
        target = _import(task.function, source, position) if task.function else None
        for i in range(count):
            name = task.name.replace("{i}", str(i)) if task.repeat else task.name
            if target is not None:
                pool.add_task(name, target, *task.args, nproc=task.nproc, kwargs=task.kwargs or None,
                              timeout=task.timeout)  # defaults apply to commands only
                continue
            words = shlex.split(task.command) if isinstance(task.command, str) else list(task.command)
            if task.repeat:
                words = [word.replace("{i}", str(i)) for word in words]
            sub = (lambda text: text.replace("{i}", str(i)) if text and task.repeat else text)
            pool.add_task(
                name, words[0], *words[1:], cwd=sub(task.cwd or defaults.cwd), env=task.env or defaults.env,
                timeout=task.timeout or defaults.timeout, nproc=task.nproc, stdout=sub(task.stdout), stderr=sub(task.stderr),
            )


def _import(spec: str, source: Path, position: int) -> Any:
    try:
        target = import_object(spec)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{source}: key 'tasks.{position}.function': cannot import {spec}: {error}") from None
    if not callable(target):
        raise ConfigError(f"{source}: key 'tasks.{position}.function': {spec} is not callable")
    return target


@pool_app.command("timeline")
def timeline(
    events: Annotated[Path, typer.Argument(help="events.jsonl of a pool.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output path without suffix (default: beside EVENTS).")] = None,
) -> None:
    """Draw a Gantt chart of a pool: OUT.png and OUT.html."""
    from sdpflow.report.timeline import draw_timeline

    png, page = draw_timeline(events, out or events.with_name(events.stem + "-timeline"))
    console.print(f"timeline: {png} and {page}")
