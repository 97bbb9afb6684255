"""The ``sdpflow`` command line: parse, validate, call a pipeline or the engine, render.

Subcommands are grouped by topic, one module each; every module registers its commands on
``app`` (or a sub-app) when imported below. Errors a user can fix arrive as
:class:`sdpflow.errors.SdpflowError` and are printed here, once, as one line.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sdpflow import __version__
from sdpflow.cli.common import Settings, console, err_console
from sdpflow.loglines import log_to_stderr, set_dask_logging
from sdpflow.errors import SdpflowError
from sdpflow.store.urls import default_db_url, read_password_file, url_has_password, with_password

app = typer.Typer(
    name="sdpflow",
    help="Science data-processing pipelines on Dask, from a laptop to a cluster.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"sdpflow {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: Annotated[
        Optional[str],
        typer.Option("--db", envvar="SDPFLOW_DB", help="Run database URL (sqlite:///path or postgresql://...)."),
    ] = None,
    cluster: Annotated[
        Optional[str],
        typer.Option(
            "--cluster",
            envvar="SDPFLOW_CLUSTER",
            help="Where to run: local, local:N, tcp://host:port, slurm, pbs, ssh, kubernetes. "
            "Default: $SDPFLOW_SCHEDULER if set, else local.",
        ),
    ] = None,
    db_password_file: Annotated[
        Optional[Path],
        typer.Option("--db-password-file", help="File holding the run database's password (instead of the URL; "
                     "PGPASSWORD and ~/.pgpass work too)."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output; -v shows tracebacks.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if db and "--db" in " ".join(sys.argv) and url_has_password(db):
        err_console.print("[yellow]warning:[/] the password in --db is visible to other users of this machine "
                          "(ps): use SDPFLOW_DB, PGPASSWORD, ~/.pgpass or --db-password-file", highlight=False,
                          soft_wrap=True)
    if db_password_file is not None:
        password = read_password_file(db_password_file, warn=lambda message: err_console.print(
            f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True))
        db = with_password(db or default_db_url(), password)
    ctx.obj = Settings(db_url=db, cluster_spec=cluster, verbose=verbose)
    set_dask_logging(verbose)  # Dask's warnings with -v, its info with -vv
    log_to_stderr(logging.WARNING - 10 * min(verbose, 2))  # "warning: ..." lines, as sdpflow's own


# Each module registers its commands on ``app``; the order here is the order in --help.
from sdpflow.cli import demo as _demo  # noqa: E402
from sdpflow.cli import simulate as _simulate  # noqa: E402
from sdpflow.cli import run as _run  # noqa: E402
from sdpflow.cli import runs as _runs  # noqa: E402
from sdpflow.cli import config as _config  # noqa: E402
from sdpflow.cli import pool as _pool  # noqa: E402
from sdpflow.cli import cluster as _cluster  # noqa: E402
from sdpflow.cli import polarimetry as _polarimetry  # noqa: E402
from sdpflow.cli import tiles as _tiles  # noqa: E402
from sdpflow.cli import ui as _ui  # noqa: E402

for _module in (_demo, _simulate, _run, _runs, _config, _pool, _cluster, _polarimetry, _tiles, _ui):
    _module.register(app)


#: Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT).
EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point of the ``sdpflow`` console script."""
    verbose = any(arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}) for arg in sys.argv[1:])
    try:
        from sdpflow.cli.options import accept_single_dash, fill_optional_values, join_two_word_options

        args = accept_single_dash(typer.main.get_command(app), fill_optional_values(sys.argv[1:]),
                                  lambda line: err_console.print(line, highlight=False, soft_wrap=True, markup=False))
        sys.exit(_run_app(join_two_word_options(args)))
    except SystemExit as stop:
        if stop.code == EXIT_INTERRUPTED:
            # Everything the run started is closed and recorded by now; tearing down the
            # interpreter (numba, astropy, Dask objects) took 5-15 s more on a loaded machine.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise
    except SdpflowError as error:
        if verbose:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)


def _run_app(args: list[str]) -> int:
    """Run the command line; a usage error (bad option value, unknown option) is one line, exit 2, like ours."""
    from rich.markup import escape

    try:  # typer >= 0.24 carries its own copy of click, whose exceptions it raises
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as click

    try:
        code = app(args=args, prog_name="sdpflow", standalone_mode=False)
    except click.NoArgsIsHelpError as help_wanted:
        from typer import rich_utils

        rich_utils.rich_format_error(help_wanted)  # the help, as typer shows it (exit 2)
        return help_wanted.exit_code
    except click.ClickException as error:
        where = getattr(error, "ctx", None)
        hint = f" (see '{where.command_path} --help')" if where is not None else ""
        err_console.print(f"[bold red]error:[/] {escape(error.format_message())}{escape(hint)}",
                          highlight=False, soft_wrap=True)
        return error.exit_code
    except typer.Abort:
        err_console.print("[bold red]error:[/] aborted", highlight=False)
        return 1
    return code if isinstance(code, int) else 0
