"""The worker side of a task pool: run a chunk of tasks and report each one compactly.

This module is imported on Dask workers, so it stays light (standard library only). A chunk
is a list of task tuples; each task comes back as one tuple of plain values (see
:func:`run_chunk`), so the client receives small messages and writes the event records.

Executables run in their own session (``start_new_session=True``), hence their own process
group: a timeout, a cancel or the end of the task kills the whole group, so no grandchild
outlives its task. Running groups are registered per pool so that :func:`kill_pool` (sent
to every worker by ``TaskPool.cancel``) can kill them.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from typing import Any

#: Status codes returned by the worker for each task.
FINISHED, FAILED, TIMED_OUT, CANCELLED = 0, 1, 2, 3

#: Kinds of task.
EXECUTABLE, FUNCTION, METHOD = "executable", "function", "method"

#: Bytes of a failing executable's stderr kept as its error message (when not redirected).
STDERR_TAIL_BYTES = 2000

_HOST = socket.gethostname()
_LOCK = threading.Lock()
_RUNNING: dict[str, set[int]] = {}  # pool token -> process-group ids running now
_CANCELLED: set[str] = set()  # pool tokens cancelled on this process
_PLAIN = (type(None), bool, int, float, str, bytes)


def run_chunk(token: str, tasks: list[tuple]) -> tuple[str, str, int, list[tuple]]:
    """Run tasks one after the other; never raises for a task's own failure.

    ``tasks`` holds ``(index, kind, target, args, kwargs, cwd, env, timeout_s, stdout, stderr)``.
    Returns ``(worker address, host, worker pid, results)`` where each result is
    ``(index, status, value, start, end, error, traceback)``; ``start`` and ``end`` are
    seconds since the epoch; ``value`` is an exit status (executables) or the return value.
    """
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # run outside a worker (tests, debugging)
        address = "local"
    results = []
    for index, kind, target, args, kwargs, cwd, env, timeout, stdout, stderr in tasks:
        if token in _CANCELLED:
            now = time.time()
            results.append((index, CANCELLED, None, now, now, "cancelled before it started", None))
            continue
        if kind == EXECUTABLE:
            results.append((index, *_run_executable(token, target, args, cwd, env, timeout, stdout, stderr)))
        else:
            results.append((index, *_run_callable(target, args, kwargs)))
    return address, _HOST, os.getpid(), results


def _run_callable(target: Any, args: tuple, kwargs: dict | None) -> tuple:
    start = time.time()
    try:
        value = target(*args, **(kwargs or {}))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        return (FINISHED if code == 0 else FAILED), code, start, time.time(), (None if code == 0 else f"SystemExit: {code}"), None
    except Exception as error:  # noqa: BLE001 - a task's failure is data, not a crash
        return FAILED, None, start, time.time(), one_line(error), traceback.format_exc()
    end = time.time()
    if not isinstance(value, _PLAIN):
        try:  # an unpicklable return value would otherwise fail the whole chunk
            pickle.dumps(value)
        except Exception:  # noqa: BLE001
            try:
                import cloudpickle

                cloudpickle.dumps(value)
            except Exception as error:  # noqa: BLE001
                return FAILED, None, start, end, f"return value cannot be sent back: {one_line(error)}", None
    return FINISHED, value, start, end, None, None


def _run_executable(
    token: str, argv: list[str], args: tuple, cwd: str | None, env: dict | None,
    timeout: float | None, stdout: str | None, stderr: str | None,
) -> tuple:
    command = [*argv, *map(str, args)]
    full_env = {**os.environ, **env} if env else None
    start = time.time()
    out = err = None
    tail = None
    try:
        out = _open_output(stdout, cwd)
        if stderr is None:
            tail = err = tempfile.TemporaryFile()
        elif stderr == stdout:  # one file for both, as a shell's 2>&1
            err = subprocess.STDOUT
        else:
            err = _open_output(stderr, cwd)
        process = subprocess.Popen(
            command, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True, close_fds=True,
        )
    except FileNotFoundError as error:
        _close(tail)
        missing = command[0] if error.filename in (None, command[0]) else error.filename
        code = 127 if missing == command[0] else 1
        return FAILED, code, start, time.time(), f"not found: {missing}", None
    except PermissionError as error:
        _close(tail)
        return FAILED, 126, start, time.time(), f"permission denied: {error.filename or command[0]}", None
    except OSError as error:
        _close(tail)
        return FAILED, 126, start, time.time(), f"cannot start {command[0]}: {error}", None
    finally:
        for stream in (out, err):
            if stream is not tail:
                _close(stream)
    with _LOCK:
        _RUNNING.setdefault(token, set()).add(process.pid)
    status = FINISHED
    try:
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            code = process.wait()
            status = TIMED_OUT
    finally:
        _kill_group(process.pid)  # leftovers of the task (background children) go with it
        with _LOCK:
            _RUNNING.get(token, set()).discard(process.pid)
    end = time.time()
    error = None
    if status == TIMED_OUT:
        error = f"timed out after {timeout:g} s; process group killed"
    elif token in _CANCELLED and code < 0:
        status, error = CANCELLED, "cancelled while running; process group killed"
    elif code != 0:
        status = FAILED
        error = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        if tail is not None:
            message = _tail(tail)
            if message:
                error = f"{error}: {message}"
    if tail is not None:
        tail.close()
    return status, code, start, end, error, None


def _close(stream) -> None:
    if stream is not None and hasattr(stream, "close"):
        stream.close()


def _open_output(path: str | None, cwd: str | None):
    if path is None:
        return subprocess.DEVNULL
    if cwd and not os.path.isabs(path):
        path = os.path.join(cwd, path)
    return open(path, "wb")


def _tail(stream) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - STDERR_TAIL_BYTES))
    lines = stream.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of an error, for event logs and tables."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def kill_pool(token: str) -> int:
    """Cancel a pool on this worker: later tasks are skipped, running groups killed.

    Returns the number of process groups killed. Run on every worker by ``TaskPool.cancel``.
    """
    with _LOCK:
        _CANCELLED.add(token)
        groups = list(_RUNNING.get(token, ()))
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)


def forget_pool(token: str) -> None:
    """Drop what this process remembers of a pool (after it ended)."""
    with _LOCK:
        _CANCELLED.discard(token)
        _RUNNING.pop(token, None)
