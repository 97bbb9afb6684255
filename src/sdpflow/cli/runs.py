"""``sdpflow runs``: list, show and resume the runs in the run database."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.table import Table

from sdpflow.cli.common import console, settings
from sdpflow.cli.progress import FlowProgress
from sdpflow.engine.manifest import entry_checksum
from sdpflow.errors import InputError
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
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many runs, newest first.")] = 20,
    pipeline: Annotated[Optional[str], typer.Option("--pipeline", help="Only runs of this pipeline.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the runs as JSON to this file "
                                                      "(bare --json or '-': standard output).")] = None,
) -> None:
    """The latest runs: id (with the pipeline's name), status, start, duration; `runs show` tells the rest."""
    from sdpflow.pipelines.run_records import run_record

    store = RunStore(settings(ctx).db_url)
    runs = store.list_runs(limit=limit, pipeline=pipeline)
    if json_path is not None:
        _write_json([run_record(run) for run in runs], json_path, f"{len(runs)} runs")
        return
    if not runs:
        console.print(f"no runs yet in {store.redacted_url}")
        return
    table = Table(title=f"runs in {store.redacted_url}")
    for column in ("run", "status", "started (UTC)", "duration"):
        table.add_column(column, no_wrap=True)
    colours = {"completed": "green", "failed": "red", "running": "yellow", "interrupted": "magenta", "stopped": "magenta"}
    from sdpflow.pipelines.runner import run_status

    for run in runs:
        status = run_status(run)
        status = f"[{colours.get(status, 'white')}]{status}[/]"
        table.add_row(run["id"], status, _when(run["started"]), _duration(run))
    console.print(table)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    table_name: Annotated[Optional[str], typer.Option("--table", help="Print this result table of the run.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="With --table: write it as CSV to this file ('-' for stdout).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the run (with --table: the table) as JSON "
                                                      "to this file (bare --json or '-': standard output).")] = None,
) -> None:
    """A run's record, its stages with their outputs and items, its products, configuration and science summary;
    or one of its result tables."""
    from sdpflow.pipelines.run_records import run_detail

    store = RunStore(settings(ctx).db_url)
    run = store.get_run(run_id)
    if table_name is not None:
        _show_table(store.result_rows(run["id"], table_name), table_name, csv_path, json_path)
        return
    if csv_path is not None:
        raise InputError("--csv exports a result table: give --table NAME too")
    detail = run_detail(store, run)
    if json_path is not None:
        _write_json(detail, json_path, f"run {run['id']}")
        return
    console.print(f"[bold]{run['id']}[/]  {run['pipeline']}  [bold]{run['status']}[/]")
    console.print(f"  started {_when(run['started'])} UTC, finished {_when(run['finished'])}, on {run['host']} by {run['user']}")
    console.print(f"  output {run['out_dir']}  cluster {run['cluster'] or '-'}  sdpflow {run['sdpflow_version']}")
    if run["error"]:
        console.print(f"  [red]error:[/] {run['error']}")
    counts = store.item_counts(run["id"])
    table = Table(title="stages")
    columns = ("stage", "status", "attempt", "started", "finished", *(("items",) if counts else ()), "outputs")
    for column in columns:
        table.add_column(column, overflow="fold")
    for stage in store.get_stages(run["id"]).values():
        outputs = ", ".join(f"{name} ({entry_checksum(value)[7:19]})" for name, value in (stage["outputs"] or {}).items()
                            if not name.startswith("@"))
        items = ", ".join(f"{count} {status}" for status, count in sorted(counts.get(stage["name"], {}).items()))
        table.add_row(stage["name"], stage["status"], str(stage["attempt"]), _when(stage["started"]),
                      _when(stage["finished"]), *((items or "-",) if counts else ()), outputs)
    console.print(table)
    for stage, by_status in counts.items():
        if by_status.get("failed"):
            failed = store.item_records(run["id"], stage, status="failed")
            console.print(f"[red]failed items of {stage}[/] ({len(failed)}):")
            for key, record in list(failed.items())[:FAILED_ITEMS_SHOWN]:
                console.print(f"  {key}: {record['error']}", highlight=False)
            if len(failed) > FAILED_ITEMS_SHOWN:
                console.print(f"  … and {len(failed) - FAILED_ITEMS_SHOWN} more")
    for title, values in (("configuration (secrets redacted)", detail["config"]), ("summary", detail["summary"])):
        if values:
            console.print(f"[bold]{title}[/]")
            console.print(textwrap.indent(yaml.safe_dump(values, sort_keys=False), "  "), end="", markup=False,
                          highlight=False, soft_wrap=True)


#: Failed items listed by `runs show` per stage.
FAILED_ITEMS_SHOWN = 20


def _show_table(rows: list[dict], name: str, csv_path: Path | None, json_path: Path | None) -> None:
    """Print a result table, or export it as CSV or JSON (``-``: standard output)."""
    import csv
    import io
    import json

    columns = list(rows[0]) if rows else []
    for path, kind in ((csv_path, "csv"), (json_path, "json")):
        if path is None:
            continue
        buffer = io.StringIO()
        if kind == "csv":
            writer = csv.DictWriter(buffer, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}
                             for row in rows)
        else:
            json.dump(rows, buffer, indent=1, default=str)
            buffer.write("\n")
        _write_text(buffer.getvalue(), path, f"{len(rows)} rows of {name}")
    if csv_path is None and json_path is None:
        view = Table(title=f"{name} ({len(rows)} rows)")
        for column in columns:
            view.add_column(column, overflow="fold")
        for row in rows[:ROWS_PRINTED]:
            view.add_row(*(str(value) for value in row.values()))
        console.print(view)
        if len(rows) > ROWS_PRINTED:
            console.print(f"… {len(rows) - ROWS_PRINTED} more rows: export them with --csv or --json")


def _write_json(value: object, path: Path, what: str) -> None:
    """``value`` as indented JSON to ``path`` (``-``: standard output)."""
    import json

    _write_text(json.dumps(value, indent=1, default=str) + "\n", path, what)


def _write_text(text: str, path: Path, what: str) -> None:
    """``text`` to ``path`` (``-``: standard output, alone, so that it can be piped); says what was written where."""
    import sys

    if str(path) == "-":
        sys.stdout.write(text)
        return
    try:
        path.write_text(text)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}: choose another file") from None
    console.print(f"{what} written to {path}")


#: Rows of a result table printed in the terminal (the rest: --csv / --json).
ROWS_PRINTED = 50


@runs_app.command("report")
def report(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file to write (default: run-report.html in the run's folder).")] = None,
) -> None:
    """Write a run's report: its pipeline's own section, then its stages, items and timelines (any pipeline)."""
    from sdpflow.pipelines import get_pipeline
    from sdpflow.report.html import run_section, write_report

    store = RunStore(settings(ctx).db_url)
    run = store.get_run(run_id)
    run_dir = Path(run["out_dir"])
    if not run_dir.is_dir():
        raise InputError(f"run {run['id']}: its output folder {run_dir} no longer exists")
    pipeline = get_pipeline(run["pipeline"])
    sections = [pipeline.report_section(run_dir)] if pipeline.report_section and run["status"] == "completed" else []
    sections.append(run_section(run_dir, store.item_counts(run["id"])))
    path = out or run_dir / "run-report.html"
    if path.is_dir() or not path.parent.is_dir():
        raise InputError(f"--out {path}: give a file in an existing folder, e.g. --out report.html")
    write_report(run_dir, path, sections, title=f"sdpflow run {run['id']}")
    console.print(f"report: {path.resolve()}")


@runs_app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    from_stage: Annotated[Optional[str], typer.Option("--from-stage", help="Rerun this stage and all after it.")] = None,
    until_stage: Annotated[Optional[str], typer.Option("--until-stage", help="Stop after this stage.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every recorded output (default: compare sizes and times).")] = False,
) -> None:
    """Continue a run: stages (and items) whose outputs, inputs, code and configuration are unchanged are skipped."""
    from sdpflow.pipelines import resume_run

    global_settings = settings(ctx)
    store = RunStore(global_settings.db_url)
    with FlowProgress(console) as progress:
        result = resume_run(
            run_id, store=store, cluster_spec=global_settings.cluster_spec, observers=[progress],
            from_stage=from_stage, until_stage=until_stage, verify=verify,
        )
    console.print(
        f"run [bold]{result.run_id}[/] completed: ran {', '.join(result.ran) or 'nothing'}; "
        f"skipped {', '.join(result.skipped) or 'nothing'}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
