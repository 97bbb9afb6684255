"""A scheduler and workers started by someone else (`dask scheduler`, `dask worker`), reached
through SDPFLOW_SCHEDULER."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sdpflow.config.demo import DemoFlowConfig
from sdpflow.engine.cluster import SCHEDULER_ENV, open_cluster
from sdpflow.pipelines import start_run
from sdpflow.store import RunStore

BIN = Path(sys.executable).parent
N = 2500
EXPECTED = sum(k * k for k in range(N))


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` on 127.0.0.1 and two `dask worker` processes; yields the address."""
    folder = tmp_path_factory.mktemp("scheduler")
    file = folder / "scheduler.json"
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", "127.0.0.1:0", "--scheduler-file", file],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 30
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([BIN / "dask", "worker", address, "--nthreads", "1", "--memory-limit", "1GiB",
                                           "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address, procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_pipeline_runs_on_running_scheduler_through_env(scheduler, monkeypatch, tmp_path):
    address, procs = scheduler

    def task_transitions(dask_worker) -> int:
        """Task state changes a worker has gone through (grows with every task it runs).
        Defined here so that it travels by value: the workers cannot import this module."""
        return dask_worker.state.transition_counter

    monkeypatch.setenv(SCHEDULER_ENV, address)
    with open_cluster() as client:
        assert client.scheduler.address == address
        client.wait_for_workers(2, timeout=30)
        before = client.run(task_transitions)
        pids = set(client.run(os.getpid).values())
    theirs = {p.pid for proc in procs[1:] for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]}
    assert len(before) == 2 and pids <= theirs

    # No spec anywhere: the run goes to $SDPFLOW_SCHEDULER.
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    config = DemoFlowConfig(squares={"count": N, "chunks": 8})
    result = start_run("demo-flow", config, tmp_path / "out", store=store)
    assert json.loads((result.out_dir / "squares.json").read_text()) == {"count": N, "sum_of_squares": EXPECTED}
    assert (result.out_dir / "report.txt").read_text().endswith(f"= {EXPECTED}\n")
    record = store.get_run(result.run_id)
    assert (record["status"], record["cluster"]) == ("completed", address)

    # Both of its workers ran the pipeline's tasks, and (not ours) keep running after it.
    assert all(proc.poll() is None for proc in procs)
    with open_cluster() as client:
        after = client.run(task_transitions)
        assert set(after) == set(before)
        assert all(after[w] > before[w] for w in before), (before, after)


def test_cluster_check_on_running_scheduler(scheduler):
    address, procs = scheduler
    result = subprocess.run([BIN / "sdpflow", "cluster", "check"], env={**os.environ,
                            SCHEDULER_ENV: address}, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "workers: 2  threads: 2  memory: 2.0 GiB" in result.stdout
    assert "left the running scheduler as it was" in result.stdout
    assert all(proc.poll() is None for proc in procs)


def test_cluster_check_unreachable_exits_3_with_one_line():
    result = subprocess.run([BIN / "sdpflow", "cluster", "check", "tcp://127.0.0.1:9", "--set", "connect_timeout=2"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
