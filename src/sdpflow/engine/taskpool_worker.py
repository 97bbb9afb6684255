"""The worker side of a task pool: run a chunk of tasks and report each one compactly.

This module is imported on Dask workers, so it stays light (standard library only). A chunk
is a list of task tuples; each task comes back as one tuple of plain values (see
:func:`run_chunk`), so the client receives small messages and writes the event records.

Executables run in their own session (``start_new_session=True``), hence their own process
group, die with the worker (``PR_SET_PDEATHSIG``) and carry the task's mark in their
environment (:mod:`sdpflow.engine.taskpool_procs`): a timeout or a cancel kills the group
and every marked process (a ``setsid`` grandchild too); the end of the task kills the group
at once, and the worker's reaper sweeps marked leftovers about a second later, or at once
when the worker dies. A retry on the same host waits until an earlier attempt's processes
are gone. Functions and methods with a ``timeout`` run in a forked child process
(:mod:`sdpflow.engine.taskpool_isolated`); without one they run in the worker's thread.
A task whose chunk the scheduler released (the pool's client is gone, or cancelled it) is
killed within about half a second. Running groups are registered per pool so that
:func:`kill_pool` (sent to every worker by ``TaskPool.cancel``) can kill them.
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from typing import Any, Callable

from sdpflow.engine import taskpool_isolated as isolated
from sdpflow.engine import taskpool_procs as procs

#: Status codes returned by the worker for each task.
FINISHED, FAILED, TIMED_OUT, CANCELLED = 0, 1, 2, 3

#: Kinds of task.
EXECUTABLE, FUNCTION, METHOD = "executable", "function", "method"

#: Bytes of a failing executable's stderr kept as its error message (when not redirected).
STDERR_TAIL_BYTES = 2000

_HOST = socket.gethostname()
_LOCK = threading.Lock()
_RUNNING: dict[str, dict[int, str]] = {}  # pool token -> {process-group id: task mark} running here now
_CANCELLED: set[str] = set()  # pool tokens cancelled on this process
_PLAIN = (type(None), bool, int, float, str, bytes)
_REAPER = procs.Reaper()
#: Seconds between checks that a running task's chunk is still wanted by the scheduler.
RELEASE_CHECK_S = 0.5


def run_chunk(token: str, tasks: list[tuple]) -> tuple[str, str, int, list[tuple]]:
    """Run tasks one after the other; never raises for a task's own failure.

    ``tasks`` holds ``(index, kind, target, args, kwargs, cwd, env, timeout_s, stdout, stderr)``.
    Returns ``(worker address, host, worker pid, results)`` where each result is
    ``(index, status, value, start, end, error, traceback)``; ``start`` and ``end`` are
    seconds since the epoch; ``value`` is an exit status (executables) or the return value.
    """
    address, released = _where()
    results = []
    for index, kind, target, args, kwargs, cwd, env, timeout, stdout, stderr in tasks:
        if token in _CANCELLED or released():
            now = time.time()
            why = "cancelled before it started" if token in _CANCELLED else "cancelled: its pool's client is gone"
            results.append((index, CANCELLED, None, now, now, why, None))
            continue
        procs.clear_earlier_attempt(token, index)
        task_mark = procs.mark(token, index, os.urandom(4).hex())
        if kind == EXECUTABLE:
            results.append((index, *_run_executable(token, index, task_mark, target, args, cwd, env, timeout,
                                                    stdout, stderr, released)))
        elif timeout is not None:
            results.append((index, *_run_isolated(token, index, task_mark, target, args, kwargs, timeout, released)))
        else:
            results.append((index, *_run_callable(target, args, kwargs)))
    return address, _HOST, os.getpid(), results


def _where() -> tuple[str, Callable[[], bool]]:
    """This worker's address, and a check that the running chunk was released by the scheduler."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
    except (ImportError, ValueError):  # run outside a worker (tests, debugging)
        return "local", lambda: False
    key = getattr(thread_state, "key", None)

    def released() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return worker.address, (released if key is not None else lambda: False)


def _run_isolated(token, index, task_mark, target, args, kwargs, timeout, released) -> tuple:
    child: list[int] = []

    def started(pid: int) -> None:
        child.append(pid)
        _register(token, pid, task_mark)
        _REAPER.started(task_mark, pid, fence)

    _REAPER.ensure()  # started before the fork, so that the child can close its pipe
    fence = procs.raise_fence(token, index, 0)  # before the fork: a worker killed right after leaves it
    try:
        result = isolated.run_isolated(target, args, kwargs, task_mark=task_mark, timeout=timeout, released=released,
                                       tail=_tail, close_fds=_REAPER.fds(), on_start=started)
        if result[0] == FAILED and token in _CANCELLED:
            return (CANCELLED, None, *result[2:4], "cancelled while running; its process was killed", None)
        return result
    finally:
        for pid in child:
            _unregister(token, pid)
        procs.with_suppressed(os.unlink, procs.fence_path(token, index))
        _REAPER.ended(task_mark)


def _register(token: str, pgid: int, task_mark: str) -> None:
    """Note a running process group; kill it at once if the pool was cancelled meanwhile."""
    with _LOCK:  # kill_pool reads _RUNNING under the same lock: it sees this group, or we see the cancel
        _RUNNING.setdefault(token, {})[pgid] = task_mark
        cancelled = token in _CANCELLED
    if cancelled:
        procs.kill_group(pgid)


def _unregister(token: str, pgid: int) -> None:
    with _LOCK:
        _RUNNING.get(token, {}).pop(pgid, None)


def _run_callable(target: Any, args: tuple, kwargs: dict | None) -> tuple:
    start = time.time()
    try:
        value = target(*args, **(kwargs or {}))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        error = None if code == 0 else f"SystemExit: {code}"
        return (FINISHED if code == 0 else FAILED), code, start, time.time(), error, None
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
    token: str, index: int, task_mark: str, argv: list[str], args: tuple, cwd: str | None, env: dict | None,
    timeout: float | None, stdout: str | None, stderr: str | None, released: Callable[[], bool],
) -> tuple:
    command = [*argv, *map(str, args)]
    full_env = {**os.environ, **(env or {}), procs.MARK: task_mark}
    start = time.time()
    out = err = None
    tail = None
    _REAPER.ensure()
    fence = procs.raise_fence(token, index, 0)  # before the start: a worker killed right after leaves it
    process = None
    try:
        out = _open_output(stdout, cwd)
        if stderr is None:
            tail = err = tempfile.TemporaryFile()
        elif stderr == stdout:  # one file for both, as a shell's 2>&1
            err = subprocess.STDOUT
        else:
            err = _open_output(stderr, cwd)
        argv, preexec = procs.dying_with_parent(command, cwd, full_env)
        process = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True, close_fds=True, preexec_fn=preexec,
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
        if process is None:  # it did not start
            procs.with_suppressed(os.unlink, fence)
    _register(token, process.pid, task_mark)
    _REAPER.started(task_mark, process.pid, fence)
    status, why = FINISHED, None
    try:
        status, why = _wait(process, timeout, released)
        if status != FINISHED:  # the whole task: its group, and whatever left the group
            procs.kill_group(process.pid)
            procs.kill_marked([task_mark])
        code = process.wait()
    finally:
        procs.kill_group(process.pid)  # leftovers of the task (background children) go with it
        _unregister(token, process.pid)
        procs.with_suppressed(os.unlink, procs.fence_path(token, index))
        _REAPER.ended(task_mark)  # the reaper sweeps what left the group, about a second later
    end = time.time()
    error = None
    if status == TIMED_OUT:
        error = f"timed out after {timeout:g} s; process group killed"
    elif status == CANCELLED:  # the scheduler released its chunk: the pool was cancelled, or its client is gone
        error = "cancelled while running; process group killed" if token in _CANCELLED else why
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


def _wait(process: subprocess.Popen, timeout: float | None, released: Callable[[], bool]) -> tuple[int, str | None]:
    """Wait for an executable: FINISHED, TIMED_OUT, or CANCELLED when its chunk was released."""
    deadline = None if timeout is None else time.monotonic() + timeout
    exited = _exit_waiter(process)
    try:
        while True:
            step = RELEASE_CHECK_S if deadline is None else min(RELEASE_CHECK_S, max(0.0, deadline - time.monotonic()))
            if exited(step):
                return FINISHED, None
            if deadline is not None and time.monotonic() >= deadline:
                return TIMED_OUT, None
            if released():
                return CANCELLED, "cancelled: its pool's client is gone; process group killed"
    finally:
        exited(None)


def _exit_waiter(process: subprocess.Popen) -> Callable[[float | None], bool]:
    """``exited(seconds)``: whether the process exited within ``seconds``; ``exited(None)`` closes.

    A pidfd (Linux 5.3+) wakes the moment the process exits; elsewhere ``Popen.wait``
    polls with a growing pause (up to 50 ms), which would add milliseconds to short tasks.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None

    def exited(seconds: float | None) -> bool:
        if seconds is None:
            if pidfd is not None:
                os.close(pidfd)
            return True
        if pidfd is not None:
            ready, _, _ = select.select([pidfd], [], [], seconds)
            return bool(ready) or process.poll() is not None
        try:
            process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    return exited


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


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of an error, for event logs and tables."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def kill_pool(token: str) -> int:
    """Cancel a pool on this worker: later tasks are skipped, running groups killed.

    Returns the number of process groups killed. Run on every worker by ``TaskPool.cancel``.
    Only this worker's tasks are killed (with what left their groups): another worker on the
    same host reports its own tasks as cancelled once it has heard of the cancel.
    """
    with _LOCK:
        _CANCELLED.add(token)
        running = dict(_RUNNING.get(token, {}))
    for pgid in running:
        procs.kill_group(pgid)
    procs.kill_marked(list(running.values()), wait_s=2.0)  # what left its group (setsid) too
    return len(running)


def forget_pool(token: str) -> None:
    """Drop what this process remembers of a pool (after it ended), and what it left on this host.

    Run on every worker when a pool ends: a last sweep kills any process still carrying one
    of the pool's marks (a task lost with a worker whose reaper died too) and drops its fences.
    """
    with _LOCK:
        _CANCELLED.discard(token)
        _RUNNING.pop(token, None)
    procs.kill_marked([f"{token}:"], wait_s=2.0)
    procs.drop_fences(token)
