"""``sdpflow ui``: a local, read-only web view of the run database."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sdpflow.cli.common import console, settings
from sdpflow.errors import InputError
from sdpflow.store.urls import default_db_url

#: The port ``sdpflow ui`` listens on unless told otherwise.
DEFAULT_PORT = 8780


def ui(
    ctx: typer.Context,
    db: Annotated[Optional[str], typer.Option("--db", help="Run database URL (default: the global --db, "
                                              "$SDPFLOW_DB, else your own).")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = DEFAULT_PORT,
) -> None:
    """Serve a read-only web page of the runs (stages, items, events, live progress, reports, products) on
    127.0.0.1; open the link it prints (it carries a token: other requests get 403)."""
    try:
        from sdpflow.ui.server import serve
    except ModuleNotFoundError as error:
        raise InputError(f"sdpflow ui needs the [ui] extra ({error.name} is missing): pip install 'sdpflow[ui]'") from None
    serve(db or settings(ctx).db_url or default_db_url(), port,
          announce=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
