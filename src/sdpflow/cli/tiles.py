"""``sdpflow tiles``: commands on a tiles run's output (``serve``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sdpflow.cli.common import console

tiles_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                        help="Web tiles: serve a tiles run's folder for its viewer.")


def serve(
    folder: Annotated[Path, typer.Argument(help="The output folder of `sdpflow run tiles` (or of `sdpflow demo tiles`: its tiles/).")],
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8000,
) -> None:
    """Serve a tiles run's folder on 127.0.0.1 and print the viewer's address; Ctrl-C stops it."""
    from sdpflow.pipelines.tiles.serve import tiles_server, viewer_url

    server = tiles_server(folder, port)
    console.print(f"viewer: {viewer_url(server)}", highlight=False, soft_wrap=True)
    console.print("serving on 127.0.0.1 only; Ctrl-C stops", highlight=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    tiles_app.command("serve")(serve)
    app.add_typer(tiles_app, name="tiles")
