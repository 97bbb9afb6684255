"""Processes never outlive their owners: timeouts, worker loss, driver loss, retries, callables.

Real processes throughout (sh, sleep, setsid, kill -9); every test kills what it finds left
in a ``finally``. Each test uses its own ``sleep`` duration as a marker nobody else runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import psutil
import pytest
from distributed import Client, LocalCluster

from sdpflow import TaskPool
from sdpflow.engine.events import read_events
from sdpflow.engine.taskpool import TaskError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process control (prctl, /proc)")


def sleeps(marker: str) -> list[psutil.Process]:
    """Live ``sleep MARKER`` processes (zombies are dead already)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["cmdline"] and process.info["cmdline"][-2:] == ["sleep", marker] \
                and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def wait_until(condition, seconds: float) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``seconds``."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if condition():
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def kill_all(marker: str) -> None:
    for process in sleeps(marker):
        try:
            process.kill()
        except psutil.Error:
            pass


def nap_then_exit(path, code):
    print("about to leave", flush=True)
    open(path, "w").write(str(os.getpid()))
    os._exit(code)


def nap(seconds, value, path=None):
    if path is not None:
        open(path, "w").write(str(os.getpid()))
    time.sleep(seconds)
    return value


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client:
            yield client


def test_timeout_kills_a_setsid_grandchild(client):
    marker = "52.113"
    try:
        pool = TaskPool("setsid")
        pool.add_task("escaper", "sh", "-c", f"setsid sleep {marker} & sleep {marker}", timeout=0.5)
        assert pool.run(client) == {"escaper": -9}
        assert pool.statuses() == {"escaper": "timed-out"}
        assert sleeps(marker) == []
    finally:
        kill_all(marker)


def test_what_a_finished_task_leaves_is_swept(client):
    marker = "52.229"
    try:
        pool = TaskPool("leftovers")
        pool.add_task("daemon", "sh", "-c", f"setsid sleep {marker} & exit 0")
        assert pool.run(client) == {"daemon": 0}
        assert wait_until(lambda: not sleeps(marker), 5) is not None  # the worker's reaper, about 1 s
    finally:
        kill_all(marker)


def test_a_callable_with_a_timeout_is_killed_and_os_exit_fails_only_its_task(client, tmp_path):
    pool = TaskPool("callables", events=tmp_path / "events.jsonl", chunk_size=4)
    pool.add_task("slow", nap, 60, "never", tmp_path / "slow.pid", timeout=0.5)
    pool.add_task("exits", nap_then_exit, tmp_path / "exits.pid", 7, timeout=30)
    pool.add_task("quick", nap, 0.1, "done", timeout=30)
    pool.add_task("in-thread", nap, 0.1, "also done")
    worker_pids = set(client.run(os.getpid).values())
    began = time.monotonic()
    results = pool.run(client)
    assert time.monotonic() - began < 20
    assert results["quick"] == "done" and results["in-thread"] == "also done"
    slow, exits = results["slow"], results["exits"]
    assert isinstance(slow, TaskError) and slow.status == "timed-out" and "timed out after 0.5 s" in slow.message
    assert isinstance(exits, TaskError) and exits.status == "failed"
    assert exits.message == "exit status 7: about to leave"
    assert set(client.run(os.getpid).values()) == worker_pids  # no worker died
    records = list(read_events(tmp_path / "events.jsonl"))
    assert [r for r in records if r["event"] == "retried"] == []
    for name in ("slow", "exits"):  # each ran in a child process, now gone
        pid = int((tmp_path / f"{name}.pid").read_text())
        assert pid not in worker_pids and not psutil.pid_exists(pid)


#: Counts the `sleep` processes alive when it starts (an earlier attempt's), then leaves two, one in a new session.
RETRIED = 'pgrep -c -x -f "sleep {m}" >> {counts}; sleep {m} & setsid sleep {m} & wait'


def test_a_task_lost_with_its_worker_never_runs_twice_at_once(tmp_path):
    marker = "53.347"
    counts = tmp_path / "counts.txt"
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster:
            with Client(cluster) as client:
                pool = TaskPool("lost", events=tmp_path / "events.jsonl", chunk_size=1)
                pool.add_task("guarded", "sh", "-c", RETRIED.format(m=marker, counts=counts), timeout=4)
                pool.submit(client)
                assert wait_until(lambda: len(sleeps(marker)) == 2, 30) is not None
                busy = [worker for worker, keys in client.processing().items() if keys]
                pid = client.run(os.getpid, workers=busy)[busy[0]]
                os.kill(pid, signal.SIGKILL)
                results = pool.finished(timeout=60)
        assert results == {"guarded": -9}  # the retry ran to its timeout
        attempts = counts.read_text().split()
        assert attempts == ["0", "0"]  # the retry saw none of the first attempt's processes
        assert [r["event"] for r in read_events(tmp_path / "events.jsonl") if r["event"] == "retried"] == ["retried"]
        assert sleeps(marker) == []
    finally:
        kill_all(marker)


DRIVER = textwrap.dedent(
    """
    import sys
    from sdpflow import TaskPool
    if __name__ == "__main__":
        pool = TaskPool("orphaned")
        pool.add_task("a", "sh", "-c", "sleep {m} & setsid sleep {m} & wait", timeout=120)
        pool.add_task("b", "sleep", {m!r}, timeout=120)
        pool.submit(sys.argv[1], threads_per_worker=2)
        print("submitted", flush=True)
        pool.finished()
    """
)


@pytest.mark.parametrize("where", ["local", "scheduler"])
def test_a_killed_driver_leaves_no_executable_running(tmp_path, where):
    """``local``: the driver's own cluster; ``scheduler``: a cluster that outlives the driver."""
    marker = "54.461" if where == "local" else "54.577"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(m=marker))
    cluster = None
    try:
        if where == "scheduler":
            cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0")
            spec = cluster.scheduler_address
        else:
            spec = "local:1"
        driver = subprocess.Popen([sys.executable, str(script), spec], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            assert driver.stdout.readline().strip() == "submitted"
            assert wait_until(lambda: len(sleeps(marker)) == 3, 60) is not None
            driver.kill()
            driver.wait(10)
            gone_after = wait_until(lambda: not sleeps(marker), 15)
            assert gone_after is not None and gone_after < 15
            print(f"{where}: executables gone {gone_after:.2f} s after the driver was killed")
        finally:
            if driver.poll() is None:
                driver.kill()
            driver.stdout.close()
    finally:
        if cluster is not None:
            cluster.close()
        kill_all(marker)


PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    from sdpflow.engine import taskpool_procs as procs
    if sys.argv[2] == "preexec":
        procs._SETPRIV["setpriv"] = None  # as on a host without util-linux's setpriv
    argv, preexec = procs.dying_with_parent(["sleep", sys.argv[1]], None, dict(os.environ))
    assert (preexec is None) == (sys.argv[2] == "setpriv"), argv
    child = subprocess.Popen(argv, start_new_session=True, preexec_fn=preexec)
    print(child.pid, flush=True)
    child.wait()
    """
)


@pytest.mark.parametrize("how", ["setpriv", "preexec"])
def test_an_executable_dies_with_the_process_that_started_it(tmp_path, how):
    """The parent-death signal alone (no reaper): a ``kill -9`` parent takes its child along."""
    if how == "setpriv" and shutil.which("setpriv") is None:
        pytest.skip("no setpriv on PATH")
    marker = "55.683" if how == "setpriv" else "55.791"
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), marker, how], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert wait_until(lambda: [p.pid for p in sleeps(marker)] == [pid], 10) is not None  # argv[0] kept: "sleep"
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: not sleeps(marker), 5) is not None
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
        kill_all(marker)


def test_a_fence_left_by_a_dead_attempt_is_cleared_before_the_retry_starts(tmp_path):
    """As a worker killed mid-task leaves it (its reaper gone too): a marked process and a fence."""
    from sdpflow.engine import taskpool_procs as procs
    from sdpflow.engine import taskpool_worker as tw

    marker, token = "56.907", f"fence-test-{os.getpid()}"
    counts = tmp_path / "counts.txt"
    earlier = subprocess.Popen(["sleep", marker], start_new_session=True,
                               env={**os.environ, procs.MARK: procs.mark(token, 0, "dead1234")})
    try:
        procs.raise_fence(token, 0, earlier.pid)
        task = (0, "executable", ["sh", "-c", f'pgrep -c -x -f "sleep {marker}" >> {counts}; true'], (), None,
                None, None, 10, None, None)
        _, _, _, results = tw.run_chunk(token, [task])
        assert results[0][1:3] == (tw.FINISHED, 0)
        assert earlier.wait(5) == -signal.SIGKILL
        assert counts.read_text().split() == ["0"]
        assert not os.path.exists(procs.fence_path(token, 0))
    finally:
        earlier.kill()
        earlier.wait()
        tw.forget_pool(token)
