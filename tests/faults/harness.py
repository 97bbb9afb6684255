"""The fault-injection harness: an external Dask cluster, drivers forked from a warm process, kills, checks.

A trial starts a driver (the ``sdpflow`` command line, run in a process forked from a forkserver that
has sdpflow imported, so a trial costs no interpreter start), waits a seeded random fraction of the
scenario's uninterrupted duration, SIGKILLs the driver (its whole session), a worker or the
scheduler, resumes the run and compares its products and run database with an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

REPO = Path(__file__).resolve().parents[2]
#: Modules the forkserver imports once, so that a forked driver starts at once.
PRELOAD = ["sdpflow.cli", "sdpflow.pipelines.runner", "sdpflow.engine.taskpool", "distributed",
           "sdpflow.pipelines.imaging.flow", "tests.engine.fanout_pipeline"]
#: What a trial may kill.
TARGETS = ("driver", "worker", "scheduler")


def _drive(args: list[str], log: str) -> None:
    """The body of a driver process: its own session (so killpg reaches all it starts), then the CLI."""
    os.setsid()
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hung driver's stacks, for the log
    sys.argv = ["sdpflow", *args]
    from sdpflow.cli import main

    main()


class Drivers:
    """Start ``sdpflow ARGS`` in processes forked from one warm forkserver."""

    def __init__(self) -> None:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)

    def start(self, args: list[str], log: Path) -> multiprocessing.process.BaseProcess:
        process = self.context.Process(target=_drive, args=([str(a) for a in args], str(log)), daemon=False)
        process.start()
        return process

    def run(self, args: list[str], log: Path, timeout: float = 120) -> int:
        """Run to the end; the exit status."""
        process = self.start(args, log)
        process.join(timeout)
        if process.exitcode is None:
            kill_session(process.pid)
            process.join(10)
            raise AssertionError(f"sdpflow {' '.join(map(str, args))} still running after {timeout} s: {log.read_text()[-2000:]}")
        return process.exitcode


def dump_and_kill(process) -> None:
    """A driver that did not end: its threads' stacks into its log, then SIGKILL of its session."""
    with suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGUSR1)
        time.sleep(1.0)
    kill_session(process.pid)
    process.join(10)


def kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ExternalCluster:
    """A scheduler and one worker (with its nanny) as processes of their own, each in its own session."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        self.folder = folder
        self.threads = threads
        self.scheduler: subprocess.Popen | None = None
        self.nanny: subprocess.Popen | None = None
        self.address = ""
        self.restarts = 0

    def start(self) -> None:
        scheduler_file = self.folder / f"scheduler-{self.restarts}.json"
        log = open(self.folder / "cluster.log", "ab")
        common = dict(cwd=REPO, stdout=log, stderr=log, start_new_session=True,
                      env={**os.environ, "PYTHONPATH": str(REPO)})
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)], **common)
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError("the test scheduler did not start")
            time.sleep(0.05)
        time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.nanny = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nworkers", "1", "--nthreads",
             str(self.threads), "--no-dashboard", "--death-timeout", "20"], **common)
        self.wait_for_worker()

    def wait_for_worker(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.worker_pids():
            if time.monotonic() > deadline:
                raise RuntimeError("the test worker did not start")
            time.sleep(0.05)
        time.sleep(0.3)  # registered with the scheduler

    def worker_pids(self) -> list[int]:
        """The worker processes (the nanny's spawned children)."""
        try:
            children = psutil.Process(self.nanny.pid).children()
            return [child.pid for child in children if "spawn_main" in " ".join(child.cmdline())]
        except psutil.Error:
            return []

    def kill_worker(self) -> None:
        for pid in self.worker_pids():
            os.kill(pid, signal.SIGKILL)

    def kill_scheduler(self) -> None:
        kill_session(self.scheduler.pid)
        self.scheduler.wait()

    def stop(self) -> None:
        for process in (self.nanny, self.scheduler):
            if process is not None:
                kill_session(process.pid)
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()


@dataclass
class Trial:
    """What one trial did and found."""

    scenario: str
    number: int
    target: str
    delay_s: float
    driver_exit: int | None = None
    driver_ended_s: float | None = None
    resumed: bool = False
    resume_exit: int | None = None
    survived: bool = False
    lost: int = 0
    problems: list[str] = field(default_factory=list)


def wait_or_kill(process, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``process``; True when it ended by itself."""
    process.join(seconds)
    return process.exitcode is not None


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def orphans(marker: str) -> list[int]:
    """Processes still alive whose command line holds ``marker``."""
    found = []
    for process in psutil.process_iter(["cmdline", "pid"]):
        try:
            if marker in " ".join(process.info["cmdline"] or ()):
                found.append(process.info["pid"])
        except psutil.Error:
            continue
    return found


def write_outcomes(trials: list[Trial], extra: dict[str, Any]) -> None:
    """Append this scenario's trials to $SDPFLOW_FAULTS_JSON when it is set (docs/reliability.md is made from it)."""
    target = os.environ.get("SDPFLOW_FAULTS_JSON")
    if not target:
        return
    path = Path(target)
    existing = json.loads(path.read_text()) if path.exists() else {"scenarios": {}}
    scenario = trials[0].scenario if trials else extra.get("scenario", "?")
    existing["scenarios"][scenario] = {**extra, "trials": [asdict(trial) for trial in trials]}
    path.write_text(json.dumps(existing, indent=1))


def summary_line(trials: list[Trial]) -> str:
    failed = [trial for trial in trials if not trial.survived or trial.lost]
    return "; ".join(f"#{t.number} {t.target}@{t.delay_s:.2f}s: {', '.join(t.problems) or f'lost {t.lost}'}"
                     for t in failed)


Check = Callable[[Path, str], list[str]]


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary folder, a free port), so that
    restarting it disturbs nobody else's database. As root its files belong to the ``postgres`` user."""

    def __init__(self) -> None:
        import pwd
        import shutil
        import tempfile

        self.bindir = self._bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="sdpflow-faults-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_user = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"
        self.port = free_port()
        self._pg("initdb", "-D", self.data, "-A", "trust", "-U", "sdpflow", "--no-sync")
        self._ctl("start")
        self._pg("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "sdpflow", "faults")
        self.url = f"postgresql+psycopg://sdpflow@127.0.0.1:{self.port}/faults"

    @staticmethod
    def _bindir() -> Path:
        import glob
        import shutil

        found = shutil.which("pg_ctl")
        if found:
            return Path(found).resolve().parent
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        if not versions:
            raise FileNotFoundError("no PostgreSQL server programs (pg_ctl, initdb)")
        return Path(versions[-1])

    def _pg(self, program: str, *args: Any) -> None:
        subprocess.run([*self.as_user, str(self.bindir / program), *map(str, args)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def _ctl(self, action: str, mode: str = "fast") -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-o", options, "-m", mode, "-w", action)

    def restart(self) -> None:
        """Stop at once (as a crash would: no shutdown checkpoint) and start again."""
        self._ctl("restart", mode="immediate")

    def stop(self) -> None:
        import shutil

        try:
            self._ctl("stop", mode="immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
