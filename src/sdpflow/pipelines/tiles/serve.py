"""``sdpflow tiles serve DIR``: a tiles run's folder over HTTP on 127.0.0.1, for the viewer.

A browser opens ``viewer/index.html`` from ``file://`` too, but some refuse to load the tiles
from there; this serves the folder as it is (read-only, plain files, this machine only).
"""

from __future__ import annotations

import errno
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sdpflow.engine.outdir import read_marker
from sdpflow.errors import InputError

#: Where the server listens: this machine only.
HOST = "127.0.0.1"


def check_tiles_folder(folder: str | Path) -> Path:
    """``folder`` resolved, when it is the output of a tiles run (the viewer and TileJSON written); else InputError."""
    path = Path(folder).resolve()
    if not (path / "viewer" / "index.html").is_file() or not (path / "tilejson").is_dir() or read_marker(path) is None:
        raise InputError(f"{folder} is not the output folder of a finished tiles run (no viewer/index.html and "
                         "tilejson/ written by sdpflow): give the --out folder of `sdpflow run tiles`")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    """Files of one folder; no request log on stderr."""

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass


def tiles_server(folder: str | Path, port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server of a tiles run's folder on 127.0.0.1:``port`` (0: a free port); call ``serve_forever()``."""
    path = check_tiles_folder(folder)
    handler = functools.partial(_QuietHandler, directory=str(path))
    try:
        return ThreadingHTTPServer((HOST, port), handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {HOST} is in use: choose another with --port (0: any free port)") from None
        raise


def viewer_url(server: ThreadingHTTPServer) -> str:
    """The viewer's address on a running :func:`tiles_server`."""
    return f"http://{HOST}:{server.server_address[1]}/viewer/index.html"
