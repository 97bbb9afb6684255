"""Task pools on a real LocalCluster of worker processes: kinds, failures, timeouts, events, cancel."""

from __future__ import annotations

import sys
import time
from datetime import datetime

import cloudpickle
import psutil
import pytest
from distributed import Client, LocalCluster

from sdpflow import TaskPool
from sdpflow.engine.events import read_events
from sdpflow.engine.taskpool import TaskError
from sdpflow.errors import InputError
from sdpflow.store.db import RunStore

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def double(x):
    return 2 * x


def explode(message):
    raise ValueError(message)


def noop(i):
    return i


class Counter:
    def __init__(self, base):
        self.base = base

    def add(self, x):
        return self.base + x

    def __call__(self, x):
        return self.base * x


def processes_with(marker: str) -> list[psutil.Process]:
    """Every process on this machine whose command line holds ``marker``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client:
            yield client


def test_kinds_failures_and_results(client, tmp_path):
    pool = TaskPool("kinds", events=tmp_path / "events.jsonl", db=f"sqlite:///{tmp_path / 'runs.db'}")
    pool.add_task("true", "true")
    pool.add_task("exit3", "sh", "-c", "echo broken >&2; exit 3")
    pool.add_task("missing", "no-such-program-sdpflow")
    pool.add_task("function", double, 21)
    pool.add_task("method", Counter(10).add, 5)
    pool.add_task("callable", Counter(3), 4)
    pool.add_task("raises", explode, "boom")
    pool.add_task("kwargs", double, kwargs={"x": 4})
    assert pool.submit(client) == 8
    results = pool.finished()

    assert results["true"] == 0
    assert results["exit3"] == 3
    assert results["missing"] == 127
    assert (results["function"], results["method"], results["callable"], results["kwargs"]) == (42, 15, 12, 8)
    error = results["raises"]
    assert isinstance(error, TaskError) and error.status == "failed"
    assert "ValueError: boom" in error.message and "in explode" in error.traceback
    statuses = pool.statuses()
    assert [name for name, status in statuses.items() if status == "failed"] == ["exit3", "missing", "raises"]

    events = list(read_events(tmp_path / "events.jsonl"))
    by_event = {}
    for record in events:
        by_event.setdefault(record["event"], []).append(record)
    assert len(by_event["submitted"]) == 8 and len(by_event["started"]) == 8
    assert len(by_event["finished"]) == 5 and len(by_event["failed"]) == 3
    kinds = {record["task"]: record["kind"] for record in by_event["finished"]}
    assert kinds == {"true": "executable", "function": "function", "method": "method", "callable": "function",
                     "kwargs": "function"}
    workers = set(client.scheduler_info()["workers"])
    worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
    for record in by_event["finished"] + by_event["failed"]:
        assert record["run"] == pool.run_id and record["pool"] == "kinds"
        assert record["worker"] in workers and record["pid"] in worker_pids and record["host"]
        assert record["end"] >= record["start"] and record["elapsed"] == pytest.approx(record["end"] - record["start"])
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
    failed = {record["task"]: record for record in by_event["failed"]}
    assert failed["exit3"]["exit_status"] == 3 and failed["exit3"]["error"] == "exit status 3: broken"
    assert failed["missing"]["exit_status"] == 127
    assert "Traceback" in failed["raises"]["traceback"]

    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    run = store.get_run(pool.run_id)
    assert run["pipeline"] == "pool" and run["status"] == "failed"
    rows = {row["name"]: row for row in store.get_tasks(pool.run_id)}
    assert len(rows) == 8
    assert rows["exit3"]["status"] == "failed" and rows["exit3"]["result"] == "3"
    assert rows["function"]["result"] == "42" and rows["function"]["attempts"] == 1
    assert rows["method"]["kind"] == "method" and rows["method"]["worker"] in workers


def test_cwd_env_and_output_files(client, tmp_path):
    pool = TaskPool("files")
    pool.add_task("shell", "sh", "-c", 'pwd; echo "$GREETING"; echo to-stderr >&2', cwd=tmp_path,
                  env={"GREETING": "hello"}, stdout="out.txt", stderr=tmp_path / "err.txt")
    assert pool.run(client) == {"shell": 0}
    assert (tmp_path / "out.txt").read_text().split() == [str(tmp_path), "hello"]
    assert (tmp_path / "err.txt").read_text().strip() == "to-stderr"


def test_timeout_kills_the_whole_process_group(client, tmp_path):
    marker = "31.731"  # a sleep nobody else runs
    pool = TaskPool("timeouts", events=tmp_path / "events.jsonl")
    pool.add_task("slow", "sh", "-c", f"sleep {marker} & sleep {marker}", timeout=0.5)
    pool.add_task("quick", "sleep", "0.1", timeout=5)
    began = time.monotonic()
    results = pool.run(client)
    assert time.monotonic() - began < 10
    assert results == {"slow": -9, "quick": 0}
    assert pool.statuses()["slow"] == "timed-out"
    record = [r for r in read_events(tmp_path / "events.jsonl") if r["event"] == "timed-out"]
    assert len(record) == 1 and 0.5 <= record[0]["elapsed"] < 5 and "timed out after 0.5 s" in record[0]["error"]
    assert processes_with(f"sleep {marker}") == []


def test_many_short_tasks_each_get_records(client, tmp_path):
    pool = TaskPool("many", events=tmp_path / "events.jsonl")
    for i in range(400):
        pool.add_task(f"t{i}", noop, i)
    results = pool.run(client)
    assert results == {f"t{i}": i for i in range(400)}
    counts = {}
    for record in read_events(tmp_path / "events.jsonl"):
        counts[record["event"]] = counts.get(record["event"], 0) + 1
    assert counts == {"submitted": 400, "started": 400, "finished": 400}


def test_fixed_chunks_and_a_container_prefix(client, tmp_path):
    pool = TaskPool("chunks", chunk_size=3)
    for i in range(7):
        pool.add_task(f"echo{i}", "echo", i, stdout=tmp_path / f"{i}.txt")
    # `env` as a container stand-in: a prefix that runs the real command after it
    assert pool.run(client, container="env SDPFLOW_IN_CONTAINER=1") == {f"echo{i}": 0 for i in range(7)}
    assert [(tmp_path / f"{i}.txt").read_text().strip() for i in range(7)] == [str(i) for i in range(7)]


def test_cancel_kills_running_subprocesses(client, tmp_path):
    marker = "41.317"
    pool = TaskPool("cancel", events=tmp_path / "events.jsonl")
    for i in range(6):
        pool.add_task(f"sleep{i}", "sleep", marker)
    pool.submit(client)
    deadline = time.monotonic() + 20
    while len(processes_with(f"sleep {marker}")) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(processes_with(f"sleep {marker}")) == 4  # 2 workers x 2 threads
    pool.cancel()
    time.sleep(0.2)
    assert processes_with(f"sleep {marker}") == []
    assert set(pool.statuses().values()) == {"cancelled"}
    cancelled = [r for r in read_events(tmp_path / "events.jsonl") if r["event"] == "cancelled"]
    assert len(cancelled) == 6


def test_user_errors_are_input_errors():
    pool = TaskPool("errors")
    pool.add_task("a", "true")
    with pytest.raises(InputError, match="duplicate task name 'a'"):
        pool.add_task("a", "true")
    with pytest.raises(InputError, match="cwd apply to executables only"):
        pool.add_task("b", double, 1, cwd="/tmp")
    with pytest.raises(InputError, match="neither an executable"):
        pool.add_task("c", 42)
    with pytest.raises(InputError, match="not submitted"):
        pool.finished()
    with pytest.raises(InputError, match="no tasks"):
        TaskPool("empty").submit(object())
