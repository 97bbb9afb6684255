"""sdpflow's lines on stderr: ``error: …``, ``warning: …``, for its own messages and every log record,
in the command's process and in the worker processes it starts; and how much Dask logs (no Dask
import here: the CLI starts fast)."""

from __future__ import annotations

import logging
import os


class LogLines(logging.Formatter):
    """Log records as sdpflow writes its own lines on stderr: ``warning: …``, ``error: …``, ``info: …``,
    every line of a record so prefixed; another library's records name their logger, e.g.
    ``warning: [distributed.client] …``."""

    def format(self, record: logging.LogRecord) -> str:
        level = "error" if record.levelno >= logging.ERROR else record.levelname.lower()
        source = "" if record.name.split(".")[0] in ("sdpflow", "root", "py") else f"[{record.name}] "
        text = super().format(record)
        return "\n".join(f"{level}: {source}{line}" if n == 0 else f"{level}:   {line}"
                         for n, line in enumerate(text.splitlines() or [""]))


def log_to_stderr(level: int) -> None:
    """Route every log record and Python warning to stderr through :class:`LogLines`."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogLines("%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def format_worker_logs() -> None:
    """In a worker process: its log records (sdpflow's own, e.g. flagged samples) as ``warning: …``
    lines, not Python's bare last-resort lines. Only where no handler is installed yet (a process
    that logs somewhere already, such as the command's own or a test's, keeps its handlers)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(LogLines("%(message)s"))
    root.addHandler(handler)


def set_dask_logging(verbose: int = 0) -> None:
    """Dask's own logging for this process and the workers it starts: critical only (0), warnings (1), info (2).

    Dask logs every worker start and stop at INFO and a failed task's traceback at ERROR; sdpflow
    reports the failure itself. The environment variable reaches worker processes started from here;
    one the user set is kept.
    """
    level = ("critical", "warning", "info")[min(max(verbose, 0), 2)]
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level)
    logging.getLogger("distributed").setLevel(level.upper())
