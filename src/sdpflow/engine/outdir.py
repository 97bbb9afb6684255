"""Output folders sdpflow may write into: a marker says who wrote them, a lock says who is writing.

``.sdpflow`` (JSON: the writer, when, on which host, and the names that were already there
when a foreign folder was claimed with ``--overwrite``) marks a folder sdpflow created or
claimed. sdpflow never deletes or replaces a file it did not write: without the marker a
non-empty folder is refused, and with ``--overwrite`` sdpflow writes beside the foreign files
but refuses to replace any of them. ``.sdpflow.lock`` (JSON: pid, host, run id) is held
while a run writes into the folder, so that two runs never write one folder at once.

Plain files and ``os`` calls only: no Dask, usable from any command.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sdpflow.errors import InputError

MARKER_NAME = ".sdpflow"
LOCK_NAME = ".sdpflow.lock"

#: A lock file still empty after this long (seconds) was left by a process that died while creating it.
_EMPTY_LOCK_GRACE_S = 30.0


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json_atomically(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of ``folder`` (None when sdpflow never claimed it); an unreadable marker counts as empty."""
    path = Path(folder) / MARKER_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def claim_output_folder(path: str | Path, *, writer: str, overwrite: bool, writes: Iterable[str] = ()) -> Path:
    """Create ``path`` (or take an existing folder) as an sdpflow output folder, and mark it.

    writer: what writes the folder, e.g. "sdpflow simulate". A folder that already carries the
    marker is taken as it is. An existing non-empty folder without it is refused (InputError)
    unless ``overwrite``; then the names already in it are recorded as foreign, and
    :func:`refuse_foreign` keeps sdpflow from replacing them: ``writes`` (the names the writer
    will write) are checked before the marker is written, so a refused claim leaves nothing.
    A file at ``path`` is refused.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file, not a folder: choose another --out")
    foreign: list[str] = []
    if path.is_dir():
        if read_marker(path) is not None:
            return path
        foreign = sorted(entry.name for entry in path.iterdir())
        if foreign and not overwrite:
            raise InputError(f"{path} exists and holds files sdpflow did not write: choose another --out "
                             "or pass --overwrite")
        _refuse_clashes(path, {Path(name).parts[0] for name in writes if Path(name).parts} & set(foreign))
    else:
        try:
            path.mkdir(parents=True)
        except OSError as error:
            raise InputError(f"{path}: cannot create the output folder ({error.strerror}): choose another --out") from None
    record = {"written_by": writer, "created": _utc_now(), "host": socket.gethostname(), "foreign": foreign}
    _write_json_atomically(path / MARKER_NAME, record)
    return path


def refuse_foreign(folder: str | Path, names: Iterable[str]) -> None:
    """InputError when sdpflow is about to replace a file of ``folder`` it did not write.

    names: paths relative to ``folder`` that sdpflow will write (only their first component
    is compared with the names recorded as foreign when the folder was claimed, and only
    while such a foreign file still exists).
    """
    folder = Path(folder)
    foreign = set((read_marker(folder) or {}).get("foreign") or ())
    # a foreign name the user has since removed is no longer anyone's file
    clashes = sorted(name for name in {Path(name).parts[0] for name in names if Path(name).parts} & foreign
                     if os.path.lexists(folder / name))
    _refuse_clashes(folder, clashes)


def _refuse_clashes(folder: Path, clashes: Iterable[str]) -> None:
    clashes = sorted(clashes)
    if clashes:
        raise InputError(f"{folder / clashes[0]} was not written by sdpflow and would be replaced: "
                         "move it away or choose another --out")


def refuse_inside(out: str | Path, protected: str | Path) -> None:
    """InputError when ``out`` is ``protected`` (an input such as the MeasurementSet) or lies inside it."""
    out_resolved, protected_resolved = Path(out).resolve(), Path(protected).resolve()
    if out_resolved == protected_resolved or protected_resolved in out_resolved.parents:
        raise InputError(f"--out {out} is inside the input {protected}: choose an output folder outside it")


class OutputLock:
    """Hold ``FOLDER/.sdpflow.lock`` while writing into FOLDER (a context manager).

    The lock file is created with O_CREAT|O_EXCL and holds JSON {pid, host, run_id, token}.
    When another live process holds it: InputError naming its run id, pid and host. A lock
    left by a dead process on this host is taken over: removed (under a takeover guard, see
    :meth:`_remove_stale`) and created afresh with O_EXCL, so that of several processes
    racing for it exactly one wins. The lock is
    removed on exit if it is still ours.
    """

    def __init__(self, folder: str | Path, run_id: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.run_id = run_id
        self._token = secrets.token_hex(8)

    def _record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id, "token": self._token,
                "since": _utc_now()}

    def __enter__(self) -> "OutputLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(200):
            if self._try_create():
                return self
            holder, text = self._read_holder()
            if holder is None:  # being written by its creator, or removed just now: look again
                time.sleep(0.02)
                continue
            if not _is_stale(holder):
                raise InputError(_held_message(self.folder, self.path, holder))
            self._remove_stale(text)
        raise InputError(f"{self.path}: cannot take the output folder's lock (it keeps changing): try again")

    def __exit__(self, *exc: object) -> None:
        holder, _ = self._read_holder()
        if holder is not None and holder.get("token") == self._token:
            self.path.unlink(missing_ok=True)

    def set_run_id(self, run_id: str) -> None:
        """Name the run holding the lock (known only once the run is recorded)."""
        self.run_id = run_id
        _write_json_atomically(self.path, self._record())  # the lock file exists throughout the replace

    def _try_create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(self._record()) + "\n")
        return True

    def _read_holder(self) -> tuple[dict[str, Any] | None, str]:
        """The lock's record and text; None when it is missing, or empty for less than the grace time."""
        try:
            with open(self.path) as file:
                text = file.read()
                age = time.time() - os.fstat(file.fileno()).st_mtime
        except FileNotFoundError:
            return None, ""
        try:
            record = json.loads(text)
        except ValueError:
            # A creator that died between O_EXCL and its write leaves an empty file for ever.
            empty = {"pid": None, "host": socket.gethostname(), "run_id": None, "empty": True}
            return (empty if age > _EMPTY_LOCK_GRACE_S else None), text
        return (record if isinstance(record, dict) else {}), text

    def _remove_stale(self, stale_text: str) -> None:
        """Remove the lock judged stale, if it is still that very lock (its text holds a unique token).

        Several processes may judge one lock stale at once; between one's judgement and its
        removal another may already have replaced it with a live lock. So the removal happens
        only under a second O_EXCL file, after reading the lock again: only a dead holder's
        lock, which nobody else can change meanwhile, is ever removed.
        """
        guard = self.folder / f"{LOCK_NAME}.takeover"
        try:
            descriptor = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > _EMPTY_LOCK_GRACE_S:
                    guard.unlink(missing_ok=True)  # its taker died in the middle of a takeover
            except FileNotFoundError:
                pass
            time.sleep(0.02)
            return
        try:
            _, current = self._read_holder()
            if current == stale_text:
                aside = self.folder / f"{LOCK_NAME}.stale-{os.getpid()}-{secrets.token_hex(3)}"
                os.rename(self.path, aside)  # renamed, then removed: the lock path never names a half-state
                aside.unlink()
        finally:
            os.close(descriptor)
            guard.unlink(missing_ok=True)


def _is_stale(holder: dict[str, Any]) -> bool:
    """A lock whose process is known to be gone: on this host, and no such pid (or never written)."""
    if holder.get("host") != socket.gethostname():
        return False  # a process on another host cannot be checked from here
    if holder.get("empty"):
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _held_message(folder: Path, lock: Path, holder: dict[str, Any]) -> str:
    run = holder.get("run_id") or "(not yet recorded)"
    where = f"pid {holder.get('pid')} on {holder.get('host')}"
    hint = "" if holder.get("host") == socket.gethostname() else f"; if that process is gone, remove {lock}"
    return f"{folder} is being written by run {run} ({where}): wait for it or choose another --out{hint}"
