"""A worker killed mid-pool, and Ctrl-C: the pool finishes or stops cleanly, recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import psutil
from distributed import Client, LocalCluster

from sdpflow import TaskPool
from sdpflow.engine.events import read_events

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def nap(seconds, value):
    time.sleep(seconds)
    return value


def test_killed_worker_tasks_rerun_elsewhere_and_are_recorded(tmp_path):
    events = tmp_path / "events.jsonl"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client:
            pool = TaskPool("killed", events=events, db=f"sqlite:///{tmp_path / 'runs.db'}", chunk_size=1)
            for i in range(6):
                pool.add_task(f"nap{i}", nap, 1.0, i)
            pool.submit(client)
            time.sleep(0.5)  # both workers are inside their first nap
            victim, pid = next(iter(client.run(os.getpid).items()))
            os.kill(pid, signal.SIGKILL)
            results = pool.finished(timeout=60)
    assert results == {f"nap{i}": i for i in range(6)}
    records = list(read_events(events))
    retried = [r for r in records if r["event"] == "retried"]
    assert len(retried) >= 1
    assert {r["worker"] for r in retried} == {victim} and {r["reason"] for r in retried} == {"worker lost"}
    finished = {r["task"]: r for r in records if r["event"] == "finished"}
    assert len(finished) == 6
    for record in retried:
        assert finished[record["task"]]["attempt"] == 2 and finished[record["task"]]["worker"] != victim
    assert [r["task"] for r in records if r["event"] == "retried" and r["attempt"] != 2] == []
    from sdpflow.store.db import RunStore

    rows = RunStore(f"sqlite:///{tmp_path / 'runs.db'}").get_tasks(pool.run_id)
    assert sorted(row["attempts"] for row in rows if row["name"] in {r["task"] for r in retried}) == [2] * len(retried)


SCRIPT = textwrap.dedent(
    """
    from sdpflow import TaskPool
    if __name__ == "__main__":
        pool = TaskPool("interrupted", events={events!r})
        for i in range(4):
            pool.add_task(f"sleep{{i}}", "sleep", {marker!r})
        pool.submit("local:1", threads_per_worker=2)
        print("submitted", flush=True)
        pool.finished()
    """
)


def test_ctrl_c_leaves_no_subprocess_behind(tmp_path):
    marker = "43.129"
    script = tmp_path / "interrupted.py"
    events = tmp_path / "events.jsonl"
    script.write_text(SCRIPT.format(events=str(events), marker=marker))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "submitted"
        deadline = time.monotonic() + 30
        while len(_sleeps(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_sleeps(marker)) == 2
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    assert _sleeps(marker) == []
    cancelled = [r for r in read_events(events) if r["event"] == "cancelled"]
    assert len(cancelled) == 4


def _sleeps(marker: str) -> list[psutil.Process]:
    return [
        process for process in psutil.process_iter(["cmdline"])
        if process.info["cmdline"] and process.info["cmdline"][:2] == ["sleep", marker]
    ]
