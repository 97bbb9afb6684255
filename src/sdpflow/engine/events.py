"""JSON-lines event logs, safe to append to from many processes at once.

Each record is one line written with a single ``write`` on a file opened with ``O_APPEND``;
POSIX makes such appends atomic with respect to each other on a local file system, so
lines from concurrent writers never interleave. Every record is flushed as it is written.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator


def utc_now() -> str:
    """The current time as ISO-8601 UTC with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class EventLog:
    """An append-only JSON-lines file; one record per line.

    Opening is cheap and the file descriptor is kept, so writing a record costs one
    ``json.dumps`` and one ``os.write``. Records get a ``time`` field if they lack one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        record.setdefault("time", utc_now())
        os.write(self._fd, (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode())

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records in one write."""
        if not records:
            return
        now = utc_now()
        lines = []
        for record in records:
            record.setdefault("time", now)
            lines.append(json.dumps(record, default=str, separators=(",", ":")))
        os.write(self._fd, ("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A log sent to a worker reopens its file there.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of an event log, in file order; a torn last line (a crash) is skipped."""
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
