"""Serve the ``sdpflow ui`` application on 127.0.0.1 behind a token printed at start."""

from __future__ import annotations

import secrets
import socket
from typing import Callable

from sdpflow.errors import InputError
from sdpflow.store import RunStore
from sdpflow.store.urls import missing_sqlite_file, redact_url

#: Where the application listens: the loopback interface only (the run database holds paths, errors, hosts).
HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on ``HOST:port`` (0: any free port); InputError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise InputError(f"--port {port}: cannot listen on {HOST}:{port} ({error.strerror}): choose another port, "
                         "or --port 0 for any free one") from None
    sock.listen(128)
    return sock


def serve(db_url: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve the runs of the database at ``db_url`` until interrupted; ``announce`` gets the link with the token."""
    import uvicorn

    from sdpflow.ui.app import create_app

    missing = missing_sqlite_file(db_url)
    if missing is not None:
        raise InputError(f"no run database at {missing}: give --db the URL of one (sdpflow ui only reads it)")
    store = RunStore(db_url)
    token = secrets.token_urlsafe(24)
    sock = bind(port)
    link = f"http://{HOST}:{sock.getsockname()[1]}/?token={token}"
    config = uvicorn.Config(create_app(store, token), log_level="warning", access_log=False)
    announce(f"sdpflow ui over {redact_url(store.url)}: open {link}  (Ctrl-C stops it)")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.dispose()
