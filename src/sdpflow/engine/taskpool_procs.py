"""Task processes never outlive their owners: marks, parent-death signals, fences and a reaper.

Standard library only; Linux (``/proc`` and ``prctl``). Elsewhere only the task's process
group is killed. A task's process:

* runs in its own session (hence its own process group), so the group is killed at once;
* gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: it dies with the worker that started it (the
  signal is not inherited: its descendants are the reaper's, below);
* carries ``SDPFLOW_TASK=<pool>:<index>:<attempt>`` in its environment, inherited by every
  descendant, so a descendant that left the group (``setsid``, a double fork) is still found
  by :func:`kill_marked`, which reads ``/proc/*/environ`` of this user's processes.

A callable's forked child (:mod:`sdpflow.engine.taskpool_isolated`) is found by its session
and process group (``/proc/PID/environ`` shows the environment a process was *executed*
with, so the mark a fork sets is seen only in what that child executes).

What is not caught: a descendant that clears its environment (``env -i``, ``execve`` with
a new environment) *and* leaves the process group; processes on other hosts (``ssh``); a
setuid program (the kernel clears its parent-death signal, and it is not ours to kill).

Each worker has one :class:`Reaper`, a small process in its own session that the worker
tells which tasks run. When the worker dies in any way (``kill -9``, its nanny or driver
killed), the reaper reads end-of-file on its pipe and kills every marked process of those
tasks; it also sweeps ended tasks' marks about a second after they end. While a task runs
a *fence* file in ``$TMPDIR/sdpflow-tasks-<uid>/`` names it; a retry on the same host first
kills what an earlier attempt left and waits until it is gone, so a task never runs twice
at once on one host.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

MARK = "SDPFLOW_TASK"
_PR_SET_PDEATHSIG = 1
_LIBC = None
if sys.platform.startswith("linux"):
    try:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _PRCTL = _LIBC.prctl  # resolved here, not in the forked child
    except (OSError, AttributeError):
        _LIBC = None


def die_with_parent(parent_pid: int) -> None:
    """In a child just forked: SIGKILL when the parent dies (exit at once if it already has)."""
    if _LIBC is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(137)


def child_setup(parent_pid: int):
    """A ``preexec_fn`` for ``subprocess.Popen`` (use with ``start_new_session=True``)."""

    def setup() -> None:
        die_with_parent(parent_pid)

    return setup


_SETPRIV: dict[str, str | None] = {}


def dying_with_parent(command: list[str], cwd: str | None, env: dict) -> tuple[list[str], Any]:
    """``(argv, preexec_fn)`` for ``Popen`` that give the process ``PR_SET_PDEATHSIG``.

    ``setpriv --pdeathsig KILL`` (util-linux) when it is on PATH costs one exec (about 1 ms);
    a ``preexec_fn`` makes Python fork instead of vfork, which costs several ms per task in a
    worker of some size. The program is resolved first, so that a missing one is reported as
    ``FileNotFoundError`` and an unrunnable one as ``PermissionError``, as ``Popen`` does;
    ``argv[0]`` is kept as given.
    """
    if _LIBC is None:
        return command, None
    if "setpriv" not in _SETPRIV:
        _SETPRIV["setpriv"] = _working_setpriv()
    setpriv = _SETPRIV["setpriv"]
    if setpriv is None:
        return command, child_setup(os.getpid())
    program = command[0]
    if os.sep in program:
        path = program if os.path.isabs(program) or not cwd else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", program)
    else:
        path = shutil.which(program, path=os.pathsep.join(os.get_exec_path(env)))
        if path is None:
            raise FileNotFoundError(2, "No such file or directory", program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionError(13, "Permission denied", program)
    return [setpriv, "--pdeathsig", "KILL", "--", *command], None  # setpriv finds it as Popen would


def _working_setpriv() -> str | None:
    """``setpriv`` if it is on PATH and can set the signal here (a sandbox may refuse), else None."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    try:
        probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if probe.returncode == 0 else None


def mark(token: str, index: int, attempt: str) -> str:
    return f"{token}:{index}:{attempt}"


def task_prefix(token: str, index: int) -> str:
    """The prefix shared by the marks of every attempt of one task."""
    return f"{token}:{index}:"


def marked_pids(prefixes: list[str] | tuple[str, ...]) -> list[int]:
    """Processes of this user whose ``SDPFLOW_TASK`` starts with one of ``prefixes``.

    One read of ``/proc/PID/environ`` per process; only marked processes are compared
    with the prefixes, so a sweep of thousands of ended tasks costs about one scan.
    """
    if not prefixes or not os.path.isdir("/proc"):
        return []
    needle = f"\0{MARK}=".encode()
    wanted = tuple(prefix.encode() for prefix in prefixes)
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as stream:
                environ = b"\0" + stream.read()
        except OSError:  # gone, or another user's
            continue
        at = environ.find(needle)
        if at >= 0 and environ[at + len(needle):].startswith(wanted):
            found.append(int(name))
    return found


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_marked(prefixes: list[str] | tuple[str, ...], wait_s: float = 5.0) -> int:
    """SIGKILL every marked process (and its group) until none is left or ``wait_s`` passed.

    Returns the number of processes killed. Repeats because a process may fork while it is
    being killed; a killed process that is not yet reaped (a zombie) has no environment left.
    """
    killed, deadline = 0, time.monotonic() + wait_s
    while True:
        pids = marked_pids(prefixes)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


# -- fences: which task runs here now ----------------------------------------------------------
_FENCE_DIRS: dict[int, str] = {}


def fence_dir() -> str:
    """``$TMPDIR/sdpflow-tasks-<uid>`` (mode 0700), created once per process."""
    path = _FENCE_DIRS.get(os.getpid())
    if path is None:
        path = os.path.join(tempfile.gettempdir(), f"sdpflow-tasks-{os.getuid()}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.stat(path).st_uid != os.getuid():  # someone else's: fences of this process only
            path = tempfile.mkdtemp(prefix=f"sdpflow-tasks-{os.getuid()}-")
        _FENCE_DIRS[os.getpid()] = path
    return path


def fence_path(token: str, index: int) -> str:
    return os.path.join(fence_dir(), f"{token}-{index}".replace(os.sep, "_"))


def clear_earlier_attempt(token: str, index: int, wait_s: float = 10.0) -> int:
    """Before a task starts: kill what an earlier attempt of it left on this host.

    An earlier attempt left a fence only if its worker died while it ran (a finished
    attempt removes its fence). Returns the number of processes killed.
    """
    path = fence_path(token, index)
    if not os.path.exists(path):
        return 0
    killed = kill_marked([task_prefix(token, index)], wait_s)
    with_suppressed(os.unlink, path)
    return killed


def drop_fences(token: str) -> None:
    """Remove a pool's fences on this host (at its end: nothing of it runs any more)."""
    directory, start = fence_dir(), f"{token}-".replace(os.sep, "_")
    for name in os.listdir(directory):
        if name.startswith(start):
            with_suppressed(os.unlink, os.path.join(directory, name))


def raise_fence(token: str, index: int, pgid: int) -> str:
    path = fence_path(token, index)
    with open(path, "w") as stream:
        stream.write(f"{os.getpid()} {pgid}\n")
    return path


def with_suppressed(function, *args) -> None:
    try:
        function(*args)
    except OSError:
        pass


# -- the reaper: one per worker process ---------------------------------------------------------
class Reaper:
    """The worker's side: start the reaper once, tell it which tasks start and end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._pid = None

    def _pipe(self):
        if self._process is None or self._pid != os.getpid() or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True,
            )
            self._pid = os.getpid()
        return self._process.stdin

    def ensure(self) -> None:
        """Start the reaper now (before a fork, so that the child can close the pipe)."""
        with self._lock:
            try:
                self._pipe()
            except OSError:
                self._process = None

    def fds(self) -> tuple[int, ...]:
        process = self._process
        return (process.stdin.fileno(),) if process is not None and process.stdin is not None else ()

    def _send(self, line: str) -> None:
        with self._lock:
            try:
                pipe = self._pipe()
                pipe.write(line.encode() + b"\n")
                pipe.flush()
            except OSError:  # no reaper: the parent-death signal and fences still hold
                self._process = None

    def started(self, task_mark: str, pgid: int, fence: str) -> None:
        self._send(f"+ {task_mark} {pgid} {fence}")

    def ended(self, task_mark: str) -> None:
        self._send(f"- {task_mark}")


def _reap(stdin) -> None:
    """The reaper process: kill marked processes of ended tasks, and of all tasks at EOF."""
    running: dict[str, tuple[int, str]] = {}
    ended: list[tuple[float, str]] = []
    lock = threading.Lock()
    finished = threading.Event()

    def read() -> None:
        for raw in stdin:
            words = raw.decode(errors="surrogateescape").rstrip("\n").split(" ", 3)  # a fence path may hold spaces
            with lock:
                if len(words) == 4 and words[0] == "+":
                    running[words[1]] = (int(words[2]), words[3])
                elif len(words) == 2 and words[0] == "-":
                    running.pop(words[1], None)
                    ended.append((time.monotonic() + 0.5, words[1]))
        finished.set()

    threading.Thread(target=read, daemon=True).start()
    while not finished.wait(0.5):
        now = time.monotonic()
        with lock:
            due = [task for when, task in ended if when <= now]
            ended[:] = [(when, task) for when, task in ended if when > now]
        if due:
            kill_marked(due, wait_s=1.0)
    # the worker is gone: nothing of its tasks may outlive it
    with lock:
        tasks = dict(running)
        late = [task for _, task in ended]
    for pgid, _fence in tasks.values():
        kill_group(pgid)
    kill_marked([*tasks, *late], wait_s=10.0)
    for _pgid, fence in tasks.values():
        with_suppressed(os.unlink, fence)


if __name__ == "__main__":  # started by Reaper, as a script: imports nothing of sdpflow
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group
    _reap(sys.stdin.buffer)
