"""``sdpflow runs``: list, show and resume the runs in the run database."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.table import Table

from sdpflow.cli.common import console, settings
from sdpflow.cli.progress import FlowProgress
from sdpflow.store import RunStore

runs_app = typer.Typer(help="List, show and resume runs.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(run: dict) -> str:
    if not run.get("finished") or not run.get("started"):
        return "-"
    return f"{(run['finished'] - run['started']).total_seconds():.1f} s"


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    pipeline: Annotated[Optional[str], typer.Option("--pipeline", help="Only runs of this pipeline.")] = None,
) -> None:
    """The latest runs: id (with the pipeline's name), status, start, duration; `runs show` tells the rest."""
    store = RunStore(settings(ctx).db_url)
    runs = store.list_runs(limit=limit, pipeline=pipeline)
    if not runs:
        console.print(f"no runs yet in {store.redacted_url}")
        return
    table = Table(title=f"runs in {store.redacted_url}")
    for column in ("run", "status", "started (UTC)", "duration"):
        table.add_column(column, no_wrap=True)
    colours = {"completed": "green", "failed": "red", "running": "yellow", "interrupted": "magenta"}
    from sdpflow.pipelines.runner import is_stopped

    for run in runs:
        status = f"[{colours.get(run['status'], 'white')}]{run['status']}[/]"
        if is_stopped(run):
            status = "[magenta]stopped[/]"
        table.add_row(run["id"], status, _when(run["started"]), _duration(run))
    console.print(table)


@runs_app.command("show")
def show_run(ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]) -> None:
    """A run's record, its stages with their outputs, and its products."""
    store = RunStore(settings(ctx).db_url)
    run = store.get_run(run_id)
    console.print(f"[bold]{run['id']}[/]  {run['pipeline']}  [bold]{run['status']}[/]")
    console.print(f"  started {_when(run['started'])} UTC, finished {_when(run['finished'])}, on {run['host']} by {run['user']}")
    console.print(f"  output {run['out_dir']}  cluster {run['cluster'] or '-'}  sdpflow {run['sdpflow_version']}")
    if run["error"]:
        console.print(f"  [red]error:[/] {run['error']}")
    table = Table(title="stages")
    for column in ("stage", "status", "attempt", "started", "finished", "outputs"):
        table.add_column(column, overflow="fold")
    for stage in store.get_stages(run["id"]).values():
        outputs = ", ".join(f"{name} ({value[7:19]})" for name, value in (stage["outputs"] or {}).items())
        table.add_row(stage["name"], stage["status"], str(stage["attempt"]), _when(stage["started"]),
                      _when(stage["finished"]), outputs)
    console.print(table)


@runs_app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    from_stage: Annotated[Optional[str], typer.Option("--from-stage", help="Rerun this stage and all after it.")] = None,
    until_stage: Annotated[Optional[str], typer.Option("--until-stage", help="Stop after this stage.")] = None,
) -> None:
    """Continue a run: stages whose outputs, inputs and configuration are unchanged are skipped."""
    from sdpflow.pipelines import resume_run

    global_settings = settings(ctx)
    store = RunStore(global_settings.db_url)
    with FlowProgress(console) as progress:
        result = resume_run(
            run_id, store=store, cluster_spec=global_settings.cluster_spec, observers=[progress],
            from_stage=from_stage, until_stage=until_stage,
        )
    console.print(
        f"run [bold]{result.run_id}[/] completed: ran {', '.join(result.ran) or 'nothing'}; "
        f"skipped {', '.join(result.skipped) or 'nothing'}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
