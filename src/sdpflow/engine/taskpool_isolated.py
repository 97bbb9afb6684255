"""A callable run in a child process of the worker, so that it can be timed out and can exit.

Used for function and method tasks that set ``timeout``. The child is forked from the worker
thread that runs the task (so the callable, already unpickled there, is not sent again),
puts itself in a new session, dies with the worker (``PR_SET_PDEATHSIG``) and carries the
task's mark like an executable's processes (see :mod:`sdpflow.engine.taskpool_procs`).
Its stdout and stderr go to a temporary file whose last line becomes the error message of
a failing run, as an executable's stderr does. The return value comes back pickled through
a temporary file. A timeout kills the child's session; ``os._exit(7)`` in the callable fails
its own task only (exit status 7).

Forking a threaded process copies only the forking thread; the child uses nothing but what
the callable itself touches, then leaves with ``os._exit``. A callable that waits on a lock
another worker thread held at the fork would hang in the child until its timeout.
"""

from __future__ import annotations

import os
import pickle
import select
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable

from sdpflow.engine import taskpool_procs as procs

FINISHED, FAILED, TIMED_OUT, CANCELLED = 0, 1, 2, 3  # as in taskpool_worker

try:
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover - distributed depends on cloudpickle
    _pickler = pickle


def run_isolated(
    target: Any, args: tuple, kwargs: dict | None, *, task_mark: str, timeout: float | None,
    released: Callable[[], bool], tail: Callable[[Any], str], close_fds: tuple[int, ...] = (),
    on_start: Callable[[int], None] = lambda pid: None,
) -> tuple:
    """Run ``target(*args, **kwargs)`` in a forked child; ``(status, value, start, end, error, trace)``."""
    out = tempfile.TemporaryFile()
    result = tempfile.TemporaryFile()
    parent = os.getpid()
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(target, args, kwargs, parent, task_mark, out.fileno(), result.fileno(), close_fds)
    try:
        on_start(pid)
        status, code, error = _wait(pid, timeout, released, task_mark)
        end = time.time()
        if status == FINISHED:
            result.seek(0)
            payload = result.read()
            if code == 0 and payload:
                status, value, error, trace = pickle.loads(payload)
                return status, value, start, end, error, trace
            status = FAILED
            error = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
            message = tail(out)
            if message:
                error = f"{error}: {message}"
        return status, (code if status == FAILED else None), start, end, error, None
    finally:
        out.close()
        result.close()


def _wait(pid: int, timeout: float | None, released: Callable[[], bool], task_mark: str) -> tuple:
    """Wait for the child; ``(status, exit code, error)``; kill its session on timeout or release."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)  # wakes the moment the child exits (Linux 5.3+)
    except (AttributeError, OSError):
        pidfd = None
    try:
        pause = 0.002
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                procs.kill_group(pid)  # what it left behind in its session goes with it
                return FINISHED, os.waitstatus_to_exitcode(wait_status), None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                status, error = TIMED_OUT, f"timed out after {timeout:g} s; its process was killed"
                break
            if released():
                status, error = CANCELLED, "cancelled: its pool's client is gone; its process was killed"
                break
            step = 0.5 if deadline is None else min(0.5, deadline - now)
            if pidfd is not None:
                select.select([pidfd], [], [], step)
            else:
                time.sleep(min(pause, step))
                pause = min(0.05, pause * 2)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    procs.kill_group(pid)
    procs.kill_marked([task_mark])
    _, wait_status = os.waitpid(pid, 0)
    return status, os.waitstatus_to_exitcode(wait_status), error


def _child(target, args, kwargs, parent: int, task_mark: str, out: int, result: int, close_fds) -> None:
    code = 70
    try:
        os.setsid()
        procs.die_with_parent(parent)
        os.environ[procs.MARK] = task_mark
        for fd in close_fds:  # e.g. the reaper's pipe: the worker's death must close it
            procs.with_suppressed(os.close, fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        payload = _call(target, args, kwargs)
        try:
            data = pickle.dumps(payload) if payload[0] != FINISHED else _pickler.dumps(payload)
        except Exception as error:  # noqa: BLE001
            data = pickle.dumps((FAILED, None, f"return value cannot be sent back: {_one_line(error)}", None))
        os.write(result, data)
        sys.stdout.flush()
        sys.stderr.flush()
        code = 0
    finally:
        os._exit(code)


def _call(target, args, kwargs) -> tuple:
    try:
        value = target(*args, **(kwargs or {}))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        return (FINISHED if code == 0 else FAILED), code, (None if code == 0 else f"SystemExit: {code}"), None
    except BaseException as error:  # noqa: BLE001 - a task's failure is data
        return FAILED, None, _one_line(error), traceback.format_exc()
    return FINISHED, value, None, None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
