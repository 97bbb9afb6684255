"""Run-database URLs: the default, the accepted spellings, passwords kept out of sight."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sdpflow.errors import InputError


def default_db_url() -> str:
    """``$SDPFLOW_DB``, else SQLite in the user's data directory (``$XDG_DATA_HOME/sdpflow``)."""
    if url := os.environ.get("SDPFLOW_DB"):
        return url
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'sdpflow' / 'runs.db'}"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def normalise_url(url: str) -> str:
    """Accept plain paths and ``postgresql://`` URLs (driven by psycopg 3)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def url_has_password(url: str) -> bool:
    """Whether ``url`` carries a password (which ``ps`` shows to every user while a run lasts)."""
    try:
        return make_url(normalise_url(url)).password is not None
    except ArgumentError:
        return False


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set (for PostgreSQL URLs; SQLite has none)."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise InputError(f"run database URL {redact_url(url)!r} is not valid: use sqlite:///PATH or postgresql://...") from None
    return parsed.set(password=password).render_as_string(hide_password=False)


def read_password_file(path: str | Path, warn: Callable[[str], None] | None = None) -> str:
    """The password in ``path`` (its first line); the file should be readable by its owner only.

    ``warn`` receives the warning about a file others can read (default: this module's logger).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"--db-password-file {path}: {error.strerror}: give a readable file holding the password") from None
    except UnicodeDecodeError:
        raise InputError(f"--db-password-file {path} is not UTF-8 text: write the password on its first line") from None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = f"{path} can be read by other users: chmod 600 {path}"
        if warn is None:
            import logging

            logging.getLogger(__name__).warning("%s", message)
        else:
            warn(message)
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise InputError(f"--db-password-file {path} is empty: write the password on its first line")
    return password


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite ``url`` names when it does not exist (a reader should not create it); else None."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path
