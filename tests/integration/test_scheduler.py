"""A scheduler and workers started by someone else (`dask scheduler`, `dask worker`), reached
through SDPFLOW_SCHEDULER."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdpflow.engine.cluster import SCHEDULER_ENV, open_cluster

BIN = Path(sys.executable).parent
N = 2500


def sum_of_squares(client, n: int = N, chunks: int = 5) -> int:
    bounds = [(i * n // chunks, (i + 1) * n // chunks) for i in range(chunks)]
    parts = client.map(lambda b: sum(k * k for k in range(*b)), bounds, pure=False)
    return client.submit(sum, parts).result()


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


def test_pipeline_reaches_running_scheduler_through_env(scheduler, monkeypatch):
    address, procs = scheduler
    with open_cluster("local:1") as client:
        local = sum_of_squares(client)
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with open_cluster() as client:
        assert client.scheduler.address == address
        client.wait_for_workers(2, timeout=30)
        assert len(client.scheduler_info()["workers"]) == 2
        assert sum_of_squares(client) == local
        used = client.run(lambda: __import__("os").getpid())
        assert set(used.values()) <= {p.pid for p in __import__("psutil").Process(procs[1].pid).children()} | {
            p.pid for p in __import__("psutil").Process(procs[2].pid).children()} | {procs[1].pid, procs[2].pid}
    # Not ours: the scheduler and its workers keep running after the block.
    assert all(proc.poll() is None for proc in procs)
    with open_cluster() as client:
        assert len(client.scheduler_info()["workers"]) == 2


def test_cluster_check_on_running_scheduler(scheduler):
    address, procs = scheduler
    result = subprocess.run([BIN / "sdpflow", "cluster", "check"], env={**__import__("os").environ,
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
